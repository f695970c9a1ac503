@testable import BrookGroups
import BrookCore
import BrookProtocol
import Testing

/// KIP-848 ConsumerGroupHeartbeat: epochs, the target assignment, revoke-before-reassign.
@Suite struct ConsumerGroupTests {
    @Test func theFirstMemberGetsEveryPartitionAndEpochOne() throws {
        var h = ConsumerHarness()
        let r = h.heartbeat("", epoch: 0, subscribe: ["orders"])
        #expect(r.error == .none)
        #expect(!r.memberID.isEmpty)
        #expect(r.memberEpoch == 1)
        #expect(r.assignment == orders(0..<6))
        #expect(r.heartbeatIntervalMs == h.gc.config.consumerHeartbeatIntervalMs)
        let group = try #require(h.consumer)
        #expect(group.groupEpoch == 1 && group.assignmentEpoch == 1)
        #expect(group.state == "Stable")
        #expect(h.gc.group(h.group)?.typeName == "consumer")
        // Unchanged since the last answer: no assignment in the next one.
        let again = h.heartbeat(r.memberID, epoch: 1)
        #expect(again.error == .none && again.memberEpoch == 1)
        #expect(again.assignment == nil)
    }

    /// m1 owns all six; m2 joins. Returns m1's revoke answer, m2's join answer.
    static func secondMemberJoins(_ h: inout ConsumerHarness) throws -> (ConsumerHeartbeatResult, ConsumerHeartbeatResult) {
        let first = h.heartbeat("m1", epoch: 0, subscribe: ["orders"])
        try #require(first.memberEpoch == 1 && first.assignment == orders(0..<6))
        let second = h.heartbeat("m2", epoch: 0, subscribe: ["orders"])
        let revoke = h.heartbeat("m1", epoch: 1)
        return (revoke, second)
    }

    @Test func aSecondMemberMakesTheFirstRevokeHalf() throws {
        var h = ConsumerHarness()
        let (revoke, _) = try Self.secondMemberJoins(&h)
        #expect(revoke.error == .none)
        // The first member keeps its epoch until it has revoked.
        #expect(revoke.memberEpoch == 1)
        let kept = try #require(revoke.assignment)
        #expect(kept.partitionCount == 3)
        #expect(kept.subtracting(orders(0..<6)).isEmpty)
        #expect(h.member("m1")?.state == .unrevokedPartitions)
        #expect(h.member("m1")?.revoking.partitionCount == 3)
        #expect(h.consumer?.groupEpoch == 2)
        #expect(h.consumer?.state == "Reconciling")
    }

    @Test func theNewMemberWaitsForPartitionsUntilTheyAreReleased() throws {
        var h = ConsumerHarness()
        let (revoke, second) = try Self.secondMemberJoins(&h)
        let kept = try #require(revoke.assignment)
        #expect(second.error == .none)
        #expect(second.memberEpoch == 2)
        #expect((second.assignment ?? [:]).partitionCount == 0)
        #expect(h.member("m2")?.state == .unreleasedPartitions)
        // Still waiting while m1 has not confirmed the revocation.
        let waiting = h.heartbeat("m2", epoch: 2)
        #expect((waiting.assignment ?? [:]).partitionCount == 0)
        #expect(h.member("m2")?.state == .unreleasedPartitions)
        // A heartbeat that still claims the revoked partitions changes nothing.
        let stillOwning = h.heartbeat("m1", epoch: 1, owned: orders(0..<6))
        #expect(stillOwning.memberEpoch == 1)
        #expect(h.member("m1")?.state == .unrevokedPartitions)
        // m1 reports it owns only what it kept: it moves to the new epoch.
        let revoked = h.heartbeat("m1", epoch: 1, owned: kept)
        #expect(revoked.error == .none)
        #expect(revoked.memberEpoch == 2)
        #expect(h.member("m1")?.state == .stable)
        #expect(h.member("m1")?.assigned == kept)
        // Now m2 gets the other three.
        let released = h.heartbeat("m2", epoch: 2)
        let got = try #require(released.assignment)
        #expect(got.partitionCount == 3)
        #expect(got.union(kept) == orders(0..<6))
        #expect(got.intersection(kept).isEmpty)
        #expect(h.member("m2")?.state == .stable)
        #expect(h.consumer?.state == "Stable")
    }

