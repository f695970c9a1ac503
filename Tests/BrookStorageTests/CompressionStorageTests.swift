import BrookCore
import BrookRecords
@testable import BrookStorage
import Foundation
import NIOCore
import Testing

/// Compressed batches in the log: kept as they came, recompressed for a topic codec, refused
/// when corrupt, compacted record by record.
@Suite struct CompressionStorageTests {
    let compressed: [CompressionCodec] = [.gzip, .snappy, .lz4, .zstd]

    func batch(_ records: [SimpleRecord], _ codec: CompressionCodec) throws -> ByteBuffer {
        buffer(try RecordBatchBuilder.build(baseOffset: .zero, records: records, compression: codec))
    }

    func sample(_ n: Int, prefix: String) -> [SimpleRecord] {
        (0..<n).map { record("\(prefix)-\($0 % 7)", "value \($0) " + String(repeating: "ab", count: $0 % 40)) }
    }

    /// Every batch of the log, segment after segment (a read stays inside one segment).
    func allBytes(_ log: PartitionLog) throws -> ByteBuffer {
        var out = ByteBuffer()
        var next = log.logStartOffset
        while next < log.logEndOffset {
            var bytes = try log.read(from: next, maxBytes: 1 << 24).readBytes()
            guard bytes.readableBytes > 0, let after = try recordsAndNext(in: bytes).next else { break }
            out.writeBuffer(&bytes)
            next = after
        }
        return out
    }

    @Test func producerCodecIsStoredAsItCame() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let log = try PartitionLog.open(directory: dir.partition, config: smallConfig(), clock: ManualClock(), logger: quietLogger)
        var expected: [ModelRecord] = []
        for codec in compressed + [.none] {
            let records = sample(50, prefix: "\(codec)")
            var bytes = try batch(records, codec)
            expected += model(records, from: try log.append(&bytes).firstOffset)
        }
        let stored = try allBytes(log)
        #expect(codecs(in: stored) == (compressed + [.none]).map { $0 })
        #expect(try records(in: stored) == expected)
    }

    @Test(arguments: [CompressionCodec.none, .gzip, .snappy, .lz4, .zstd])
    func topicCodecRecompressesOtherBatches(target: CompressionCodec) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var config = smallConfig(segmentBytes: 1 << 20)
        try config.set("compression.type", target == .none ? "uncompressed" : "\(target)")
        let log = try PartitionLog.open(directory: dir.partition, config: config, clock: ManualClock(), logger: quietLogger)
        var expected: [ModelRecord] = []
        // Several batches in one append, mixing codecs, so the rebuilt buffer holds them all.
        var request = ByteBuffer()
        var all: [SimpleRecord] = []
        for codec in compressed + [.none] {
            let records = sample(30, prefix: "\(codec)")
            var one = try batch(records, codec)
            request.writeBuffer(&one)
            all += records
        }
        let result = try log.append(&request)
        #expect(result.recordCount == all.count)
        expected = model(all, from: result.firstOffset)
        let stored = try allBytes(log)
        #expect(codecs(in: stored) == Array(repeating: target, count: compressed.count + 1))
        #expect(try records(in: stored) == expected)
        // And after a reopen (recovery reads the rebuilt batches' CRCs and indexes).
        try log.close()
        let reopened = try PartitionLog.open(directory: dir.partition, config: config, clock: ManualClock(), logger: quietLogger)
        #expect(try records(in: try allBytes(reopened)) == expected)
    }

    @Test(arguments: [CompressionCodec.gzip, .snappy, .lz4, .zstd])
    func corruptCompressedBatchIsRefusedWholly(codec: CompressionCodec) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let log = try PartitionLog.open(directory: dir.partition, config: smallConfig(), clock: ManualClock(), logger: quietLogger)
        var good = try batch(sample(3, prefix: "ok"), codec)
        _ = try log.append(&good)
        // A valid CRC over a records section that is not the codec's stream.
        let plain = RecordBatchBuilder.build(baseOffset: .zero, records: sample(3, prefix: "x"))
        let header = plain.withUnsafeBytes { RecordBatchHeader.decode($0)! }
        let garbage = Array("definitely not compressed".utf8)
        let bad = garbage.withUnsafeBytes { g in
            RecordBatchBuilder.assemble(baseOffset: .zero, lastOffsetDelta: 2, recordCount: 3, baseTimestamp: header.baseTimestamp,
                                        maxTimestamp: header.maxTimestamp, attributes: BatchAttributes(compression: codec),
                                        producer: .none, leaderEpoch: LeaderEpoch(0), recordBytes: Array(g))
        }
        // The bad batch follows a good one in the same request: neither is written.
        var request = try batch(sample(2, prefix: "before"), codec)
        var badBuffer = buffer(bad)
        request.writeBuffer(&badBuffer)
        #expect(throws: StorageError.self) { try log.append(&request) }
        #expect(log.logEndOffset == Offset(3))
    }

    @Test func keylessRecordInACompressedBatchIsRefusedOnACompactedTopic() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var config = smallConfig()
        try config.set("cleanup.policy", "compact")
        let log = try PartitionLog.open(directory: dir.partition, config: config, clock: ManualClock(), logger: quietLogger)
        var bytes = try batch([record("a", "1"), record(nil, "2")], .zstd)
        do {
            _ = try log.append(&bytes)
            Issue.record("a keyless record was taken")
        } catch {
            guard case .missingKeyOnCompactedTopic(_) = error else { Issue.record("\(error)"); return }
        }
    }

    /// Compaction reads compressed batches record by record and writes back the kept records
    /// in the batch's own codec.
    @Test(arguments: testSeeds(4))
    func compactionKeepsTheLatestValueInsideCompressedBatches(seed: UInt64) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: seed)
        let clock = ManualClock()
        var config = try LogConfig(["cleanup.policy": "compact", "delete.retention.ms": "100000"])
        config.segmentBytes = 4096
        config.indexIntervalBytes = 256
        config.segmentIndexBytes = 4096
        let log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        var all: [ModelRecord] = []
        for _ in 0..<150 {
            let records = (0..<Int.random(in: 1...8, using: &random)).map { _ in
                record("key-\(Int.random(in: 0..<20, using: &random))", String(repeating: "v", count: Int.random(in: 1...60, using: &random)),
                       at: clock.now().ms)
            }
            var bytes = try batch(records, compressed[Int.random(in: 0..<compressed.count, using: &random)])
            all += model(records, from: try log.append(&bytes).firstOffset)
            clock.advance(ms: 10)
        }
        let activeBase = log.segmentBaseOffsets.last!
        _ = try log.compact()
        var last: [[UInt8]: Offset] = [:]
        for r in all where r.offset < activeBase { last[r.key!] = r.offset }
        let want = all.filter { $0.offset >= activeBase || last[$0.key!] == $0.offset }
        let stored = try allBytes(log)
        #expect(try records(in: stored) == want)
        #expect(!codecs(in: stored).contains(CompressionCodec.none), "compressed batches stay compressed")
    }
}
