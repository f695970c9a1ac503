import BrookCluster
import BrookCore
import Testing

/// The leader's replication state: the high watermark, caught-up followers, ISR proposals.
@Suite struct PartitionReplicationTests {
    let n1 = NodeID(1), n2 = NodeID(2), n3 = NodeID(3)

    func leader(isr: [NodeID]? = nil, elr: [NodeID] = [], logEnd: Int64 = 0, highWatermark: Int64 = 0, lagMs: Int64 = 1000,
                minISR: Int = 2) -> PartitionReplication {
        PartitionReplication(leader: n1, leaderEpoch: LeaderEpoch(3), partitionEpoch: PartitionEpoch(7), replicas: [n1, n2, n3],
                             isr: isr ?? [n1, n2, n3], elr: elr, logEndOffset: Offset(logEnd), highWatermark: Offset(highWatermark),
                             config: ReplicationConfig(replicaLagTimeMaxMs: lagMs, minInSyncReplicas: minISR), nowMs: 0)
    }

    /// The leader's account of an eligible replica that stays out of its ISR (a liveness failure
    /// of the fault campaign said nothing of it): said after the given time of leadership, for
    /// replicas the controller says may join, with where each fetched and when.
    @Test func anEligibleReplicaOutOfTheISRIsDescribed() {
        var p = leader(isr: [n1], logEnd: 10)
        #expect(p.outOfSyncReport(nowMs: 20_000, afterMs: 30_000, eligible: { _ in true }).isEmpty, "led for 20 s only")
        p.followerFetched(n2, fetchOffset: Offset(4), nowMs: 25_000)
        let report = p.outOfSyncReport(nowMs: 31_000, afterMs: 30_000, eligible: { $0 != self.n3 })
        #expect(report == ["replica 2 fetched from 4 6000 ms ago (HW 10, epoch start 10, log end 10)"])
        let both = p.outOfSyncReport(nowMs: 31_000, afterMs: 30_000, eligible: { _ in true })
        #expect(both.count == 2 && both[1].hasPrefix("replica 3 has not fetched in leader epoch 3"))
        // Once in the ISR (or joining), nothing.
        p.followerFetched(n2, fetchOffset: Offset(10), nowMs: 31_000)
        #expect(p.expansion(after: n2, eligible: true) != nil)
        #expect(p.outOfSyncReport(nowMs: 32_000, afterMs: 30_000, eligible: { $0 == self.n2 }).isEmpty)
    }

    @Test func theHighWatermarkIsTheSmallestLogEndOfTheISR() {
        var p = leader()
        p.leaderAppended(logEnd: Offset(10))
        #expect(p.highWatermark == .zero, "followers have not fetched yet")
        p.followerFetched(n2, fetchOffset: Offset(10), nowMs: 5)
        #expect(p.highWatermark == .zero)
        let moved = p.followerFetched(n3, fetchOffset: Offset(4), nowMs: 6)
        #expect(moved)
        #expect(p.highWatermark == Offset(4))
        p.followerFetched(n3, fetchOffset: Offset(10), nowMs: 7)
        #expect(p.highWatermark == Offset(10))
        // It never moves back, whatever a follower reports.
        p.leaderAppended(logEnd: Offset(12))
        #expect(p.highWatermark == Offset(10))
    }

    /// Found in review: a leader alone in its ISR after a restart (its stored HW behind, 0 as
    /// none is kept) kept that HW until the next append, and its committed records were unreadable.
    @Test func aLeaderAloneInItsISRStartsWithItsWholeLogCommitted() {
        let p = leader(isr: [n1], logEnd: 10, highWatermark: 0)
        #expect(p.highWatermark == Offset(10))
        // The same with a follower outside the ISR, not yet heard from.
        #expect(leader(isr: [n1], logEnd: 10, highWatermark: 4).highWatermark == Offset(10))
        // With eligible leader replicas (KIP-966) it keeps the HW it was given: they may be the
        // next leaders, and they may have no more than that.
        #expect(leader(isr: [n1], elr: [n2], logEnd: 10, highWatermark: 4).highWatermark == Offset(4))
    }

    @Test func theHighWatermarkStandsStillWhileThereAreEligibleLeaderReplicas() {
        var p = leader(isr: [n1, n2])
        p.leaderAppended(logEnd: Offset(10))
        p.followerFetched(n2, fetchOffset: Offset(10), nowMs: 1)
        #expect(p.highWatermark == Offset(10))
        // n2 leaves the ISR below min ISR and is eligible: what n1 writes now is not committed.
        p.isrCommitted([n1], elr: [n2], partitionEpoch: PartitionEpoch(8))
        p.leaderAppended(logEnd: Offset(15))
        #expect(p.highWatermark == Offset(10))
        // n3 catches up and is proposed in: the HW moves once the controller committed it (and
        // with it an empty ELR).
        p.followerFetched(n3, fetchOffset: Offset(15), nowMs: 2)
        let proposal = p.expansion(after: n3, eligible: true)
        #expect(proposal?.isr == [n1, n3])
        #expect(p.highWatermark == Offset(10))
        p.proposalCommitted([n1, n3], elr: [], partitionEpoch: PartitionEpoch(9))
        #expect(p.highWatermark == Offset(15))
        // Without eligible replicas (min ISR 1, or none left) a leader alone commits at once.
        var single = leader(isr: [n1, n2])
        single.isrCommitted([n1], elr: [], partitionEpoch: PartitionEpoch(8))
        single.leaderAppended(logEnd: Offset(5))
        #expect(single.highWatermark == Offset(5))
    }

