@testable import BrookGroups
import BrookCore
import BrookProtocol
import Testing

/// The classic JoinGroup / SyncGroup / Heartbeat / LeaveGroup protocol.
@Suite struct ClassicJoinTests {
    @Test func firstJoinWithoutMemberIDIsAnsweredMemberIDRequired() throws {
        var h = ClassicHarness(config: .testing(delay: 0))
        let (pending, effects) = h.join(clientID: "app")
        let answer = try #require(joinAnswer(effects, pending))
        #expect(answer.error == .memberIDRequired)
        #expect(answer.memberID.hasPrefix("app-"))
        #expect(answer.generation == -1)
        #expect(effects.records.isEmpty)
        // The id is only promised: nobody is a member yet.
        #expect(h.memberIDs.isEmpty)
        #expect(h.state == .empty)
    }

    @Test func rejoiningWithTheGivenIDCompletesTheJoin() throws {
        var h = ClassicHarness(config: .testing(delay: 0))
        let id = try h.requestMemberID()
        let (pending, effects) = h.join(id)
        let answer = try #require(joinAnswer(effects, pending))
        #expect(answer.error == .none)
        #expect(answer.memberID == id)
        #expect(answer.generation == 1)
        #expect(answer.leader == id)
        #expect(answer.protocolType == "consumer")
        #expect(answer.protocolName == "range")
        #expect(answer.members.map(\.memberID) == [id])
        #expect(answer.members.first?.metadata == consumerProtocol().metadata)
        #expect(h.state == .completingRebalance)
        #expect(h.generation == 1)
    }

    @Test func joinWithoutKIP394IsAdmittedAtOnce() throws {
        var h = ClassicHarness(config: .testing(delay: 0))
        let (pending, effects) = h.join(requireKnown: false)
        let answer = try #require(joinAnswer(effects, pending))
        #expect(answer.error == .none)
        #expect(!answer.memberID.isEmpty)
        #expect(answer.generation == 1)
        #expect(h.memberIDs == [answer.memberID])
    }

    @Test func leaderGetsTheMembersAndFollowersAnEmptyList() throws {
        var h = ClassicHarness(config: .testing(delay: 0))
        let leader = try h.requestMemberID()
        let follower = try h.requestMemberID()
        let (lp, le) = h.join(leader)
        // The follower's promised id holds the join phase open.
        #expect(le.joins.isEmpty)
        #expect(h.state == .preparingRebalance)
        let (fp, fe) = h.join(follower)
        let leaderAnswer = try #require(joinAnswer(fe, lp))
        let followerAnswer = try #require(joinAnswer(fe, fp))
        #expect(h.state == .completingRebalance)
        #expect(leaderAnswer.generation == 1 && followerAnswer.generation == 1)
        #expect(leaderAnswer.leader == leader && followerAnswer.leader == leader)
        #expect(Set(leaderAnswer.members.map(\.memberID)) == [leader, follower])
        #expect(followerAnswer.members.isEmpty)
        #expect(followerAnswer.memberID == follower)
    }

    @Test func leaderSyncMakesTheGroupStableAndAnswersEveryHeldSync() throws {
        var h = ClassicHarness(config: .testing(delay: 0))
        let a = try h.requestMemberID(), b = try h.requestMemberID(), c = try h.requestMemberID()
        _ = h.join(a); _ = h.join(b); _ = h.join(c)
        #expect(h.state == .completingRebalance)
        // Followers that sync before the leader are held.
        let (bp, be) = h.sync(b, generation: 1)
        let (cp, ce) = h.sync(c, generation: 1)
        #expect(be.syncs.isEmpty && ce.syncs.isEmpty)
        #expect(h.state == .completingRebalance)
        let (ap, ae) = h.sync(a, generation: 1, assignments: [a: [0xA], b: [0xB], c: [0xC]])
        #expect(h.state == .stable)
        #expect(ae.syncs.count == 3)
        #expect(syncAnswer(ae, ap) == SyncResult(error: .none, protocolType: "consumer", protocolName: "range", assignment: [0xA]))
        #expect(syncAnswer(ae, bp)?.assignment == [0xB])
        #expect(syncAnswer(ae, cp)?.assignment == [0xC])
        #expect(syncAnswer(ae, bp)?.error == ErrorCode.none)
        // The assignment is written with the group.
        guard case .groupMetadata(let snap)? = ae.records.last else {
            Issue.record("no group metadata written: \(ae.records)")
            return
        }
        #expect(snap.generation == 1)
        #expect(snap.members.map(\.assignment).sorted { $0[0] < $1[0] } == [[0xA], [0xB], [0xC]])
    }

