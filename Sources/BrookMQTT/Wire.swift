import NIOCore

/// MQTT's data representations (section 1.5): big-endian integers, the variable byte integer,
/// UTF-8 strings and binary data with a two-byte length.
enum MQTTWire {
    /// The largest variable byte integer (four bytes).
    static let variableIntMax = 268_435_455

    static func readByte(_ b: inout ByteBuffer) throws(MQTTError) -> UInt8 {
        guard let v = b.readInteger(as: UInt8.self) else { throw .malformed("a byte past the end") }
        return v
    }
    static func readUInt16(_ b: inout ByteBuffer) throws(MQTTError) -> UInt16 {
        guard let v = b.readInteger(as: UInt16.self) else { throw .malformed("a two-byte integer past the end") }
        return v
    }
    static func readUInt32(_ b: inout ByteBuffer) throws(MQTTError) -> UInt32 {
        guard let v = b.readInteger(as: UInt32.self) else { throw .malformed("a four-byte integer past the end") }
        return v
    }

    /// At most four bytes; a fifth continuation byte is malformed.
    static func readVariableInt(_ b: inout ByteBuffer) throws(MQTTError) -> Int {
        var value = 0
        for shift in stride(from: 0, to: 28, by: 7) {
            let byte = try readByte(&b)
            value |= Int(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
        }
        throw .malformed("a variable byte integer longer than four bytes")
    }

    static func writeVariableInt(_ value: Int, to b: inout ByteBuffer) {
        precondition(value >= 0 && value <= variableIntMax, "variable byte integer \(value)")
        var value = value
        repeat {
            var byte = UInt8(value & 0x7F)
            value >>= 7
            if value > 0 { byte |= 0x80 }
            b.writeInteger(byte)
        } while value > 0
    }

    static func variableIntBytes(_ value: Int) -> Int {
        value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4
    }

    /// A UTF-8 string: well-formed, without U+0000 (MQTT-1.5.4-1, -2).
    static func readString(_ b: inout ByteBuffer) throws(MQTTError) -> String {
        let length = Int(try readUInt16(&b))
        guard let bytes = b.readSlice(length: length) else { throw .malformed("a string of \(length) bytes past the end") }
        return try string(bytes)
    }

    static func string(_ bytes: ByteBuffer) throws(MQTTError) -> String {
        let valid = bytes.withUnsafeReadableBytes { raw -> String? in
            if raw.contains(0) { return nil }
            return String(validating: raw, as: UTF8.self)
        }
        guard let valid else { throw .malformed("a string that is not UTF-8 or holds U+0000") }
        return valid
    }

    static func readBinary(_ b: inout ByteBuffer) throws(MQTTError) -> [UInt8] {
        let length = Int(try readUInt16(&b))
        guard let bytes = b.readBytes(length: length) else { throw .malformed("binary data of \(length) bytes past the end") }
        return bytes
    }

    static func writeString(_ s: String, to b: inout ByteBuffer) {
        let count = s.utf8.count
        precondition(count <= 65_535, "an MQTT string of \(count) bytes")
        b.writeInteger(UInt16(count))
        b.writeString(s)
    }

    static func writeBinary(_ bytes: [UInt8], to b: inout ByteBuffer) {
        precondition(bytes.count <= 65_535, "MQTT binary data of \(bytes.count) bytes")
        b.writeInteger(UInt16(bytes.count))
        b.writeBytes(bytes)
    }
}
