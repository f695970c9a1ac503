@testable import BrookGroups
import BrookCore
import BrookProtocol
import Testing

/// OffsetCommit, OffsetFetch, DeleteGroups, OffsetDelete and the expiry of committed offsets.
@Suite struct OffsetCommitTests {
    static let now: Int64 = 1_000_000
    static let p0 = TopicPartition("orders", 0), p1 = TopicPartition("orders", 1), p2 = TopicPartition("orders", 2)

    @Test func aSimpleCommitterCreatesTheGroupOnceItsRecordsAreReplayed() throws {
        var gc = GroupCoordinator(config: .testing(), seed: 1)
        let offsets = [(Self.p0, committed(10, metadata: "zero", at: Self.now)), (Self.p1, committed(20, at: Self.now))]
        let check = gc.checkCommit(groupID: "simple", generation: -1, memberID: "", instanceID: nil, offsets: offsets, now: Self.now)
        #expect(check.groupError == .none)
        #expect(check.partitionErrors == [Self.p0: .none, Self.p1: .none])
        #expect(check.records == [.offset(group: "simple", Self.p0, offsets[0].1), .offset(group: "simple", Self.p1, offsets[1].1)])
        // Nothing takes effect before the records are written and replayed.
        #expect(gc.group("simple") == nil)
        for record in check.records { gc.replay(record, now: Self.now) }
        let entry = try #require(gc.group("simple"))
        #expect(entry.stateName == "Empty")
        #expect(entry.typeName == "classic")
        #expect(entry.protocolType == "")
        #expect(entry.offsets.count == 2)
    }

    @Test func fetchReturnsCommittedOffsetsWithTheirMetadataAndNilForTheRest() throws {
        var gc = GroupCoordinator(config: .testing(), seed: 1)
        let c0 = committed(10, metadata: "checkpoint é", at: Self.now, epoch: 4)
        let c1 = committed(20, at: Self.now + 1)
        let check = gc.checkCommit(groupID: "g", generation: -1, memberID: "", instanceID: nil,
                                   offsets: [(Self.p0, c0), (Self.p1, c1)], now: Self.now)
        for record in check.records { gc.replay(record, now: Self.now) }
        let (code, some) = gc.fetchOffsets(groupID: "g", partitions: [Self.p1, Self.p2, Self.p0], memberID: nil, memberEpoch: -1)
        #expect(code == .none)
        #expect(some.map(\.0) == [Self.p1, Self.p2, Self.p0])
        #expect(some.map(\.1) == [c1, nil, c0])
        #expect(some[2].1?.metadata == "checkpoint é")
        #expect(some[2].1?.leaderEpoch == LeaderEpoch(4))
        let (allCode, all) = gc.fetchOffsets(groupID: "g", partitions: nil, memberID: nil, memberEpoch: -1)
        #expect(allCode == .none)
        #expect(all.map(\.0) == [Self.p0, Self.p1])
        #expect(all.map(\.1) == [c0, c1])
        // A group nobody knows has no offsets (not an error).
        let (unknownCode, unknown) = gc.fetchOffsets(groupID: "other", partitions: [Self.p0], memberID: nil, memberEpoch: -1)
        #expect(unknownCode == .none)
        #expect(unknown.count == 1 && unknown[0].1 == nil)
    }

    @Test func aLaterCommitReplacesTheEarlierOne() throws {
        var gc = GroupCoordinator(config: .testing(), seed: 1)
        for (offset, at) in [(Int64(5), Self.now), (Int64(9), Self.now + 10)] {
            let check = gc.checkCommit(groupID: "g", generation: -1, memberID: "", instanceID: nil,
                                       offsets: [(Self.p0, committed(offset, at: at))], now: at)
            for record in check.records { gc.replay(record, now: at) }
        }
        #expect(gc.fetchOffsets(groupID: "g", partitions: [Self.p0], memberID: nil, memberEpoch: -1).1.first?.1?.offset == Offset(9))
    }

