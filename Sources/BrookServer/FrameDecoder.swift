import NIOCore

/// Splits the byte stream into Kafka frames (a 4-byte size, then that many bytes). A size below
/// the smallest request header or above `socket.request.max.bytes` closes the connection.
public struct KafkaFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public struct FrameError: Error, CustomStringConvertible {
        public let description: String
    }

    /// api key, api version, correlation id, client id length.
    static let headerBytesMin = 10
    let frameBytesMax: Int

    public init(frameBytesMax: Int) {
        self.frameBytesMax = frameBytesMax
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let size = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else { return .needMoreData }
        guard size >= Self.headerBytesMin else { throw FrameError(description: "frame size \(size) is below a request header's") }
        guard Int(size) <= frameBytesMax else {
            throw FrameError(description: "frame of \(size) bytes is larger than socket.request.max.bytes=\(frameBytesMax)")
        }
        guard buffer.readableBytes >= 4 + Int(size) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(size))!))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
