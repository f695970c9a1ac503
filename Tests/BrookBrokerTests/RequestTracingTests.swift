import BrookBroker
import BrookCore
import BrookProtocol
import BrookRecords
@testable import BrookServer
import NIOCore
import Testing
import Tracing

/// What a Produce or Fetch span says of its request, read from the frame; and the tracing settings.
@Suite struct RequestTracingTests {
    func frame<R: KafkaRequest>(_ request: R, version: Int16, clientID: String?) -> ByteBuffer {
        var writer = WireWriter()
        RequestHeader(apiKey: R.apiKey, apiVersion: version, correlationID: 41, clientID: clientID).encode(to: &writer)
        request.encode(to: &writer, version: version)
        return writer.buffer
    }

    @Test func aProduceRequestsTopicsPartitionsAndRecords() throws {
        let two = batch(["a", "b"], timestamps: [1, 2]) + batch(["c"], timestamps: [3])
        let request = ProduceRequest(transactionalId: "tx", acks: -1, timeoutMs: 1000, topicData: [
            .init(name: "orders", partitionData: [.init(index: 0, records: .bytes(ByteBuffer(bytes: two))),
                                                  .init(index: 1, records: .bytes(ByteBuffer(bytes: batch(["d"], timestamps: [4]))))]),
            .init(name: "audit", partitionData: [.init(index: 0, records: nil)]),
        ])
        for version: Int16 in [3, 9, 11] {
            let s = try #require(RequestTracing.summary(frame(request, version: version, clientID: "app"), topicName: { _ in nil }))
            #expect(s.operation == "Produce" && s.send && s.version == version && s.correlationID == 41 && s.clientID == "app")
            #expect(s.topics == ["orders", "audit"] && s.partitions == 3 && s.records == 4, "v\(version)")
            #expect(s.acks == -1 && s.transactionalID == "tx")
        }
        // Bytes that are not whole batches count what is whole, and never read past the end.
        #expect(BatchPeek.recordCount(ByteBuffer(bytes: two.dropLast())) == 2)
        #expect(BatchPeek.recordCount(ByteBuffer(bytes: [UInt8](repeating: 0xFF, count: 100))) == 0)
    }

    /// A producer's trace travels in its first record's `traceparent` header; a compressed
    /// batch is not opened for it.
    @Test func theFirstRecordsTraceparent() throws {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let records = [SimpleRecord(key: nil, value: [1], headers: [.init(key: Array("other".utf8), value: [2]),
                                                                    .init(key: Array("traceparent".utf8), value: Array(parent.utf8))],
                                    timestamp: Timestamp(ms: 5)),
                       SimpleRecord(key: nil, value: [3], timestamp: Timestamp(ms: 6))]
        let plain = RecordBatchBuilder.build(baseOffset: .zero, records: records)
        #expect(RequestTracing.firstTraceparent(ByteBuffer(bytes: plain)) == parent)
        #expect(RequestTracing.firstTraceparent(ByteBuffer(bytes: batch(["x"], timestamps: [1]))) == nil)
        let zipped = try RecordBatchBuilder.build(baseOffset: .zero, records: records, compression: .gzip)
        #expect(RequestTracing.firstTraceparent(ByteBuffer(bytes: zipped)) == nil)
        #expect(RequestTracing.firstTraceparent(ByteBuffer(bytes: plain.prefix(70))) == nil, "a cut batch")
        let request = ProduceRequest(acks: 1, timeoutMs: 1000, topicData: [
            .init(name: "t", partitionData: [.init(index: 0, records: nil), .init(index: 1, records: .bytes(ByteBuffer(bytes: plain)))])])
        #expect(try #require(RequestTracing.summary(frame(request, version: 9, clientID: nil), topicName: { _ in nil })).traceparent == parent)
    }

    @Test func aFetchRequestsTopicsByNameOrId() throws {
        let id = KafkaUUID(high: 1, low: 2)
        let request = FetchRequest(maxWaitMs: 500, topics: [
            .init(topic: "orders", topicId: id, partitions: [.init(partition: 0), .init(partition: 1)]),
            .init(topic: "gone", topicId: KafkaUUID(high: 9, low: 9), partitions: [.init(partition: 0)]),
        ])
        let old = try #require(RequestTracing.summary(frame(request, version: 12, clientID: nil), topicName: { _ in nil }))
        #expect(old.operation == "Fetch" && !old.send && old.topics == ["orders", "gone"] && old.partitions == 3 && old.maxWaitMs == 500)
        // From v13 the request names topics by id: known ones are named, the rest shown as ids.
        let new = try #require(RequestTracing.summary(frame(request, version: 13, clientID: nil), topicName: { $0 == id ? "orders" : nil }))
        #expect(new.topics == ["orders", "\(KafkaUUID(high: 9, low: 9))"])
    }

    @Test func otherRequestsAndBadFramesAreNotTraced() {
        let tracing = RequestTracing(ratio: 1, tracer: NoOpTracer())
        let metadata = frame(MetadataRequest(topics: nil), version: 12, clientID: nil)
        #expect(tracing.sample(metadata, apiKey: MetadataRequest.apiKey, topicName: { _ in nil }) == nil)
        let cut = frame(ProduceRequest(acks: 1, timeoutMs: 1, topicData: [.init(name: "t", partitionData: [.init(index: 0)])]), version: 9, clientID: nil)
        #expect(tracing.sample(cut.getSlice(at: 0, length: cut.readableBytes - 3)!, apiKey: ProduceRequest.apiKey, topicName: { _ in nil }) == nil)
        let never = RequestTracing(ratio: 0, tracer: NoOpTracer())
        #expect(never.sample(cut, apiKey: ProduceRequest.apiKey, topicName: { _ in nil }) == nil)
    }

    @Test func theSettings() throws {
        #expect(!(try BrokerConfig([])).tracing.enabled, "off by default")
        let on = try BrokerConfig([("tracing.otlp.endpoint", "http://127.0.0.1:4318"), ("tracing.sample.ratio", "0.25"),
                                   ("tracing.otlp.protocol", "http/json"), ("tracing.service.name", "edge")])
        #expect(on.tracing.enabled && on.tracing.sampleRatio == 0.25 && on.tracing.protocolName == "http/json" && on.tracing.serviceName == "edge")
        for (key, bad) in [("tracing.otlp.endpoint", "127.0.0.1:4318"), ("tracing.sample.ratio", "1.5"), ("tracing.sample.ratio", "x"),
                           ("tracing.otlp.protocol", "grpc"), ("tracing.service.name", " ")] {
            #expect(throws: (any Error).self, "\(key)=\(bad)") { try BrokerConfig([(key, bad)]) }
        }
    }
}
