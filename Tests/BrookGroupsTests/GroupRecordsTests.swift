@testable import BrookGroups
import BrookCore
import BrookProtocol
import Testing

@Suite struct GroupRecordsTests {
    @Test func offsetRecordRoundTrips() throws {
        let c = CommittedOffset(offset: Offset(42), leaderEpoch: LeaderEpoch(3), metadata: "méta", commitTimestamp: Timestamp(ms: 1_700_000_000_123))
        let r = GroupRecord.offset(group: "g", TopicPartition("t", 7), c)
        #expect(try GroupRecord.decode(key: r.key, value: r.value) == r)
        let t = GroupRecord.offsetTombstone(group: "g", TopicPartition("t", 7))
        #expect(t.key == r.key)
        #expect(try GroupRecord.decode(key: t.key, value: nil) == t)
    }

    static func snapshot() -> GroupSnapshot {
        GroupSnapshot(
            groupID: "restored", protocolType: "consumer", generation: 5, protocolName: "range", leader: "m-1",
            stateTimestamp: 123_456,
            members: [
                .init(memberID: "m-1", instanceID: nil, clientID: "c1", clientHost: "/10.0.0.1", rebalanceTimeoutMs: 30_000,
                      sessionTimeoutMs: 10_000, subscription: ConsumerProtocol.encodeSubscription(["orders"]),
                      assignment: ConsumerProtocol.encodeAssignment(["orders": [0, 1]])),
                .init(memberID: "m-2", instanceID: "static-2", clientID: "c2", clientHost: "/10.0.0.2", rebalanceTimeoutMs: 45_000,
                      sessionTimeoutMs: 12_000, subscription: ConsumerProtocol.encodeSubscription(["orders", "audit"]),
                      assignment: ConsumerProtocol.encodeAssignment(["orders": [2], "audit": [0]])),
                .init(memberID: "m-3", instanceID: nil, clientID: "", clientHost: "", rebalanceTimeoutMs: 30_000,
                      sessionTimeoutMs: 10_000, subscription: [], assignment: []),
            ])
    }

    @Test func groupMetadataRoundTripsWithSeveralMembers() throws {
        let record = GroupRecord.groupMetadata(Self.snapshot())
        let value = try #require(record.value)
        #expect(try GroupRecord.decode(key: record.key, value: value) == record)
        let tombstone = GroupRecord.groupTombstone(group: "restored")
        #expect(tombstone.key == record.key)
        #expect(tombstone.value == nil)
        #expect(try GroupRecord.decode(key: tombstone.key, value: nil) == tombstone)
        #expect(record.groupID == "restored")
    }

    @Test func anEmptyGroupWithoutProtocolOrLeaderRoundTrips() throws {
        let snap = GroupSnapshot(groupID: "e", protocolType: "", generation: 0, protocolName: nil, leader: nil,
                                 stateTimestamp: -1, members: [])
        let record = GroupRecord.groupMetadata(snap)
        #expect(try GroupRecord.decode(key: record.key, value: record.value) == record)
    }

    @Test func offsetAndGroupKeysDiffer() {
        let offset = GroupRecord.offsetTombstone(group: "g", TopicPartition("t", 0))
        let group = GroupRecord.groupTombstone(group: "g")
        #expect(offset.key != group.key)
        #expect(Array(offset.key.prefix(2)) == [0, 1])
        #expect(Array(group.key.prefix(2)) == [0, 2])
    }

    @Test func recordsOfOtherKindsAreSkipped() throws {
        // Key version 3+ are Kafka's KIP-848 / share-group records.
        #expect(try GroupRecord.decode(key: [0, 5, 0, 1, 0x67], value: [0, 0]) == nil)
    }

    @Test func truncatedValuesAreErrors() throws {
        let record = GroupRecord.groupMetadata(Self.snapshot())
        let value = try #require(record.value)
        #expect(throws: ProtocolError.self) { try GroupRecord.decode(key: record.key, value: Array(value.dropLast(3))) }
        let offset = GroupRecord.offset(group: "g", TopicPartition("t", 0), committed(1, at: 5))
        #expect(throws: ProtocolError.self) { try GroupRecord.decode(key: offset.key, value: Array(offset.value!.prefix(9))) }
    }

