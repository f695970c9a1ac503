import BrookCore

/// One record inside an uncompressed batch, as ranges into the batch's bytes (nothing copied).
/// Layout: length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
/// keyLength varint (-1 = null), key, valueLength varint (-1 = null), value,
/// headerCount varint, then per header: keyLength varint, key, valueLength varint, value.
public struct RecordView: Sendable {
    /// Where the record starts (its length varint) and ends, in the batch's bytes.
    public var range: Range<Int>
    public var attributes: Int8
    public var timestampDelta: Int64
    public var offsetDelta: Int32
    public var key: Range<Int>?
    public var value: Range<Int>?
    public var headers: [RecordHeaderView]
}

public struct RecordHeaderView: Sendable {
    public var key: Range<Int>
    public var value: Range<Int>?
}

/// Why a record inside a batch is malformed.
public enum RecordDefect: Error, Hashable, Sendable, CustomStringConvertible {
    case truncated
    case negativeLength
    case lengthMismatch
    case tooManyHeaders(Int64)
    case offsetDelta(expected: String, found: Int32)
    /// The record's timestamp (the batch's base plus its delta) lies outside the bounds asked for.
    case timestamp(Int64)
    public var description: String {
        switch self {
        case .truncated: "record runs past the end of its batch"
        case .negativeLength: "negative length"
        case .lengthMismatch: "record's fields do not fill its declared length"
        case .tooManyHeaders(let n): "\(n) headers (limit \(Limits.recordHeadersMax))"
        case .offsetDelta(let expected, let found): "offset delta \(found), expected \(expected)"
        case .timestamp(let ms): "timestamp \(ms) is out of the accepted range"
        }
    }
}

public enum RecordParser {
    /// Parses the record starting at `index` in `bytes`; on success `index` moves past it.
    public static func parse(_ bytes: UnsafeRawBufferPointer, at index: inout Int) throws(RecordDefect) -> RecordView {
        let start = index
        var i = index
        guard let length = Varint.readInt32(bytes, at: &i) else { throw .truncated }
        guard length >= 0 else { throw .negativeLength }
        let end = i + Int(length)
        guard end <= bytes.count else { throw .truncated }
        // Parse inside a view limited to this record, so no field can reach past it.
        let body = UnsafeRawBufferPointer(rebasing: bytes[0..<end])
        guard i < end else { throw .lengthMismatch }
        let attributes = Int8(bitPattern: body[i])
        i += 1
        guard let timestampDelta = Varint.readInt64(body, at: &i),
              let offsetDelta = Varint.readInt32(body, at: &i) else { throw .truncated }
        let key = try readNullableBytes(body, at: &i)
        let value = try readNullableBytes(body, at: &i)
        guard let headerCount = Varint.readInt32(body, at: &i) else { throw .truncated }
        guard headerCount >= 0 else { throw .negativeLength }
        guard headerCount <= Limits.recordHeadersMax else { throw .tooManyHeaders(Int64(headerCount)) }
        var headers: [RecordHeaderView] = []
        if headerCount > 0 { headers.reserveCapacity(Int(headerCount)) }
        for _ in 0..<headerCount {
            guard let headerKey = try readNullableBytes(body, at: &i) else { throw .negativeLength }
            let headerValue = try readNullableBytes(body, at: &i)
            headers.append(RecordHeaderView(key: headerKey, value: headerValue))
        }
        guard i == end else { throw .lengthMismatch }
        index = end
        return RecordView(range: start..<end, attributes: attributes, timestampDelta: timestampDelta,
                          offsetDelta: offsetDelta, key: key, value: value, headers: headers)
    }

    /// Checks the record at `index` as `parse` does, without building a view (the produce path's
    /// validation); returns its offset delta and moves `index` past it.
    @inline(__always)
    public static func skip(_ bytes: UnsafeRawBufferPointer, at index: inout Int) throws(RecordDefect) -> (offsetDelta: Int32, timestampDelta: Int64) {
        var i = index
        guard let length = Varint.readInt32(bytes, at: &i) else { throw .truncated }
        guard length >= 0 else { throw .negativeLength }
        let end = i + Int(length)
        guard end <= bytes.count, i < end else { throw end > bytes.count ? .truncated : .lengthMismatch }
        let body = UnsafeRawBufferPointer(rebasing: bytes[0..<end])
        i += 1  // attributes
        guard let timestampDelta = Varint.readInt64(body, at: &i), let offsetDelta = Varint.readInt32(body, at: &i) else { throw .truncated }
        _ = try readNullableBytes(body, at: &i)
        _ = try readNullableBytes(body, at: &i)
        guard let headerCount = Varint.readInt32(body, at: &i) else { throw .truncated }
        guard headerCount >= 0 else { throw .negativeLength }
        guard headerCount <= Limits.recordHeadersMax else { throw .tooManyHeaders(Int64(headerCount)) }
        for _ in 0..<headerCount {
            guard try readNullableBytes(body, at: &i) != nil else { throw .negativeLength }
            _ = try readNullableBytes(body, at: &i)
        }
        guard i == end else { throw .lengthMismatch }
        index = end
        return (offsetDelta, timestampDelta)
    }

    @inline(__always)
    private static func readNullableBytes(_ bytes: UnsafeRawBufferPointer, at i: inout Int) throws(RecordDefect) -> Range<Int>? {
        guard let length = Varint.readInt32(bytes, at: &i) else { throw .truncated }
        if length == -1 { return nil }
        guard length >= 0 else { throw .negativeLength }
        let end = i + Int(length)
        guard end <= bytes.count else { throw .truncated }
        defer { i = end }
        return i..<end
    }
}

extension RecordBatchHeader {
    /// Calls `body` with each record of `batch` (the whole batch this header heads), with the
    /// buffer the record's ranges index: the batch's records section, decompressed first if the
    /// batch is compressed (at most `limit` bytes). Control batches are walked too.
    public func forEachRecord(in batch: UnsafeRawBufferPointer, limit: Int = Codecs.decompressedBytesMax,
                              _ body: (RecordView, UnsafeRawBufferPointer) -> Void) throws(BatchDefect) {
        precondition(batch.count >= totalBytes, "the whole batch is needed")
        // The header may not have been validated (a scan of a log, a peer's answer): an
        // impossible length or count is a defect, not a trap.
        guard totalBytes >= RecordBatchHeader.Field.records else { throw .badLength(batchLength) }
        guard recordCount >= 0, recordCount <= Limits.batchRecordsMax else { throw .badRecordCount(recordCount) }
        guard let codec = attributes.compression else { throw .unknownCompression(attributes.raw) }
        let section = UnsafeRawBufferPointer(rebasing: batch[RecordBatchHeader.Field.records..<totalBytes])
        let count = Int(recordCount)
        func walk(_ records: UnsafeRawBufferPointer) throws(BatchDefect) {
            var index = 0
            for n in 0..<count {
                let record: RecordView
                do { record = try RecordParser.parse(records, at: &index) } catch { throw .record(index: n, error) }
                body(record, records)
            }
        }
        if codec == .none {
            try walk(section)
            return
        }
        let inflated: [UInt8]
        do throws(CodecError) { inflated = try Codecs.decompress(codec, section, limit: limit) } catch { throw .compression(codec, error) }
        let defect = inflated.withUnsafeBytes { records -> BatchDefect? in
            do throws(BatchDefect) { try walk(records) } catch { return error }
            return nil
        }
        if let defect { throw defect }
    }
}
