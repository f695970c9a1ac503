@testable import BrookTxn
import BrookCore
import BrookProtocol
import Testing

// The transaction coordinator driven as the broker's TxnService drives it, with a hand-moved
// clock and a producer id allocator counting up from 1001.

let orders0 = TxnPartition("orders", 0), orders1 = TxnPartition("orders", 1), audit1 = TxnPartition("audit", 1)

/// A producer id and epoch, as InitProducerId grants them.
struct Grant: Equatable, CustomStringConvertible {
    var producerID: ProducerID
    var epoch: ProducerEpoch
    init(_ producerID: ProducerID, _ epoch: ProducerEpoch) { self.producerID = producerID; self.epoch = epoch }
    init(_ producerID: Int64, _ epoch: Int16) { self.init(ProducerID(producerID), ProducerEpoch(epoch)) }
    func at(_ epoch: Int16) -> Grant { Grant(producerID, ProducerEpoch(epoch)) }
    var description: String { "(\(producerID), \(epoch))" }
}

extension TxnCoordinator.InitOutcome {
    var grant: Grant? {
        if case .ready(let id, let epoch, _) = self { return Grant(id, epoch) }
        return nil
    }
    var written: TxnMetadata? {
        if case .ready(_, _, let write) = self { return write }
        return nil
    }
    var abortPlan: MarkerPlan? {
        if case .abortFirst(let plan) = self { return plan }
        return nil
    }
}

extension TxnCoordinator.EndOutcome {
    var plan: MarkerPlan? {
        if case .markers(let plan) = self { return plan }
        return nil
    }
    var refusal: ErrorCode? {
        if case .refused(let code) = self { return code }
        return nil
    }
}

struct CoordinatorHarness {
    var coordinator: TxnCoordinator
    var now: Int64 = 1_000_000
    var lastProducerID: Int64 = 1_000
    /// When set, the allocator has no producer id to give.
    var allocatorDry = false

    init(_ configure: (inout TxnConfig) -> Void = { _ in }) {
        var config = TxnConfig()
        configure(&config)
        coordinator = TxnCoordinator(config: config)
    }

    mutating func initProducer(_ id: String?, timeoutMs: Int32 = 60_000,
                               expected: (ProducerID, ProducerEpoch)? = nil) -> TxnCoordinator.InitOutcome {
        var last = lastProducerID
        let dry = allocatorDry
        let outcome = coordinator.initProducerID(transactionalID: id, timeoutMs: timeoutMs, expected: expected, now: now) {
            if dry { return nil }
            last += 1
            return ProducerID(last)
        }
        lastProducerID = last
        return outcome
    }

    /// An InitProducerId that must be granted.
    mutating func begin(_ id: String, timeoutMs: Int32 = 60_000, sourceLocation: SourceLocation = #_sourceLocation) throws -> Grant {
        let outcome = initProducer(id, timeoutMs: timeoutMs)
        return try #require(outcome.grant, "InitProducerId(\(id)) answered \(outcome)", sourceLocation: sourceLocation)
    }

    mutating func add(_ id: String, _ grant: Grant, _ partitions: [TxnPartition]) -> ErrorCode {
        coordinator.addPartitions(transactionalID: id, producerID: grant.producerID, epoch: grant.epoch,
                                  partitions: partitions, now: now).0
    }

    mutating func end(_ id: String, _ grant: Grant, commit: Bool, bump: Bool = false) -> TxnCoordinator.EndOutcome {
        coordinator.prepareEnd(transactionalID: id, producerID: grant.producerID, epoch: grant.epoch, commit: commit,
                               bumpEpoch: bump, now: now)
    }

    mutating func complete(_ id: String) -> TxnMetadata? {
        coordinator.completeEnd(transactionalID: id, now: now)
    }

    func verify(_ id: String, _ grant: Grant, _ partition: TxnPartition) -> ErrorCode? {
        coordinator.verify(transactionalID: id, producerID: grant.producerID, epoch: grant.epoch, partition: partition)
    }

    func status(_ id: String) -> TxnStatus? { coordinator.metadata(id)?.status }

    func listed(states: [String] = [], producerIDs: [ProducerID] = [], minDurationMs: Int64 = -1) -> [String] {
        coordinator.list(states: states, producerIDs: producerIDs, minDurationMs: minDurationMs, now: now).map(\.transactionalID)
    }
}

@Suite struct TxnCoordinatorInitTests {
    @Test func anIdempotentProducerGetsAFreshIDAtEpochZero() {
        var h = CoordinatorHarness()
        #expect(h.initProducer(nil) == .ready(ProducerID(1001), ProducerEpoch(0), write: nil))
        #expect(h.initProducer("") == .ready(ProducerID(1002), ProducerEpoch(0), write: nil))
        // The timeout is a transactional setting: an idempotent producer's is not checked.
        #expect(h.initProducer(nil, timeoutMs: 0) == .ready(ProducerID(1003), ProducerEpoch(0), write: nil))
        #expect(h.coordinator.txns.isEmpty)
        h.allocatorDry = true
        #expect(h.initProducer(nil) == .refused(.coordinatorNotAvailable))
    }