    @Test func replayingAnOffsetTombstoneRemovesTheOffset() throws {
        var gc = GroupCoordinator(config: .testing(), seed: 1)
        gc.replay(.offset(group: "g", Self.p0, committed(1, at: Self.now)), now: Self.now)
        gc.replay(.offset(group: "g", Self.p1, committed(2, at: Self.now)), now: Self.now)
        gc.replay(.offsetTombstone(group: "g", Self.p0), now: Self.now)
        let (_, offsets) = gc.fetchOffsets(groupID: "g", partitions: [Self.p0, Self.p1], memberID: nil, memberEpoch: -1)
        #expect(offsets[0].1 == nil)
        #expect(offsets[1].1?.offset == Offset(2))
        gc.replay(.groupTombstone(group: "g"), now: Self.now)
        #expect(gc.group("g") == nil)
    }

    @Test func membersMustCommitInTheCurrentGeneration() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, nil])
        let offsets = [(Self.p0, committed(1, at: h.now))]
        func check(_ generation: Int32, _ member: String) -> GroupCoordinator.CommitCheck {
            h.gc.checkCommit(groupID: h.group, generation: generation, memberID: member, instanceID: nil, offsets: offsets, now: h.now)
        }
        let stale = check(0, ids[1])
        #expect(stale.groupError == .illegalGeneration)
        #expect(stale.records.isEmpty)
        #expect(check(2, ids[0]).groupError == .illegalGeneration)
        #expect(check(1, "stranger").groupError == .unknownMemberID)
        // A simple committer may not write into a group with members.
        #expect(check(-1, "").groupError == .unknownMemberID)
        let good = check(1, ids[1])
        #expect(good.groupError == .none)
        #expect(good.records.count == 1)
    }

    @Test func commitsWaitWhileTheAssignmentIsBeingSynced() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, nil])
        _ = h.join(ids[0])
        // Preparing: members of the current generation may still commit.
        let preparing = h.gc.checkCommit(groupID: h.group, generation: 1, memberID: ids[1], instanceID: nil,
                                         offsets: [(Self.p0, committed(1, at: h.now))], now: h.now)
        #expect(preparing.groupError == .none)
        _ = h.join(ids[1])
        #expect(h.state == .completingRebalance)
        let completing = h.gc.checkCommit(groupID: h.group, generation: 2, memberID: ids[1], instanceID: nil,
                                          offsets: [(Self.p0, committed(1, at: h.now))], now: h.now)
        #expect(completing.groupError == .rebalanceInProgress)
    }

    @Test func aGroupCommitToAMissingGroupIsAnIllegalGeneration() throws {
        var gc = GroupCoordinator(config: .testing(), seed: 1)
        let check = gc.checkCommit(groupID: "gone", generation: 3, memberID: "m", instanceID: nil,
                                   offsets: [(Self.p0, committed(1, at: Self.now))], now: Self.now)
        #expect(check.groupError == .illegalGeneration)
        #expect(check.records.isEmpty)
    }

    @Test func oversizedMetadataFailsOnlyItsPartition() throws {
        var gc = GroupCoordinator(config: .testing { $0.offsetMetadataMaxBytes = 8 }, seed: 1)
        let fits = committed(1, metadata: "12345678", at: Self.now)
        let check = gc.checkCommit(groupID: "g", generation: -1, memberID: "", instanceID: nil,
                                   offsets: [(Self.p0, committed(1, metadata: "123456789", at: Self.now)), (Self.p1, fits)],
                                   now: Self.now)
        #expect(check.groupError == .none)
        #expect(check.partitionErrors == [Self.p0: .offsetMetadataTooLarge, Self.p1: .none])
        #expect(check.records == [.offset(group: "g", Self.p1, fits)])
    }
}

@Suite struct GroupDeletionTests {
    static let now: Int64 = 1_000_000

    @Test func deletingAGroupWithMembersIsRefused() throws {
        var h = ClassicHarness()
        _ = try h.formStable([nil])
        let (code, records) = h.gc.deleteGroup(h.group)
        #expect(code == .nonEmptyGroup)
        #expect(records.isEmpty)
        #expect(h.state == .stable)
    }

    @Test func deletingAnUnknownGroupIsGroupIDNotFound() {
        var gc = GroupCoordinator(config: .testing(), seed: 1)
        let (code, records) = gc.deleteGroup("nope")
        #expect(code == .groupIDNotFound)
        #expect(records.isEmpty)
    }