    @Test func aLeavingMembersPartitionsGoToTheOthers() throws {
        var h = ConsumerHarness()
        let (revoke, _) = try Self.secondMemberJoins(&h)
        let kept = try #require(revoke.assignment)
        _ = h.heartbeat("m1", epoch: 1, owned: kept)
        let m2 = h.heartbeat("m2", epoch: 2)
        try #require(m2.assignment?.partitionCount == 3)
        let leave = h.heartbeat("m1", epoch: -1)
        #expect(leave.error == .none)
        #expect(leave.memberEpoch == -1)
        #expect(h.member("m1") == nil)
        var epoch = m2.memberEpoch
        var owned = m2.assignment ?? [:]
        for _ in 0..<3 {
            let r = h.heartbeat("m2", epoch: epoch, owned: owned)
            #expect(r.error == .none)
            epoch = r.memberEpoch
            if let a = r.assignment { owned = a }
        }
        #expect(owned == orders(0..<6))
        #expect(epoch == 3)
        #expect(h.consumer?.state == "Stable")
    }

    @Test func aWrongEpochIsFenced() throws {
        var h = ConsumerHarness()
        let r = h.heartbeat("m1", epoch: 0, subscribe: ["orders"])
        let fenced = h.heartbeat("m1", epoch: r.memberEpoch + 5)
        #expect(fenced.error == .fencedMemberEpoch)
        // The member is not disturbed by the fenced request.
        #expect(h.heartbeat("m1", epoch: r.memberEpoch).error == .none)
    }

    @Test func anUnknownMemberWithAnEpochIsRejected() throws {
        var h = ConsumerHarness()
        // No such group yet.
        #expect(h.heartbeat("ghost", epoch: 3).error == .unknownMemberID)
        _ = h.heartbeat("m1", epoch: 0, subscribe: ["orders"])
        #expect(h.heartbeat("ghost", epoch: 3).error == .unknownMemberID)
        #expect(h.heartbeat("ghost", epoch: -1).error == .unknownMemberID)
    }

    @Test func aMemberWhoseSessionEndsIsRemovedAtTick() throws {
        var h = ConsumerHarness()
        _ = h.heartbeat("m1", epoch: 0, subscribe: ["orders"])
        let start = h.now
        let m2 = h.heartbeat("m2", epoch: 0, subscribe: ["orders"])
        let session = Int64(h.gc.config.consumerSessionTimeoutMs)
        // m1 keeps heartbeating (and revokes); m2 goes silent.
        h.now = start + session - 1_000
        let revoke = h.heartbeat("m1", epoch: 1)
        _ = h.heartbeat("m1", epoch: 1, owned: revoke.assignment ?? [:])
        _ = h.tick(at: start + session - 1)
        #expect(h.member("m2") != nil)
        let epochBefore = h.consumer?.groupEpoch ?? 0
        _ = h.tick(at: start + session)
        #expect(h.member("m2") == nil)
        #expect(h.consumer?.groupEpoch == epochBefore + 1)
        #expect(h.heartbeat("m2", epoch: m2.memberEpoch).error == .unknownMemberID)
        // m1 gets everything back.
        let r = h.heartbeat("m1", epoch: 2)
        #expect(r.assignment == orders(0..<6))
    }

    @Test func theLastMemberExpiringEmptiesTheGroup() throws {
        var h = ConsumerHarness()
        _ = h.heartbeat("m1", epoch: 0, subscribe: ["orders"])
        h.gc.replay(.offset(group: h.group, TopicPartition("orders", 0), committed(1, at: h.now)), now: h.now)
        _ = h.tick(at: h.now + Int64(h.gc.config.consumerSessionTimeoutMs))
        #expect(h.consumer?.isEmpty == true)
        #expect(h.consumer?.state == "Empty")
    }