    @Test func aTransactionalIDStartsAtEpochZeroAndEachInitFencesThePrevious() throws {
        var h = CoordinatorHarness()
        let first = h.initProducer("tx", timeoutMs: 30_000)
        #expect(first.grant == Grant(1001, 0))
        let created = try #require(first.written)
        #expect(created.transactionalID == "tx")
        #expect(created.producerID == ProducerID(1001))
        #expect(created.epoch == ProducerEpoch(0))
        #expect(created.timeoutMs == 30_000)
        #expect(created.status == .empty)
        #expect(created.partitions.isEmpty)
        #expect(created.lastUpdateMs == h.now)
        #expect(h.coordinator.metadata("tx") == created)

        h.now += 1_000
        let second = h.initProducer("tx", timeoutMs: 45_000)
        #expect(second.grant == Grant(1001, 1))
        #expect(second.written?.timeoutMs == 45_000)
        #expect(second.written?.lastUpdateMs == h.now)
        #expect(h.coordinator.metadata("tx") == second.written)

        let old = Grant(1001, 0), current = Grant(1001, 1)
        #expect(h.add("tx", old, [orders0]) == .producerFenced)
        #expect(h.end("tx", old, commit: true).refusal == .producerFenced)
        #expect(h.add("tx", current, [orders0]) == .none)
        #expect(h.verify("tx", old, orders0) == .invalidProducerEpoch)
        #expect(h.verify("tx", current, orders0) == nil)
        // Nobody else owns it.
        #expect(h.add("tx", Grant(999, 1), [orders0]) == .invalidProducerIDMapping)
        #expect(h.add("unknown", current, [orders0]) == .invalidProducerIDMapping)
    }

    @Test func aTimeoutOfZeroOrAboveTheMaximumIsRefused() {
        var h = CoordinatorHarness { $0.maxTimeoutMs = 120_000 }
        for timeout: Int32 in [0, -1, 120_001, .max] {
            #expect(h.initProducer("tx", timeoutMs: timeout) == .refused(.invalidTransactionTimeout), "timeout \(timeout)")
        }
        #expect(h.coordinator.metadata("tx") == nil)
        #expect(h.lastProducerID == 1_000)
        #expect(h.initProducer("tx", timeoutMs: 120_000).grant == Grant(1001, 0))
        // An id that exists is held to the same rule, and keeps its epoch.
        #expect(h.initProducer("tx", timeoutMs: 120_001) == .refused(.invalidTransactionTimeout))
        #expect(h.initProducer("tx", timeoutMs: 0) == .refused(.invalidTransactionTimeout))
        #expect(h.coordinator.metadata("tx")?.epoch == ProducerEpoch(0))
    }

    @Test func anInitDuringAnOpenTransactionAbortsItUnderABumpedEpochFirst() throws {
        var h = CoordinatorHarness()
        let old = try h.begin("tx")
        #expect(h.add("tx", old, [orders0, audit1]) == .none)
        h.now += 500
        let plan = try #require(h.initProducer("tx").abortPlan)
        #expect(plan.transactionalID == "tx")
        #expect(plan.producerID == old.producerID)
        #expect(plan.epoch == ProducerEpoch(1))
        #expect(!plan.commit)
        #expect(plan.partitions == [audit1, orders0])
        #expect(plan.prepared.status == .prepareAbort)
        #expect(plan.prepared.epoch == ProducerEpoch(1))
        #expect(plan.prepared.partitions == [audit1, orders0])
        #expect(plan.prepared.lastUpdateMs == h.now)
        #expect(h.coordinator.metadata("tx") == plan.prepared)

        // The old instance is fenced at once; a second InitProducerId waits for the markers.
        #expect(h.add("tx", old, [orders1]) == .producerFenced)
        #expect(h.verify("tx", old, orders0) == .invalidProducerEpoch)
        #expect(h.end("tx", old, commit: true).refusal == .producerFenced)
        #expect(h.initProducer("tx") == .refused(.concurrentTransactions))

        h.now += 500
        let abortedState = try required(h.complete("tx"))
        #expect(abortedState.status == .completeAbort)
        #expect(abortedState.partitions.isEmpty)
        let next = try #require(h.initProducer("tx").grant)
        #expect(next.producerID == old.producerID)
        #expect(next.epoch > plan.epoch)
        #expect(h.status("tx") == .empty)
        #expect(h.add("tx", old, [orders0]) == .producerFenced)
        #expect(h.add("tx", next, [orders0]) == .none)
    }