    @Test func followerSyncAfterTheLeaderIsAnsweredAtOnce() throws {
        var h = ClassicHarness(config: .testing(delay: 0))
        let a = try h.requestMemberID(), b = try h.requestMemberID()
        _ = h.join(a); _ = h.join(b)
        let (ap, ae) = h.sync(a, generation: 1, assignments: [a: [1], b: [2]])
        #expect(syncAnswer(ae, ap)?.assignment == [1])
        #expect(ae.syncs.count == 1)
        let (bp, be) = h.sync(b, generation: 1)
        #expect(syncAnswer(be, bp) == SyncResult(error: .none, protocolType: "consumer", protocolName: "range", assignment: [2]))
    }

    @Test func syncWithTheWrongGenerationOrUnknownMemberIsRejected() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, nil])
        let (p1, e1) = h.sync(ids[1], generation: 7)
        #expect(syncAnswer(e1, p1)?.error == .illegalGeneration)
        let (p2, e2) = h.sync("nobody", generation: 1)
        #expect(syncAnswer(e2, p2)?.error == .unknownMemberID)
    }

    @Test func unknownMemberIDIsRejected() throws {
        var h = ClassicHarness(config: .testing(delay: 0))
        // On a group that does not exist.
        let (p1, e1) = h.join("made-up")
        #expect(joinAnswer(e1, p1)?.error == .unknownMemberID)
        // On one that does, with an id it never handed out.
        _ = try h.formStable([nil])
        let (p2, e2) = h.join("made-up")
        #expect(joinAnswer(e2, p2)?.error == .unknownMemberID)
    }
}

@Suite struct InitialRebalanceDelayTests {
    @Test func membersJoiningAnEmptyGroupAreAnsweredWhenTheDelayEnds() throws {
        var h = ClassicHarness(config: .testing(delay: 3_000))
        let start = h.now
        let a = try h.requestMemberID(), b = try h.requestMemberID()
        let (ap, ae) = h.join(a)
        let (bp, be) = h.join(b)
        #expect(ae.joins.isEmpty && be.joins.isEmpty)
        #expect(h.state == .preparingRebalance)
        #expect(h.tick(at: start + 1_000).joins.isEmpty)
        #expect(h.tick(at: start + 2_999).joins.isEmpty)
        #expect(h.state == .preparingRebalance)
        let done = h.tick(at: start + 3_000)
        let aAnswer = try #require(joinAnswer(done, ap))
        let bAnswer = try #require(joinAnswer(done, bp))
        #expect(aAnswer.error == .none && bAnswer.error == .none)
        #expect(aAnswer.generation == 1 && bAnswer.generation == 1)
        #expect(aAnswer.leader == a && bAnswer.leader == a)
        #expect(aAnswer.members.count == 2)
        #expect(h.state == .completingRebalance)
    }

    @Test func eachNewMemberExtendsTheDelay() throws {
        var h = ClassicHarness(config: .testing(delay: 3_000))
        let start = h.now
        let (ap, _) = h.join(requireKnown: false)
        h.now = start + 1_000
        let (bp, _) = h.join(requireKnown: false)
        #expect(h.tick(at: start + 3_000).joins.isEmpty)
        #expect(h.tick(at: start + 3_999).joins.isEmpty)
        let done = h.tick(at: start + 4_000)
        #expect(joinAnswer(done, ap)?.generation == 1)
        #expect(joinAnswer(done, bp)?.generation == 1)
    }

