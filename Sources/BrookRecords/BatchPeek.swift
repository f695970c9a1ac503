import NIOCore

/// Quick looks into record batches as a request holds them, without validating them (what the
/// tracing of a request reads): each read is bounded by the bytes given and stops at the first
/// batch that does not fit.
public enum BatchPeek {
    /// The most batches `recordCount` reads.
    public static let batchesMax = 10_000

    /// The records of a run of v2 batches, by their headers' counts (byte 57 of each).
    public static func recordCount(_ bytes: ByteBuffer) -> Int {
        var at = bytes.readerIndex
        let end = bytes.writerIndex
        var count = 0
        var batches = 0
        while at + 61 <= end, batches < batchesMax, let length = bytes.getInteger(at: at + 8, as: Int32.self), length >= 49,
              at + 12 + Int(length) <= end {
            if bytes.getInteger(at: at + 16, as: UInt8.self) == 2, let records = bytes.getInteger(at: at + 57, as: Int32.self), records > 0 {
                count += Int(records)
            }
            at += 12 + Int(length)
            batches += 1
        }
        return count
    }

    /// The value of header `name` (at most `valueBytesMax` bytes) in the first record of the
    /// first batch, if that batch is a v2 batch without compression (a compressed one is not
    /// opened) and its first record parses.
    public static func firstRecordHeader(_ name: String, in bytes: ByteBuffer, valueBytesMax: Int = 256) -> [UInt8]? {
        guard bytes.readableBytes > 61, bytes.getInteger(at: bytes.readerIndex + 16, as: UInt8.self) == 2,
              let attributes = bytes.getInteger(at: bytes.readerIndex + 21, as: Int16.self), attributes & 0x07 == 0,
              let length = bytes.getInteger(at: bytes.readerIndex + 8, as: Int32.self), length >= 49,
              12 + Int(length) <= bytes.readableBytes else { return nil }
        let key = Array(name.utf8)
        return bytes.withUnsafeReadableBytes { all -> [UInt8]? in
            let batch = UnsafeRawBufferPointer(rebasing: all[0..<(12 + Int(length))])
            var at = 61
            guard let record = try? RecordParser.parse(batch, at: &at) else { return nil }
            for header in record.headers where header.key.count == key.count && batch[header.key].elementsEqual(key) {
                guard let value = header.value, value.count <= valueBytesMax else { return nil }
                return Array(batch[value])
            }
            return nil
        }
    }
}