    @Test func anExhaustedEpochMovesToANewProducerID() throws {
        var h = CoordinatorHarness()
        let m = TxnMetadata(transactionalID: "old", producerID: ProducerID(77), epoch: ProducerEpoch(Int16.max - 2),
                            timeoutMs: 60_000, status: .completeCommit, lastUpdateMs: h.now)
        h.coordinator.replay("old", m)
        #expect(try h.begin("old") == Grant(77, Int16.max - 1))
        let rotated = try h.begin("old")
        #expect(rotated.producerID != ProducerID(77))
        #expect(rotated.producerID == ProducerID(1001))
        #expect(rotated.epoch == ProducerEpoch(0))
        #expect(h.coordinator.metadata("old")?.producerID == rotated.producerID)
        #expect(h.add("old", Grant(77, Int16.max - 1), [orders0]) == .invalidProducerIDMapping)
        #expect(h.add("old", rotated, [orders0]) == .none)
    }

    @Test func kip360AProducerNamingItsCurrentEpochGetsItBumped() throws {
        var h = CoordinatorHarness()
        let g0 = try h.begin("tx")
        let pid = g0.producerID
        #expect(h.initProducer("tx", expected: (pid, ProducerEpoch(0))).grant == g0.at(1))
        #expect(h.initProducer("tx", expected: (pid, ProducerEpoch(1))).grant == g0.at(2))
        // An epoch it never had, one long gone, or another producer id: fenced.
        for epoch: Int16 in [0, 7] {
            #expect(h.initProducer("tx", expected: (pid, ProducerEpoch(epoch))) == .refused(.producerFenced), "epoch \(epoch)")
        }
        #expect(h.initProducer("tx", expected: (ProducerID(4242), ProducerEpoch(2))) == .refused(.producerFenced))
        #expect(h.coordinator.metadata("tx")?.epoch == ProducerEpoch(2))
        // (-1, -1) names nothing: a plain InitProducerId.
        #expect(h.initProducer("tx", expected: (ProducerID.none, ProducerEpoch.none)).grant == g0.at(3))
    }

    /// Kafka (`prepareIncrementProducerEpoch`): an expected epoch equal to the last epoch is "a
    /// retry of a successful call, so just return the current epoch without bumping".
    @Test func kip360ARetryOfASuccessfulInitGetsTheSameEpochAgain() throws {
        var h = CoordinatorHarness()
        let g0 = try h.begin("tx")
        #expect(h.initProducer("tx", expected: (g0.producerID, ProducerEpoch(0))).grant == g0.at(1))
        // The answer was lost; the producer asks again with the epoch it had.
        #expect(h.initProducer("tx", expected: (g0.producerID, ProducerEpoch(0))).grant == g0.at(1))
        #expect(h.coordinator.metadata("tx")?.epoch == ProducerEpoch(1))
    }

    /// Kafka's `prepareFenceProducerEpoch` records no last epoch (-1), so once a new instance's
    /// InitProducerId has aborted the old instance's transaction, the old instance cannot pass its
    /// epoch off as a KIP-360 retry and take the id back.
    @Test func aFencedInstanceCannotReclaimTheIDWithItsOldEpoch() throws {
        var h = CoordinatorHarness()
        let old = try h.begin("tx")
        #expect(h.add("tx", old, [orders0]) == .none)
        _ = try #require(h.initProducer("tx").abortPlan)
        _ = try required(h.complete("tx"))
        #expect(h.initProducer("tx", expected: (old.producerID, old.epoch)) == .refused(.producerFenced))
    }
}

@Suite struct TxnCoordinatorTransactionTests {
    @Test func addingTheFirstPartitionsStartsTheTransaction() throws {
        var h = CoordinatorHarness()
        let g = try h.begin("tx")
        h.now += 2_000
        let start = h.now
        let (code, write) = h.coordinator.addPartitions(transactionalID: "tx", producerID: g.producerID, epoch: g.epoch,
                                                        partitions: [orders0], now: h.now)
        #expect(code == .none)
        let started = try #require(write)
        #expect(started.status == .ongoing)
        #expect(started.startMs == start)
        #expect(started.lastUpdateMs == start)
        #expect(started.partitions == [orders0])
        #expect(h.coordinator.metadata("tx") == started)

        h.now += 1_000
        // Nothing new: nothing to write.
        let again = h.coordinator.addPartitions(transactionalID: "tx", producerID: g.producerID, epoch: g.epoch,
                                                partitions: [orders0], now: h.now)
        #expect(again.0 == .none)
        #expect(again.write == nil)
        let more = h.coordinator.addPartitions(transactionalID: "tx", producerID: g.producerID, epoch: g.epoch,
                                               partitions: [orders0, orders1, audit1], now: h.now)
        #expect(more.0 == .none)
        #expect(more.write?.partitions == [orders0, orders1, audit1])
        #expect(more.write?.startMs == start)
        #expect(more.write?.lastUpdateMs == h.now)
        #expect(h.status("tx") == .ongoing)
    }