    @Test func deletingAnEmptyGroupTombstonesEveryOffsetAndTheGroup() throws {
        var gc = GroupCoordinator(config: .testing(), seed: 1)
        let partitions = [TopicPartition("b", 1), TopicPartition("a", 0), TopicPartition("b", 0)]
        for (i, tp) in partitions.enumerated() { gc.replay(.offset(group: "g", tp, committed(Int64(i), at: Self.now)), now: Self.now) }
        let (code, records) = gc.deleteGroup("g")
        #expect(code == .none)
        #expect(records == [.offsetTombstone(group: "g", TopicPartition("a", 0)), .offsetTombstone(group: "g", TopicPartition("b", 0)),
                            .offsetTombstone(group: "g", TopicPartition("b", 1)), .groupTombstone(group: "g")])
        #expect(gc.group("g") == nil)
    }

    @Test func aClassicGroupCanBeDeletedOnceItsMembersLeft() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil])
        _ = h.leave(ids[0])
        #expect(h.state == .empty)
        let (code, records) = h.gc.deleteGroup(h.group)
        #expect(code == .none)
        #expect(records == [.groupTombstone(group: h.group)])
        #expect(h.gc.group(h.group) == nil)
    }

    @Test func offsetsOfASubscribedTopicCannotBeDeleted() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil])   // subscribes to "orders"
        let orders0 = TopicPartition("orders", 0), audit0 = TopicPartition("audit", 0), audit1 = TopicPartition("audit", 1)
        let check = h.gc.checkCommit(groupID: h.group, generation: 1, memberID: ids[0], instanceID: nil,
                                     offsets: [(orders0, committed(5, at: h.now)), (audit0, committed(6, at: h.now))], now: h.now)
        #expect(check.groupError == .none)
        for record in check.records { h.gc.replay(record, now: h.now) }
        let (code, errors, records) = h.gc.deleteOffsets(groupID: h.group, partitions: [orders0, audit0, audit1])
        #expect(code == .none)
        #expect(errors == [orders0: .groupSubscribedToTopic, audit0: .none, audit1: .none])
        #expect(records == [.offsetTombstone(group: h.group, audit0)])
        let (_, left) = h.gc.fetchOffsets(groupID: h.group, partitions: [orders0, audit0], memberID: nil, memberEpoch: -1)
        #expect(left[0].1?.offset == Offset(5))
        #expect(left[1].1 == nil)
    }

    @Test func offsetsCanBeDeletedOnceNobodySubscribes() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil])
        let orders0 = TopicPartition("orders", 0)
        h.gc.replay(.offset(group: h.group, orders0, committed(5, at: h.now)), now: h.now)
        _ = h.leave(ids[0])
        let (code, errors, records) = h.gc.deleteOffsets(groupID: h.group, partitions: [orders0])
        #expect(code == .none)
        #expect(errors == [orders0: .none])
        #expect(records == [.offsetTombstone(group: h.group, orders0)])
    }

    @Test func deletingOffsetsOfAnUnknownGroupIsGroupIDNotFound() {
        var gc = GroupCoordinator(config: .testing(), seed: 1)
        let (code, _, records) = gc.deleteOffsets(groupID: "nope", partitions: [TopicPartition("t", 0)])
        #expect(code == .groupIDNotFound)
        #expect(records.isEmpty)
    }

    @Test func aConsumerGroupsSubscriptionAlsoProtectsItsOffsets() throws {
        var h = ConsumerHarness()
        _ = h.heartbeat("m1", epoch: 0, subscribe: ["orders"])
        h.gc.replay(.offset(group: h.group, TopicPartition("orders", 0), committed(1, at: h.now)), now: h.now)
        h.gc.replay(.offset(group: h.group, TopicPartition("payments", 0), committed(1, at: h.now)), now: h.now)
        let (_, errors, _) = h.gc.deleteOffsets(groupID: h.group, partitions: [TopicPartition("orders", 0), TopicPartition("payments", 0)])
        #expect(errors == [TopicPartition("orders", 0): .groupSubscribedToTopic, TopicPartition("payments", 0): .none])
    }
}

@Suite struct OffsetExpiryTests {
    static let retention: Int64 = 60_000
    static func config(checkEvery interval: Int64 = 1) -> GroupConfig {
        .testing {
            $0.offsetsRetentionMs = retention
            $0.offsetsRetentionCheckIntervalMs = interval
        }
    }
    static func tombstones(_ effects: Effects) -> [GroupRecord] {
        effects.records.filter { if case .offsetTombstone = $0 { true } else if case .groupTombstone = $0 { true } else { false } }
    }

