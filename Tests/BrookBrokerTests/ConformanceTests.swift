import BrookBroker
import BrookCore
import BrookProtocol
import BrookRecords
import Testing

/// Answers found to differ from Kafka's with librdkafka (issue 17's conformance gaps), at the
/// handler level; tests/interop/test_conformance.py checks them with confluent-kafka.
@Suite struct ConformanceTests {
    @Test func keylessRecordsOfACompactedTopicAreNamedInRecordErrors() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("c", configs: ["cleanup.policy": "compact"])
        let records = ["k0", nil, "k2", nil].map { key in
            SimpleRecord(key: key.map { Array($0.utf8) }, value: Array("v".utf8), timestamp: Timestamp(ms: 1))
        }
        let answer = try h.produce("c", RecordBatchBuilder.build(baseOffset: .zero, records: records))
        #expect(answer.errorCode == ErrorCode.invalidRecord.rawValue)
        #expect(answer.recordErrors.map(\.batchIndex) == [1, 3])
        #expect(answer.recordErrors.allSatisfy { $0.batchIndexErrorMessage == "Compacted topic cannot accept message without key in topic partition c-0." })
        #expect(answer.errorMessage?.hasPrefix("One or more records have been rejected due to 2 record errors") == true)
        // Nothing was written; keyed records alone are.
        let keyed = try h.produce("c", RecordBatchBuilder.build(baseOffset: .zero, records: [records[0], records[2]]))
        #expect(keyed.errorCode == 0 && keyed.baseOffset == Offset(0) && keyed.recordErrors.isEmpty)
    }

    @Test func offsetsOfATopicThatDoesNotExistAreNotCommitted() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t", partitions: 1)
        let request = OffsetCommitRequest(groupId: "g", generationIdOrMemberEpoch: -1, memberId: "", topics: [
            .init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: Offset(5)), .init(partitionIndex: 4, committedOffset: Offset(5))]),
            .init(name: "nope", partitions: [.init(partitionIndex: 0, committedOffset: Offset(5))]),
        ])
        let answer = try h.send(request, version: 8)
        #expect(answer.topics.map { $0.partitions.map(\.errorCode) } == [[0, ErrorCode.unknownTopicOrPartition.rawValue],
                                                                       [ErrorCode.unknownTopicOrPartition.rawValue]])
        // Only unknown partitions: answered at once, and no group is made.
        let only = try h.send(OffsetCommitRequest(groupId: "g2", generationIdOrMemberEpoch: -1, memberId: "", topics: [
            .init(name: "nope", partitions: [.init(partitionIndex: 0, committedOffset: Offset(5))]),
        ]), version: 8)
        #expect(only.topics[0].partitions[0].errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
        let fetched = try h.send(OffsetFetchRequest(groupId: "g", topics: [.init(name: "t", partitionIndexes: [0, 4])]), version: 7)
        #expect(fetched.topics[0].partitions.map(\.committedOffset) == [Offset(5), Offset(-1)])
    }

    @Test func authorizedOperationsAreEverySupportedOneWhenAsked() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t", partitions: 1)
        var asked = MetadataRequest(topics: [.init(name: "t"), .init(name: "nope")], allowAutoTopicCreation: false)
        asked.includeTopicAuthorizedOperations = true
        asked.includeClusterAuthorizedOperations = true
        let metadata = try h.send(asked, version: 10)
        // READ WRITE CREATE DELETE ALTER DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS: bits 3-8, 10, 11.
        #expect(metadata.topics.map(\.topicAuthorizedOperations) == [0b1101_1111_1000, Int32.min])
        #expect(metadata.clusterAuthorizedOperations == 0b1_1111_1010_0000)
        let plain = try h.send(MetadataRequest(topics: [.init(name: "t")], allowAutoTopicCreation: false), version: 12)
        #expect(plain.topics[0].topicAuthorizedOperations == Int32.min)
        var cluster = DescribeClusterRequest()
        cluster.includeClusterAuthorizedOperations = true
        #expect(try h.send(cluster, version: 1).clusterAuthorizedOperations == 0b1_1111_1010_0000)
        #expect(try h.send(DescribeClusterRequest(), version: 1).clusterAuthorizedOperations == Int32.min)
    }
}