    @Test func verifyAdmitsOnlyAddedPartitionsOfTheCurrentEpochWhileOngoing() throws {
        var h = CoordinatorHarness()
        _ = try h.begin("tx")
        let g = try h.begin("tx")
        #expect(g.epoch == ProducerEpoch(1))
        let stale = g.at(0)
        #expect(h.verify("tx", g, orders0) == .invalidTxnState)  // no transaction yet
        #expect(h.add("tx", g, [orders0]) == .none)
        #expect(h.verify("tx", g, orders0) == nil)
        #expect(h.verify("tx", g, orders1) == .invalidTxnState)
        #expect(h.verify("tx", stale, orders0) == .invalidProducerEpoch)
        #expect(h.verify("tx", Grant(77, 1), orders0) == .invalidProducerIDMapping)
        #expect(h.verify("nobody", g, orders0) == .invalidProducerIDMapping)
        _ = try #require(h.end("tx", g, commit: true).plan)
        #expect(h.verify("tx", g, orders0) == .invalidTxnState)  // ending
        _ = try required(h.complete("tx"))
        #expect(h.verify("tx", g, orders0) == .invalidTxnState)  // ended
        #expect(h.verify("tx", stale, orders0) == .invalidProducerEpoch)
    }

    @Test func aCommitWritesItsMarkersThenCompletes() throws {
        var h = CoordinatorHarness()
        let g = try h.begin("tx")
        #expect(h.add("tx", g, [orders1, orders0]) == .none)
        h.now += 100
        let plan = try #require(h.end("tx", g, commit: true).plan)
        #expect(plan.commit)
        #expect(plan.producerID == g.producerID)
        #expect(plan.epoch == g.epoch)
        #expect(plan.partitions == [orders0, orders1])
        #expect(plan.prepared.status == .prepareCommit)
        #expect(plan.prepared.partitions == [orders0, orders1])
        #expect(plan.prepared.lastUpdateMs == h.now)
        #expect(h.coordinator.metadata("tx") == plan.prepared)

        h.now += 100
        let done = try required(h.complete("tx"))
        #expect(done.status == .completeCommit)
        #expect(done.partitions.isEmpty)
        #expect(done.startMs == -1)
        #expect(done.epoch == g.epoch)
        #expect(done.lastUpdateMs == h.now)
        #expect(h.coordinator.metadata("tx") == done)
        #expect(h.complete("tx") == nil)

        // The producer's retry of its EndTxn is answered with success, and changes nothing...
        #expect(h.end("tx", g, commit: true) == .done(g.producerID, g.epoch))
        #expect(h.coordinator.metadata("tx") == done)
        // ...but the other result is not a retry.
        #expect(h.end("tx", g, commit: false).refusal == .invalidTxnState)
    }

    @Test func anAbortCompletesAndACommitAfterItIsInvalid() throws {
        var h = CoordinatorHarness()
        let g = try h.begin("tx")
        #expect(h.add("tx", g, [orders0]) == .none)
        let plan = try #require(h.end("tx", g, commit: false).plan)
        #expect(!plan.commit)
        #expect(plan.partitions == [orders0])
        #expect(plan.prepared.status == .prepareAbort)
        #expect(h.complete("tx")?.status == .completeAbort)
        #expect(h.end("tx", g, commit: false) == .done(g.producerID, g.epoch))
        #expect(h.end("tx", g, commit: true).refusal == .invalidTxnState)
        // The next transaction starts afresh under the same epoch.
        #expect(h.add("tx", g, [orders1]) == .none)
        #expect(h.coordinator.metadata("tx")?.partitions == [orders1])
    }

    @Test func endingATransactionThatNeverStartedIsInvalid() throws {
        var h = CoordinatorHarness()
        let g = try h.begin("tx")
        #expect(h.end("tx", g, commit: true).refusal == .invalidTxnState)
        #expect(h.end("tx", g, commit: false).refusal == .invalidTxnState)
        #expect(h.status("tx") == .empty)
        #expect(h.end("nobody", g, commit: true).refusal == .invalidProducerIDMapping)
        #expect(h.end("tx", Grant(g.producerID.value + 5, 0), commit: true).refusal == .invalidProducerIDMapping)
    }

    @Test func anEndTxnWhileTheMarkersAreBeingWrittenIsConcurrent() throws {
        var h = CoordinatorHarness()
        let c = try h.begin("c")
        #expect(h.add("c", c, [orders0]) == .none)
        _ = try #require(h.end("c", c, commit: true).plan)
        #expect(h.end("c", c, commit: true).refusal == .concurrentTransactions)
        #expect(h.add("c", c, [orders1]) == .concurrentTransactions)
        #expect(h.initProducer("c") == .refused(.concurrentTransactions))

        let a = try h.begin("a")
        #expect(h.add("a", a, [orders0]) == .none)
        _ = try #require(h.end("a", a, commit: false).plan)
        #expect(h.end("a", a, commit: false).refusal == .concurrentTransactions)
        #expect(h.status("a") == .prepareAbort)
        #expect(h.status("c") == .prepareCommit)
    }

