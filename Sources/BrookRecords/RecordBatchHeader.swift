import BrookCore

/// The codec named by the low three bits of a batch's attributes.
public enum CompressionCodec: Int16, Sendable, CaseIterable, CustomStringConvertible {
    case none = 0, gzip = 1, snappy = 2, lz4 = 3, zstd = 4
    /// By the names producers use (`compression.type`): none, gzip, snappy, lz4, zstd.
    public init?(name: String) {
        guard let codec = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = codec
    }
    public var description: String {
        switch self {
        case .none: "none"
        case .gzip: "gzip"
        case .snappy: "snappy"
        case .lz4: "lz4"
        case .zstd: "zstd"
        }
    }
}

/// A RecordBatch v2's attribute bits.
public struct BatchAttributes: Hashable, Sendable {
    public var raw: Int16
    public init(raw: Int16) { self.raw = raw }
    public init(compression: CompressionCodec = .none, logAppendTime: Bool = false,
                transactional: Bool = false, control: Bool = false) {
        raw = compression.rawValue | (logAppendTime ? 0x08 : 0) | (transactional ? 0x10 : 0) | (control ? 0x20 : 0)
    }
    /// nil for the unassigned codec numbers 5-7.
    public var compression: CompressionCodec? { CompressionCodec(rawValue: raw & 0x07) }
    public var isLogAppendTime: Bool { raw & 0x08 != 0 }
    public var isTransactional: Bool { raw & 0x10 != 0 }
    public var isControl: Bool { raw & 0x20 != 0 }
    /// KIP-534: the base timestamp holds the time after which tombstones may be removed.
    public var hasDeleteHorizon: Bool { raw & 0x40 != 0 }
}

/// The fixed 61-byte header of a Kafka RecordBatch (magic 2), decoded. Layout (big endian):
/// baseOffset i64 @0, batchLength i32 @8 (bytes after this field), partitionLeaderEpoch i32 @12,
/// magic i8 @16, crc u32 @17 (CRC32C of everything from @21 to the end), attributes i16 @21,
/// lastOffsetDelta i32 @23, baseTimestamp i64 @27, maxTimestamp i64 @35, producerId i64 @43,
/// producerEpoch i16 @51, baseSequence i32 @53, recordCount i32 @57, records @61.
public struct RecordBatchHeader: Hashable, Sendable {
    public enum Field {
        public static let baseOffset = 0
        public static let batchLength = 8
        public static let partitionLeaderEpoch = 12
        public static let magic = 16
        public static let crc = 17
        public static let attributes = 21
        public static let lastOffsetDelta = 23
        public static let baseTimestamp = 27
        public static let maxTimestamp = 35
        public static let producerID = 43
        public static let producerEpoch = 51
        public static let baseSequence = 53
        public static let recordCount = 57
        public static let records = 61
    }
    /// Bytes before `batchLength` counts (baseOffset and the length itself).
    public static let logOverheadBytes = 12
    /// Enough of the header to know a batch's offsets and size.
    public static let prefixBytes = Field.lastOffsetDelta + 4

    public var baseOffset: Offset
    public var batchLength: Int32
    public var partitionLeaderEpoch: LeaderEpoch
    public var magic: Int8
    public var crc: UInt32
    public var attributes: BatchAttributes
    public var lastOffsetDelta: Int32
    public var baseTimestamp: Timestamp
    public var maxTimestamp: Timestamp
    public var producerID: ProducerID
    public var producerEpoch: ProducerEpoch
    public var baseSequence: Int32
    public var recordCount: Int32

    /// The whole batch's size on disk and on the wire.
    public var totalBytes: Int { Int(batchLength) + Self.logOverheadBytes }
    /// Wrapping: a client's or a peer's batch may carry any base offset (the broker assigns its
    /// own), and reading a header must not trap; stored batches never come near the ends.
    public var lastOffset: Offset { Offset(baseOffset.value &+ Int64(lastOffsetDelta)) }
    public var nextOffset: Offset { Offset(lastOffset.value &+ 1) }

