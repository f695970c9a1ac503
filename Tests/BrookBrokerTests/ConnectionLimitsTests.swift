import BrookBroker
import BrookCore
import BrookProtocol
@testable import BrookServer
import NIOCore
import NIOEmbedded
import Testing

/// The connection's bounds, on EmbeddedChannels over one broker: the request-memory budget
/// covers frames still arriving, a frame that stops arriving is cut off, an idle connection is
/// closed, and what a connection leaves behind is released when it closes.
@Suite struct ConnectionLimitsTests {
    static func settings(idleMs: Int64 = 600_000, frameReceiveMs: Int64 = 60_000) -> ConnectionHandler.Settings {
        ConnectionHandler.Settings(frameBytesMax: 1 << 20, idleMs: idleMs, frameReceiveMs: frameReceiveMs, zeroCopy: false)
    }

    static func connect(_ h: BrokerHarness, _ memory: RequestMemory, settings: ConnectionHandler.Settings = settings()) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: h.loop)
        try channel.pipeline.syncOperations.addHandler(ConnectionHandler(broker: h.broker, memory: memory, logger: quietLogger, settings: settings))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        return channel
    }

    static func sizePrefix(_ size: Int32) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(size)
        return buffer
    }

    /// A frame's whole declared size is reserved when its size arrives; a second frame that does
    /// not fit waits (its connection reads no further) until the first connection lets go.
    @Test func framesStillArrivingCountAgainstTheBudget() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        let memory = RequestMemory(bytesMax: 100_000)
        let first = try Self.connect(h, memory)
        let second = try Self.connect(h, memory)
        try first.writeInbound(Self.sizePrefix(80_000))
        try first.writeInbound(ByteBuffer(repeating: 0, count: 1000))
        #expect(memory.bytes == 80_000)
        try second.writeInbound(Self.sizePrefix(80_000))
        #expect(memory.bytes == 80_000, "the second frame was admitted over the budget")
        let secondHandler = try second.pipeline.syncOperations.handler(type: ConnectionHandler.self)
        #expect(secondHandler.waitingForMemory)
        _ = try? first.finish()
        h.loop.run()
        #expect(!secondHandler.waitingForMemory)
        #expect(memory.bytes == 80_000, "the second frame's reservation")
        _ = try? second.finish()
        h.loop.run()
        #expect(memory.bytes == 0)
    }

    /// Alone, a frame larger than the whole budget still passes (socket.request.max.bytes bounds it).
    @Test func aFrameLargerThanTheBudgetPassesAlone() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        let memory = RequestMemory(bytesMax: 1000)
        let channel = try Self.connect(h, memory)
        try channel.writeInbound(Self.sizePrefix(5000))
        #expect(memory.bytes == 5000)
        _ = try? channel.finish()
        #expect(memory.bytes == 0)
    }

    /// Requests are answered and their memory released; a frame fed a byte at a time comes out whole.
    @Test func requestsByteByByteAreAnsweredAndReleased() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        let memory = RequestMemory(bytesMax: 1 << 20)
        let channel = try Self.connect(h, memory)
        let frame = h.frame(ApiVersionsRequest(clientSoftwareName: "t", clientSoftwareVersion: "1"), version: 3)
        var wire = Self.sizePrefix(Int32(frame.readableBytes))
        var body = frame
        wire.writeBuffer(&body)
        for byte in wire.readableBytesView {
            try channel.writeInbound(ByteBuffer(bytes: [byte]))
        }
        let answer = try #require(try channel.readOutbound(as: IOData.self))
        guard case .byteBuffer(let bytes) = answer else { Issue.record("not bytes"); return }
        #expect(bytes.getInteger(at: bytes.readerIndex, as: Int32.self).map(Int.init) == bytes.readableBytes - 4)
        #expect(memory.bytes == 0)
        #expect(channel.isActive)
        _ = try? channel.finish()
    }

    /// A frame that stops arriving closes its connection after socket.request.receive.timeout.ms,
    /// and its reservation goes with it.
    @Test func aFrameThatStopsArrivingClosesTheConnection() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        let memory = RequestMemory(bytesMax: 1 << 20)
        let channel = try Self.connect(h, memory, settings: Self.settings(frameReceiveMs: 1000))
        try channel.writeInbound(Self.sizePrefix(50_000))
        try channel.writeInbound(ByteBuffer(repeating: 1, count: 100))
        #expect(memory.bytes == 50_000)
        h.loop.advanceTime(by: .milliseconds(999))
        #expect(channel.isActive)
        h.loop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
        #expect(memory.bytes == 0)
    }

    /// connections.max.idle.ms: nothing in, out or waiting for that long closes the connection;
    /// a parked fetch is not idleness.
    @Test func idleConnectionsAreClosed() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let memory = RequestMemory(bytesMax: 1 << 20)
        let channel = try Self.connect(h, memory, settings: Self.settings(idleMs: 5000))
        // A fetch parked for 8 s: the connection waits on the broker, not idle.
        let fetch = h.frame(h.fetchRequest("t", offset: 0, minBytes: 1, maxWaitMs: 8000), version: 12)
        var wire = Self.sizePrefix(Int32(fetch.readableBytes))
        var body = fetch
        wire.writeBuffer(&body)
        try channel.writeInbound(wire)
        #expect(memory.bytes > 0)
        h.loop.advanceTime(by: .milliseconds(7000))
        #expect(channel.isActive, "closed while a fetch was parked")
        h.loop.advanceTime(by: .milliseconds(1000))
        #expect(try channel.readOutbound(as: IOData.self) != nil, "the fetch was not answered")
        #expect(memory.bytes == 0)
        h.loop.advanceTime(by: .milliseconds(4999))
        #expect(channel.isActive)
        h.loop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
    }

    /// A connection that closes with a fetch parked leaves nothing parked and no memory held.
    @Test func closingReleasesParkedFetchesAndTheirMemory() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let memory = RequestMemory(bytesMax: 1 << 20)
        let channel = try Self.connect(h, memory)
        for _ in 0..<5 {
            let fetch = h.frame(h.fetchRequest("t", offset: 0, minBytes: Int32.max, maxWaitMs: Int32.max), version: 12)
            var wire = Self.sizePrefix(Int32(fetch.readableBytes))
            var body = fetch
            wire.writeBuffer(&body)
            try channel.writeInbound(wire)
        }
        let partition = try #require(h.broker.topics.partition("t", 0))
        #expect(partition.parkedCount == 5)
        #expect(memory.bytes > 0)
        _ = try? channel.finish()
        h.loop.run()
        #expect(partition.parkedCount == 0)
        #expect(memory.bytes == 0)
    }
}

