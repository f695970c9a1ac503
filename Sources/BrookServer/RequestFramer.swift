import BrookProtocol
import NIOCore

/// Splits a connection's bytes into request frames (a 4-byte size, then that many bytes), and
/// makes the caller reserve each frame's memory as soon as its size is known, before the rest
/// of it is accepted. No I/O: the connection feeds bytes in and takes frames out.
struct RequestFramer {
    enum Next {
        /// A whole frame, whose `size` bytes were reserved.
        case frame(ByteBuffer, size: Int)
        /// The next frame declares `size` bytes: reserve them, then call `reserved()`.
        case reserve(size: Int)
        /// Nothing more until more bytes arrive.
        case needBytes
    }

    let frameBytesMin: Int
    let frameBytesMax: Int
    private var buffer: ByteBuffer?
    /// The size reserved for the frame at the head of the buffer.
    private(set) var reservedSize: Int?

    init(frameBytesMin: Int = KafkaFrameDecoder.requestHeaderBytes, frameBytesMax: Int) {
        precondition(frameBytesMin >= 0 && frameBytesMin <= frameBytesMax, "frame bounds")
        self.frameBytesMin = frameBytesMin
        self.frameBytesMax = frameBytesMax
    }

    /// Bytes received and not yet handed out as frames.
    var bufferedBytes: Int { buffer?.readableBytes ?? 0 }

    mutating func append(_ bytes: inout ByteBuffer) {
        guard bytes.readableBytes > 0 else { return }
        if buffer == nil || buffer!.readableBytes == 0 {
            buffer = bytes
        } else {
            buffer!.writeBuffer(&bytes)
        }
    }

    /// The next thing to do; a frame size out of bounds is an error (the connection closes).
    mutating func next() throws(KafkaFrameDecoder.FrameError) -> Next {
        guard var buffer, let declared = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else { return .needBytes }
        let size = try KafkaFrameDecoder.checkedSize(declared, frameBytesMin: frameBytesMin, frameBytesMax: frameBytesMax)
        guard let reserved = reservedSize else { return .reserve(size: size) }
        precondition(reserved == size, "the reservation belongs to another frame")
        guard buffer.readableBytes >= 4 + size else {
            // Room for the whole frame now, so that the rest is not copied again as it comes.
            self.buffer = nil
            buffer.reserveCapacity(minimumWritableBytes: 4 + size - buffer.readableBytes)
            self.buffer = buffer
            return .needBytes
        }
        buffer.moveReaderIndex(forwardBy: 4)
        let frame = buffer.readSlice(length: size)!
        self.buffer = buffer.readableBytes > 0 ? buffer : nil
        reservedSize = nil
        return .frame(frame, size: size)
    }

    mutating func reserved(_ size: Int) {
        precondition(reservedSize == nil, "two reservations for one frame")
        reservedSize = size
    }
}