    @Test func anEmptyGroupWithoutOffsetsIsForgottenAtTheNextExpiryCheck() throws {
        var h = ConsumerHarness()
        _ = h.heartbeat("m1", epoch: 0, subscribe: ["orders"])
        let effects = h.tick(at: h.now + Int64(h.gc.config.consumerSessionTimeoutMs))
        #expect(effects.records == [.groupTombstone(group: h.group)])
        #expect(h.gc.group(h.group) == nil)
    }

    @Test func aStaticMemberComingBackWithinItsSessionKeepsItsPartitions() throws {
        var h = ConsumerHarness()
        let first = h.heartbeat("m1", epoch: 0, subscribe: ["orders"], instance: "i1")
        #expect(first.assignment == orders(0..<6))
        let away = h.heartbeat("m1", epoch: -2)
        #expect(away.error == .none && away.memberEpoch == -2)
        // Its partitions are not handed to anyone while it is away.
        let other = h.heartbeat("m2", epoch: 0, subscribe: ["orders"])
        #expect((other.assignment ?? [:]).subtracting(orders(0..<6)).isEmpty)
        #expect(h.member("m2")?.state == .unreleasedPartitions)
        // Back under a new member id: it takes over its old epoch and partitions, then revokes
        // m2's share like any member would.
        let back = h.heartbeat("m1-again", epoch: 0, subscribe: ["orders"], instance: "i1")
        #expect(back.error == .none)
        #expect(back.memberID == "m1-again")
        #expect(back.memberEpoch == 1)
        #expect(back.assignment?.partitionCount == 3)
        #expect(h.member("m1-again")?.revoking.partitionCount == 3)
        #expect(h.member("m1") == nil)
        // A second instance with the same id while the first is active is refused.
        let clash = h.heartbeat("m1-third", epoch: 0, subscribe: ["orders"], instance: "i1")
        #expect(clash.error == .unreleasedInstanceID)
    }

    @Test func anUnsupportedAssignorIsRefused() throws {
        var h = ConsumerHarness()
        let r = h.heartbeat("m1", epoch: 0, subscribe: ["orders"], assignor: "sticky")
        #expect(r.error == .unsupportedAssignor)
        #expect(h.consumer?.members.isEmpty ?? true)
        let ok = h.heartbeat("m1", epoch: 0, subscribe: ["orders"], assignor: "range")
        #expect(ok.error == .none)
        #expect(h.consumer?.assignorName(config: h.gc.config) == "range")
    }

    @Test func aTopicGainingPartitionsBumpsTheGroupEpoch() throws {
        var h = ConsumerHarness()
        let r = h.heartbeat("m1", epoch: 0, subscribe: ["orders"])
        #expect(r.assignment == orders(0..<6))
        h.topics.topics["orders"] = (id: ConsumerHarness.orders, partitions: 8)
        let grown = h.heartbeat("m1", epoch: 1)
        #expect(grown.error == .none)
        #expect(grown.memberEpoch == 2)
        #expect(grown.assignment == orders(0..<8))
        #expect(h.consumer?.groupEpoch == 2)
        #expect(h.consumer?.subscribedTopics["orders"]?.partitions == 8)
    }

    @Test func changingTheSubscriptionReassigns() throws {
        var h = ConsumerHarness()
        _ = h.heartbeat("m1", epoch: 0, subscribe: ["orders"])
        let r = h.heartbeat("m1", epoch: 1, subscribe: ["orders", "payments"])
        #expect(r.memberEpoch == 2)
        #expect(r.assignment == orders(0..<6).union([ConsumerHarness.payments: [0, 1, 2, 3]]))
        // Dropping a topic revokes its partitions first.
        let drop = h.heartbeat("m1", epoch: 2, subscribe: ["payments"])
        #expect(drop.memberEpoch == 2)
        #expect(drop.assignment == [ConsumerHarness.payments: [0, 1, 2, 3]])
        let done = h.heartbeat("m1", epoch: 2, owned: [ConsumerHarness.payments: [0, 1, 2, 3]])
        #expect(done.memberEpoch == 3)
    }

