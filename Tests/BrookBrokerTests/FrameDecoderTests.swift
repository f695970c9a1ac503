import BrookProtocol
import BrookServer
import NIOCore
import NIOEmbedded
import Testing

/// The size-prefixed framing, through NIO's ByteToMessageHandler on an EmbeddedChannel.
@Suite struct FrameDecoderTests {
    func channel(frameBytesMax: Int = 1024) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(KafkaFrameDecoder(frameBytesMax: frameBytesMax)))
        return channel
    }

    func frame(_ body: [UInt8]) -> [UInt8] {
        var size = Int32(body.count).bigEndian
        return withUnsafeBytes(of: &size) { Array($0) } + body
    }

    func size(_ value: Int32) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(value)
        return buffer
    }

    let body: [UInt8] = Array(0..<23)

    @Test func frameFedOneByteAtATimeComesOutWhole() throws {
        let channel = try channel()
        defer { _ = try? channel.finish() }
        let wire = frame(body)
        for (index, byte) in wire.enumerated() {
            try channel.writeInbound(ByteBuffer(bytes: [byte]))
            if index < wire.count - 1 {
                #expect(try channel.readInbound(as: ByteBuffer.self) == nil, "a frame came out after \(index + 1) bytes")
            }
        }
        let out = try #require(try channel.readInbound(as: ByteBuffer.self))
        #expect(Array(out.readableBytesView) == body)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
    }

    @Test func twoFramesInOneWrite() throws {
        let channel = try channel()
        defer { _ = try? channel.finish() }
        let second: [UInt8] = Array(repeating: 0xAB, count: 10)
        // the two frames and the first four bytes of a third
        try channel.writeInbound(ByteBuffer(bytes: frame(body) + frame(second) + [0, 0, 0, 12]))
        #expect(try channel.readInbound(as: ByteBuffer.self).map { Array($0.readableBytesView) } == body)
        #expect(try channel.readInbound(as: ByteBuffer.self).map { Array($0.readableBytesView) } == second)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        try channel.writeInbound(ByteBuffer(bytes: Array(repeating: 7, count: 12)))
        #expect(try channel.readInbound(as: ByteBuffer.self).map { Array($0.readableBytesView) } == Array(repeating: 7, count: 12))
    }

    @Test func framesAtTheLimitsPass() throws {
        let channel = try channel(frameBytesMax: 64)
        defer { _ = try? channel.finish() }
        for count in [10, 64] {  // the smallest request header, and the maximum
            let body = Array(repeating: UInt8(count), count: count)
            try channel.writeInbound(ByteBuffer(bytes: frame(body)))
            #expect(try channel.readInbound(as: ByteBuffer.self).map { Array($0.readableBytesView) } == body)
        }
    }

    @Test func frameAboveTheMaximumIsAnError() throws {
        let channel = try channel(frameBytesMax: 64)
        defer { _ = try? channel.finish() }
        // Refused on the size alone, before the body arrives.
        #expect(throws: KafkaFrameDecoder.FrameError.self) { try channel.writeInbound(size(65)) }
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
    }

    @Test(arguments: [Int32(-1), Int32.min, 0, 1, 9])
    func negativeOrTinySizeIsAnError(_ value: Int32) throws {
        let channel = try channel()
        defer { _ = try? channel.finish() }
        #expect(throws: KafkaFrameDecoder.FrameError.self) { try channel.writeInbound(size(value)) }
    }

    @Test func hugeSizeIsAnErrorBeforeAnyBody() throws {
        let channel = try channel(frameBytesMax: 104_857_600)
        defer { _ = try? channel.finish() }
        #expect(throws: KafkaFrameDecoder.FrameError.self) { try channel.writeInbound(size(Int32.max)) }
    }
}
