import BrookCore
import NIOCore

/// Why a message could not be decoded. The connection that sent it is closed.
public struct ProtocolError: Error, Sendable, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    static let truncated = ProtocolError("message ends early")
}

/// Reads Kafka's wire primitives from a frame. Every length is checked against the bytes left,
/// so a hostile length can never make the decoder allocate or read beyond the frame.
public struct WireReader {
    public var buffer: ByteBuffer

    public init(_ buffer: ByteBuffer) { self.buffer = buffer }

    public var remaining: Int { buffer.readableBytes }

    @inline(__always)
    mutating func integer<T: FixedWidthInteger>(_: T.Type = T.self) throws(ProtocolError) -> T {
        guard let value = buffer.readInteger(as: T.self) else { throw .truncated }
        return value
    }

    public mutating func readBool() throws(ProtocolError) -> Bool { try integer(UInt8.self) != 0 }
    public mutating func readInt8() throws(ProtocolError) -> Int8 { try integer() }
    public mutating func readInt16() throws(ProtocolError) -> Int16 { try integer() }
    public mutating func readInt32() throws(ProtocolError) -> Int32 { try integer() }
    public mutating func readInt64() throws(ProtocolError) -> Int64 { try integer() }
    public mutating func readUInt16() throws(ProtocolError) -> UInt16 { try integer() }
    public mutating func readFloat64() throws(ProtocolError) -> Double { Double(bitPattern: try integer(UInt64.self)) }
    public mutating func readUUID() throws(ProtocolError) -> KafkaUUID {
        KafkaUUID(high: try integer(), low: try integer())
    }

    /// An unsigned LEB128 varint of at most 5 bytes (Kafka's lengths and counts).
    public mutating func readUnsignedVarint() throws(ProtocolError) -> UInt32 {
        var result: UInt32 = 0
        for shift in stride(from: 0, to: 35, by: 7) {
            let byte = try integer(UInt8.self)
            result |= UInt32(byte & 0x7F) << UInt32(shift)
            if byte & 0x80 == 0 { return result }
        }
        throw ProtocolError("varint longer than 5 bytes")
    }

    /// A length: int16 / int32 in classic versions, unsigned varint minus one in compact ones.
    /// Returns nil for null (-1); throws when the length runs past the frame.
    mutating func length(compact: Bool, wide: Bool) throws(ProtocolError) -> Int? {
        let length: Int
        if compact {
            length = Int(try readUnsignedVarint()) - 1
        } else {
            length = wide ? Int(try readInt32()) : Int(try readInt16())
        }
        if length < 0 {
            guard length == -1 else { throw ProtocolError("negative length \(length)") }
            return nil
        }
        guard length <= buffer.readableBytes else { throw ProtocolError("length \(length) past the end of the frame") }
        return length
    }

    public mutating func readNullableString(compact: Bool) throws(ProtocolError) -> String? {
        guard let length = try length(compact: compact, wide: false) else { return nil }
        guard let string = buffer.readString(length: length) else { throw .truncated }
        return string
    }

    public mutating func readString(compact: Bool) throws(ProtocolError) -> String {
        guard let string = try readNullableString(compact: compact) else {
            throw ProtocolError("null where a string is required")
        }
        return string
    }

    public mutating func readNullableBytes(compact: Bool) throws(ProtocolError) -> ByteBuffer? {
        guard let length = try length(compact: compact, wide: true) else { return nil }
        return buffer.readSlice(length: length)
    }

    public mutating func readBytes(compact: Bool) throws(ProtocolError) -> ByteBuffer {
        guard let bytes = try readNullableBytes(compact: compact) else { throw ProtocolError("null where bytes are required") }
        return bytes
    }

    /// Record batches: a slice of the frame, never copied.
    public mutating func readRecords(compact: Bool) throws(ProtocolError) -> Records? {
        try readNullableBytes(compact: compact).map { .bytes($0) }
    }

    /// An array's element count; every element takes at least one byte, so a count above the
    /// bytes left is refused before anything is reserved for it.
    public mutating func readNullableArrayCount(compact: Bool) throws(ProtocolError) -> Int? {
        let count = compact ? Int(try readUnsignedVarint()) - 1 : Int(try readInt32())
        if count < 0 {
            guard count == -1 else { throw ProtocolError("negative array count \(count)") }
            return nil
        }
        guard count <= buffer.readableBytes else { throw ProtocolError("array of \(count) past the end of the frame") }
        return count
    }

    public mutating func readArrayCount(compact: Bool) throws(ProtocolError) -> Int {
        guard let count = try readNullableArrayCount(compact: compact) else { throw ProtocolError("null where an array is required") }
        return count
    }

    public mutating func readTaggedFieldCount() throws(ProtocolError) -> Int {
        let count = Int(try readUnsignedVarint())
        guard count <= buffer.readableBytes else { throw ProtocolError("\(count) tagged fields past the end of the frame") }
        return count
    }

    /// One tagged field: its tag and a reader over its bytes (the caller may ignore them).
    public mutating func readTaggedField() throws(ProtocolError) -> (tag: UInt32, field: WireReader) {
        let tag = try readUnsignedVarint()
        let size = Int(try readUnsignedVarint())
        guard let slice = buffer.readSlice(length: size) else { throw ProtocolError("tagged field \(tag) past the end of the frame") }
        return (tag, WireReader(slice))
    }
}
