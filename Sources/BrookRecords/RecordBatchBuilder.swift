import BrookCore

/// A record to put in a batch.
public struct SimpleRecord: Hashable, Sendable {
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [Header]
    public var timestamp: Timestamp

    public struct Header: Hashable, Sendable {
        public var key: [UInt8]
        public var value: [UInt8]?
        public init(key: [UInt8], value: [UInt8]?) { self.key = key; self.value = value }
    }

    public init(key: [UInt8]?, value: [UInt8]?, headers: [Header] = [], timestamp: Timestamp) {
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }
}

/// Builds RecordBatch v2 bytes (uncompressed): for tests, tools, benchmarks and compaction.
public enum RecordBatchBuilder {
    public struct Producer: Sendable {
        public var id: ProducerID
        public var epoch: ProducerEpoch
        public var baseSequence: Int32
        public init(id: ProducerID, epoch: ProducerEpoch, baseSequence: Int32) {
            self.id = id; self.epoch = epoch; self.baseSequence = baseSequence
        }
        public static let none = Producer(id: .none, epoch: .none, baseSequence: -1)
    }

    /// One batch holding `records` with offset deltas 0, 1, 2, ...
    public static func build(baseOffset: Offset, records: [SimpleRecord],
                             attributes: BatchAttributes = BatchAttributes(),
                             producer: Producer = .none,
                             leaderEpoch: LeaderEpoch = LeaderEpoch(0)) -> [UInt8] {
        let (body, baseTimestamp, maxTimestamp) = encode(records)
        return assemble(baseOffset: baseOffset, lastOffsetDelta: Int32(records.count - 1),
                        recordCount: Int32(records.count), baseTimestamp: baseTimestamp,
                        maxTimestamp: maxTimestamp, attributes: attributes, producer: producer,
                        leaderEpoch: leaderEpoch, recordBytes: body)
    }

    /// As `build`, with the records compressed by `codec` (at `level`, nil for its default).
    public static func build(baseOffset: Offset, records: [SimpleRecord], compression codec: CompressionCodec,
                             level: Int? = nil, producer: Producer = .none, transactional: Bool = false) throws(CodecError) -> [UInt8] {
        let (body, baseTimestamp, maxTimestamp) = encode(records)
        let compressed = codec == .none ? body : try body.withUnsafeBytes { b in
            Result { () throws(CodecError) in try Codecs.compress(codec, b, level: level) }
        }.get()
        return assemble(baseOffset: baseOffset, lastOffsetDelta: Int32(records.count - 1),
                        recordCount: Int32(records.count), baseTimestamp: baseTimestamp,
                        maxTimestamp: maxTimestamp, attributes: BatchAttributes(compression: codec, transactional: transactional), producer: producer,
                        leaderEpoch: LeaderEpoch(0), recordBytes: compressed)
    }

    /// The records section for `records` (offset deltas 0, 1, 2, ...) and its timestamp range.
    private static func encode(_ records: [SimpleRecord]) -> (body: [UInt8], base: Timestamp, max: Timestamp) {
        precondition(!records.isEmpty, "a batch holds at least one record")
        let baseTimestamp = records.map(\.timestamp).min()!
        var body: [UInt8] = []
        for (index, record) in records.enumerated() {
            appendRecord(record, offsetDelta: Int32(index), baseTimestamp: baseTimestamp, to: &body)
        }
        return (body, baseTimestamp, records.map(\.timestamp).max()!)
    }