    @Test func aLeaderWithAFollowerInItsISRKeepsTheGivenHighWatermark() {
        // The follower's position is unknown until it fetches: it may lack anything past the HW.
        var p = leader(isr: [n1, n2], logEnd: 10, highWatermark: 4)
        #expect(p.highWatermark == Offset(4))
        #expect(leader(isr: [n1, n2, n3], logEnd: 10, highWatermark: 0).highWatermark == .zero)
        p.followerFetched(n2, fetchOffset: Offset(7), nowMs: 1)
        #expect(p.highWatermark == Offset(7))
    }

    @Test func aReplicaOutsideTheISRDoesNotHoldTheHighWatermark() {
        var p = leader(isr: [n1, n2])
        p.leaderAppended(logEnd: Offset(5))
        p.followerFetched(n2, fetchOffset: Offset(5), nowMs: 1)
        #expect(p.highWatermark == Offset(5))
    }

    @Test func aLaggingFollowerIsProposedOutAfterTheLagTime() {
        var p = leader(lagMs: 1000)
        p.leaderAppended(logEnd: Offset(10))
        p.followerFetched(n2, fetchOffset: Offset(10), nowMs: 900)
        p.followerFetched(n3, fetchOffset: Offset(2), nowMs: 900)
        #expect(p.proposal(nowMs: 1000, eligible: { _ in true }) == nil, "within the lag time")
        let shrink = p.proposal(nowMs: 1001, eligible: { _ in true })
        #expect(shrink == ISRProposal(leaderEpoch: LeaderEpoch(3), partitionEpoch: PartitionEpoch(7), isr: [n1, n2]))
        #expect(p.proposal(nowMs: 5000, eligible: { _ in true }) == nil, "one proposal in flight at a time")
        // Until the controller commits it, n3 still counts for the HW.
        p.followerFetched(n2, fetchOffset: Offset(10), nowMs: 1002)
        #expect(p.highWatermark == Offset(2))
        p.isrCommitted([n1, n2], elr: [], partitionEpoch: PartitionEpoch(8))
        #expect(p.highWatermark == Offset(10))
        #expect(p.hasEnoughReplicas)
    }

    @Test func aFollowerThatKeepsUpWithEachFetchStaysInSync() {
        var p = leader(lagMs: 100)
        var now: Int64 = 0
        for end in stride(from: Int64(1), through: 50, by: 1) {
            // The leader appends between fetches: the follower is never at the very end, but
            // always reaches what the leader had at its previous fetch.
            p.leaderAppended(logEnd: Offset(end))
            now += 60
            p.followerFetched(n2, fetchOffset: Offset(end - 1), nowMs: now)
            p.followerFetched(n3, fetchOffset: Offset(end - 1), nowMs: now)
        }
        #expect(p.proposal(nowMs: now, eligible: { _ in true }) == nil)
    }

    @Test func aCaughtUpReplicaIsProposedInAndCountsAtOnce() {
        var p = leader(isr: [n1, n2])
        p.leaderAppended(logEnd: Offset(10))
        p.followerFetched(n2, fetchOffset: Offset(10), nowMs: 1)
        p.followerFetched(n3, fetchOffset: Offset(6), nowMs: 1)
        #expect(p.proposal(nowMs: 2, eligible: { _ in true }) == nil, "n3 is below the HW")
        p.followerFetched(n3, fetchOffset: Offset(10), nowMs: 3)
        #expect(p.proposal(nowMs: 3, eligible: { $0 != NodeID(3) }) == nil, "n3 is fenced")
        let grow = p.proposal(nowMs: 4, eligible: { _ in true })
        #expect(grow?.isr == [n1, n2, n3])
        #expect(p.maximalISR == [n1, n2, n3])
        // While the expansion is in flight, n3 already holds the HW back.
        p.leaderAppended(logEnd: Offset(12))
        p.followerFetched(n2, fetchOffset: Offset(12), nowMs: 5)
        #expect(p.highWatermark == Offset(10))
        p.proposalFailed()
        #expect(p.maximalISR == [n1, n2])
    }

    @Test func belowMinInSyncReplicasAcksAllIsRefused() {
        let p = leader(isr: [n1], minISR: 2)
        #expect(!p.hasEnoughReplicas)
    }

