@testable import BrookBroker
import BrookCluster
import BrookCore
import BrookProtocol
import BrookTxn
import NIOCore
import Synchronization
import Testing

final class Settled: Sendable {
    let flag = Atomic(false)
}

/// The transaction coordinator in a cluster (TxnCoordination.swift, TxnService.swift): its
/// answers wait until the ISR has the states they rest on.
@Suite struct TxnCoordinationTests {
    let n1 = NodeID(1), n2 = NodeID(2)

    /// This broker (node 1) leads `__transaction_state`-0 with node 2 in its ISR, which never
    /// fetches: no state write reaches the ISR. And it leads topic "t" alone.
    func coordinator() throws -> (BrokerHarness, ReplicaManager) {
        let h = try BrokerHarness([("process.roles", "broker,controller")])
        h.broker.cluster.attach(forward: { _, done in done(.success([])) }, alterPartitions: { changes, done in done(changes.map { _ in (.none, nil) }) })
        let manager = ReplicaManager(broker: h.broker, node: n1)
        var records: [MetadataRecord] = []
        for (index, (name, isr)) in [(TxnService.stateTopic, [n1, n2]), ("t", [n1])].enumerated() {
            let id = KafkaUUID(high: 0x51, low: UInt64(index))
            var r = PartitionRecord()
            r.topicId = id
            r.partitionId = 0
            r.replicas = isr
            r.isr = isr
            r.leader = n1
            r.leaderEpoch = LeaderEpoch(1)
            records += [.topic(TopicRecord(name: name, topicId: id)), .partition(r)]
        }
        var image = MetadataImage()
        try image.apply(records, at: MetadataOffset(1))
        manager.imageChanged(image)
        manager.drain()
        return (h, manager)
    }

    /// Whether every write in `written` is on the ISR now.
    func settledNow(_ written: [InternalWrite], _ h: BrokerHarness) -> Bool {
        let done = Settled()
        InternalWrite.settled(written, on: h.loop).whenComplete { _ in done.flag.store(true, ordering: .relaxed) }
        h.loop.run()
        return done.flag.load(ordering: .relaxed)
    }

    /// AddPartitionsToTxn whose state write did not reach the ISR in time is answered
    /// COORDINATOR_NOT_AVAILABLE, and the client asks again. The state is in the coordinator's
    /// memory already: the retry used to be answered at once, so the client produced and
    /// committed a transaction that a new coordinator, without that write, did not know (its
    /// EndTxn then met INVALID_TXN_STATE, a fatal error for librdkafka; a 200-round fault
    /// campaign). The retry now waits for the states written before it, as the first ask did.
    @Test func aRetryAnsweredFromMemoryWaitsForTheWritesBeforeIt() throws {
        let (h, manager) = try coordinator()
        defer {
            manager.stop()
            h.close()
        }
        let txns = h.broker.transactions
        #expect(txns.coordinatorEpoch(of: "tx") == LeaderEpoch(1))
        let pid = ProducerID(7)
        txns.state.withLock { s in
            s.coordinator.replay("tx", TxnMetadata(transactionalID: "tx", producerID: pid, epoch: ProducerEpoch(0), timeoutMs: 60_000,
                                                   status: .empty, lastUpdateMs: 0))
        }
        let first = txns.addPartitions(transactionalID: "tx", producerID: pid, epoch: ProducerEpoch(0), partitions: [TxnPartition("t", 0)])
        #expect(first.0 == .none && first.1.count == 1)
        #expect(!settledNow(first.1, h))
        let retry = txns.addPartitions(transactionalID: "tx", producerID: pid, epoch: ProducerEpoch(0), partitions: [TxnPartition("t", 0)])
        #expect(retry.0 == .none)
        #expect(retry.1.map(\.end) == first.1.map(\.end))
        #expect(!settledNow(retry.1, h))
        // A retried EndTxn of a transaction already ended waits the same way.
        txns.state.withLock { s in
            s.coordinator.replay("ty", TxnMetadata(transactionalID: "ty", producerID: ProducerID(8), epoch: ProducerEpoch(0),
                                                   timeoutMs: 60_000, status: .completeCommit, lastUpdateMs: 0))
        }
        let ended = txns.endTxn(transactionalID: "ty", producerID: ProducerID(8), epoch: ProducerEpoch(0), commit: true, bumpEpoch: false)
        #expect(ended.0.error == .none && ended.1.count == 1)
        #expect(!settledNow(ended.1, h))
    }

    /// Where the ISR has every state written (here, before any write), a retry's answer has
    /// nothing to wait for.
    @Test func aRetryWithEveryWriteOnTheISRIsAnsweredAtOnce() throws {
        let (h, manager) = try coordinator()
        defer {
            manager.stop()
            h.close()
        }
        let txns = h.broker.transactions
        txns.state.withLock { s in
            s.coordinator.replay("ty", TxnMetadata(transactionalID: "ty", producerID: ProducerID(8), epoch: ProducerEpoch(0),
                                                   timeoutMs: 60_000, status: .completeCommit, lastUpdateMs: 0))
        }
        let ended = txns.endTxn(transactionalID: "ty", producerID: ProducerID(8), epoch: ProducerEpoch(0), commit: true, bumpEpoch: false)
        #expect(ended.0.error == .none)
        #expect(settledNow(ended.1, h))
    }
}