    /// Kafka's `endTransaction`: PrepareCommit answers an abort, and PrepareAbort a commit, with
    /// INVALID_TXN_STATE (only the same result is CONCURRENT_TRANSACTIONS).
    @Test func theOppositeResultWhileTheMarkersAreBeingWrittenIsInvalid() throws {
        var h = CoordinatorHarness()
        let c = try h.begin("c")
        #expect(h.add("c", c, [orders0]) == .none)
        _ = try #require(h.end("c", c, commit: true).plan)
        #expect(h.end("c", c, commit: false).refusal == .invalidTxnState)

        let a = try h.begin("a")
        #expect(h.add("a", a, [orders0]) == .none)
        _ = try #require(h.end("a", a, commit: false).plan)
        #expect(h.end("a", a, commit: true).refusal == .invalidTxnState)
    }

    @Test func endTxnV5BumpsTheEpochForEachTransaction() throws {
        var h = CoordinatorHarness()
        let g0 = try h.begin("tx")
        #expect(h.add("tx", g0, [orders0]) == .none)
        let plan = try #require(h.end("tx", g0, commit: true, bump: true).plan)
        #expect(plan.epoch == ProducerEpoch(1))
        #expect(plan.commit)
        #expect(plan.partitions == [orders0])
        #expect(plan.prepared.epoch == ProducerEpoch(1))
        #expect(plan.prepared.previousEpoch == ProducerEpoch(0))
        #expect(h.complete("tx")?.status == .completeCommit)
        let g1 = g0.at(1)
        // The producer's retry under the epoch it sent with is answered with the new epoch.
        #expect(h.end("tx", g0, commit: true, bump: true) == .done(g0.producerID, ProducerEpoch(1)))
        // Anything else under the old epoch is fenced.
        #expect(h.verify("tx", g0, orders0) == .invalidProducerEpoch)
        #expect(h.add("tx", g0, [orders0]) == .producerFenced)

        // The next transaction, under the new epoch, ends under the one after.
        #expect(h.add("tx", g1, [orders1]) == .none)
        #expect(h.verify("tx", g1, orders1) == nil)
        #expect(h.verify("tx", g0, orders1) == .invalidProducerEpoch)
        let second = try #require(h.end("tx", g1, commit: false, bump: true).plan)
        #expect(second.epoch == ProducerEpoch(2))
        #expect(!second.commit)
        #expect(second.partitions == [orders1])
        #expect(h.complete("tx")?.status == .completeAbort)
        #expect(h.end("tx", g1, commit: false, bump: true) == .done(g0.producerID, ProducerEpoch(2)))
        #expect(h.end("tx", g0, commit: false, bump: true).refusal == .producerFenced)
        #expect(h.verify("tx", g1, orders1) == .invalidProducerEpoch)
    }

    @Test func endTxnV5MayAbortATransactionThatNeverStarted() throws {
        var h = CoordinatorHarness()
        let g0 = try h.begin("tx")
        #expect(h.end("tx", g0, commit: true, bump: true).refusal == .invalidTxnState)
        let plan = try #require(h.end("tx", g0, commit: false, bump: true).plan)
        #expect(plan.epoch == ProducerEpoch(1))
        #expect(plan.partitions.isEmpty)
        #expect(!plan.commit)
        #expect(h.complete("tx")?.status == .completeAbort)
    }

    /// Kafka (transaction version 2): after a transaction completes, an abort under the new epoch
    /// with nothing added is a new, empty abort (it bumps the epoch again), not INVALID_TXN_STATE.
    @Test func endTxnV5MayAbortAnEmptyTransactionAfterACompletedOne() throws {
        var h = CoordinatorHarness()
        let g0 = try h.begin("tx")
        #expect(h.add("tx", g0, [orders0]) == .none)
        _ = try #require(h.end("tx", g0, commit: true, bump: true).plan)
        #expect(h.complete("tx")?.status == .completeCommit)
        let g1 = g0.at(1)
        let plan = try #require(h.end("tx", g1, commit: false, bump: true).plan)
        #expect(plan.epoch == ProducerEpoch(2))
        #expect(plan.partitions.isEmpty)
    }

