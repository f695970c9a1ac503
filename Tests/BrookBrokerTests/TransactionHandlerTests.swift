import BrookBroker
import BrookCore
import BrookProtocol
import BrookRecords
import BrookTxn
import Foundation
import NIOCore
import Testing

/// Idempotent producers and transactions through the broker's handlers, on a manual clock.
@Suite struct TransactionHandlerTests {
    func records(_ values: [String], producer: RecordBatchBuilder.Producer, transactional: Bool = false) -> [UInt8] {
        RecordBatchBuilder.build(baseOffset: .zero,
                                 records: values.map { SimpleRecord(key: nil, value: Array($0.utf8), timestamp: Timestamp(ms: 1_000)) },
                                 attributes: BatchAttributes(transactional: transactional), producer: producer)
    }

    func initProducer(_ h: BrokerHarness, _ transactionalID: String? = nil, timeoutMs: Int32 = 60_000,
                      version: Int16 = 4) throws -> InitProducerIdResponse {
        try h.send(InitProducerIdRequest(transactionalId: transactionalID, transactionTimeoutMs: timeoutMs), version: version)
    }

    func produce(_ h: BrokerHarness, _ topic: String, _ batch: [UInt8], transactionalID: String? = nil)
        throws -> ProduceResponse.TopicProduceResponse.PartitionProduceResponse {
        var request = h.produceRequest(topic, batches: [batch])
        request.transactionalId = transactionalID
        return try h.send(request, version: 9).responses[0].partitionResponses[0]
    }

    func fetchCommitted(_ h: BrokerHarness, _ topic: String, offset: Int64 = 0)
        throws -> FetchResponse.FetchableTopicResponse.PartitionData {
        var request = h.fetchRequest(topic, offset: offset)
        request.isolationLevel = 1
        return try h.send(request, version: 12).responses[0].partitions[0]
    }

    func addPartition(_ h: BrokerHarness, _ id: String, _ pid: ProducerID, _ epoch: ProducerEpoch, _ topic: String) throws -> Int16 {
        let request = AddPartitionsToTxnRequest(v3AndBelowTransactionalId: id, v3AndBelowProducerId: pid,
                                                v3AndBelowProducerEpoch: epoch,
                                                v3AndBelowTopics: [.init(name: topic, partitions: [0])])
        return try h.send(request, version: 3).resultsByTopicV3AndBelow[0].resultsByPartition[0].partitionErrorCode
    }

    func endTxn(_ h: BrokerHarness, _ id: String, _ pid: ProducerID, _ epoch: ProducerEpoch, commit: Bool,
                version: Int16 = 3) throws -> EndTxnResponse {
        try h.send(EndTxnRequest(transactionalId: id, producerId: pid, producerEpoch: epoch, committed: commit), version: version)
    }

