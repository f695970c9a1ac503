import BrookCore
import NIOCore

/// A run of whole batches in one segment file, as a read returns it: the file and byte range,
/// so that the caller can `sendfile` it (NIO's FileRegion) or read it into memory.
/// Holding a slice keeps its file open even if retention deletes the segment meanwhile.
public struct LogSlice: Sendable {
    public let file: SegmentFile?
    public let position: FilePosition
    public let length: Int
    /// The base offset of the first batch (which may be below the offset asked for).
    public let firstBatchOffset: Offset?

    public static let empty = LogSlice(file: nil, position: .zero, length: 0, firstBatchOffset: nil)
    public var isEmpty: Bool { length == 0 }

    /// The first `count` bytes of the slice (a batch header, say).
    public func prefix(_ count: Int) -> LogSlice {
        LogSlice(file: file, position: position, length: min(length, max(0, count)), firstBatchOffset: firstBatchOffset)
    }

    /// The slice's bytes, read into a new buffer.
    public func readBytes(allocator: ByteBufferAllocator = ByteBufferAllocator()) throws(StorageError) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: length)
        try readBytes(into: &buffer)
        return buffer
    }

    /// Appends the slice's bytes to `buffer` (reusing its storage when it has room).
    public func readBytes(into buffer: inout ByteBuffer) throws(StorageError) {
        guard let file, length > 0 else { return }
        let n = try typed {
            try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { raw in
                try file.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<length]), at: Int(position.value))
            }
        }
        guard n == length else {
            throw .corruptSegment(path: file.path, position: position, reason: "read \(n) of \(length) bytes: file shrank")
        }
    }
}