    /// Kafka's OffsetCommitValue v1 carries an expire timestamp after the commit timestamp.
    @Test func kafkaOffsetValueV1Decodes() throws {
        var value: [UInt8] = [0, 1]
        value += bigEndian(Int64(42)) + [0, 2] + Array("md".utf8) + bigEndian(Int64(1_000)) + bigEndian(Int64(9_000))
        let key = GroupRecord.offsetTombstone(group: "g", TopicPartition("t", 1)).key
        let decoded = try GroupRecord.decode(key: key, value: value)
        #expect(decoded == .offset(group: "g", TopicPartition("t", 1),
                                   CommittedOffset(offset: Offset(42), leaderEpoch: LeaderEpoch(-1), metadata: "md",
                                                   commitTimestamp: Timestamp(ms: 1_000))))
    }

    /// Kafka's OffsetCommitValue v4 (KIP-915) is the first flexible version: compact string
    /// for the metadata and a tagged-field section at the end.
    @Test
    func kafkaOffsetValueV4Decodes() throws {
        var value: [UInt8] = [0, 4]
        value += bigEndian(Int64(42)) + bigEndian(Int32(3))
        value += [UInt8(2 + 1)] + Array("md".utf8)   // compact string: length + 1 as an unsigned varint
        value += bigEndian(Int64(1_000))
        value += [0]   // no tagged fields
        let key = GroupRecord.offsetTombstone(group: "g", TopicPartition("t", 1)).key
        let decoded = try GroupRecord.decode(key: key, value: value)
        #expect(decoded == .offset(group: "g", TopicPartition("t", 1),
                                   CommittedOffset(offset: Offset(42), leaderEpoch: LeaderEpoch(3), metadata: "md",
                                                   commitTimestamp: Timestamp(ms: 1_000))))
    }
}

func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.bigEndian, Array.init)
}

@Suite struct GroupReplayTests {
    static let now: Int64 = 5_000_000

    static func restored() -> GroupCoordinator {
        var gc = GroupCoordinator(config: .testing(), seed: 3)
        gc.replay(.groupMetadata(GroupRecordsTests.snapshot()), now: now)
        return gc
    }

    static func classic(_ gc: GroupCoordinator, _ id: String = "restored") -> ClassicGroup? {
        if case .classic(let g)? = gc.group(id)?.kind { return g }
        return nil
    }

    @Test func aSnapshotRestoresAStableGroup() throws {
        let gc = Self.restored()
        let group = try #require(Self.classic(gc))
        #expect(group.state == .stable)
        #expect(group.generation == 5)
        #expect(group.protocolType == "consumer")
        #expect(group.protocolName == "range")
        #expect(group.leaderID == "m-1")
        #expect(group.members.map(\.memberID) == ["m-1", "m-2", "m-3"])
        #expect(group.member("m-2")?.instanceID == "static-2")
        #expect(group.member("m-2")?.sessionTimeoutMs == 12_000)
        #expect(group.stateSince == 123_456)
        // Written again, it is the same record.
        #expect(group.snapshot == GroupRecordsTests.snapshot())
    }