    @Test func noDelayOnceTheGroupHasHadAGeneration() throws {
        var h = ClassicHarness(config: .testing(delay: 3_000))
        let ids = try h.formStable([nil])
        // A rejoin of the leader from Stable rebalances without the new-group delay.
        let (p, e) = h.join(ids[0])
        #expect(joinAnswer(e, p)?.generation == 2)
    }
}

@Suite struct ClassicRebalanceTests {
    @Test func aNewMemberPutsAStableGroupIntoRebalance() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, nil])
        let (a, b) = (ids[0], ids[1])
        let c = try h.requestMemberID()
        // A promised id alone does not disturb the group.
        #expect(h.state == .stable)
        let (cp, ce) = h.join(c)
        #expect(ce.joins.isEmpty)
        #expect(h.state == .preparingRebalance)
        #expect(h.heartbeat(a, generation: 1) == .rebalanceInProgress)
        #expect(h.heartbeat(b, generation: 1) == .rebalanceInProgress)
        let (ap, ae) = h.join(a)
        #expect(ae.joins.isEmpty)
        let (bp, be) = h.join(b)
        #expect(be.joins.count == 3)
        #expect(h.state == .completingRebalance)
        #expect(h.generation == 2)
        for p in [ap, bp, cp] {
            #expect(joinAnswer(be, p)?.error == ErrorCode.none)
            #expect(joinAnswer(be, p)?.generation == 2)
        }
        #expect(joinAnswer(be, ap)?.leader == a)
        #expect(Set(joinAnswer(be, ap)?.members.map(\.memberID) ?? []) == [a, b, c])
        #expect(joinAnswer(be, cp)?.members.isEmpty == true)
    }

    @Test func aMemberThatDoesNotRejoinWithinTheRebalanceTimeoutIsRemoved() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, nil])
        let (a, b) = (ids[0], ids[1])
        let c = try h.requestMemberID()
        let start = h.now
        let (cp, _) = h.join(c)
        let (ap, _) = h.join(a)
        // b stays alive by heartbeating, but never rejoins.
        for step in Int64(1)...5 {
            h.now = start + step * 5_000
            #expect(h.heartbeat(b, generation: 1) == .rebalanceInProgress)
            #expect(h.tick(at: h.now).joins.isEmpty)
        }
        #expect(h.tick(at: start + Int64(ClassicHarness.rebalanceMs) - 1).joins.isEmpty)
        #expect(h.state == .preparingRebalance)
        let done = h.tick(at: start + Int64(ClassicHarness.rebalanceMs))
        #expect(done.joins.count == 2)
        #expect(joinAnswer(done, ap)?.generation == 2)
        #expect(joinAnswer(done, cp)?.generation == 2)
        #expect(Set(joinAnswer(done, ap)?.members.map(\.memberID) ?? []) == [a, c])
        #expect(Set(h.memberIDs) == [a, c])
        #expect(h.state == .completingRebalance)
        #expect(h.heartbeat(b, generation: 1) == .unknownMemberID)
    }

    @Test func aRetriedJoinReplacesTheHeldOne() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, nil])
        let (p1, _) = h.join(ids[0])
        #expect(h.state == .preparingRebalance)
        let (p2, e2) = h.join(ids[0])
        #expect(joinAnswer(e2, p1)?.error == .rebalanceInProgress)
        #expect(joinAnswer(e2, p2) == nil)
        let (_, e3) = h.join(ids[1])
        #expect(joinAnswer(e3, p2)?.generation == 2)
        #expect(joinAnswer(e3, p1) == nil)
    }

    @Test func aFollowerRejoiningWithTheSameProtocolsKeepsTheGroupStable() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, nil])
        let (p, e) = h.join(ids[1])
        #expect(joinAnswer(e, p)?.generation == 1)
        #expect(joinAnswer(e, p)?.error == ErrorCode.none)
        #expect(h.state == .stable)
    }
}

