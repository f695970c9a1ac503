import BrookBroker
import BrookCore
import BrookProtocol
import BrookRecords
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Testing

let quietLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return logger
}()

/// A fresh directory under the system's temporary folder.
func makeTemporaryDirectory() -> String {
    var template = Array((NSTemporaryDirectory() + "/brook-broker-test-XXXXXX").utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    precondition(made != nil, "mkdtemp failed")
    return String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
}

struct UnexpectedOutcome: Error, CustomStringConvertible {
    let description: String
}

/// A broker in a temporary directory, driven through `handle(frame:eventLoop:)` on an
/// EmbeddedEventLoop (create it, use it and close it on the test's own thread).
final class BrokerHarness {
    let directory: String
    let broker: Broker
    let loop = EmbeddedEventLoop()
    let clock: ManualClock
    var correlation: Int32 = 100

    init(_ settings: [(String, String)] = [], clock: ManualClock = ManualClock(), directory existing: String? = nil,
         responseErrors: (any ResponseErrorObserver)? = nil) throws {
        directory = existing ?? makeTemporaryDirectory()
        self.clock = clock
        do {
            broker = try Broker(config: BrokerConfig([("log.dirs", directory), ("node.id", "1")] + settings),
                                clock: clock, logger: quietLogger, admin: InlineAdminExecutor(), work: InlineAdminExecutor(),
                                responseErrors: responseErrors)
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    func close() {
        broker.shutdown()
        try? loop.syncShutdownGracefully()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A request frame (without the size prefix, as the frame decoder hands it on).
    func frame<R: KafkaRequest>(_ request: R, version: Int16, apiVersion: Int16? = nil, clientID: String? = "brook-test") -> ByteBuffer {
        correlation += 1
        var writer = WireWriter()
        RequestHeader(apiKey: R.apiKey, apiVersion: apiVersion ?? version, correlationID: correlation, clientID: clientID)
            .encode(to: &writer)
        request.encode(to: &writer, version: version)
        return writer.buffer
    }

    func outcome<R: KafkaRequest>(_ request: R, version: Int16) throws -> Outcome {
        try broker.handle(frame: frame(request, version: version), eventLoop: loop)
    }

    /// The answer to an outcome: at once, or once the loop has run (topic changes through the
    /// admin executor); nil for a parked request.
    func answer(_ outcome: Outcome, what: String) throws -> EncodedResponse? {
        switch outcome {
        case .respond(let encoded):
            return encoded
        case .later(let future), .offloaded(let future, _), .laterThenClose(let future, _):
            var answer: EncodedResponse?
            future.assumeIsolated().whenSuccess { answer = $0 }
            loop.run()
            return answer
        case .none:
            throw UnexpectedOutcome(description: "\(what) got no answer")
        case .close(let reason):
            throw UnexpectedOutcome(description: "\(what) closed the connection: \(reason)")
        }
    }

    /// Sends a request that must be answered without waiting, and decodes the answer.
    func send<R: KafkaRequest>(_ request: R, version: Int16) throws -> R.Response {
        let what = "\(R.apiName) v\(version)"
        guard let encoded = try answer(outcome(request, version: version), what: what) else {
            throw UnexpectedOutcome(description: "\(what) was parked")
        }
        return try decodeResponse(encoded, R.Response.self, apiKey: R.apiKey, version: version, correlation: correlation)
    }

    /// The answer's bytes with any file-backed record data spliced in where it belongs.
    static func wholeBytes(_ encoded: EncodedResponse) throws -> ByteBuffer {
        try encoded.writer.contiguousBytes()
    }

    /// Checks the size prefix and the header, and decodes the body.
    func decodeResponse<M: KafkaMessage>(_ encoded: EncodedResponse, _ type: M.Type, apiKey: Int16, version: Int16,
                                         correlation: Int32) throws -> M {
        var whole = try Self.wholeBytes(encoded)
        #expect(encoded.writer.messageBytes == whole.readableBytes)
        let size = whole.readInteger(as: Int32.self)
        #expect(size.map(Int.init) == whole.readableBytes, "size prefix")
        var reader = WireReader(whole)
        let answered = try ResponseHeader.decode(apiKey: apiKey, apiVersion: version, from: &reader)
        #expect(answered == correlation, "correlation id")
        return try M(decoding: reader.buffer, version: version)
    }

    // MARK: conveniences

    @discardableResult
    func createTopic(_ name: String, partitions: Int32 = 1, configs: [String: String] = [:]) throws -> CreateTopicsResponse.CreatableTopicResult {
        let request = CreateTopicsRequest(topics: [.init(name: name, numPartitions: partitions, replicationFactor: 1,
                                                         configs: configs.sorted { $0.key < $1.key }.map { .init(name: $0.key, value: $0.value) })])
        let result = try send(request, version: 7).topics[0]
        #expect(result.errorCode == 0, "creating \(name): \(result.errorMessage ?? "")")
        return result
    }

    func produceRequest(_ topic: String, partition: Int32 = 0, batches: [[UInt8]], acks: Int16 = -1) -> ProduceRequest {
        var bytes = ByteBuffer()
        for batch in batches { bytes.writeBytes(batch) }
        return ProduceRequest(transactionalId: nil, acks: acks, timeoutMs: 1000, topicData: [
            .init(name: topic, partitionData: [.init(index: partition, records: .bytes(bytes))]),
        ])
    }

    /// Produces one batch and returns its partition answer.
    @discardableResult
    func produce(_ topic: String, partition: Int32 = 0, _ batch: [UInt8], version: Int16 = 9)
        throws -> ProduceResponse.TopicProduceResponse.PartitionProduceResponse {
        try send(produceRequest(topic, partition: partition, batches: [batch]), version: version).responses[0].partitionResponses[0]
    }

    func fetchRequest(_ topic: String, partition: Int32 = 0, offset: Int64, minBytes: Int32 = 0, maxWaitMs: Int32 = 0,
                      maxBytes: Int32 = 1 << 20) -> FetchRequest {
        FetchRequest(maxWaitMs: maxWaitMs, minBytes: minBytes, maxBytes: maxBytes, isolationLevel: 0, sessionId: 0, sessionEpoch: -1,
                     topics: [.init(topic: topic, topicId: broker.topics.topic(topic)?.id ?? .zero, partitions: [
                         .init(partition: partition, fetchOffset: Offset(offset), partitionMaxBytes: maxBytes),
                     ])])
    }

    func fetch(_ topic: String, partition: Int32 = 0, offset: Int64, version: Int16 = 12)
        throws -> FetchResponse.FetchableTopicResponse.PartitionData {
        try send(fetchRequest(topic, partition: partition, offset: offset), version: version).responses[0].partitions[0]
    }

    func listOffset(_ topic: String, partition: Int32 = 0, timestamp: Int64, version: Int16 = 7)
        throws -> ListOffsetsResponse.ListOffsetsTopicResponse.ListOffsetsPartitionResponse {
        let request = ListOffsetsRequest(replicaId: NodeID(-1), isolationLevel: 0, topics: [
            .init(name: topic, partitions: [.init(partitionIndex: partition, timestamp: timestamp)]),
        ])
        return try send(request, version: version).topics[0].partitions[0]
    }

    func describeTopicConfigs(_ topic: String, synonyms: Bool = false, version: Int16 = 4)
        throws -> DescribeConfigsResponse.DescribeConfigsResult {
        try send(DescribeConfigsRequest(resources: [.init(resourceType: 2, resourceName: topic, configurationKeys: nil)],
                                        includeSynonyms: synonyms, includeDocumentation: false), version: version).results[0]
    }
}

/// A batch of records with values "v0", "v1", ... at the given timestamps.
/// A broker's registration as the controller writes it: a PLAINTEXT listener on 127.0.0.1 at
/// port 9090 + id, unfenced unless asked, in `rack` if given.
func registerBroker(_ id: Int32, fenced: Bool = false, rack: String? = nil) -> MetadataRecord {
    var r = RegisterBrokerRecord()
    r.brokerId = NodeID(id)
    r.brokerEpoch = Int64(id)
    r.incarnationId = KafkaUUID(high: 3, low: UInt64(id))
    r.endPoints = [.init(name: "PLAINTEXT", host: "127.0.0.1", port: UInt16(9090 + id), securityProtocol: 0)]
    r.rack = rack
    r.fenced = fenced
    return .registerBroker(r)
}

func batch(_ values: [String], timestamps: [Int64]) -> [UInt8] {
    RecordBatchBuilder.build(baseOffset: .zero, records: zip(values, timestamps).map { value, ms in
        SimpleRecord(key: nil, value: Array(value.utf8), timestamp: Timestamp(ms: ms))
    })
}

/// Every record (offset, value) in the record batches of a fetch answer.
func fetchedRecords(_ records: Records?) throws -> [(offset: Int64, value: String)] {
    guard case .bytes(let buffer)? = records else { return [] }
    var out: [(Int64, String)] = []
    try buffer.withUnsafeReadableBytes { all in
        var position = 0
        while position < all.count {
            let bytes = UnsafeRawBufferPointer(rebasing: all[position...])
            let header = try RecordBatchValidator.validate(bytes, check: .stored)
            var index = RecordBatchHeader.Field.records
            for _ in 0..<header.recordCount {
                let record = try RecordParser.parse(bytes, at: &index)
                let value = record.value.map { String(decoding: bytes[$0], as: UTF8.self) } ?? ""
                out.append((header.baseOffset.value + Int64(record.offsetDelta), value))
            }
            position += header.totalBytes
        }
    }
    return out
}