    /// Kafka (transaction version 2): a retry under the epoch before the bump, while the markers are
    /// still being written, is `retryOnEpochBump` and answered CONCURRENT_TRANSACTIONS (retriable),
    /// not PRODUCER_FENCED (fatal to the producer).
    @Test func aV5RetryWhileTheMarkersAreBeingWrittenIsConcurrentNotFenced() throws {
        var h = CoordinatorHarness()
        let g0 = try h.begin("tx")
        #expect(h.add("tx", g0, [orders0]) == .none)
        _ = try #require(h.end("tx", g0, commit: true, bump: true).plan)
        #expect(h.status("tx") == .prepareCommit)
        #expect(h.end("tx", g0, commit: true, bump: true).refusal == .concurrentTransactions)
    }
}

@Suite struct TxnCoordinatorTimerTests {
    @Test func aTransactionPastItsTimeoutIsAbortedUnderABumpedEpoch() throws {
        var h = CoordinatorHarness()  // abort check every 10 s
        let slow = try h.begin("slow", timeoutMs: 60_000)
        let quick = try h.begin("quick", timeoutMs: 600_000)
        #expect(h.add("slow", slow, [orders0]) == .none)
        #expect(h.add("quick", quick, [orders1]) == .none)
        let start = h.now
        #expect(h.coordinator.tick(now: start).aborts.isEmpty)
        #expect(h.coordinator.tick(now: start + 55_000).aborts.isEmpty)
        // Past its timeout, but less than the check interval since the last check: not yet.
        #expect(h.coordinator.tick(now: start + 60_001).aborts.isEmpty)
        #expect(h.status("slow") == .ongoing)

        h.now = start + 65_000
        let tick = h.coordinator.tick(now: h.now)
        #expect(tick.removed.isEmpty)
        #expect(tick.aborts.count == 1)
        let plan = try #require(tick.aborts.first)
        #expect(plan.transactionalID == "slow")
        #expect(plan.producerID == slow.producerID)
        #expect(!plan.commit)
        #expect(plan.epoch == ProducerEpoch(1))
        #expect(plan.partitions == [orders0])
        #expect(plan.prepared.status == .prepareAbort)
        #expect(h.coordinator.metadata("slow") == plan.prepared)
        #expect(h.status("quick") == .ongoing)

        // Its producer is fenced.
        #expect(h.verify("slow", slow, orders0) == .invalidProducerEpoch)
        #expect(h.add("slow", slow, [orders1]) == .producerFenced)
        #expect(h.end("slow", slow, commit: true).refusal == .producerFenced)
        // It is not aborted twice.
        #expect(h.coordinator.tick(now: h.now + 20_000).aborts.isEmpty)
        let done = try required(h.complete("slow"))
        #expect(done.status == .completeAbort)
        #expect(done.epoch == ProducerEpoch(1))
    }

    /// Found by the fault campaign: a coordinator whose wall clock stepped forward (an NTP step,
    /// or the end of a backward one) timed out every open transaction and fenced its producer.
    /// Timeouts are measured on the monotonic clock.
    @Test func aWallClockStepDoesNotTimeOutAnOpenTransaction() throws {
        var h = CoordinatorHarness()
        let g = try h.begin("tx", timeoutMs: 60_000)
        #expect(h.add("tx", g, [orders0]) == .none)
        let wall = h.now, mono: Int64 = 5_000
        #expect(h.coordinator.tick(now: wall, monotonicMs: mono).aborts.isEmpty)
        // The wall clock jumps 10 minutes ahead; 20 s pass.
        #expect(h.coordinator.tick(now: wall + 600_000 + 20_000, monotonicMs: mono + 20_000).aborts.isEmpty)
        // Back 10 minutes: checks still come every 10 s of monotonic time.
        #expect(h.coordinator.tick(now: wall + 40_000, monotonicMs: mono + 40_000).aborts.isEmpty)
        #expect(h.status("tx") == .ongoing)
        let tick = h.coordinator.tick(now: wall + 61_000, monotonicMs: mono + 61_000)
        #expect(tick.aborts.map(\.transactionalID) == ["tx"])
    }

    /// A transaction a coordinator first sees (loaded after a failover) keeps the age its start
    /// time gives it, at most its timeout.
    @Test func aLoadedTransactionKeepsItsAge() throws {
        var h = CoordinatorHarness()
        let g = try h.begin("tx", timeoutMs: 60_000)
        #expect(h.add("tx", g, [orders0]) == .none)
        let wall = h.now
        // First seen 50 s after it began (by the wall clock): 10 s of monotonic time are left.
        #expect(h.coordinator.tick(now: wall + 50_000, monotonicMs: 1_000).aborts.isEmpty)
        #expect(h.coordinator.tick(now: wall + 61_000, monotonicMs: 11_001).aborts.map(\.transactionalID) == ["tx"])
    }

