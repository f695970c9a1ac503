import BrookCore
import BrookRecords

/// The producer state written beside a partition's segments as `<offset>.snapshot` (the offset
/// up to which it holds the log): so that an open replays only the log after it.
///
/// Layout (big endian): "BPS" + version u8, CRC32C u32 of everything after it, producer count
/// i32, then per producer: id i64, epoch i16, coordinator epoch i32, last timestamp i64, open
/// transaction's first offset i64 (-1: none), batch count u8, and per batch first and last
/// sequence i32, first and last offset i64. Aborted transactions live in `.txnindex` files.
public enum ProducerSnapshot {
    static let magic: [UInt8] = [0x42, 0x50, 0x53, 1]

    public static func encode(_ state: ProducerState) -> [UInt8] {
        var body = ByteWriter()
        body.int32(Int32(state.producers.count))
        for (id, entry) in state.producers.sorted(by: { $0.key < $1.key }) {
            body.int64(id.value)
            body.int16(entry.epoch.value)
            body.int32(entry.coordinatorEpoch)
            body.int64(entry.lastTimestamp)
            body.int64(entry.currentTxnFirstOffset?.value ?? -1)
            body.bytes.append(UInt8(entry.batches.count))
            for b in entry.batches {
                body.int32(b.firstSequence)
                body.int32(b.lastSequence)
                body.int64(b.firstOffset.value)
                body.int64(b.lastOffset.value)
            }
        }
        var out = ByteWriter()
        out.bytes = magic
        out.int32(Int32(bitPattern: CRC32C.checksum(body.bytes)))
        out.bytes += body.bytes
        return out.bytes
    }

    public enum DecodeError: Error, Equatable {
        case notASnapshot, checksum, truncated, invalid(String)
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> ProducerState {
        guard bytes.count >= 8, Array(bytes[0..<4]) == magic else { throw .notASnapshot }
        var reader = ByteReader(bytes: bytes, at: 4)
        let crc = UInt32(bitPattern: try reader.int32())
        guard CRC32C.checksum(Array(bytes[8...])) == crc else { throw .checksum }
        let count = try reader.int32()
        guard count >= 0, Int(count) <= ProducerState.producersMax else { throw .invalid("\(count) producers") }
        var state = ProducerState()
        for _ in 0..<count {
            let id = ProducerID(try reader.int64())
            var entry = ProducerEntry(epoch: ProducerEpoch(try reader.int16()), lastTimestamp: 0)
            entry.coordinatorEpoch = try reader.int32()
            entry.lastTimestamp = try reader.int64()
            let first = try reader.int64()
            entry.currentTxnFirstOffset = first >= 0 ? Offset(first) : nil
            let batches = Int(try reader.uint8())
            guard batches <= ProducerState.recentBatchesMax else { throw .invalid("\(batches) batches for producer \(id)") }
            for _ in 0..<batches {
                entry.batches.append(RecentBatch(firstSequence: try reader.int32(), lastSequence: try reader.int32(),
                                                 firstOffset: Offset(try reader.int64()), lastOffset: Offset(try reader.int64())))
            }
            state.restore(id, entry)
        }
        guard reader.index == bytes.count else { throw .invalid("\(bytes.count - reader.index) trailing bytes") }
        return state
    }

    /// `00000000000000001234.snapshot` for offset 1234.
    public static func fileName(_ offset: Offset) -> String {
        let digits = String(offset.value)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".snapshot"
    }

    public static func offset(fileName: String) -> Offset? {
        guard fileName.hasSuffix(".snapshot"), fileName.count == 29, let value = Int64(fileName.prefix(20)) else { return nil }
        return Offset(value)
    }
}

/// Big-endian writing and reading for the small files and records of this module.
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func int64(_ v: Int64) { for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> Int64(shift))) } }
    mutating func int32(_ v: Int32) { for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> Int32(shift))) } }
    mutating func int16(_ v: Int16) { bytes.append(UInt8(truncatingIfNeeded: v >> 8)); bytes.append(UInt8(truncatingIfNeeded: v)) }
    mutating func int8(_ v: Int8) { bytes.append(UInt8(bitPattern: v)) }
    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        precondition(utf8.count <= Int(Int16.max), "string of \(utf8.count) bytes")
        int16(Int16(utf8.count))
        bytes += utf8
    }
}

struct ByteReader {
    let bytes: [UInt8]
    var index: Int

    init(bytes: [UInt8], at index: Int = 0) {
        self.bytes = bytes
        self.index = index
    }

    mutating func take(_ n: Int) throws(ProducerSnapshot.DecodeError) -> ArraySlice<UInt8> {
        guard n >= 0, index + n <= bytes.count else { throw .truncated }
        defer { index += n }
        return bytes[index..<(index + n)]
    }
    mutating func uint8() throws(ProducerSnapshot.DecodeError) -> UInt8 { try take(1).first! }
    mutating func int8() throws(ProducerSnapshot.DecodeError) -> Int8 { Int8(bitPattern: try uint8()) }
    mutating func int16() throws(ProducerSnapshot.DecodeError) -> Int16 {
        try take(2).reduce(Int16(0)) { $0 << 8 | Int16($1) }
    }
    mutating func int32() throws(ProducerSnapshot.DecodeError) -> Int32 {
        try take(4).reduce(Int32(0)) { $0 << 8 | Int32($1) }
    }
    mutating func int64() throws(ProducerSnapshot.DecodeError) -> Int64 {
        try take(8).reduce(Int64(0)) { $0 << 8 | Int64($1) }
    }
    mutating func string() throws(ProducerSnapshot.DecodeError) -> String {
        let n = try int16()
        guard n >= 0 else { throw .invalid("string length \(n)") }
        return String(decoding: try take(Int(n)), as: UTF8.self)
    }
    var atEnd: Bool { index == bytes.count }
}