@Suite struct ClassicSessionTests {
    @Test func aMemberThatStopsHeartbeatingIsRemovedAfterItsSessionTimeout() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, nil])
        let (a, b) = (ids[0], ids[1])
        let start = h.now   // both synced now
        h.now = start + 5_000
        #expect(h.heartbeat(a, generation: 1) == .none)
        h.now = start + 9_000
        #expect(h.heartbeat(a, generation: 1) == .none)
        _ = h.tick(at: start + Int64(ClassicHarness.sessionMs) - 1)
        #expect(h.state == .stable)
        #expect(h.memberIDs == [a, b])
        _ = h.tick(at: start + Int64(ClassicHarness.sessionMs))
        #expect(h.memberIDs == [a])
        #expect(h.state == .preparingRebalance)
        #expect(h.heartbeat(a, generation: 1) == .rebalanceInProgress)
        #expect(h.heartbeat(b, generation: 1) == .unknownMemberID)
        let (p, e) = h.join(a)
        #expect(joinAnswer(e, p)?.generation == 2)
        #expect(joinAnswer(e, p)?.members.map(\.memberID) == [a])
    }

    @Test func heartbeatsAreCheckedForGenerationAndMember() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, nil])
        #expect(h.heartbeat(ids[0], generation: 1) == .none)
        #expect(h.heartbeat(ids[0], generation: 0) == .illegalGeneration)
        #expect(h.heartbeat(ids[1], generation: 2) == .illegalGeneration)
        #expect(h.heartbeat("stranger", generation: 1) == .unknownMemberID)
    }

    @Test func sessionTimeoutsOutsideTheBrokerLimitsAreRefused() throws {
        var h = ClassicHarness(config: .testing(delay: 0))
        let config = h.gc.config
        for bad in [config.minSessionTimeoutMs - 1, config.maxSessionTimeoutMs + 1, 0] {
            let (p, e) = h.join(session: bad)
            #expect(joinAnswer(e, p)?.error == .invalidSessionTimeout, "session timeout \(bad)")
        }
        for good in [config.minSessionTimeoutMs, config.maxSessionTimeoutMs] {
            let (p, e) = h.join(session: good)
            #expect(joinAnswer(e, p)?.error == .memberIDRequired, "session timeout \(good)")
        }
    }

    @Test func aPromisedMemberIDExpiresWithTheSessionTimeout() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil])
        let promisedAt = h.now
        let late = try h.requestMemberID()
        h.now = promisedAt + 9_000
        #expect(h.heartbeat(ids[0], generation: 1) == .none)
        _ = h.tick(at: promisedAt + Int64(ClassicHarness.sessionMs))
        let (p, e) = h.join(late)
        #expect(joinAnswer(e, p)?.error == .unknownMemberID)
        #expect(h.state == .stable)
    }
}