    /// The batch `header` describes, with its (uncompressed) records section `records`
    /// compressed with `codec` instead: same offsets, timestamps and producer fields; new
    /// length, attributes and CRC.
    public static func recompress(_ header: RecordBatchHeader, records: UnsafeRawBufferPointer,
                                  codec: CompressionCodec, level: Int?) throws(CodecError) -> [UInt8] {
        let body = try Codecs.compress(codec, records, level: level)
        let attributes = BatchAttributes(raw: (header.attributes.raw & ~0x07) | codec.rawValue)
        return assemble(baseOffset: header.baseOffset, lastOffsetDelta: header.lastOffsetDelta,
                        recordCount: header.recordCount, baseTimestamp: header.baseTimestamp,
                        maxTimestamp: header.maxTimestamp, attributes: attributes,
                        producer: Producer(id: header.producerID, epoch: header.producerEpoch, baseSequence: header.baseSequence),
                        leaderEpoch: header.partitionLeaderEpoch, recordBytes: body)
    }

    /// `recompress` as a Result, for callers inside closures that cannot throw typed errors.
    public static func recompressing(_ header: RecordBatchHeader, records: UnsafeRawBufferPointer,
                                     codec: CompressionCodec, level: Int?) -> Result<[UInt8], CodecError> {
        do throws(CodecError) { return .success(try recompress(header, records: records, codec: codec, level: level)) } catch { return .failure(error) }
    }

    /// Header plus already-encoded records, with the length and CRC computed.
    public static func assemble(baseOffset: Offset, lastOffsetDelta: Int32, recordCount: Int32,
                                baseTimestamp: Timestamp, maxTimestamp: Timestamp,
                                attributes: BatchAttributes, producer: Producer,
                                leaderEpoch: LeaderEpoch, recordBytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: RecordBatchHeader.Field.records)
        out.append(contentsOf: recordBytes)
        out.withUnsafeMutableBytes { b in
            fillHeader(b, baseOffset: baseOffset, lastOffsetDelta: lastOffsetDelta, recordCount: recordCount,
                       baseTimestamp: baseTimestamp, maxTimestamp: maxTimestamp, attributes: attributes,
                       producer: producer, leaderEpoch: leaderEpoch)
        }
        return out
    }

    /// Writes the header of the batch `b` holds (its records after the header's room), with its
    /// length and CRC.
    public static func fillHeader(_ b: UnsafeMutableRawBufferPointer, baseOffset: Offset, lastOffsetDelta: Int32, recordCount: Int32,
                                  baseTimestamp: Timestamp, maxTimestamp: Timestamp, attributes: BatchAttributes,
                                  producer: Producer, leaderEpoch: LeaderEpoch) {
        typealias F = RecordBatchHeader.Field
        precondition(b.count >= F.records, "a batch shorter than its header")
        b.setInt64(baseOffset.value, at: F.baseOffset)
        b.setInt32(Int32(b.count - RecordBatchHeader.logOverheadBytes), at: F.batchLength)
        b.setInt32(leaderEpoch.value, at: F.partitionLeaderEpoch)
        b[F.magic] = 2
        b.setInt16(attributes.raw, at: F.attributes)
        b.setInt32(lastOffsetDelta, at: F.lastOffsetDelta)
        b.setInt64(baseTimestamp.ms, at: F.baseTimestamp)
        b.setInt64(maxTimestamp.ms, at: F.maxTimestamp)
        b.setInt64(producer.id.value, at: F.producerID)
        b.setInt16(producer.epoch.value, at: F.producerEpoch)
        b.setInt32(producer.baseSequence, at: F.baseSequence)
        b.setInt32(recordCount, at: F.recordCount)
        RecordBatchPatch.updateChecksum(b)
    }

    public static func appendRecord(_ record: SimpleRecord, offsetDelta: Int32, baseTimestamp: Timestamp,
                                    to out: inout [UInt8]) {
        let delta = record.timestamp.ms &- baseTimestamp.ms
        let size = recordSize(key: record.key, value: record.value, headers: record.headers, timestampDelta: delta,
                              offsetDelta: Int64(offsetDelta))
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: size.total))
        out.withUnsafeMutableBytes { b in
            putRecord(key: record.key, value: record.value, headers: record.headers, timestampDelta: delta,
                      offsetDelta: Int64(offsetDelta), body: size.body, into: UnsafeMutableRawBufferPointer(rebasing: b[start...]))
        }
    }

    /// The bytes one record takes in a batch: its body, and with its length in front.
    public static func recordSize(key: [UInt8]?, value: [UInt8]?, headers: [SimpleRecord.Header],
                                  timestampDelta: Int64, offsetDelta: Int64) -> (body: Int, total: Int) {
        @inline(__always) func nullableSize(_ bytes: [UInt8]?) -> Int {
            guard let bytes else { return 1 }
            return Varint.size(Int64(bytes.count)) + bytes.count
        }
        var body = 1 + Varint.size(timestampDelta) + Varint.size(offsetDelta) + nullableSize(key) + nullableSize(value)
            + Varint.size(Int64(headers.count))
        for header in headers { body += nullableSize(header.key) + nullableSize(header.value) }
        return (body, Varint.size(Int64(body)) + body)
    }

    /// Writes one record (`recordSize`'s `body` bytes, its length in front) at the start of
    /// `out`, which has room for it.
    public static func putRecord(key: [UInt8]?, value: [UInt8]?, headers: [SimpleRecord.Header], timestampDelta: Int64,
                                 offsetDelta: Int64, body: Int, into out: UnsafeMutableRawBufferPointer) {
        var at = 0
        @inline(__always) func varint(_ value: Int64) {
            var u = UInt64(bitPattern: (value << 1) ^ (value >> 63))
            while u >= 0x80 {
                out[at] = UInt8(truncatingIfNeeded: u) | 0x80
                u >>= 7
                at += 1
            }
            out[at] = UInt8(u)
            at += 1
        }
        @inline(__always) func nullable(_ bytes: [UInt8]?) {
            guard let bytes else { return varint(-1) }
            varint(Int64(bytes.count))
            bytes.withUnsafeBytes { b in
                guard let base = b.baseAddress else { return }
                (out.baseAddress! + at).copyMemory(from: base, byteCount: b.count)
            }
            at += bytes.count
        }
        precondition(out.count >= Varint.size(Int64(body)) + body, "no room for the record")
        varint(Int64(body))
        out[at] = 0  // attributes: unused, always 0
        at += 1
        varint(timestampDelta)
        varint(offsetDelta)
        nullable(key)
        nullable(value)
        varint(Int64(headers.count))
        for header in headers {
            nullable(header.key)
            nullable(header.value)
        }
        precondition(at == Varint.size(Int64(body)) + body, "a record's size misjudged")
    }
}

