import CBrookCRC
import NIOCore

/// CRC32C (Castagnoli), the checksum of RecordBatch v2.
public enum CRC32C {
    /// True when the CPU's CRC32 instructions are in use.
    public static var usesHardware: Bool { brook_crc32c_hardware() != 0 }

    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer, extending crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress else { return crc }
        return brook_crc32c_update(crc, base, bytes.count)
    }

    /// The table-driven path, kept for tests and measurement.
    public static func portableChecksum(_ bytes: UnsafeRawBufferPointer, extending crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress else { return crc }
        return brook_crc32c_update_portable(crc, base, bytes.count)
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// Checksum of `length` readable bytes of `buffer` starting `from` its reader index.
    public static func checksum(_ buffer: ByteBuffer, from: Int, length: Int) -> UInt32 {
        precondition(from >= 0 && length >= 0 && from + length <= buffer.readableBytes, "range outside the buffer")
        return buffer.withUnsafeReadableBytes { raw in
            checksum(UnsafeRawBufferPointer(rebasing: raw[from..<(from + length)]))
        }
    }
}