@Suite struct ClassicLeaveTests {
    @Test func leavingRebalancesTheOthers() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, nil])
        let (code, codes, _) = h.leave(ids[1])
        #expect(code == .none)
        #expect(codes == [.none])
        #expect(h.state == .preparingRebalance)
        #expect(h.memberIDs == [ids[0]])
        let (p, e) = h.join(ids[0])
        #expect(joinAnswer(e, p)?.generation == 2)
        #expect(joinAnswer(e, p)?.members.map(\.memberID) == [ids[0]])
    }

    @Test func theLastMemberLeavingEmptiesTheGroup() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil])
        let (code, codes, effects) = h.leave(ids[0])
        #expect(code == .none && codes == [.none])
        #expect(h.state == .empty)
        #expect(h.memberIDs.isEmpty)
        #expect(h.generation == 2)
        guard case .groupMetadata(let snap)? = effects.records.last else {
            Issue.record("the empty group is not written: \(effects.records)")
            return
        }
        #expect(snap.members.isEmpty)
        #expect(snap.generation == 2)
    }

    @Test func leavingWithAnUnknownMemberIsReportedPerMember() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil])
        let (code, codes, _) = h.gc.leave(groupID: h.group, members: [(memberID: "ghost", instanceID: nil),
                                                                      (memberID: ids[0], instanceID: nil)], now: h.now)
        #expect(code == .none)
        #expect(codes == [.unknownMemberID, .none])
    }

    @Test func aLeavingMembersHeldRequestsAreAnswered() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, nil])
        let (held, _) = h.join(ids[0])
        let (_, _, effects) = h.leave(ids[0])
        #expect(joinAnswer(effects, held)?.error == .unknownMemberID)
    }

    @Test func membersThatNeverSyncAreRemovedAfterTheRebalanceTimeout() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, nil])
        let (a, b) = (ids[0], ids[1])
        _ = h.join(a)
        let (_, e) = h.join(b)
        #expect(h.state == .completingRebalance)
        #expect(h.generation == 2)
        #expect(e.joins.count == 2)
        let start = h.now
        // b syncs and waits; the leader a heartbeats but never syncs. (Clients heartbeat while
        // their SyncGroup is held, as the Java consumer does from CompletingRebalance on.)
        let (bp, be) = h.sync(b, generation: 2)
        #expect(be.syncs.isEmpty)
        for step in Int64(1)...5 {
            _ = h.tick(at: start + step * 5_000)
            #expect(h.heartbeat(a, generation: 2) == .none)
            #expect(h.heartbeat(b, generation: 2) == .none)
        }
        let before = h.tick(at: start + Int64(ClassicHarness.rebalanceMs) - 1)
        #expect(before.syncs.isEmpty)
        #expect(h.state == .completingRebalance)
        let after = h.tick(at: start + Int64(ClassicHarness.rebalanceMs))
        #expect(h.memberIDs == [b])
        #expect(h.state == .preparingRebalance)
        // The synced member's wait is over: it must rejoin.
        #expect(syncAnswer(after, bp)?.error == .rebalanceInProgress)
        #expect(h.heartbeat(a, generation: 2) == .unknownMemberID)
    }
}

