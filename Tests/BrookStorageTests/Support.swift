import BrookCore
import BrookRecords
@testable import BrookStorage
import Foundation
import Logging
import NIOCore

/// A fresh directory under the system's temporary folder, removed by `cleanup()`.
struct TemporaryDirectory {
    let path: String
    init() {
        var template = Array((NSTemporaryDirectory() + "/brook-test-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
    }
    var partition: String { path + "/topic-0" }
    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// A record as the tests' model of the log holds it.
struct ModelRecord: Equatable, CustomStringConvertible {
    var offset: Offset
    var timestamp: Timestamp
    var key: [UInt8]?
    var value: [UInt8]?
    var description: String { "\(offset)@\(timestamp)" }
}

let quietLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return logger
}()

func smallConfig(segmentBytes: Int = 16 * 1024, indexInterval: Int = 512) -> LogConfig {
    var config = LogConfig()
    config.segmentBytes = segmentBytes
    config.indexIntervalBytes = indexInterval
    config.segmentIndexBytes = 4096
    return config
}

func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

func randomRecords(_ count: Int, startMs: Int64, using random: inout SeededRandom, keys: Int = 1000) -> [SimpleRecord] {
    (0..<count).map { i in
        let key = Array("k\(Int.random(in: 0..<keys, using: &random))".utf8)
        let size = Int.random(in: 0...200, using: &random)
        let value = (0..<size).map { _ in UInt8.random(in: 0...255, using: &random) }
        let jitter = Int64.random(in: -5...5, using: &random)
        return SimpleRecord(key: key, value: value, timestamp: Timestamp(ms: startMs + Int64(i) + jitter))
    }
}

/// Every record of a slice's bytes (each batch fully checked), and the offset after its last batch.
func recordsAndNext(in bytes: ByteBuffer) throws -> (records: [ModelRecord], next: Offset?) {
    var out: [ModelRecord] = []
    var next: Offset?
    try bytes.withUnsafeReadableBytes { all in
        var position = 0
        while position < all.count {
            let batch = UnsafeRawBufferPointer(rebasing: all[position...])
            let header = try RecordBatchValidator.validate(batch, check: .stored)
            try header.forEachRecord(in: batch) { r, records in
                let timestamp = header.attributes.isLogAppendTime ? header.maxTimestamp
                    : Timestamp(ms: header.baseTimestamp.ms + r.timestampDelta)
                out.append(ModelRecord(offset: header.baseOffset + Int64(r.offsetDelta), timestamp: timestamp,
                                       key: r.key.map { Array(records[$0]) }, value: r.value.map { Array(records[$0]) }))
            }
            next = header.nextOffset
            position += header.totalBytes
        }
    }
    return (out, next)
}

func records(in bytes: ByteBuffer) throws -> [ModelRecord] { try recordsAndNext(in: bytes).records }

/// Every record from `from` (default the log start) to the LEO, read in small fetches and
/// moving on past each batch's last offset, as a consumer does.
func readAll(_ log: PartitionLog, from: Offset? = nil, maxBytes: Int = 3000) throws -> [ModelRecord] {
    var out: [ModelRecord] = []
    var next = from ?? log.logStartOffset
    while next < log.logEndOffset {
        let slice = try log.read(from: next, maxBytes: maxBytes)
        guard !slice.isEmpty else { break }
        let (got, after) = try recordsAndNext(in: slice.readBytes())
        out += got.filter { $0.offset >= next }
        precondition(after! > next, "a read must move the consumer forward")
        next = after!
    }
    return out
}

func model(_ records: [SimpleRecord], from first: Offset) -> [ModelRecord] {
    records.enumerated().map { i, r in ModelRecord(offset: first + Int64(i), timestamp: r.timestamp, key: r.key, value: r.value) }
}

/// Seeds for randomized tests: `BROOK_SEEDS=N` runs N of them (CI runs the default).
func testSeeds(_ defaultCount: Int) -> [UInt64] {
    let count = ProcessInfo.processInfo.environment["BROOK_SEEDS"].flatMap(Int.init) ?? defaultCount
    return (1...UInt64(max(count, 1))).map { $0 }
}

func record(_ key: String?, _ value: String?, at ms: Int64 = 1_700_000_000_000) -> SimpleRecord {
    SimpleRecord(key: key.map { Array($0.utf8) }, value: value.map { Array($0.utf8) }, timestamp: Timestamp(ms: ms))
}

/// The codec of every batch in a slice's bytes, in order.
func codecs(in bytes: ByteBuffer) -> [CompressionCodec?] {
    bytes.withUnsafeReadableBytes { all in
        var out: [CompressionCodec?] = []
        _ = RecordBatchHeader.forEachBatch(in: all) { header, _ in out.append(header.attributes.compression) }
        return out
    }
}