    @Test func standaloneOffsetsExpireRetentionAfterTheirCommit() throws {
        var gc = GroupCoordinator(config: Self.config(), seed: 1)
        let t0: Int64 = 1_000_000
        let tp = TopicPartition("orders", 0)
        gc.replay(.offset(group: "g", tp, committed(1, at: t0)), now: t0)
        #expect(gc.tick(now: t0 + Self.retention - 1).records.isEmpty)
        #expect(gc.group("g")?.offsets.count == 1)
        let effects = gc.tick(now: t0 + Self.retention)
        #expect(effects.records == [.offsetTombstone(group: "g", tp), .groupTombstone(group: "g")])
        #expect(gc.group("g") == nil)
    }

    @Test func eachOffsetExpiresOnItsOwnClock() throws {
        var gc = GroupCoordinator(config: Self.config(), seed: 1)
        let t0: Int64 = 1_000_000
        let early = TopicPartition("orders", 0), late = TopicPartition("orders", 1)
        gc.replay(.offset(group: "g", early, committed(1, at: t0)), now: t0)
        gc.replay(.offset(group: "g", late, committed(1, at: t0 + 30_000)), now: t0 + 30_000)
        #expect(gc.tick(now: t0 + Self.retention).records == [.offsetTombstone(group: "g", early)])
        #expect(gc.group("g")?.offsets.keys.sorted() == [late])
        #expect(gc.tick(now: t0 + 30_000 + Self.retention).records == [.offsetTombstone(group: "g", late), .groupTombstone(group: "g")])
    }

    @Test func expiryRunsOnlyEveryCheckInterval() throws {
        var gc = GroupCoordinator(config: Self.config(checkEvery: 100_000), seed: 1)
        let t0: Int64 = 1_000_000
        gc.replay(.offset(group: "g", TopicPartition("orders", 0), committed(1, at: t0)), now: t0)
        #expect(gc.tick(now: t0).records.isEmpty)   // a check, too early to expire
        #expect(gc.tick(now: t0 + Self.retention).records.isEmpty)   // expired, but no check yet
        #expect(gc.group("g")?.offsets.count == 1)
        #expect(gc.tick(now: t0 + 100_000).records.count == 2)
    }

    @Test func aGroupWithLiveMembersKeepsItsOffsets() throws {
        var h = ClassicHarness(config: Self.config())
        let ids = try h.formStable([nil])
        let tp = TopicPartition("orders", 0)
        let check = h.gc.checkCommit(groupID: h.group, generation: 1, memberID: ids[0], instanceID: nil,
                                     offsets: [(tp, committed(7, at: h.now))], now: h.now)
        for record in check.records { h.gc.replay(record, now: h.now) }
        for _ in 0..<30 {   // 150 s, well past the retention
            h.now += 5_000
            #expect(h.heartbeat(ids[0], generation: 1) == .none)
            #expect(Self.tombstones(h.tick(at: h.now)).isEmpty)
        }
        #expect(h.gc.group(h.group)?.offsets[tp]?.offset == Offset(7))
        // Once the group is empty, its offsets live for the retention from then on.
        let emptiedAt = h.now
        _ = h.leave(ids[0])
        #expect(h.state == .empty)
        #expect(Self.tombstones(h.tick(at: emptiedAt + Self.retention - 1)).isEmpty)
        #expect(h.gc.group(h.group)?.offsets.count == 1)
        let effects = h.tick(at: emptiedAt + Self.retention)
        #expect(Self.tombstones(effects) == [.offsetTombstone(group: h.group, tp), .groupTombstone(group: h.group)])
        #expect(h.gc.group(h.group) == nil)
    }

    @Test func aConsumerGroupWithMembersKeepsItsOffsets() throws {
        var h = ConsumerHarness(config: Self.config())
        let first = h.heartbeat("m1", epoch: 0, subscribe: ["orders"])
        let tp = TopicPartition("orders", 0)
        h.gc.replay(.offset(group: h.group, tp, committed(3, at: h.now)), now: h.now)
        var epoch = first.memberEpoch
        for _ in 0..<30 {
            h.now += 5_000
            epoch = h.heartbeat("m1", epoch: epoch).memberEpoch
            #expect(Self.tombstones(h.tick(at: h.now)).isEmpty)
        }
        #expect(h.gc.group(h.group)?.offsets[tp]?.offset == Offset(3))
    }
}
