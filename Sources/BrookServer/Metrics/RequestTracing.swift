import BrookCore
import BrookProtocol
import BrookRecords
import Foundation
import NIOCore
import Tracing

/// Spans for Produce and Fetch requests, through swift-distributed-tracing's tracer (swift-otel's
/// OTLP exporter when `tracing.otlp.endpoint` is set; see Observability). Off by default: with no
/// tracing configured the connection handler never asks.
///
/// A sampled request's span runs from the frame's arrival to its answer being handed to the
/// connection (the times the request metrics use), of kind server, with the messaging semantic
/// conventions' attributes (`messaging.system` kafka, `messaging.operation.type` send or receive,
/// `messaging.destination.name` for a request on one topic, `messaging.client.id`) and Brook's
/// (`brook.api_version`, `brook.correlation_id`, the request's topics, partitions, records and
/// bytes, its queue time). Sampling is decided when the request is taken up, so that only a
/// sampled request's frame is read again for its topics.
public final class RequestTracing: Sendable {
    public static let tracedAPIs: Set<Int16> = [ProduceRequest.apiKey, FetchRequest.apiKey]

    /// The share of Produce and Fetch requests traced (`tracing.sample.ratio`).
    let ratio: Double
    let tracer: any Tracer

    public init(ratio: Double, tracer: any Tracer) {
        precondition(ratio >= 0 && ratio <= 1, "a sample ratio is between 0 and 1")
        self.ratio = ratio
        self.tracer = tracer
    }

    /// What a span says of its request, read from the frame when the request was sampled.
    struct Summary {
        var operation: String
        var send: Bool
        var version: Int16
        var correlationID: Int32
        var clientID: String?
        var topics: [String] = []
        var partitions = 0
        /// Records in a Produce request's batches (their headers' counts).
        var records = 0
        var acks: Int16?
        var transactionalID: String?
        var maxWaitMs: Int32?
        /// The W3C `traceparent` header of the request's first record, when its batch is not
        /// compressed: the producer's trace, which the span joins.
        var traceparent: String?
    }

    /// A span's worth of a Produce or Fetch request, when this one is sampled; nil otherwise
    /// (and for a frame that does not decode: its answer is the broker's business).
    /// `topicName` names a topic by its id (Fetch from version 13 names topics so).
    func sample(_ frame: ByteBuffer, apiKey: Int16, topicName: (KafkaUUID) -> String?) -> Summary? {
        guard Self.tracedAPIs.contains(apiKey), ratio > 0, ratio >= 1 || Double.random(in: 0..<1) < ratio else { return nil }
        return Self.summary(frame, topicName: topicName)
    }

    static func summary(_ frame: ByteBuffer, topicName: (KafkaUUID) -> String?) -> Summary? {
        var reader = WireReader(frame)
        guard let header = try? RequestHeader(from: &reader) else { return nil }
        var summary = Summary(operation: "", send: false, version: header.apiVersion, correlationID: header.correlationID,
                              clientID: header.clientID)
        switch header.apiKey {
        case ProduceRequest.apiKey:
            guard let request = try? ProduceRequest(from: &reader, version: header.apiVersion) else { return nil }
            summary.operation = "Produce"
            summary.send = true
            summary.acks = request.acks
            summary.transactionalID = request.transactionalId
            summary.topics = request.topicData.map(\.name)
            for topic in request.topicData {
                summary.partitions += topic.partitionData.count
                for partition in topic.partitionData {
                    guard case .bytes(let bytes)? = partition.records else { continue }
                    summary.records += BatchPeek.recordCount(bytes)
                    if summary.traceparent == nil, summary.records > 0 { summary.traceparent = firstTraceparent(bytes) ?? "" }
                }
            }
        case FetchRequest.apiKey:
            guard let request = try? FetchRequest(from: &reader, version: header.apiVersion) else { return nil }
            summary.operation = "Fetch"
            summary.maxWaitMs = request.maxWaitMs
            // Names before v13, ids after (an id this broker does not know shown as such).
            summary.topics = request.topics.map { $0.topic.isEmpty ? topicName($0.topicId) ?? "\($0.topicId)" : $0.topic }
            summary.partitions = request.topics.reduce(0) { $0 + $1.partitions.count }
        default:
            return nil
        }
        if summary.traceparent == "" { summary.traceparent = nil }
        return summary
    }

    /// The `traceparent` header of the first record of the first batch in `bytes` (an
    /// uncompressed one), as W3C has it: printable ASCII.
    static func firstTraceparent(_ bytes: ByteBuffer) -> String? {
        guard let value = BatchPeek.firstRecordHeader("traceparent", in: bytes, valueBytesMax: 128),
              value.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return nil }
        return String(decoding: value, as: UTF8.self)
    }

    /// Reads a `traceparent` from a one-entry carrier.
    struct TraceparentExtractor: Extractor {
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    }

    /// Ends a sampled request's span: it began at `receivedNs` and ended at `doneNs` (the
    /// monotonic clock's nanoseconds, as the request metrics take them).
    func record(_ s: Summary, peer: String?, listener: String, requestBytes: Int, responseBytes: Int,
                receivedNs: UInt64, startedNs: UInt64, doneNs: UInt64) {
        var context = ServiceContext.topLevel
        if let traceparent = s.traceparent {
            tracer.extract(["traceparent": traceparent], into: &context, using: TraceparentExtractor())
        }
        let span = tracer.startSpan(s.operation, context: context, ofKind: .server, at: Self.instant(receivedNs))
        var attributes = SpanAttributes()
        attributes["messaging.system"] = "kafka"
        attributes["messaging.operation.type"] = s.send ? "send" : "receive"
        attributes["messaging.operation.name"] = s.send ? "produce" : "fetch"
        if s.topics.count == 1 { attributes["messaging.destination.name"] = s.topics[0] }
        if let client = s.clientID { attributes["messaging.client.id"] = client }
        if let peer { attributes["network.peer.address"] = peer }
        attributes["brook.listener"] = listener
        attributes["brook.api_version"] = Int(s.version)
        attributes["brook.correlation_id"] = Int(s.correlationID)
        attributes["brook.topics"] = s.topics.prefix(Self.topicsShownMax).joined(separator: ",")
        attributes["brook.partitions"] = s.partitions
        if s.send { attributes["messaging.batch.message_count"] = s.records }
        if let acks = s.acks { attributes["brook.acks"] = Int(acks) }
        if let id = s.transactionalID { attributes["brook.transactional_id"] = id }
        if let wait = s.maxWaitMs { attributes["brook.max_wait_ms"] = Int(wait) }
        attributes["brook.request_bytes"] = requestBytes
        attributes["brook.response_bytes"] = responseBytes
        attributes["brook.queue_ms"] = Double(startedNs &- min(receivedNs, startedNs)) / 1e6
        span.attributes = attributes
        span.end(at: Self.instant(doneNs))
    }

    static let topicsShownMax = 100

    /// A monotonic time as the wall clock's (the offset taken once: spans' times never go back).
    static func instant(_ monotonicNs: UInt64) -> DefaultTracerClock.Timestamp {
        DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: UInt64(max(0, Int64(bitPattern: monotonicNs) &+ wallOffsetNs)))
    }

    static let wallOffsetNs: Int64 = {
        let wall = Int64(Date().timeIntervalSince1970 * 1e9)
        return wall - Int64(bitPattern: NIODeadline.now().uptimeNanoseconds)
    }()
}