    /// Decodes the 61 header bytes at the start of `bytes`; nil when fewer are present.
    /// Decoding checks nothing: see `RecordBatchValidator`.
    public static func decode(_ bytes: UnsafeRawBufferPointer) -> RecordBatchHeader? {
        guard bytes.count >= Field.records else { return nil }
        return RecordBatchHeader(
            baseOffset: Offset(bytes.int64(at: Field.baseOffset)),
            batchLength: bytes.int32(at: Field.batchLength),
            partitionLeaderEpoch: LeaderEpoch(bytes.int32(at: Field.partitionLeaderEpoch)),
            magic: Int8(bitPattern: bytes[Field.magic]),
            crc: UInt32(bitPattern: bytes.int32(at: Field.crc)),
            attributes: BatchAttributes(raw: bytes.int16(at: Field.attributes)),
            lastOffsetDelta: bytes.int32(at: Field.lastOffsetDelta),
            baseTimestamp: Timestamp(ms: bytes.int64(at: Field.baseTimestamp)),
            maxTimestamp: Timestamp(ms: bytes.int64(at: Field.maxTimestamp)),
            producerID: ProducerID(bytes.int64(at: Field.producerID)),
            producerEpoch: ProducerEpoch(bytes.int16(at: Field.producerEpoch)),
            baseSequence: bytes.int32(at: Field.baseSequence),
            recordCount: bytes.int32(at: Field.recordCount))
    }

    /// The offsets and size of a batch, from its first 27 bytes (what scans need).
    public struct Prefix: Hashable, Sendable {
        public var baseOffset: Offset
        public var batchLength: Int32
        public var magic: Int8
        public var lastOffsetDelta: Int32
        public var totalBytes: Int { Int(batchLength) + RecordBatchHeader.logOverheadBytes }
        public var lastOffset: Offset { Offset(baseOffset.value &+ Int64(lastOffsetDelta)) }  // wrapping, as the header's
        public init(baseOffset: Offset, batchLength: Int32, magic: Int8, lastOffsetDelta: Int32) {
            self.baseOffset = baseOffset
            self.batchLength = batchLength
            self.magic = magic
            self.lastOffsetDelta = lastOffsetDelta
        }
    }

    public static func decodePrefix(_ bytes: UnsafeRawBufferPointer) -> Prefix? {
        guard bytes.count >= prefixBytes else { return nil }
        return Prefix(baseOffset: Offset(bytes.int64(at: Field.baseOffset)),
                      batchLength: bytes.int32(at: Field.batchLength),
                      magic: Int8(bitPattern: bytes[Field.magic]),
                      lastOffsetDelta: bytes.int32(at: Field.lastOffsetDelta))
    }
}

extension UnsafeRawBufferPointer {
    @inlinable func int64(at i: Int) -> Int64 {
        Int64(bigEndian: loadUnaligned(fromByteOffset: i, as: Int64.self))
    }
    @inlinable func int32(at i: Int) -> Int32 {
        Int32(bigEndian: loadUnaligned(fromByteOffset: i, as: Int32.self))
    }
    @inlinable func int16(at i: Int) -> Int16 {
        Int16(bigEndian: loadUnaligned(fromByteOffset: i, as: Int16.self))
    }
}

extension UnsafeMutableRawBufferPointer {
    @inlinable func setInt64(_ v: Int64, at i: Int) { storeBytes(of: v.bigEndian, toByteOffset: i, as: Int64.self) }
    @inlinable func setInt32(_ v: Int32, at i: Int) { storeBytes(of: v.bigEndian, toByteOffset: i, as: Int32.self) }
    @inlinable func setInt16(_ v: Int16, at i: Int) { storeBytes(of: v.bigEndian, toByteOffset: i, as: Int16.self) }
}

extension RecordBatchHeader {
    /// Calls `body` with each whole batch at the front of `bytes`, in order, and stops at one
    /// cut short (a read that ended at its byte limit). Returns false when it met a header it
    /// could not decode.
    @discardableResult
    public static func forEachBatch<E: Error>(
        in bytes: UnsafeRawBufferPointer, _ body: (RecordBatchHeader, UnsafeRawBufferPointer) throws(E) -> Void
    ) throws(E) -> Bool {
        var position = 0
        while bytes.count - position >= Field.records {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[position...])
            // A length shorter than a header is damage: stop there (it trapped, or looped
            // forever at -12, before the fuzzer found it).
            guard let header = decode(rest), header.totalBytes >= Field.records else { return false }
            guard header.totalBytes <= rest.count else { return true }
            try body(header, UnsafeRawBufferPointer(rebasing: rest[0..<header.totalBytes]))
            position += header.totalBytes
        }
        return true
    }
}