    @Test func aStaleAnswerDoesNotUndoNewerMetadata() {
        var p = leader()
        p.isrCommitted([n1, n2], elr: [], partitionEpoch: PartitionEpoch(9))
        p.isrCommitted([n1, n2, n3], elr: [], partitionEpoch: PartitionEpoch(8))
        #expect(p.isr == [n1, n2] && p.partitionEpoch == PartitionEpoch(9))
    }

    /// Found with real processes: the metadata telling the current state again cleared the
    /// proposal in flight, a second one went out with the old partition epoch, and was refused.
    @Test func theSameStateToldAgainKeepsTheProposalInFlight() {
        var p = leader(isr: [n1, n2])
        p.leaderAppended(logEnd: Offset(4))
        p.followerFetched(n2, fetchOffset: Offset(4), nowMs: 1)
        p.followerFetched(n3, fetchOffset: Offset(4), nowMs: 1)
        let grow = p.proposal(nowMs: 2, eligible: { _ in true })
        #expect(grow?.isr == [n1, n2, n3])
        p.isrCommitted([n1, n2], elr: [], partitionEpoch: PartitionEpoch(7))
        #expect(p.inFlight == grow, "the image repeating epoch 7 is not an answer")
        p.isrCommitted([n1, n2, n3], elr: [], partitionEpoch: PartitionEpoch(8))
        #expect(p.inFlight == nil && p.isr == [n1, n2, n3])
    }

    @Test func aFollowerReachingTheHighWatermarkIsProposedAtItsFetch() {
        var p = leader(isr: [n1, n2])
        p.leaderAppended(logEnd: Offset(10))
        p.followerFetched(n2, fetchOffset: Offset(10), nowMs: 1)
        p.followerFetched(n3, fetchOffset: Offset(9), nowMs: 1)
        #expect(p.expansion(after: n3, eligible: true) == nil, "below the HW")
        p.followerFetched(n3, fetchOffset: Offset(10), nowMs: 2)
        #expect(p.expansion(after: n3, eligible: false) == nil, "fenced")
        let grow = p.expansion(after: n3, eligible: true)
        #expect(grow?.isr == [n1, n2, n3] && p.maximalISR == [n1, n2, n3])
        #expect(p.expansion(after: n3, eligible: true) == nil, "one in flight")
    }

    /// The controller refused n3 into the ISR (INELIGIBLE_REPLICA: its log dir failed there, which
    /// this leader cannot see). n3 stopped fetching at the idle partition's HW, so it looked in
    /// sync for good: it was proposed, and refused, four times a second for minutes (a fault
    /// campaign's node logs). It is proposed again only after it fetches again.
    @Test func aReplicaRefusedIntoTheISRIsProposedAgainOnlyAfterItFetchesAgain() throws {
        var p = leader(isr: [n1, n2], lagMs: 60_000)
        p.leaderAppended(logEnd: Offset(10))
        p.followerFetched(n2, fetchOffset: Offset(10), nowMs: 1)
        p.followerFetched(n3, fetchOffset: Offset(10), nowMs: 1)
        let proposed = p.proposal(nowMs: 2, eligible: { _ in true })
        let grow = try #require(proposed)
        p.proposalRefused(grow)
        #expect(p.inFlight == nil)
        #expect(p.proposal(nowMs: 3, eligible: { _ in true }) == nil)
        #expect(p.proposal(nowMs: 5_000, eligible: { _ in true }) == nil)
        #expect(p.expansion(after: n3, eligible: true) == nil)
        p.followerFetched(n3, fetchOffset: Offset(10), nowMs: 5_001)
        #expect(p.expansion(after: n3, eligible: true)?.isr == [n1, n2, n3])
    }

    /// Seed 5149 of the cluster simulator: an answer whose state metadata had already brought
    /// left the proposal in flight for good, and the ISR never grew again.
    @Test func anAnswerEndsTheProposalEvenWhenMetadataCameFirst() {
        var p = leader(isr: [n1, n2])
        p.leaderAppended(logEnd: Offset(4))
        p.followerFetched(n2, fetchOffset: Offset(4), nowMs: 1)
        p.followerFetched(n3, fetchOffset: Offset(4), nowMs: 1)
        #expect(p.proposal(nowMs: 2, eligible: { _ in true }) != nil)
        p.isrCommitted([n1, n2, n3], elr: [], partitionEpoch: PartitionEpoch(8))
        p.isrCommitted([n1, n2], elr: [], partitionEpoch: PartitionEpoch(9))
        p.proposalCommitted([n1, n2, n3], elr: [], partitionEpoch: PartitionEpoch(8))
        #expect(p.inFlight == nil && p.isr == [n1, n2] && p.partitionEpoch == PartitionEpoch(9))
        #expect(p.proposal(nowMs: 3, eligible: { _ in true })?.isr == [n1, n2, n3])
    }
}
