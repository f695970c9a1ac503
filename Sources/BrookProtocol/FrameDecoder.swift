import NIOCore

/// Splits the byte stream into Kafka frames (a 4-byte size, then that many bytes). A size below
/// `frameBytesMin` or above `frameBytesMax` (the broker's `socket.request.max.bytes`) is an
/// error, which closes the connection.
public struct KafkaFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public struct FrameError: Error, CustomStringConvertible {
        public let description: String
    }

    /// A request header's fixed part: api key, api version, correlation id, client id length.
    public static let requestHeaderBytes = 10
    let frameBytesMin: Int
    let frameBytesMax: Int

    public init(frameBytesMin: Int = KafkaFrameDecoder.requestHeaderBytes, frameBytesMax: Int) {
        self.frameBytesMin = frameBytesMin
        self.frameBytesMax = frameBytesMax
    }

    /// A frame's declared size, checked against the bounds.
    public static func checkedSize(_ declared: Int32, frameBytesMin: Int, frameBytesMax: Int) throws(FrameError) -> Int {
        guard declared >= frameBytesMin else { throw FrameError(description: "frame size \(declared) is below the smallest header") }
        guard Int(declared) <= frameBytesMax else {
            throw FrameError(description: "frame of \(declared) bytes is larger than the limit of \(frameBytesMax)")
        }
        return Int(declared)
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let declared = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else { return .needMoreData }
        let size = try Self.checkedSize(declared, frameBytesMin: frameBytesMin, frameBytesMax: frameBytesMax)
        guard buffer.readableBytes >= 4 + size else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: size)!))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
