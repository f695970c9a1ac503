import BrookCore
import NIOCore

/// Writes Kafka's wire primitives. Record data held in files is not copied in: the writer notes
/// where it goes (`fileRecords`) and the server sends it from the file (sendfile).
public struct WireWriter: Sendable {
    public var buffer: ByteBuffer
    /// Record data to splice in, each at a position of `buffer`, in order.
    public private(set) var fileRecords: [(position: Int, records: any FileRecords)] = []

    public init(buffer: ByteBuffer = ByteBuffer()) { self.buffer = buffer }

    /// Bytes of the whole message: the buffer plus the file data spliced into it.
    public var messageBytes: Int {
        fileRecords.reduce(buffer.readableBytes) { $0 + $1.records.byteCount }
    }

    /// An empty writer for a tagged field's bytes (sized before they are written).
    public func nested() -> WireWriter { WireWriter() }

    public mutating func writeBool(_ value: Bool) { buffer.writeInteger(value ? 1 : 0, as: UInt8.self) }
    public mutating func writeInt8(_ value: Int8) { buffer.writeInteger(value) }
    public mutating func writeInt16(_ value: Int16) { buffer.writeInteger(value) }
    public mutating func writeInt32(_ value: Int32) { buffer.writeInteger(value) }
    public mutating func writeInt64(_ value: Int64) { buffer.writeInteger(value) }
    public mutating func writeUInt16(_ value: UInt16) { buffer.writeInteger(value) }
    public mutating func writeFloat64(_ value: Double) { buffer.writeInteger(value.bitPattern) }
    public mutating func writeUUID(_ value: KafkaUUID) {
        buffer.writeInteger(value.high)
        buffer.writeInteger(value.low)
    }

    public mutating func writeUnsignedVarint(_ value: UInt32) {
        var value = value
        while value >= 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        buffer.writeInteger(UInt8(value))
    }

    mutating func writeLength(_ length: Int, compact: Bool, wide: Bool) {
        if compact {
            writeUnsignedVarint(UInt32(length + 1))
        } else if wide {
            writeInt32(Int32(length))
        } else {
            precondition(length <= Int(Int16.max), "string of \(length) bytes does not fit an int16 length")
            writeInt16(Int16(length))
        }
    }

    public mutating func writeString(_ value: String, compact: Bool) {
        let utf8 = value.utf8
        guard compact || utf8.count <= Self.classicStringBytesMax else {
            // A classic string has an int16 length: cut a longer one (an error message quoting
            // client input, say) at a character boundary rather than fail the whole answer.
            var end = utf8.index(utf8.startIndex, offsetBy: Self.classicStringBytesMax)
            while end > utf8.startIndex && (utf8[end] & 0xC0) == 0x80 { end = utf8.index(before: end) }
            return writeString(String(value[..<end]), compact: compact)
        }
        writeLength(utf8.count, compact: compact, wide: false)
        buffer.writeString(value)
    }

    /// The longest string a non-flexible version can carry (int16 length).
    public static let classicStringBytesMax = Int(Int16.max)

    /// Null is written as -1 where the version allows it, as an empty string where it does not.
    public mutating func writeNullableString(_ value: String?, compact: Bool, nullable: Bool) {
        if let value { return writeString(value, compact: compact) }
        writeLength(nullable ? -1 : 0, compact: compact, wide: false)
    }

    public mutating func writeBytes(_ value: ByteBuffer, compact: Bool) {
        writeLength(value.readableBytes, compact: compact, wide: true)
        buffer.writeImmutableBuffer(value)
    }

    public mutating func writeNullableBytes(_ value: ByteBuffer?, compact: Bool, nullable: Bool) {
        if let value { return writeBytes(value, compact: compact) }
        writeLength(nullable ? -1 : 0, compact: compact, wide: true)
    }

    public mutating func writeRecords(_ value: Records?, compact: Bool) {
        switch value {
        case nil:
            writeLength(-1, compact: compact, wide: true)
        case .bytes(let bytes):
            writeBytes(bytes, compact: compact)
        case .file(let records):
            writeLength(records.byteCount, compact: compact, wide: true)
            if records.byteCount > 0 { fileRecords.append((buffer.writerIndex, records)) }
        }
    }

    public mutating func writeArrayCount(_ count: Int, compact: Bool) {
        writeLength(count, compact: compact, wide: true)
    }

    public mutating func writeNullArrayCount(compact: Bool, nullable: Bool) {
        writeLength(nullable ? -1 : 0, compact: compact, wide: true)
    }

    public mutating func writeTaggedFieldCount(_ count: Int) { writeUnsignedVarint(UInt32(count)) }

    public mutating func writeTaggedField(tag: UInt32, _ field: WireWriter) {
        precondition(field.fileRecords.isEmpty, "record data cannot travel in a tagged field")
        writeUnsignedVarint(tag)
        writeUnsignedVarint(UInt32(field.buffer.readableBytes))
        buffer.writeImmutableBuffer(field.buffer)
    }
}
