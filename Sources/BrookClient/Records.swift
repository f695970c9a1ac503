import BrookCore
import BrookRecords
import NIOCore

/// A record as a consumer sees it.
public struct ConsumedRecord: Sendable {
    public var partition: Int32
    public var offset: Offset
    public var timestamp: Timestamp
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [SimpleRecord.Header]
}

public enum RecordDecoding {
    /// The records at or after `from` in fetched batches (compressed ones decompressed). A
    /// partial batch at the end (a fetch cut at max bytes) is skipped; a damaged batch is an error.
    public static func records(in buffer: ByteBuffer, partition: Int32, from: Offset) throws -> [ConsumedRecord] {
        try buffer.withUnsafeReadableBytes { bytes in
            var out: [ConsumedRecord] = []
            let decodable = try RecordBatchHeader.forEachBatch(in: bytes) { header, batch throws(ClientError) in
                if header.attributes.isControl { return }
                do throws(BatchDefect) {
                    try header.forEachRecord(in: batch) { view, records in
                        let offset = header.baseOffset + Int64(view.offsetDelta)
                        guard offset >= from else { return }
                        let timestamp = header.attributes.isLogAppendTime ? header.maxTimestamp : Timestamp(ms: header.baseTimestamp.ms + view.timestampDelta)
                        out.append(ConsumedRecord(
                            partition: partition, offset: offset, timestamp: timestamp,
                            key: view.key.map { Array(records[$0]) }, value: view.value.map { Array(records[$0]) },
                            headers: view.headers.map { SimpleRecord.Header(key: Array(records[$0.key]), value: $0.value.map { Array(records[$0]) }) }))
                    }
                } catch { throw ClientError("batch at offset \(header.baseOffset): \(error)") }
            }
            guard decodable else { throw ClientError("undecodable batch header") }
            return out
        }
    }
}

/// Kafka's default partitioner for keyed records: murmur2 of the key, positive, modulo the
/// partition count (so keys land where the Java client would put them).
public enum Partitioner {
    public static func murmur2(_ data: [UInt8]) -> Int32 {
        let seed: UInt32 = 0x9747_b28c
        let m: UInt32 = 0x5bd1_e995
        let r: UInt32 = 24
        var h = seed ^ UInt32(truncatingIfNeeded: data.count)
        let blocks = data.count / 4
        for i in 0..<blocks {
            var k = UInt32(data[i * 4]) | UInt32(data[i * 4 + 1]) << 8 | UInt32(data[i * 4 + 2]) << 16 | UInt32(data[i * 4 + 3]) << 24
            k = k &* m
            k ^= k >> r
            k = k &* m
            h = h &* m
            h ^= k
        }
        let tail = blocks * 4
        switch data.count % 4 {
        case 3:
            h ^= UInt32(data[tail + 2]) << 16
            fallthrough
        case 2:
            h ^= UInt32(data[tail + 1]) << 8
            fallthrough
        case 1:
            h ^= UInt32(data[tail])
            h = h &* m
        default: break
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }

    public static func partition(forKey key: [UInt8], count: Int32) -> Int32 {
        (murmur2(key) & 0x7fff_ffff) % count
    }
}