    @Test func retriedBatchGetsItsOriginalOffsetAndGapsAreRefused() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("idem")
        let ids = try initProducer(h)
        #expect(ids.errorCode == 0)
        #expect(ids.producerEpoch == ProducerEpoch(0))
        let p = { (seq: Int32) in RecordBatchBuilder.Producer(id: ids.producerId, epoch: ids.producerEpoch, baseSequence: seq) }
        #expect(try produce(h, "idem", records(["a", "b", "c"], producer: p(0))).baseOffset == Offset(0))
        #expect(try produce(h, "idem", records(["d", "e"], producer: p(3))).baseOffset == Offset(3))
        // The retry of the first batch: its offset again, nothing written.
        let retry = try produce(h, "idem", records(["a", "b", "c"], producer: p(0)))
        #expect(retry.errorCode == 0)
        #expect(retry.baseOffset == Offset(0))
        #expect(try h.fetch("idem", offset: 0).highWatermark == Offset(5))
        // A gap, and a batch with a producer id but no epoch.
        #expect(try produce(h, "idem", records(["x"], producer: p(9))).errorCode == ErrorCode.outOfOrderSequenceNumber.rawValue)
        let older = RecordBatchBuilder.Producer(id: ids.producerId, epoch: ProducerEpoch(-2), baseSequence: 5)
        #expect(try produce(h, "idem", records(["x"], producer: older)).errorCode == ErrorCode.invalidRecord.rawValue)
        // A second InitProducerId gets another id: they are never reused.
        #expect(try initProducer(h).producerId != ids.producerId)
        // Two idempotent batches in one request are refused, as in Kafka.
        var two = h.produceRequest("idem", batches: [records(["y"], producer: p(5)), records(["z"], producer: p(6))])
        two.transactionalId = nil
        #expect(try h.send(two, version: 9).responses[0].partitionResponses[0].errorCode == ErrorCode.invalidRecord.rawValue)
    }

    @Test(arguments: [false, true])
    func producerStateSurvivesARestart(withoutSnapshots: Bool) throws {
        let first = try BrokerHarness()
        try first.createTopic("idem")
        let ids = try initProducer(first)
        let p = { (seq: Int32) in RecordBatchBuilder.Producer(id: ids.producerId, epoch: ids.producerEpoch, baseSequence: seq) }
        for i in 0..<8 { try produce(first, "idem", records(["r\(i)"], producer: p(Int32(i)))) }
        first.broker.shutdown()
        if withoutSnapshots {  // rebuilt from the log alone
            let dir = first.directory + "/idem-0"
            for name in try FileManager.default.contentsOfDirectory(atPath: dir) where name.hasSuffix(".snapshot") {
                try FileManager.default.removeItem(atPath: dir + "/" + name)
            }
        }
        let h = try BrokerHarness(directory: first.directory)
        defer { h.close() }
        #expect(try produce(h, "idem", records(["r7"], producer: p(7))).baseOffset == Offset(7))
        #expect(try produce(h, "idem", records(["r5"], producer: p(5))).baseOffset == Offset(5))
        #expect(try produce(h, "idem", records(["r9"], producer: p(9))).errorCode == ErrorCode.outOfOrderSequenceNumber.rawValue)
        #expect(try produce(h, "idem", records(["r8"], producer: p(8))).baseOffset == Offset(8))
        // Producer ids are reserved on disk: the restarted broker hands out new ones.
        #expect(try initProducer(h).producerId > ids.producerId)
    }

    /// Without snapshots the producer state is replayed from the log over the `.txnindex`
    /// entries: each abort must still be listed once (librdkafka skips committed data otherwise).
    @Test(arguments: [false, true])
    func abortedTransactionIsSkippedByReadCommittedAcrossARestart(withoutSnapshots: Bool) throws {
        let first = try BrokerHarness()
        try first.createTopic("tx")
        let ids = try initProducer(first, "app-1")
        #expect(ids.errorCode == 0)
        let p = { (seq: Int32) in RecordBatchBuilder.Producer(id: ids.producerId, epoch: ids.producerEpoch, baseSequence: seq) }
        // Not added to the transaction: refused (KIP-890's verification).
        #expect(try produce(first, "tx", records(["early"], producer: p(0), transactional: true), transactionalID: "app-1").errorCode
                == ErrorCode.invalidTxnState.rawValue)
        #expect(try addPartition(first, "app-1", ids.producerId, ids.producerEpoch, "tx") == 0)
        #expect(try produce(first, "tx", records(["a1", "a2"], producer: p(0), transactional: true), transactionalID: "app-1").baseOffset == Offset(0))
        // Open: read_committed stops at the last stable offset (0); read_uncommitted sees it.
        let open = try fetchCommitted(first, "tx")
        #expect(open.lastStableOffset == Offset(0))
        #expect(try fetchedRecords(open.records).isEmpty)
        #expect(try fetchedRecords(first.fetch("tx", offset: 0).records).count == 2)
        #expect(try endTxn(first, "app-1", ids.producerId, ids.producerEpoch, commit: false).errorCode == 0)
        // Then a committed one.
        #expect(try addPartition(first, "app-1", ids.producerId, ids.producerEpoch, "tx") == 0)
        #expect(try produce(first, "tx", records(["c1"], producer: p(2), transactional: true), transactionalID: "app-1").baseOffset == Offset(3))
        #expect(try endTxn(first, "app-1", ids.producerId, ids.producerEpoch, commit: true).errorCode == 0)
        // A retried EndTxn is answered as done; the other outcome is refused.
        #expect(try endTxn(first, "app-1", ids.producerId, ids.producerEpoch, commit: true).errorCode == 0)
        #expect(try endTxn(first, "app-1", ids.producerId, ids.producerEpoch, commit: false).errorCode == ErrorCode.invalidTxnState.rawValue)
        first.broker.shutdown()
        if withoutSnapshots {
            let dir = first.directory + "/tx-0"
            for name in try FileManager.default.contentsOfDirectory(atPath: dir) where name.hasSuffix(".snapshot") {
                try FileManager.default.removeItem(atPath: dir + "/" + name)
            }
        }

        let h = try BrokerHarness(directory: first.directory)
        defer { h.close() }
        let done = try fetchCommitted(h, "tx")
        #expect(done.lastStableOffset == Offset(5))
        #expect(done.highWatermark == Offset(5))
        #expect(done.abortedTransactions == [.init(producerId: ids.producerId, firstOffset: Offset(0))])
        let states = try h.send(DescribeTransactionsRequest(transactionalIds: ["app-1", "nobody"]), version: 0).transactionStates
        #expect(states[0].transactionState == "CompleteCommit")
        #expect(states[1].errorCode == ErrorCode.transactionalIDNotFound.rawValue)
        let producers = try h.send(DescribeProducersRequest(topics: [.init(name: "tx", partitionIndexes: [0])]), version: 0)
        #expect(producers.topics[0].partitions[0].activeProducers.map(\.producerId) == [ids.producerId])
    }

    @Test func aNewInstanceFencesTheOldAndAbortsItsTransaction() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("tx")
        let old = try initProducer(h, "app")
        #expect(try addPartition(h, "app", old.producerId, old.producerEpoch, "tx") == 0)
        let p = RecordBatchBuilder.Producer(id: old.producerId, epoch: old.producerEpoch, baseSequence: 0)
        #expect(try produce(h, "tx", records(["zombie"], producer: p, transactional: true), transactionalID: "app").errorCode == 0)
        let new = try initProducer(h, "app")
        #expect(new.producerId == old.producerId)
        #expect(new.producerEpoch > old.producerEpoch)
        // The old instance: fenced everywhere.
        #expect(try addPartition(h, "app", old.producerId, old.producerEpoch, "tx") == ErrorCode.producerFenced.rawValue)
        #expect(try endTxn(h, "app", old.producerId, old.producerEpoch, commit: true).errorCode == ErrorCode.producerFenced.rawValue)
        let late = RecordBatchBuilder.Producer(id: old.producerId, epoch: old.producerEpoch, baseSequence: 1)
        #expect(try produce(h, "tx", records(["late"], producer: late, transactional: true), transactionalID: "app").errorCode
                == ErrorCode.invalidProducerEpoch.rawValue)
        // Its transaction was aborted: nothing holds the last stable offset back.
        let read = try fetchCommitted(h, "tx")
        #expect(read.lastStableOffset == read.highWatermark)
        #expect(read.abortedTransactions?.count == 1)
    }

    @Test func timeoutsAbortAndAreBounded() throws {
        let h = try BrokerHarness([("transaction.max.timeout.ms", "10000"),
                                   ("transaction.abort.timed.out.transaction.cleanup.interval.ms", "100")])
        defer { h.close() }
        try h.createTopic("tx")
        #expect(try initProducer(h, "slow", timeoutMs: 20_000).errorCode == ErrorCode.invalidTransactionTimeout.rawValue)
        #expect(try initProducer(h, "slow", timeoutMs: 0).errorCode == ErrorCode.invalidTransactionTimeout.rawValue)
        let ids = try initProducer(h, "slow", timeoutMs: 5_000)
        #expect(try addPartition(h, "slow", ids.producerId, ids.producerEpoch, "tx") == 0)
        let p = RecordBatchBuilder.Producer(id: ids.producerId, epoch: ids.producerEpoch, baseSequence: 0)
        #expect(try produce(h, "tx", records(["hung"], producer: p, transactional: true), transactionalID: "slow").errorCode == 0)
        h.clock.advance(ms: 4_000)
        h.broker.transactions.tick()
        #expect(try fetchCommitted(h, "tx").lastStableOffset == Offset(0))
        h.clock.advance(ms: 2_000)
        h.broker.transactions.tick()
        let read = try fetchCommitted(h, "tx")
        #expect(read.lastStableOffset == Offset(2))
        #expect(read.abortedTransactions?.map(\.firstOffset) == [Offset(0)])
        // The producer was fenced by the abort's epoch bump.
        #expect(try endTxn(h, "slow", ids.producerId, ids.producerEpoch, commit: true).errorCode == ErrorCode.producerFenced.rawValue)
        let listed = try h.send(ListTransactionsRequest(stateFilters: ["CompleteAbort", "Bogus"]), version: 1)
        #expect(listed.transactionStates.map(\.transactionalId) == ["slow"])
        #expect(listed.unknownStateFilters == ["Bogus"])
    }

    @Test func transactionalOffsetsAreUnstableUntilTheCommit() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("in")
        let ids = try initProducer(h, "ctp")
        let add = AddOffsetsToTxnRequest(transactionalId: "ctp", producerId: ids.producerId, producerEpoch: ids.producerEpoch, groupId: "g")
        // Before AddOffsetsToTxn the commit is refused.
        let commit = TxnOffsetCommitRequest(transactionalId: "ctp", groupId: "g", producerId: ids.producerId, producerEpoch: ids.producerEpoch,
                                            topics: [.init(name: "in", partitions: [.init(partitionIndex: 0, committedOffset: Offset(42))])])
        #expect(try h.send(commit, version: 3).topics[0].partitions[0].errorCode == ErrorCode.invalidTxnState.rawValue)
        #expect(try h.send(add, version: 3).errorCode == 0)
        #expect(try h.send(commit, version: 3).topics[0].partitions[0].errorCode == 0)
        let fetch = OffsetFetchRequest(groupId: "g", topics: [.init(name: "in", partitionIndexes: [0])], requireStable: true)
        let pending = try h.send(fetch, version: 7).topics[0].partitions[0]
        #expect(pending.errorCode == ErrorCode.unstableOffsetCommit.rawValue)
        #expect(try endTxn(h, "ctp", ids.producerId, ids.producerEpoch, commit: true).errorCode == 0)
        let committed = try h.send(fetch, version: 7).topics[0].partitions[0]
        #expect(committed.errorCode == 0)
        #expect(committed.committedOffset == Offset(42))
    }

    @Test func endTxnV5BumpsTheEpochPerTransaction() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("tx")
        let ids = try initProducer(h, "tv2", version: 5)
        #expect(try addPartition(h, "tv2", ids.producerId, ids.producerEpoch, "tx") == 0)
        let p = RecordBatchBuilder.Producer(id: ids.producerId, epoch: ids.producerEpoch, baseSequence: 0)
        #expect(try produce(h, "tx", records(["one"], producer: p, transactional: true), transactionalID: "tv2").errorCode == 0)
        let ended = try endTxn(h, "tv2", ids.producerId, ids.producerEpoch, commit: true, version: 5)
        #expect(ended.errorCode == 0)
        #expect(ended.producerEpoch == ProducerEpoch(ids.producerEpoch.value + 1))
        // The retry under the old epoch is answered with the new one; a late write under it is refused.
        #expect(try endTxn(h, "tv2", ids.producerId, ids.producerEpoch, commit: true, version: 5).producerEpoch == ended.producerEpoch)
        let late = RecordBatchBuilder.Producer(id: ids.producerId, epoch: ids.producerEpoch, baseSequence: 1)
        #expect(try produce(h, "tx", records(["late"], producer: late, transactional: true), transactionalID: "tv2").errorCode
                == ErrorCode.invalidProducerEpoch.rawValue)
    }

    @Test func clientsMayNotWriteInternalTopicsOrControlBatches() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        _ = try initProducer(h, "x")  // makes __transaction_state
        #expect(try h.produce("__transaction_state", batch(["v"], timestamps: [1])).errorCode == ErrorCode.invalidTopicException.rawValue)
        try h.createTopic("t")
        let control = RecordBatchBuilder.build(baseOffset: .zero, records: [SimpleRecord(key: [0, 0, 0, 1], value: [0, 0, 0, 0, 0, 0], timestamp: Timestamp(ms: 1))],
                                               attributes: BatchAttributes(transactional: true, control: true),
                                               producer: .init(id: ProducerID(7), epoch: ProducerEpoch(0), baseSequence: -1))
        #expect(try h.produce("t", control).errorCode == ErrorCode.invalidRecord.rawValue)
    }
}
