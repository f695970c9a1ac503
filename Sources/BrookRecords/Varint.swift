/// Kafka's variable-length zig-zag integers (protobuf style), read from raw bytes.
/// Every read is bounds-checked and returns nil on truncated or over-long input.
public enum Varint {
    /// Reads a zig-zag varint of at most 5 bytes (Int32 range).
    @inlinable
    public static func readInt32(_ bytes: UnsafeRawBufferPointer, at index: inout Int) -> Int32? {
        guard let raw = readUnsigned(bytes, at: &index, maxBytes: 5), raw <= UInt64(UInt32.max) else { return nil }
        let u = UInt32(truncatingIfNeeded: raw)
        return Int32(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    /// Reads a zig-zag varlong of at most 10 bytes.
    @inlinable
    public static func readInt64(_ bytes: UnsafeRawBufferPointer, at index: inout Int) -> Int64? {
        guard let u = readUnsigned(bytes, at: &index, maxBytes: 10) else { return nil }
        return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    @inlinable
    static func readUnsigned(_ bytes: UnsafeRawBufferPointer, at index: inout Int, maxBytes: Int) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var i = index
        for _ in 0..<maxBytes {
            guard i < bytes.count else { return nil }
            let byte = bytes[i]
            i += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                index = i
                return result
            }
            shift += 7
        }
        return nil
    }

    /// Appends a zig-zag varint.
    @inlinable
    public static func write(_ value: Int64, to out: inout [UInt8]) {
        var u = UInt64(bitPattern: (value << 1) ^ (value >> 63))
        while u >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: u) | 0x80)
            u >>= 7
        }
        out.append(UInt8(u))
    }

    /// Bytes `write` would use for `value`.
    @inlinable
    public static func size(_ value: Int64) -> Int {
        var u = UInt64(bitPattern: (value << 1) ^ (value >> 63))
        var n = 1
        while u >= 0x80 { u >>= 7; n += 1 }
        return n
    }
}