    /// A transaction whose start was stamped by a coordinator with its clock stepped back (or
    /// forward) looks older than its timeout (or unborn) to the next coordinator: it gets its
    /// whole timeout from there. Reckoned as timed out, it was aborted at once and its live
    /// producer fenced (a 200-round fault campaign, seed 90210: two producers fenced).
    @Test func aLoadedTransactionWhoseAgeTheClocksDisagreeOnGetsItsWholeTimeout() throws {
        for skew: Int64 in [282_000, -300_000] {
            var h = CoordinatorHarness()
            let g = try h.begin("tx", timeoutMs: 60_000)
            #expect(h.add("tx", g, [orders0]) == .none)
            let wall = h.now + skew
            #expect(h.coordinator.tick(now: wall, monotonicMs: 1_000).aborts.isEmpty)
            #expect(h.coordinator.tick(now: wall + 30_000, monotonicMs: 31_000).aborts.isEmpty)
            #expect(h.status("tx") == .ongoing)
            #expect(h.coordinator.tick(now: wall + 61_000, monotonicMs: 61_001).aborts.map(\.transactionalID) == ["tx"])
        }
    }

    @Test func idleTransactionalIDsExpireButOpenTransactionsDoNot() throws {
        var h = CoordinatorHarness {
            $0.transactionalIDExpirationMs = 100_000
            $0.removeExpiredIntervalMs = 120_000
        }
        h.now = 10_000_000
        let t0 = h.now
        let idle = try h.begin("idle")
        let committed = try h.begin("committed")
        #expect(h.add("committed", committed, [orders0]) == .none)
        _ = try #require(h.end("committed", committed, commit: true).plan)
        _ = try required(h.complete("committed"))
        let ongoing = try h.begin("ongoing", timeoutMs: 900_000)
        #expect(h.add("ongoing", ongoing, [orders0]) == .none)
        let preparing = try h.begin("preparing", timeoutMs: 900_000)
        #expect(h.add("preparing", preparing, [orders1]) == .none)
        _ = try #require(h.end("preparing", preparing, commit: true).plan)

        #expect(h.coordinator.tick(now: t0 + 50_000).removed.isEmpty)  // checked: nothing old enough
        h.now = t0 + 150_000
        _ = try h.begin("recent")
        // Old enough, but the last check was less than the interval ago.
        #expect(h.coordinator.tick(now: h.now).removed.isEmpty)
        #expect(h.coordinator.metadata("idle") != nil)

        h.now = t0 + 170_000
        let tick = h.coordinator.tick(now: h.now)
        #expect(tick.removed == ["committed", "idle"])
        #expect(tick.aborts.isEmpty)
        #expect(h.coordinator.metadata("idle") == nil)
        #expect(Set(h.coordinator.txns.keys) == ["ongoing", "preparing", "recent"])
        // A removed id starts over, with a new producer id.
        let again = try h.begin("idle")
        #expect(again.epoch == ProducerEpoch(0))
        #expect(again.producerID != idle.producerID)
    }
}

@Suite struct TxnCoordinatorDescribeTests {
    @Test func listTransactionsFiltersByStateProducerAndDuration() throws {
        var h = CoordinatorHarness()
        let t0 = h.now
        let a = try h.begin("a")
        #expect(h.add("a", a, [orders0]) == .none)
        let c = try h.begin("c")
        #expect(h.add("c", c, [orders0]) == .none)
        _ = try #require(h.end("c", c, commit: true).plan)
        _ = try required(h.complete("c"))
        let d = try h.begin("d")
        h.now = t0 + 5_000
        let b = try h.begin("b")
        #expect(h.add("b", b, [orders1]) == .none)
        h.now = t0 + 10_000

        #expect(h.listed() == ["a", "b", "c", "d"])
        #expect(h.listed(states: ["Ongoing"]) == ["a", "b"])
        #expect(h.listed(states: ["CompleteCommit", "Empty"]) == ["c", "d"])
        #expect(h.listed(states: ["PrepareAbort"]) == [])
        #expect(h.listed(producerIDs: [b.producerID, d.producerID]) == ["b", "d"])
        #expect(h.listed(states: ["Ongoing"], producerIDs: [a.producerID, c.producerID]) == ["a"])
        #expect(h.listed(states: ["Ongoing"], minDurationMs: 7_000) == ["a"])
        #expect(h.listed(states: ["Ongoing"], minDurationMs: 3_000) == ["a", "b"])
        #expect(h.listed(states: ["Ongoing"], minDurationMs: 20_000) == [])
    }

    @Test func statusesCarryKafkasNumbersAndNames() {
        let expected: [(TxnStatus, Int8, String)] = [
            (.empty, 0, "Empty"), (.ongoing, 1, "Ongoing"), (.prepareCommit, 2, "PrepareCommit"),
            (.prepareAbort, 3, "PrepareAbort"), (.completeCommit, 4, "CompleteCommit"),
            (.completeAbort, 5, "CompleteAbort"), (.dead, 6, "Dead"), (.prepareEpochFence, 7, "PrepareEpochFence"),
        ]
        for (status, raw, name) in expected {
            #expect(status.rawValue == raw)
            #expect(status.name == name)
            #expect(TxnStatus(name: name) == status)
        }
        #expect(TxnStatus(name: "ongoing") == nil)
    }