/// In-place changes to a batch's header. Fields outside the CRC (base offset, length, leader
/// epoch) need no new checksum; the others do.
public enum RecordBatchPatch {
    public static func setBaseOffset(_ b: UnsafeMutableRawBufferPointer, _ offset: Offset) {
        b.setInt64(offset.value, at: RecordBatchHeader.Field.baseOffset)
    }
    public static func setLeaderEpoch(_ b: UnsafeMutableRawBufferPointer, _ epoch: LeaderEpoch) {
        b.setInt32(epoch.value, at: RecordBatchHeader.Field.partitionLeaderEpoch)
    }
    /// Stamps LogAppendTime (`message.timestamp.type=LogAppendTime`) and recomputes the CRC.
    public static func setLogAppendTime(_ b: UnsafeMutableRawBufferPointer, _ time: Timestamp) {
        let attributes = UnsafeRawBufferPointer(b).int16(at: RecordBatchHeader.Field.attributes) | 0x08
        b.setInt16(attributes, at: RecordBatchHeader.Field.attributes)
        b.setInt64(time.ms, at: RecordBatchHeader.Field.maxTimestamp)
        updateChecksum(b)
    }
    public static func updateChecksum(_ b: UnsafeMutableRawBufferPointer) {
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[RecordBatchHeader.Field.attributes...]))
        b.setInt32(Int32(bitPattern: crc), at: RecordBatchHeader.Field.crc)
    }
}
