import BrookCore

/// Why a batch is refused or treated as corrupt.
public enum BatchDefect: Error, Hashable, Sendable, CustomStringConvertible {
    case truncated(needed: Int, available: Int)
    case badLength(Int32)
    case unsupportedMagic(Int8)
    case checksum(stored: UInt32, computed: UInt32)
    case unknownCompression(Int16)
    case badRecordCount(Int32)
    case lastOffsetDelta(Int32, recordCount: Int32)
    case record(index: Int, RecordDefect)
    case recordsShort(declared: Int32, found: Int)
    case trailingBytes(Int)
    /// The records of a compressed batch cannot be decompressed (or would be too large).
    case compression(CompressionCodec, CodecError)

    public var description: String {
        switch self {
        case .truncated(let needed, let available): "batch truncated: needs \(needed) bytes, \(available) present"
        case .badLength(let length): "impossible batch length \(length)"
        case .unsupportedMagic(let magic): "magic \(magic) (only RecordBatch v2, magic 2, is accepted)"
        case .checksum(let stored, let computed):
            "CRC32C mismatch: stored \(String(stored, radix: 16)), computed \(String(computed, radix: 16))"
        case .unknownCompression(let raw): "unknown compression codec \(raw & 7)"
        case .badRecordCount(let count): "impossible record count \(count)"
        case .lastOffsetDelta(let delta, let count): "last offset delta \(delta) does not fit \(count) records"
        case .record(let index, let defect): "record \(index): \(defect)"
        case .recordsShort(let declared, let found): "batch declares \(declared) records, holds \(found)"
        case .trailingBytes(let n): "\(n) bytes after the last record"
        case .compression(let codec, let error): "\(codec)-compressed records: \(error)"
        }
    }
}

/// How much of a batch to check.
public enum BatchCheck: Sendable {
    /// What a producer must send: at least one record, offset deltas 0, 1, 2, ... with
    /// lastOffsetDelta = count - 1, every record well formed and filling the batch exactly.
    case produce
    /// What a log may hold: compaction leaves gaps, so offset deltas only increase and stay
    /// within lastOffsetDelta; every record is still parsed.
    case stored
    /// Header sanity and the CRC: enough to trust bytes that passed `.produce` on the way in
    /// (recovery and reads use it; the CRC covers every record byte).
    case checksum
}

public enum RecordBatchValidator {
    /// Checks the batch at the start of `bytes` (which may hold more after it) and returns its header.
    public static func validate(_ bytes: UnsafeRawBufferPointer, check: BatchCheck) throws(BatchDefect) -> RecordBatchHeader {
        var inflated: [UInt8]?
        return try validate(bytes, check: check, inflated: &inflated)
    }

    /// As `validate(_:check:)`; for a compressed batch checked `.produce` or `.stored`, its
    /// records are decompressed once (at most `Codecs.decompressedBytesMax` bytes) to check
    /// them, and left in `inflated` for a caller that needs them (recompression, key checks).
    /// With `timestamps`, every record's timestamp (but -1, none) must lie in it (a producer's
    /// CreateTime bounds, as Kafka's LogValidator checks them).
    public static func validate(_ bytes: UnsafeRawBufferPointer, check: BatchCheck,
                                inflated: inout [UInt8]?, timestamps: ClosedRange<Int64>? = nil) throws(BatchDefect) -> RecordBatchHeader {
        inflated = nil
        guard let header = RecordBatchHeader.decode(bytes) else {
            throw .truncated(needed: RecordBatchHeader.Field.records, available: bytes.count)
        }
        let minimumLength = Int32(RecordBatchHeader.Field.records - RecordBatchHeader.logOverheadBytes)
        guard header.batchLength >= minimumLength,
              Int(header.batchLength) <= Limits.batchBytesMax - RecordBatchHeader.logOverheadBytes
        else { throw .badLength(header.batchLength) }
        guard header.magic == 2 else { throw .unsupportedMagic(header.magic) }
        let total = header.totalBytes
        guard total <= bytes.count else { throw .truncated(needed: total, available: bytes.count) }
        let covered = UnsafeRawBufferPointer(rebasing: bytes[RecordBatchHeader.Field.attributes..<total])
        let computed = CRC32C.checksum(covered)
        guard computed == header.crc else { throw .checksum(stored: header.crc, computed: computed) }
        guard let codec = header.attributes.compression else { throw .unknownCompression(header.attributes.raw) }

        let count = header.recordCount
        let minimumCount: Int32 = check == .produce ? 1 : 0
        guard count >= minimumCount, count <= Limits.batchRecordsMax else { throw .badRecordCount(count) }
        let deltaFits = check == .produce ? header.lastOffsetDelta == count - 1
                                          : header.lastOffsetDelta >= max(count - 1, 0)
        guard deltaFits else { throw .lastOffsetDelta(header.lastOffsetDelta, recordCount: count) }
        if check == .checksum { return header }
        let body = UnsafeRawBufferPointer(rebasing: bytes[RecordBatchHeader.Field.records..<total])
        if codec == .none {
            try checkRecords(body, header: header, check: check, timestamps: timestamps)
        } else {
            let records: [UInt8]
            do throws(CodecError) { records = try Codecs.decompress(codec, body) } catch { throw .compression(codec, error) }
            let defect = records.withUnsafeBytes { r -> BatchDefect? in
                do throws(BatchDefect) { try checkRecords(r, header: header, check: check, timestamps: timestamps) } catch { return error }
                return nil
            }
            if let defect { throw defect }
            inflated = records
        }
        return header
    }

    /// Checks a batch's records section (decompressed): `recordCount` well-formed records whose
    /// offset deltas suit `check`, filling it exactly.
    private static func checkRecords(_ batch: UnsafeRawBufferPointer, header: RecordBatchHeader,
                                     check: BatchCheck, timestamps: ClosedRange<Int64>?) throws(BatchDefect) {
        // Each record takes at least 7 bytes; refuse absurd counts before looping.
        let available = batch.count
        guard Int(header.recordCount) * 7 <= available else {
            throw .recordsShort(declared: header.recordCount, found: available / 7)
        }
        var index = 0
        var previousDelta: Int32 = -1
        for n in 0..<Int(header.recordCount) {
            let offsetDelta: Int32
            let timestampDelta: Int64
            do { (offsetDelta, timestampDelta) = try RecordParser.skip(batch, at: &index) } catch { throw .record(index: n, error) }
            if let timestamps {
                // Widened: both halves come from the wire.
                let timestamp = Int128(header.baseTimestamp.ms) + Int128(timestampDelta)
                if timestamp != -1 && !(Int128(timestamps.lowerBound)...Int128(timestamps.upperBound)).contains(timestamp) {
                    throw .record(index: n, .timestamp(Int64(clamping: timestamp)))
                }
            }
            switch check {
            case .produce:
                guard offsetDelta == Int32(n) else {
                    throw .record(index: n, .offsetDelta(expected: String(n), found: offsetDelta))
                }
            case .stored, .checksum:
                guard offsetDelta > previousDelta, offsetDelta <= header.lastOffsetDelta else {
                    throw .record(index: n, .offsetDelta(
                        expected: "in \(previousDelta + 1)...\(header.lastOffsetDelta)", found: offsetDelta))
                }
            }
            previousDelta = offsetDelta
        }
        guard index == batch.count else { throw .trailingBytes(batch.count - index) }
    }
}
