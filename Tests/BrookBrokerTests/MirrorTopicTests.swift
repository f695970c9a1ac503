import BrookBroker
import BrookCore
import BrookProtocol
import BrookRecords
import NIOCore
import Testing

/// Offset-preserving mirror topics (`brook.mirror.link`) through the Produce handler: only the
/// mirror of the topic's link writes, at the batches' own offsets; what it sends again is
/// skipped; producers are refused until the link is removed (a promotion), and then the mirror
/// is.
@Suite struct MirrorTopicTests {
    func batch(at base: Int64, _ values: [String], producer: RecordBatchBuilder.Producer = .none, transactional: Bool = false) -> [UInt8] {
        RecordBatchBuilder.build(baseOffset: Offset(base), records: values.map { SimpleRecord(key: nil, value: Array($0.utf8), timestamp: Timestamp(ms: 1_000)) },
                                 attributes: BatchAttributes(transactional: transactional), producer: producer)
    }

    func mirrored(_ h: BrokerHarness, _ topic: String, _ batches: [[UInt8]], link: String)
        throws -> ProduceResponse.TopicProduceResponse.PartitionProduceResponse {
        var request = h.produceRequest(topic, batches: batches)
        request.transactionalId = "brook-mirror:" + link
        return try h.send(request, version: 9).responses[0].partitionResponses[0]
    }

    func offsetsAndValues(_ h: BrokerHarness, _ topic: String) throws -> [(Int64, String)] {
        let fetched = try h.fetch(topic, offset: 0)
        guard case .bytes(let bytes)? = fetched.records else { return [] }
        return try RecordDecoding.records(in: bytes, topic: topic, partition: 0, from: .zero).map { ($0.offset.value, String(decoding: $0.value ?? [], as: UTF8.self)) }
    }

    @Test func theMirrorWritesAtTheSourcesOffsetsAndNobodyElseDoes() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("m", configs: ["brook.mirror.link": "dc1"])
        // A gap (aborted records at the source) and a transactional batch whose producer goes.
        let first = batch(at: 0, ["a", "b"])
        let second = batch(at: 5, ["c"], producer: .init(id: ProducerID(77), epoch: ProducerEpoch(3), baseSequence: 0), transactional: true)
        #expect(try mirrored(h, "m", [first, second], link: "dc1").baseOffset == Offset(0))
        #expect(try offsetsAndValues(h, "m").map(\.0) == [0, 1, 5])
        #expect(try offsetsAndValues(h, "m").map(\.1) == ["a", "b", "c"])
        #expect(try h.fetch("m", offset: 0).lastStableOffset == Offset(6), "no open transaction: the producer fields are gone")
        // Sent again (a lost answer), with one more: only the new one is written.
        let answer = try mirrored(h, "m", [second, batch(at: 6, ["d"])], link: "dc1")
        #expect(answer.errorCode == 0 && answer.baseOffset == Offset(6))
        #expect(try offsetsAndValues(h, "m").map(\.0) == [0, 1, 5, 6])
        #expect(try mirrored(h, "m", [second], link: "dc1").errorCode == 0, "all copied already")
        // A batch that straddles the log end, and a damaged one, are refused.
        #expect(try mirrored(h, "m", [batch(at: 6, ["d", "e"])], link: "dc1").errorCode == ErrorCode.corruptMessage.rawValue)
        var damaged = batch(at: 9, ["x"])
        damaged[damaged.count - 1] ^= 0xFF
        #expect(try mirrored(h, "m", [damaged], link: "dc1").errorCode == ErrorCode.corruptMessage.rawValue)
        // Producers, and another link's mirror, are refused.
        let refused = try h.produce("m", batch(at: 0, ["p"]))
        #expect(refused.errorCode == ErrorCode.policyViolation.rawValue && refused.errorMessage?.contains("read-only mirror topic") == true)
        #expect(try mirrored(h, "m", [batch(at: 7, ["z"])], link: "dc2").errorCode == ErrorCode.policyViolation.rawValue)
        // Promoted: producers write after the mirror's records, the mirror is refused.
        let change = IncrementalAlterConfigsRequest(resources: [.init(resourceType: 2, resourceName: "m", configs: [
            .init(name: "brook.mirror.link", configOperation: 1, value: nil),
        ])])
        #expect(try h.send(change, version: 1).responses[0].errorCode == 0)
        #expect(try h.produce("m", batch(at: 0, ["p"])).baseOffset == Offset(7))
        #expect(try mirrored(h, "m", [batch(at: 8, ["y"])], link: "dc1").errorCode == ErrorCode.policyViolation.rawValue)
        // A topic that never was one refuses the mirror too; one that does not exist is unknown.
        try h.createTopic("plain")
        #expect(try mirrored(h, "plain", [batch(at: 0, ["q"])], link: "dc1").errorCode == ErrorCode.policyViolation.rawValue)
        #expect(try mirrored(h, "nowhere", [batch(at: 0, ["q"])], link: "dc1").errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
    }

    @Test func aMirrorTopicTakesNoTransactionAndNoHugeGap() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("m", configs: ["brook.mirror.link": "dc1"])
        try h.createTopic("other")
        let ids = try h.send(InitProducerIdRequest(transactionalId: "t1", transactionTimeoutMs: 60_000), version: 4)
        let add = AddPartitionsToTxnRequest(v3AndBelowTransactionalId: "t1", v3AndBelowProducerId: ids.producerId, v3AndBelowProducerEpoch: ids.producerEpoch,
                                            v3AndBelowTopics: [.init(name: "m", partitions: [0]), .init(name: "other", partitions: [0])])
        let results = try h.send(add, version: 3).resultsByTopicV3AndBelow
        #expect(results.first { $0.name == "m" }?.resultsByPartition[0].partitionErrorCode == ErrorCode.policyViolation.rawValue)
        #expect(results.first { $0.name == "other" }?.resultsByPartition[0].partitionErrorCode == ErrorCode.operationNotAttempted.rawValue)
        // A segment holds offsets within 2^31 of its base: a batch further past the log end is refused.
        #expect(try mirrored(h, "m", [batch(at: Int64(Int32.max) + 5, ["far"])], link: "dc1").errorCode == ErrorCode.corruptMessage.rawValue)
        #expect(try mirrored(h, "m", [batch(at: 1_000_000, ["near"])], link: "dc1").baseOffset == Offset(1_000_000))
    }
}