@Suite struct StaticMembershipTests {
    @Test func aStaticMemberRejoiningAStableGroupDoesNotRebalance() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, "instance-b"])
        let (a, oldB) = (ids[0], ids[1])
        let (p, e) = h.join("", instance: "instance-b")
        let answer = try #require(joinAnswer(e, p))
        #expect(answer.error == .none)
        #expect(answer.generation == 1)
        #expect(answer.leader == a)
        #expect(!answer.memberID.isEmpty && answer.memberID != oldB)
        #expect(h.state == .stable)
        #expect(h.generation == 1)
        #expect(h.memberIDs == [a, answer.memberID])
        // The new id is written, so a reload knows it.
        let written = e.records.contains { record in
            guard case .groupMetadata(let snap) = record else { return false }
            return snap.members.contains { $0.memberID == answer.memberID }
        }
        #expect(written)
        // Nobody else is disturbed.
        #expect(h.heartbeat(a, generation: 1) == .none)
        #expect(h.heartbeat(answer.memberID, generation: 1, instance: "instance-b") == .none)
    }

    @Test func theOldMemberIDOfARejoinedStaticMemberIsFenced() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, "instance-b"])
        let oldB = ids[1]
        let (p, e) = h.join("", instance: "instance-b")
        let newB = try #require(joinAnswer(e, p)).memberID
        #expect(h.heartbeat(oldB, generation: 1, instance: "instance-b") == .fencedInstanceID)
        #expect(h.heartbeat(oldB, generation: 1) == .unknownMemberID)
        let (sp, se) = h.sync(oldB, generation: 1, instance: "instance-b")
        #expect(syncAnswer(se, sp)?.error == .fencedInstanceID)
        let (jp, je) = h.join(oldB, instance: "instance-b")
        #expect(joinAnswer(je, jp)?.error == .fencedInstanceID)
        let offsets = [(TopicPartition("orders", 0), committed(5, at: h.now))]
        let check = h.gc.checkCommit(groupID: h.group, generation: 1, memberID: oldB, instanceID: "instance-b",
                                     offsets: offsets, now: h.now)
        #expect(check.groupError == .fencedInstanceID)
        #expect(h.heartbeat(newB, generation: 1, instance: "instance-b") == .none)
    }

    @Test func theRejoinedStaticMemberSyncsItsPreviousAssignment() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, "instance-b"])
        #expect(h.classic?.member(ids[1])?.assignment == [2])
        let (p, e) = h.join("", instance: "instance-b")
        let newB = try #require(joinAnswer(e, p)).memberID
        let (sp, se) = h.sync(newB, generation: 1, instance: "instance-b")
        #expect(syncAnswer(se, sp) == SyncResult(error: .none, protocolType: "consumer", protocolName: "range", assignment: [2]))
        #expect(h.state == .stable)
    }

    @Test func aStaticMemberRejoiningWithOtherProtocolsRebalances() throws {
        var h = ClassicHarness()
        _ = try h.formStable([nil, "instance-b"])
        let (_, e) = h.join("", instance: "instance-b", protocols: [consumerProtocol(topics: ["orders", "payments"])])
        #expect(e.joins.isEmpty)
        #expect(h.state == .preparingRebalance)
    }

    @Test func aStaticMemberLeavesByItsInstanceID() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, "instance-b"])
        let (_, codes, _) = h.leave("", instance: "instance-b")
        #expect(codes == [.none])
        #expect(h.memberIDs == [ids[0]])
        #expect(h.state == .preparingRebalance)
        let (_, again, _) = h.leave("", instance: "instance-b")
        #expect(again == [.unknownMemberID])
    }
}

@Suite struct ProtocolSelectionTests {
    static func offer(_ names: String...) -> [GroupProtocol] {
        names.map { GroupProtocol(name: $0, metadata: Array($0.utf8)) }
    }

    /// Joins every member (v3 style, no MEMBER_ID_REQUIRED) at once and ends the initial delay.
    static func joinAll(_ h: inout ClassicHarness, _ offers: [[GroupProtocol]]) -> [JoinResult] {
        let pendings = offers.map { h.join(protocols: $0, requireKnown: false).0 }
        let effects = h.advance(Int64(h.gc.config.initialRebalanceDelayMs))
        return pendings.compactMap { joinAnswer(effects, $0) }
    }

    @Test func theProtocolMostMembersPreferWins() throws {
        var h = ClassicHarness()
        let answers = Self.joinAll(&h, [Self.offer("range", "roundrobin"), Self.offer("roundrobin", "range"),
                                        Self.offer("roundrobin", "range")])
        try #require(answers.count == 3)
        #expect(answers.allSatisfy { $0.protocolName == "roundrobin" })
        // The leader sees each member's metadata for the chosen protocol.
        #expect(answers[0].members.map(\.metadata) == Array(repeating: Array("roundrobin".utf8), count: 3))
    }

    @Test func aTieGoesToTheLeadersEarlierChoice() throws {
        var h = ClassicHarness()
        let answers = Self.joinAll(&h, [Self.offer("range", "roundrobin"), Self.offer("roundrobin", "range")])
        try #require(answers.count == 2)
        #expect(answers.allSatisfy { $0.protocolName == "range" })
    }

    @Test func onlyProtocolsEveryMemberSupportsAreCandidates() throws {
        var h = ClassicHarness()
        let answers = Self.joinAll(&h, [Self.offer("sticky", "range"), Self.offer("sticky", "range"),
                                        Self.offer("range", "roundrobin")])
        try #require(answers.count == 3)
        #expect(answers.allSatisfy { $0.protocolName == "range" })
    }

