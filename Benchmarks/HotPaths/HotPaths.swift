// Allocations on the broker's hot paths (issue 17): one Produce or Fetch request handled by
// the broker, from its frame to its encoded answer, as a connection hands it on. Each sample
// is one request; the frame is copied before the measurement starts, as a connection owns the
// frame it decoded. Counted with ordo-one/benchmark's malloc interposer; the counts are held
// by the thresholds in Thresholds/ (`swift package benchmark thresholds check`).
import Benchmark
import BrookBroker
import BrookCore
import BrookProtocol
import BrookRecords
import Foundation
import Logging
import NIOCore
import NIOEmbedded

/// A broker on a temporary data directory, with one topic of one partition holding records.
final class Fixture: @unchecked Sendable {
    let directory: String
    let broker: Broker
    let loop = EmbeddedEventLoop()
    var correlation: Int32 = 0

    init() throws {
        directory = NSTemporaryDirectory() + "brook-bench-\(getpid())"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        broker = try Broker(config: BrokerConfig([("log.dirs", directory), ("node.id", "1")]), logger: logger, admin: InlineAdminExecutor(), work: InlineAdminExecutor())
        let created = try answer(CreateTopicsRequest(topics: [.init(name: "bench", numPartitions: 1, replicationFactor: 1)]), version: 7)
        precondition(created.readableBytes > 0, "CreateTopics was not answered")
        // 1,000 batches of 10 records (100 B values) to fetch from.
        for _ in 0..<1000 { _ = try answer(produce(records: 10), version: 9) }
    }

    func close() {
        broker.shutdown()
        try? loop.syncShutdownGracefully()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A request's frame (without the size prefix, as the frame decoder hands it on).
    func frame<R: KafkaRequest>(_ request: R, version: Int16) -> ByteBuffer {
        correlation &+= 1
        var writer = WireWriter()
        RequestHeader(apiKey: R.apiKey, apiVersion: version, correlationID: correlation, clientID: "bench").encode(to: &writer)
        request.encode(to: &writer, version: version)
        return writer.buffer
    }

    /// Handles a request and returns its answer's bytes (running the loop for a later one).
    func answer<R: KafkaRequest>(_ request: R, version: Int16) throws -> ByteBuffer {
        switch try broker.handle(frame: frame(request, version: version), eventLoop: loop) {
        case .respond(let encoded):
            return encoded.writer.buffer
        case .later(let future), .offloaded(let future, _), .laterThenClose(let future, _):
            var out = ByteBuffer()
            future.assumeIsolated().whenSuccess { out = $0.writer.buffer }
            loop.run()
            return out
        case .none, .close:
            return ByteBuffer()
        }
    }

    func produce(records: Int, acks: Int16 = 1) -> ProduceRequest {
        let value = [UInt8](repeating: UInt8(ascii: "x"), count: 100)
        let batch = RecordBatchBuilder.build(baseOffset: .zero, records: (0..<records).map { _ in
            SimpleRecord(key: nil, value: value, timestamp: Timestamp(ms: Int64(Date().timeIntervalSince1970 * 1000)))
        })
        var bytes = ByteBuffer()
        bytes.writeBytes(batch)
        return ProduceRequest(acks: acks, timeoutMs: 1000, topicData: [.init(name: "bench", partitionData: [.init(index: 0, records: .bytes(bytes))])])
    }

    /// The last offset written: a read there is a caught-up consumer's (the log's tail).
    func lastOffset() -> Int64 {
        guard let topic = broker.topics.topic("bench"), let partition = topic.partitions[0] else { preconditionFailure("no partition") }
        return partition.offsets.highWatermark.value - 1
    }

    func fetch(from offset: Int64, maxBytes: Int32) -> FetchRequest {
        FetchRequest(maxWaitMs: 0, minBytes: 0, maxBytes: maxBytes, topics: [
            .init(topic: "bench", partitions: [.init(partition: 0, fetchOffset: Offset(offset), partitionMaxBytes: maxBytes)]),
        ])
    }
}

nonisolated(unsafe) var fixture: Fixture!

let benchmarks: @Sendable () -> Void = {
    // Allocations only: they repeat exactly from run to run, so a threshold can hold them (time
    // is measured elsewhere, beside the peer). A count may rise by 2 before the check fails.
    Benchmark.defaultConfiguration = .init(metrics: [.mallocCountTotal], warmupIterations: 100,
                                           maxDuration: .seconds(3), maxIterations: 5_000,
                                           thresholds: [.mallocCountTotal: .init(absolute: [.p90: 2])])
    Benchmark.setup = { fixture = try Fixture() }
    Benchmark.teardown = { fixture.close() }

    /// One request per sample: its frame built before the measurement.
    func measure(_ name: String, _ frame: @escaping @Sendable () -> ByteBuffer) {
        Benchmark(name) { benchmark in
            let request = frame()
            benchmark.startMeasurement()
            let outcome = try fixture.broker.handle(frame: request, eventLoop: fixture.loop)
            benchmark.stopMeasurement()
            blackHole(outcome)
        }
    }

    measure("Produce-1-record-acks1") { fixture.frame(fixture.produce(records: 1), version: 9) }
    measure("Produce-10-records-acks1") { fixture.frame(fixture.produce(records: 10), version: 9) }
    measure("Fetch-1-batch-v12") { fixture.frame(fixture.fetch(from: 5_000, maxBytes: 1_200), version: 12) }
    measure("Fetch-1-MiB-v12") { fixture.frame(fixture.fetch(from: 0, maxBytes: 1 << 20), version: 12) }
    // The same one batch as Fetch-1-batch-v12, at the tail: found through the segment's recent
    // batches, without the scan from the index entry.
    measure("Fetch-tail-batch-v12") { fixture.frame(fixture.fetch(from: fixture.lastOffset(), maxBytes: 1_200), version: 12) }
}