    @Test func restoredMembersCarryOnInTheirGeneration() throws {
        var gc = Self.restored()
        #expect(gc.heartbeat(groupID: "restored", memberID: "m-1", instanceID: nil, generation: 5, now: Self.now) == .none)
        #expect(gc.heartbeat(groupID: "restored", memberID: "m-1", instanceID: nil, generation: 4, now: Self.now) == .illegalGeneration)
        #expect(gc.heartbeat(groupID: "restored", memberID: "other", instanceID: "static-2", generation: 5, now: Self.now) == .fencedInstanceID)
        let request = SyncRequest(groupID: "restored", generation: 5, memberID: "m-2", instanceID: "static-2",
                                  protocolType: "consumer", protocolName: "range", assignments: [:])
        let effects = gc.sync(request, pending: PendingID(1), now: Self.now)
        #expect(syncAnswer(effects, PendingID(1))?.assignment == ConsumerProtocol.encodeAssignment(["orders": [2], "audit": [0]]))
        let offsets = [(TopicPartition("orders", 0), committed(1, at: Self.now))]
        #expect(gc.checkCommit(groupID: "restored", generation: 5, memberID: "m-1", instanceID: nil, offsets: offsets,
                               now: Self.now).groupError == .none)
        // Their subscriptions are known again.
        #expect(gc.subscribedTopics(try #require(gc.group("restored"))) == ["orders", "audit"])
    }

    @Test func restoredMembersMustHeartbeatWithinTheirSession() throws {
        var gc = Self.restored()
        _ = gc.heartbeat(groupID: "restored", memberID: "m-1", instanceID: nil, generation: 5, now: Self.now + 9_000)
        _ = gc.heartbeat(groupID: "restored", memberID: "m-2", instanceID: nil, generation: 5, now: Self.now + 9_000)
        _ = gc.tick(now: Self.now + 10_000)
        let group = try #require(Self.classic(gc))
        #expect(group.members.map(\.memberID) == ["m-1", "m-2"])
        #expect(group.state == .preparingRebalance)
    }

    @Test func anEmptySnapshotRestoresAnEmptyGroup() throws {
        var gc = GroupCoordinator(config: .testing(), seed: 3)
        gc.replay(.offset(group: "e", TopicPartition("orders", 0), committed(4, at: 10)), now: Self.now)
        gc.replay(.groupMetadata(GroupSnapshot(groupID: "e", protocolType: "consumer", generation: 9, protocolName: nil,
                                               leader: nil, stateTimestamp: 77, members: [])), now: Self.now)
        let group = try #require(Self.classic(gc, "e"))
        #expect(group.state == .empty)
        #expect(group.generation == 9)
        #expect(group.stateSince == 77)
        // The offsets replayed before the group survive it.
        #expect(gc.group("e")?.offsets.count == 1)
    }

    @Test func aLaterSnapshotReplacesAnEarlierOne() throws {
        var gc = Self.restored()
        var later = GroupRecordsTests.snapshot()
        later.generation = 6
        later.members.removeLast()
        gc.replay(.groupMetadata(later), now: Self.now)
        let group = try #require(Self.classic(gc))
        #expect(group.generation == 6)
        #expect(group.members.map(\.memberID) == ["m-1", "m-2"])
        gc.replay(.groupTombstone(group: "restored"), now: Self.now)
        #expect(gc.group("restored") == nil)
    }

    /// Everything a live coordinator writes, through the bytes and back into a new one.
    @Test func aCoordinatorsRecordsRebuildItsGroupsAfterALoad() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, "instance-b", nil])
        var written: [GroupRecord] = []
        let check = h.gc.checkCommit(groupID: h.group, generation: 1, memberID: ids[2], instanceID: nil,
                                     offsets: [(TopicPartition("orders", 3), committed(30, metadata: "m", at: h.now))], now: h.now)
        for record in check.records { h.gc.replay(record, now: h.now) }
        written += check.records
        // Replay what a driver would have written during formStable: the last snapshot stands.
        let snap = try #require(h.classic).snapshot
        written.append(.groupMetadata(snap))
        var loaded = GroupCoordinator(config: .testing(), seed: 99)
        for record in written {
            let decoded = try #require(try GroupRecord.decode(key: record.key, value: record.value))
            loaded.replay(decoded, now: h.now)
        }
        let group = try #require(Self.classic(loaded, h.group))
        #expect(group.snapshot == snap)
        #expect(group.state == .stable)
        #expect(group.generation == 1)
        #expect(group.members.map(\.assignment) == [[1], [2], [3]])
        #expect(loaded.group(h.group)?.offsets == h.gc.group(h.group)?.offsets)
        #expect(loaded.heartbeat(groupID: h.group, memberID: ids[1], instanceID: "instance-b", generation: 1, now: h.now) == .none)
    }
}

@Suite struct ConsumerProtocolTests {
    @Test func subscriptionsRoundTrip() {
        #expect(ConsumerProtocol.subscribedTopics(ConsumerProtocol.encodeSubscription(["a", "b"])) == ["a", "b"])
        #expect(ConsumerProtocol.subscribedTopics(ConsumerProtocol.encodeSubscription([])) == [])
        #expect(ConsumerProtocol.subscribedTopics([0x01]) == nil)
        #expect(ConsumerProtocol.subscribedTopics([]) == nil)
    }

    @Test func assignmentsRoundTrip() {
        let partitions: [String: [Int32]] = ["a": [0, 2], "b": [1]]
        #expect(ConsumerProtocol.assignedPartitions(ConsumerProtocol.encodeAssignment(partitions)) == partitions)
        #expect(ConsumerProtocol.assignedPartitions([]) == [:])
        #expect(ConsumerProtocol.assignedPartitions([0, 0, 0, 0, 0, 9]) == nil)
    }
}
