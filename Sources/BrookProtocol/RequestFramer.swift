import NIOCore

/// Splits a connection's bytes into request frames (a 4-byte size, then that many bytes), and
/// makes the caller reserve each frame's memory as soon as its size is known, before the rest
/// of it is accepted. No I/O: the broker's connection (BrookServer) feeds bytes in and takes
/// frames out. (`KafkaFrameDecoder` frames the client's side, which has no budget to keep.)
///
/// The bytes gather in one buffer whose storage is reused from frame to frame (`compact`), as
/// NIO's ByteToMessageHandler does: a fresh megabyte for every large produce request costs page
/// faults that showed in the 1 KiB produce benchmark.
public struct RequestFramer {
    public enum Next {
        /// A whole frame, whose `size` bytes were reserved.
        case frame(ByteBuffer, size: Int)
        /// The next frame declares `size` bytes: reserve them, then call `reserved()`.
        case reserve(size: Int)
        /// Nothing more until more bytes arrive.
        case needBytes
    }

    /// Storage kept between frames when no larger: a 1 MB produce request fits (librdkafka's
    /// default batch size); a bigger one's storage is let go once it is handled.
    public static let retainedBytesMax = (1 << 20) + (64 << 10)

    public let frameBytesMin: Int
    public let frameBytesMax: Int
    private var buffer = ByteBuffer()
    /// The size reserved for the frame at the head of the buffer.
    public private(set) var reservedSize: Int?

    public init(frameBytesMin: Int = KafkaFrameDecoder.requestHeaderBytes, frameBytesMax: Int) {
        precondition(frameBytesMin >= 0 && frameBytesMin <= frameBytesMax, "frame bounds")
        self.frameBytesMin = frameBytesMin
        self.frameBytesMax = frameBytesMax
    }

    /// Bytes received and not yet handed out as frames.
    public var bufferedBytes: Int { buffer.readableBytes }

    public mutating func append(_ bytes: inout ByteBuffer) {
        if buffer.readableBytes == 0 && bytes.readableBytes >= buffer.capacity {
            buffer = bytes  // nothing gathered, and no room worth keeping: take it as it is
        } else {
            buffer.writeBuffer(&bytes)
        }
    }

    /// The next thing to do; a frame size out of bounds is an error (the connection closes).
    public mutating func next() throws(KafkaFrameDecoder.FrameError) -> Next {
        guard let declared = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else { return .needBytes }
        let size = try KafkaFrameDecoder.checkedSize(declared, frameBytesMin: frameBytesMin, frameBytesMax: frameBytesMax)
        guard let reserved = reservedSize else { return .reserve(size: size) }
        precondition(reserved == size, "the reservation belongs to another frame")
        guard buffer.readableBytes >= 4 + size else {
            // Room for the whole frame now, so that the rest is not copied again as it comes.
            buffer.reserveCapacity(minimumWritableBytes: 4 + size - buffer.readableBytes)
            return .needBytes
        }
        buffer.moveReaderIndex(forwardBy: 4)
        let frame = buffer.readSlice(length: size)!
        reservedSize = nil
        return .frame(frame, size: size)
    }

    public mutating func reserved(_ size: Int) {
        precondition(reservedSize == nil, "two reservations for one frame")
        reservedSize = size
    }

    /// After the frames taken have been handled: what is left moves to the front of the storage,
    /// which is kept for the next frames (or let go when large and empty).
    public mutating func compact() {
        guard buffer.readerIndex > 0 else { return }
        if buffer.readableBytes == 0 && buffer.capacity > Self.retainedBytesMax {
            buffer = ByteBuffer()
        } else {
            buffer.discardReadBytes()
        }
    }
}
