import BrookBroker
import BrookCore
import BrookProtocol
import BrookRecords
import NIOCore
import Testing

/// WriteTxnMarkers (what a transaction coordinator on another broker sends) on a single node.
@Suite struct WriteTxnMarkersHandlerTests {
    struct OpenTransaction {
        var producerID: ProducerID
        var epoch: ProducerEpoch
        var partition: Partition
    }

    /// A transactional producer with one batch of two records written to `topic`-0 at offset 0,
    /// its transaction open.
    func openTransaction(_ h: BrokerHarness, _ topic: String) throws -> OpenTransaction {
        try h.createTopic(topic)
        let ids = try h.send(InitProducerIdRequest(transactionalId: "app", transactionTimeoutMs: 60_000), version: 4)
        #expect(ids.errorCode == 0)
        let add = AddPartitionsToTxnRequest(v3AndBelowTransactionalId: "app", v3AndBelowProducerId: ids.producerId,
                                            v3AndBelowProducerEpoch: ids.producerEpoch,
                                            v3AndBelowTopics: [.init(name: topic, partitions: [0])])
        #expect(try h.send(add, version: 3).resultsByTopicV3AndBelow[0].resultsByPartition[0].partitionErrorCode == 0)
        let producer = RecordBatchBuilder.Producer(id: ids.producerId, epoch: ids.producerEpoch, baseSequence: 0)
        let records = RecordBatchBuilder.build(baseOffset: .zero,
                                               records: ["a1", "a2"].map { SimpleRecord(key: nil, value: Array($0.utf8), timestamp: Timestamp(ms: 1_000)) },
                                               attributes: BatchAttributes(transactional: true), producer: producer)
        var produce = h.produceRequest(topic, batches: [records])
        produce.transactionalId = "app"
        let written = try h.send(produce, version: 9).responses[0].partitionResponses[0]
        #expect(written.errorCode == 0)
        #expect(written.baseOffset == Offset(0))
        let partition = try #require(h.broker.topics.partition(topic, 0))
        return OpenTransaction(producerID: ids.producerId, epoch: ids.producerEpoch, partition: partition)
    }

    func markers(_ txn: OpenTransaction, commit: Bool, topics: [(String, [Int32])], version: Int16 = 1,
                 _ h: BrokerHarness) throws -> WriteTxnMarkersResponse {
        let request = WriteTxnMarkersRequest(markers: [
            .init(producerId: txn.producerID, producerEpoch: txn.epoch, transactionResult: commit,
                  topics: topics.map { .init(name: $0.0, partitionIndexes: $0.1) }, coordinatorEpoch: 0),
        ])
        return try h.send(request, version: version)
    }

    @Test(arguments: [true, false])
    func aMarkerEndsTheTransactionOnThePartition(commit: Bool) throws {
        let h = try BrokerHarness()
        defer { h.close() }
        let txn = try openTransaction(h, "tx")
        // Open: the last stable offset holds at the transaction's first offset.
        #expect(txn.partition.offsets.lastStable == Offset(0))
        #expect(txn.partition.offsets.highWatermark == Offset(2))

        let answer = try markers(txn, commit: commit, topics: [("tx", [0])], h)
        #expect(answer.markers.count == 1)
        #expect(answer.markers[0].producerId == txn.producerID)
        #expect(answer.markers[0].topics.map(\.name) == ["tx"])
        #expect(answer.markers[0].topics[0].partitions.map(\.partitionIndex) == [0])
        #expect(answer.markers[0].topics[0].partitions.map(\.errorCode) == [0])
        // The marker is at offset 2; the transaction no longer holds the LSO back.
        #expect(txn.partition.offsets.highWatermark == Offset(3))
        #expect(txn.partition.offsets.lastStable == Offset(3))

        // read_committed sees the records of a commit, and is told of an abort.
        var request = h.fetchRequest("tx", offset: 0)
        request.isolationLevel = 1
        let read = try h.send(request, version: 12).responses[0].partitions[0]
        #expect(read.lastStableOffset == Offset(3))
        if commit {
            #expect(read.abortedTransactions?.isEmpty ?? true)
        } else {
            #expect(read.abortedTransactions == [.init(producerId: txn.producerID, firstOffset: Offset(0))])
        }
        // The two records and the marker (a control record at offset 2).
        let fetched = try fetchedRecords(read.records)
        #expect(fetched.map(\.offset) == [0, 1, 2])
        #expect(fetched.prefix(2).map(\.value) == ["a1", "a2"])
    }

    @Test func aMarkerToAPartitionThatDoesNotExistIsAnsweredUnknown() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        let txn = try openTransaction(h, "tx")
        let answer = try markers(txn, commit: true, topics: [("nope", [0]), ("tx", [7, 0])], version: 2, h)
        let unknown = ErrorCode.unknownTopicOrPartition.rawValue
        #expect(answer.markers[0].topics.map(\.name) == ["nope", "tx"])
        #expect(answer.markers[0].topics[0].partitions.map(\.errorCode) == [unknown])
        #expect(answer.markers[0].topics[1].partitions.map(\.partitionIndex) == [7, 0])
        #expect(answer.markers[0].topics[1].partitions.map(\.errorCode) == [unknown, 0])
        // The partition that exists got its marker all the same.
        #expect(txn.partition.offsets.lastStable == Offset(3))
    }

    @Test func onlyVersionsOneAndTwoAreServed() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        let entry = try #require(h.broker.handlers.entries[WriteTxnMarkersRequest.apiKey])
        #expect(entry.versions == 1...2)
        #expect(entry.advertised == 1...2)
        // A v0 header is refused (the connection closes) rather than answered.
        let frame = h.frame(WriteTxnMarkersRequest(markers: []), version: 1, apiVersion: 0)
        #expect(throws: RequestRefused.self) { try h.broker.handle(frame: frame, eventLoop: h.loop) }
    }
}