    @Test func aRevocationNotDoneWithinTheRebalanceTimeoutRemovesTheMember() throws {
        var h = ConsumerHarness()
        let start = h.now
        _ = try Self.secondMemberJoins(&h)   // m1 told to revoke at `start`; its rebalance timeout is 60 s
        #expect(h.member("m1")?.state == .unrevokedPartitions)
        for step in Int64(1)...5 {
            h.now = start + step * 10_000
            _ = h.heartbeat("m1", epoch: 1)   // keeps its session, never revokes
            _ = h.heartbeat("m2", epoch: 2)
            _ = h.tick(at: h.now)
        }
        #expect(h.member("m1") != nil)
        _ = h.tick(at: start + 60_000)
        #expect(h.member("m1") == nil)
        // Its partitions, revoked or not, are free for m2 now.
        let r = h.heartbeat("m2", epoch: 2)
        #expect(r.memberEpoch == 3)
        #expect(r.assignment == orders(0..<6))
    }

    @Test func anEmptyClassicGroupBecomesAConsumerGroupKeepingItsOffsets() throws {
        var h = ConsumerHarness()
        let tp = TopicPartition("orders", 0)
        h.gc.replay(.offset(group: h.group, tp, committed(9, at: h.now)), now: h.now)
        #expect(h.gc.group(h.group)?.typeName == "classic")
        let r = h.heartbeat("m1", epoch: 0, subscribe: ["orders"])
        #expect(r.error == .none)
        #expect(h.gc.group(h.group)?.typeName == "consumer")
        #expect(h.gc.group(h.group)?.offsets[tp]?.offset == Offset(9))
    }

    @Test func membersCommitWithTheirEpoch() throws {
        var h = ConsumerHarness()
        let r = h.heartbeat("m1", epoch: 0, subscribe: ["orders"])
        let offsets = [(TopicPartition("orders", 0), committed(1, at: h.now))]
        let good = h.gc.checkCommit(groupID: h.group, generation: r.memberEpoch, memberID: "m1", instanceID: nil, offsets: offsets, now: h.now)
        #expect(good.groupError == .none)
        let stale = h.gc.checkCommit(groupID: h.group, generation: r.memberEpoch - 1, memberID: "m1", instanceID: nil, offsets: offsets, now: h.now)
        #expect(stale.groupError == .staleMemberEpoch)
        let unknown = h.gc.checkCommit(groupID: h.group, generation: 1, memberID: "x", instanceID: nil, offsets: offsets, now: h.now)
        #expect(unknown.groupError == .unknownMemberID)
        let (code, _) = h.gc.fetchOffsets(groupID: h.group, partitions: nil, memberID: "m1", memberEpoch: r.memberEpoch + 1)
        #expect(code == .staleMemberEpoch)
        // Offsets sent to a transaction (KIP-447): a stale epoch is ILLEGAL_GENERATION there.
        #expect(h.gc.checkTxnCommit(groupID: h.group, generation: r.memberEpoch, memberID: "m1", instanceID: nil) == .none)
        #expect(h.gc.checkTxnCommit(groupID: h.group, generation: r.memberEpoch - 1, memberID: "m1", instanceID: nil) == .illegalGeneration)
        #expect(h.gc.checkTxnCommit(groupID: h.group, generation: -1, memberID: "", instanceID: nil) == .unknownMemberID)
        #expect(h.gc.checkTxnCommit(groupID: "never", generation: -1, memberID: "", instanceID: nil) == .none)
        #expect(h.gc.checkTxnCommit(groupID: "never", generation: 2, memberID: "m", instanceID: nil) == .illegalGeneration)
    }

    @Test func theGroupIsLimitedToItsMaximumSize() throws {
        var h = ConsumerHarness(config: .testing { $0.consumerMaxSize = 1 })
        #expect(h.heartbeat("m1", epoch: 0, subscribe: ["orders"]).error == .none)
        #expect(h.heartbeat("m2", epoch: 0, subscribe: ["orders"]).error == .groupMaxSizeReached)
    }
}