extension ConnectionLimitsTests {
    static func wire(_ frame: ByteBuffer) -> ByteBuffer {
        var wire = sizePrefix(Int32(frame.readableBytes))
        var body = frame
        wire.writeBuffer(&body)
        return wire
    }

    /// A failed acks=0 produce closes the connection, but the answers to the requests before it
    /// go out first (found in review: the close failed their unflushed writes).
    @Test func aFailedAcksZeroProduceClosesAfterTheAnswersBeforeIt() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        let memory = RequestMemory(bytesMax: 1 << 20)
        let channel = try Self.connect(h, memory)
        var both = Self.wire(h.frame(ApiVersionsRequest(clientSoftwareName: "t", clientSoftwareVersion: "1"), version: 3))
        var failing = Self.wire(h.frame(h.produceRequest("missing", batches: [batch(["x"], timestamps: [h.clock.now().ms])], acks: 0), version: 9))
        var after = Self.wire(h.frame(ApiVersionsRequest(clientSoftwareName: "t", clientSoftwareVersion: "1"), version: 3))
        both.writeBuffer(&failing)
        both.writeBuffer(&after)
        try channel.writeInbound(both)
        h.loop.run()
        var answers = 0
        while let out = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let bytes) = out, bytes.readableBytes > 0 { answers += 1 }
        }
        #expect(answers == 1, "the answer before the failed produce, and nothing after it")
        #expect(!channel.isActive)
        #expect(memory.bytes == 0)
    }

    /// A frame whose rest waits because the broker stopped reading (its memory budget) is not
    /// cut off by socket.request.receive.timeout.ms (found in review).
    @Test func aFrameHeldBackByTheBrokerIsNotTimedOut() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        let memory = RequestMemory(bytesMax: 100_000)
        let settings = Self.settings(frameReceiveMs: 1000)
        let hog = try Self.connect(h, memory, settings: Self.settings(frameReceiveMs: 600_000))
        try hog.writeInbound(Self.sizePrefix(90_000))
        let waiting = try Self.connect(h, memory, settings: settings)
        try waiting.writeInbound(Self.sizePrefix(50_000))
        let handler = try waiting.pipeline.syncOperations.handler(type: ConnectionHandler.self)
        #expect(handler.waitingForMemory)
        h.loop.advanceTime(by: .seconds(5))
        #expect(waiting.isActive, "closed while the broker held its frame back")
        // close, not finish: finish cancels every task scheduled on the shared loop.
        try hog.close().wait()
        h.loop.run()
        #expect(!handler.waitingForMemory)
        // Now the broker reads, and the clock runs.
        h.loop.advanceTime(by: .milliseconds(1100))
        #expect(!waiting.isActive)
        #expect(memory.bytes == 0)
    }
}
