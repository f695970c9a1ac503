import BrookCore
import NIOCore

/// A record batch written as its records come (a producer's open batch): each record is encoded
/// into the batch's buffer when appended, after room left for the header, which `seal` fills in
/// when the batch is sent (with the producer's fields then known), in place unless the records
/// are compressed. Offset deltas count from 0; timestamp deltas are from the first record's
/// timestamp (as the Java client's batches).
public struct BatchEncoder: Sendable {
    /// The header's room (zeros until sealed), then the records section.
    public private(set) var buffer: ByteBuffer
    public private(set) var count: Int32 = 0
    /// The first record's timestamp (the deltas' base), and the largest.
    public private(set) var baseTimestamp = Timestamp(ms: 0)
    public private(set) var maxTimestamp = Timestamp(ms: 0)

    /// `capacity`: the records' bytes to make room for at once (the buffer grows by doubling
    /// beyond).
    public init(capacity: Int = 0) {
        precondition(capacity >= 0)
        buffer = ByteBufferAllocator().buffer(capacity: RecordBatchHeader.Field.records + capacity)
        buffer.writeRepeatingByte(0, count: RecordBatchHeader.Field.records)
    }

    /// Encodes one more record (offset delta `count`), in place.
    public mutating func append(key: [UInt8]?, value: [UInt8]?, headers: [SimpleRecord.Header], timestamp: Timestamp) {
        precondition(count < Int32.max, "a batch of Int32.max records")
        if count == 0 {
            baseTimestamp = timestamp
            maxTimestamp = timestamp
        } else if timestamp > maxTimestamp {
            maxTimestamp = timestamp
        }
        let delta = timestamp.ms &- baseTimestamp.ms
        let offsetDelta = Int64(count)
        let size = RecordBatchBuilder.recordSize(key: key, value: value, headers: headers, timestampDelta: delta, offsetDelta: offsetDelta)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size.total) { out in
            RecordBatchBuilder.putRecord(key: key, value: value, headers: headers, timestampDelta: delta, offsetDelta: offsetDelta,
                                         body: size.body, into: out)
            return size.total
        }
        count += 1
    }

    /// Encodes `record` (see `append(key:value:headers:timestamp:)`).
    public mutating func append(_ record: SimpleRecord) {
        append(key: record.key, value: record.value, headers: record.headers, timestamp: record.timestamp)
    }

    /// The whole batch: the header filled in (base offset `baseOffset`, leader epoch 0, CRC). With
    /// `.none`, in place: the buffer itself is returned (no copy while this encoder is its only
    /// holder); with a codec, a new buffer holds the records compressed. Sealing again (a batch
    /// sent again, under another producer) writes the header anew.
    public mutating func seal(baseOffset: Offset = .zero, producer: RecordBatchBuilder.Producer, transactional: Bool,
                              compression codec: CompressionCodec = .none, level: Int? = nil) throws(CodecError) -> ByteBuffer {
        precondition(count > 0, "a batch holds at least one record")
        let attributes = BatchAttributes(compression: codec, transactional: transactional)
        let (count, base, max) = (count, baseTimestamp, maxTimestamp)
        guard codec == .none else {
            let compressed = try buffer.withUnsafeReadableBytes { b in
                Result { () throws(CodecError) in
                    try Codecs.compress(codec, UnsafeRawBufferPointer(rebasing: b[RecordBatchHeader.Field.records...]), level: level)
                }
            }.get()
            return ByteBuffer(bytes: RecordBatchBuilder.assemble(
                baseOffset: baseOffset, lastOffsetDelta: count - 1, recordCount: count, baseTimestamp: base,
                maxTimestamp: max, attributes: attributes, producer: producer, leaderEpoch: LeaderEpoch(0),
                recordBytes: compressed))
        }
        buffer.withUnsafeMutableReadableBytes { b in
            RecordBatchBuilder.fillHeader(b, baseOffset: baseOffset, lastOffsetDelta: count - 1, recordCount: count,
                                          baseTimestamp: base, maxTimestamp: max, attributes: attributes,
                                          producer: producer, leaderEpoch: LeaderEpoch(0))
        }
        return buffer
    }

    /// The records again, decoded from the buffer (to split a batch: rare, so not kept apart).
    public func records() -> [SimpleRecord] {
        var copy = self
        guard count > 0, let sealed = try? copy.seal(producer: .none, transactional: false),
              let decoded = try? RecordDecoding.records(in: sealed, topic: "", partition: 0, from: .zero) else { return [] }
        precondition(decoded.count == Int(count), "a batch's own records undecodable")
        return decoded.map { SimpleRecord(key: $0.key, value: $0.value, headers: $0.headers, timestamp: $0.timestamp) }
    }
}
