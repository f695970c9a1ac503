@testable import BrookBroker
import BrookCore
import BrookProtocol
import BrookRecords
import NIOCore
import Testing

/// A produce request with large compressed batches is handled off the event loop
/// (`Outcome.offloaded`); the rest stay on it. The harness runs the moved work inline; the
/// order it keeps on one connection is checked with a real client in
/// tests/interop/test_compression.py.
@Suite struct OffloadedProduceTests {
    /// One gzip batch of `count` records of 1,000 random (incompressible) bytes.
    static func gzipBatch(records count: Int, seed: UInt64) throws -> [UInt8] {
        var random = SeededRandom(seed: seed)
        let records = (0..<count).map { _ in
            SimpleRecord(key: nil, value: (0..<1000).map { _ in UInt8.random(in: 0...255, using: &random) }, timestamp: Timestamp(ms: 1))
        }
        return try RecordBatchBuilder.build(baseOffset: .zero, records: records, compression: .gzip)
    }

    @Test func aLargeCompressedProduceIsOffloadedAndAnswered() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let large = try Self.gzipBatch(records: 300, seed: 1)
        #expect(large.count >= ProduceHandler.offloadBytesMin)
        let outcome = try h.outcome(h.produceRequest("t", batches: [large], acks: 1), version: 9)
        guard case .offloaded(_, let handled) = outcome else {
            Issue.record("a produce of \(large.count) compressed bytes was not offloaded: \(outcome)")
            return
        }
        var done = false
        handled.assumeIsolated().whenSuccess { done = true }
        let encoded = try #require(try h.answer(outcome, what: "produce"))
        #expect(done)
        let answer = try h.decodeResponse(encoded, ProduceResponse.self, apiKey: ProduceRequest.apiKey, version: 9, correlation: h.correlation)
        let partition = try #require(answer.responses.first?.partitionResponses.first)
        #expect(partition.errorCode == 0 && partition.baseOffset == Offset(0))
        // The next produce lands after it.
        #expect(try h.produce("t", Self.gzipBatch(records: 2, seed: 2)).baseOffset == Offset(300))
    }

    @Test func smallOrUncompressedOrAcksZeroProducesStayOnTheLoop() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let small = try Self.gzipBatch(records: 10, seed: 3)
        guard case .respond = try h.outcome(h.produceRequest("t", batches: [small], acks: 1), version: 9) else {
            Issue.record("a small compressed produce was not answered at once")
            return
        }
        var random = SeededRandom(seed: 4)
        let plain = RecordBatchBuilder.build(baseOffset: .zero, records: (0..<400).map { _ in
            SimpleRecord(key: nil, value: (0..<1000).map { _ in UInt8.random(in: 0...255, using: &random) }, timestamp: Timestamp(ms: 1))
        })
        #expect(plain.count >= ProduceHandler.offloadBytesMin)
        guard case .respond = try h.outcome(h.produceRequest("t", batches: [plain], acks: 1), version: 9) else {
            Issue.record("an uncompressed produce was not answered at once")
            return
        }
        // acks=0: a failure must close the connection, so it stays where it can.
        let large = try Self.gzipBatch(records: 300, seed: 5)
        guard case .none = try h.outcome(h.produceRequest("t", batches: [large], acks: 0), version: 9) else {
            Issue.record("an acks=0 produce was answered or offloaded")
            return
        }
        #expect(h.broker.topics.partition("t", 0)?.logEndOffset == Offset(10 + 400 + 300))
    }
}
