import BrookProtocol
import NIOCore
import NIOEmbedded

/// The broker's framer (`RequestFramer`, what every connection runs) fed as a socket would feed
/// it, in pieces, every frame decoded as the broker does (request header, then body); and the
/// client's `KafkaFrameDecoder` in a channel pipeline on the same stream, which must cut the same
/// frames and refuse the same sizes.
enum FrameFuzzing {
    /// A small limit, so that inputs can reach it (the broker's is `socket.request.max.bytes`).
    static let frameBytesMax = 4096

    static let target = FuzzTarget(
        name: "frame",
        input: "piece size - 1 (1 byte: the stream is written in pieces of that size), then the byte stream of 4-byte-length frames"
    ) { bytes in
        var input = FuzzInput(bytes)
        let pieceBytes = Int(input.byte()) + 1
        let stream = input.rest()
        let (framed, framerRefused) = framerFrames(stream, pieceBytes: pieceBytes)
        let (decoded, decoderRefused) = decoderFrames(stream, pieceBytes: pieceBytes)
        precondition(framed == decoded, "the framer cut \(framed.count) frames, the decoder \(decoded.count)")
        precondition(framerRefused == decoderRefused, "one refused the stream, the other not")
    }

    static func pieces(_ stream: UnsafeRawBufferPointer, _ pieceBytes: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        var rest = stream
        while !rest.isEmpty {
            let piece = UnsafeRawBufferPointer(rebasing: rest.prefix(pieceBytes))
            rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(piece.count))
            try body(piece)
        }
    }

    /// Frames as the broker cuts them (every reservation granted at once); true if refused.
    static func framerFrames(_ stream: UnsafeRawBufferPointer, pieceBytes: Int) -> ([[UInt8]], Bool) {
        var framer = RequestFramer(frameBytesMax: frameBytesMax)
        var frames: [[UInt8]] = []
        do {
            try pieces(stream, pieceBytes) { piece in
                var bytes = ByteBuffer(bytes: piece)
                framer.append(&bytes)
                taking: while true {
                    switch try framer.next() {
                    case .needBytes: break taking
                    case .reserve(let size): framer.reserved(size)
                    case .frame(let frame, let size):
                        precondition(frame.readableBytes == size && size >= KafkaFrameDecoder.requestHeaderBytes
                                     && size <= frameBytesMax, "frame of \(frame.readableBytes) bytes")
                        RequestFuzzing.checkFrame(frame)
                        frames.append(Array(frame.readableBytesView))
                    }
                }
                framer.compact()
            }
        } catch {
            return (frames, true)  // a frame size out of bounds: the connection closes
        }
        return (frames, false)
    }

    /// Frames as the client's decoder cuts them; true if refused.
    static func decoderFrames(_ stream: UnsafeRawBufferPointer, pieceBytes: Int) -> ([[UInt8]], Bool) {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(KafkaFrameDecoder(frameBytesMax: frameBytesMax)))
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        var frames: [[UInt8]] = []
        do {
            try pieces(stream, pieceBytes) { piece in
                try channel.writeInbound(ByteBuffer(bytes: piece))
                while let frame = try channel.readInbound(as: ByteBuffer.self) { frames.append(Array(frame.readableBytesView)) }
            }
        } catch {
            // Frames cut from the same piece before the bad size are already in the channel.
            while let frame = try? channel.readInbound(as: ByteBuffer.self) { frames.append(Array(frame.readableBytesView)) }
            return (frames, true)
        }
        return (frames, false)
    }
}