    @Test func aDifferentProtocolTypeIsInconsistent() throws {
        var h = ClassicHarness()
        _ = try h.formStable([nil])
        let (p, e) = h.join(protocolType: "connect")
        #expect(joinAnswer(e, p)?.error == .inconsistentGroupProtocol)
        #expect(h.state == .stable)
    }

    @Test func noCommonProtocolIsInconsistent() throws {
        var h = ClassicHarness()
        _ = try h.formStable([nil])
        let (p, e) = h.join(protocols: Self.offer("roundrobin"))
        #expect(joinAnswer(e, p)?.error == .inconsistentGroupProtocol)
        let (q, f) = h.join(protocols: [])
        #expect(joinAnswer(f, q)?.error == .inconsistentGroupProtocol)
        #expect(h.state == .stable)
    }

    @Test func aFullGroupRefusesNewMembers() throws {
        var h = ClassicHarness(config: .testing { $0.maxSize = 2 })
        _ = try h.formStable([nil, nil])
        let (p, e) = h.join()
        #expect(joinAnswer(e, p)?.error == .groupMaxSizeReached)
        #expect(h.state == .stable)
    }

    @Test func promisedMemberIDsCountTowardsTheMaximumSize() throws {
        var h = ClassicHarness(config: .testing { $0.maxSize = 2 })
        _ = try h.requestMemberID()
        _ = try h.requestMemberID()
        let (p, e) = h.join()
        #expect(joinAnswer(e, p)?.error == .groupMaxSizeReached)
    }
}

/// A request held open keeps its member alive; answering it starts the member's session afresh
/// (Kafka's GroupCoordinator.propagateAssignment reschedules the heartbeat expiration of every
/// member whose held SyncGroup it answers).
@Suite struct HeldRequestSessionTests {
    @Test
    func aFollowerHeldInSyncLongerThanItsSessionKeepsItsPlace() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, nil])
        let (a, b) = (ids[0], ids[1])
        _ = h.join(a)
        _ = h.join(b)
        #expect(h.state == .completingRebalance)
        let start = h.now
        // b syncs at once and is held (without heartbeating); the leader takes 12 s to assign.
        let (bp, _) = h.sync(b, generation: 2)
        h.now = start + 5_000
        #expect(h.heartbeat(a, generation: 2) == .none)
        _ = h.tick(at: start + 10_000)
        #expect(h.memberIDs == [a, b])   // held: alive
        h.now = start + 12_000
        let (_, done) = h.sync(a, generation: 2, assignments: [a: [1], b: [2]])
        #expect(syncAnswer(done, bp)?.assignment == [2])
        #expect(h.state == .stable)
        // b just got its answer; its session runs from now.
        _ = h.tick(at: start + 12_001)
        #expect(h.memberIDs == [a, b])
        #expect(h.state == .stable)
        h.now = start + 15_000
        #expect(h.heartbeat(b, generation: 2) == .none)
    }

    @Test
    func aMemberWhoseHeldSyncIsVoidedMayStillRejoin() throws {
        var h = ClassicHarness()
        let ids = try h.formStable([nil, nil])
        let (a, b) = (ids[0], ids[1])
        _ = h.join(a)
        _ = h.join(b)
        let start = h.now
        // b syncs and is held, not heartbeating; the leader a heartbeats but never syncs.
        let (bp, _) = h.sync(b, generation: 2)
        for step in Int64(1)...5 {
            _ = h.tick(at: start + step * 5_000)
            #expect(h.heartbeat(a, generation: 2) == .none)
        }
        let after = h.tick(at: start + Int64(ClassicHarness.rebalanceMs))
        #expect(syncAnswer(after, bp)?.error == .rebalanceInProgress)
        // b was told to rejoin: it must still be a member when it does.
        #expect(h.memberIDs == [b])
        #expect(h.state == .preparingRebalance)
        let (p, e) = h.join(b)
        #expect(joinAnswer(e, p)?.error == ErrorCode.none)
        #expect(joinAnswer(e, p)?.generation == 3)
    }
}