    static func state(_ id: String, _ producer: Int64, _ status: TxnStatus, _ partitions: Set<TxnPartition>) -> TxnMetadata {
        var m = TxnMetadata(transactionalID: id, producerID: ProducerID(producer), epoch: ProducerEpoch(3), timeoutMs: 60_000,
                            status: status, lastUpdateMs: 1_000_500)
        m.partitions = partitions
        m.startMs = partitions.isEmpty ? -1 : 1_000_000
        return m
    }

    @Test func unfinishedListsTheTransactionsAReplayLeftPreparing() throws {
        var h = CoordinatorHarness()
        let commit = Self.state("pay", 11, .prepareCommit, [orders1, orders0, audit1])
        let abort = Self.state("audit", 12, .prepareAbort, [orders0])
        h.coordinator.replay("pay", commit)
        h.coordinator.replay("audit", abort)
        h.coordinator.replay("open", Self.state("open", 13, .ongoing, [orders0]))
        h.coordinator.replay("done", Self.state("done", 14, .completeCommit, []))
        h.coordinator.replay("gone", Self.state("gone", 15, .empty, []))
        h.coordinator.replay("gone", nil)
        #expect(h.coordinator.metadata("gone") == nil)
        #expect(h.coordinator.metadata("pay") == commit)

        #expect(h.coordinator.unfinished == [
            MarkerPlan(transactionalID: "audit", producerID: ProducerID(12), epoch: ProducerEpoch(3), commit: false,
                       partitions: [orders0], prepared: abort),
            MarkerPlan(transactionalID: "pay", producerID: ProducerID(11), epoch: ProducerEpoch(3), commit: true,
                       partitions: [audit1, orders0, orders1], prepared: commit),
        ])
        // Until their markers are written, they hold off new work.
        #expect(h.initProducer("audit") == .refused(.concurrentTransactions))
        #expect(h.end("pay", Grant(11, 3), commit: true).refusal == .concurrentTransactions)
        // Once written, they are complete.
        #expect(h.complete("pay")?.status == .completeCommit)
        #expect(h.coordinator.unfinished.map(\.transactionalID) == ["audit"])
    }
}

@Suite struct TxnRecordsTests {
    static func metadata() -> TxnMetadata {
        var m = TxnMetadata(transactionalID: "payments-é", producerID: ProducerID(123_456_789_012), epoch: ProducerEpoch(7),
                            timeoutMs: 60_000, status: .ongoing, lastUpdateMs: 1_700_000_000_456)
        m.previousEpoch = ProducerEpoch(6)
        m.startMs = 1_700_000_000_123
        m.partitions = [TxnPartition("orders", 0), TxnPartition("orders", 2), TxnPartition("audit", 1)]
        return m
    }

    @Test func keyAndValueRoundTrip() throws {
        let m = Self.metadata()
        let key = TxnRecords.key(m.transactionalID)
        #expect(try TxnRecords.decodeKey(key) == m.transactionalID)
        // Kafka's key: version 0, then the id as an i16-length string.
        #expect(Array(key.prefix(4)) == [0, 0, 0, UInt8(m.transactionalID.utf8.count)])
        let value = TxnRecords.value(m)
        #expect(try TxnRecords.decodeValue(value, transactionalID: m.transactionalID) == m)

        // A completed state: no partitions, no start, no previous epoch.
        var done = m
        done.status = .completeCommit
        done.partitions = []
        done.startMs = -1
        done.previousEpoch = .none
        #expect(try TxnRecords.decodeValue(TxnRecords.value(done), transactionalID: m.transactionalID) == done)
    }

    @Test func aTruncatedRecordFails() {
        let value = TxnRecords.value(Self.metadata())
        for length in 0..<value.count {
            let cut = Array(value.prefix(length))
            #expect(throws: ProducerSnapshot.DecodeError.truncated, "\(length) bytes") {
                try TxnRecords.decodeValue(cut, transactionalID: "payments-é")
            }
        }
        let key = TxnRecords.key("payments")
        let shortKey = Array(key.dropLast())
        #expect(throws: ProducerSnapshot.DecodeError.truncated) { try TxnRecords.decodeKey(shortKey) }
        // An unknown status or version is refused.
        var badStatus = value
        badStatus[2 + 8 + 2 + 4] = 9
        #expect((try? TxnRecords.decodeValue(badStatus, transactionalID: "payments-é")) == nil)
        var badVersion = key
        badVersion[1] = 1
        #expect((try? TxnRecords.decodeKey(badVersion)) == nil)
    }
}

/// `#require` of a value computed by a mutating call (which the macro cannot wrap).
func required<T>(_ value: T?, sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
    try #require(value, sourceLocation: sourceLocation)
}
