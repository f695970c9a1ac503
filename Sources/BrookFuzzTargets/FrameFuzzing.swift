import BrookProtocol
import NIOCore
import NIOEmbedded

/// The Kafka frame decoder in a channel pipeline, fed as a socket would feed it (in pieces),
/// with every frame it yields decoded as the broker does: request header, then body.
enum FrameFuzzing {
    /// A small limit, so that inputs can reach it (the broker's is `socket.request.max.bytes`).
    static let frameBytesMax = 4096

    static let target = FuzzTarget(
        name: "frame",
        input: "piece size - 1 (1 byte: the stream is written to the channel in pieces of that size), then the byte stream of 4-byte-length frames"
    ) { bytes in
        var input = FuzzInput(bytes)
        let pieceBytes = Int(input.byte()) + 1
        var stream = input.rest()
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(KafkaFrameDecoder(frameBytesMax: frameBytesMax)))
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        do {
            while !stream.isEmpty {
                let piece = UnsafeRawBufferPointer(rebasing: stream.prefix(pieceBytes))
                stream = UnsafeRawBufferPointer(rebasing: stream.dropFirst(piece.count))
                try channel.writeInbound(ByteBuffer(bytes: piece))
                while let frame = try channel.readInbound(as: ByteBuffer.self) {
                    precondition(frame.readableBytes >= KafkaFrameDecoder.requestHeaderBytes
                                 && frame.readableBytes <= frameBytesMax, "frame of \(frame.readableBytes) bytes")
                    RequestFuzzing.checkFrame(frame)
                }
            }
        } catch {
            // A frame size out of bounds: the connection closes.
        }
    }
}
