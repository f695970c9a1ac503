import BrookCore
import NIOCore
import NIOPosix

/// Asks one controller one question (what `brook quorum` runs).
public enum QuorumClient {
    public struct Answer: Sendable {
        public var ok: Bool
        public var text: String
        /// The answer's `key=value` lines.
        public var fields: [String: String] { Self.fields(text) }

        /// The `key=value` lines of a controller's text answer.
        static func fields(_ text: String) -> [String: String] {
            var out: [String: String] = [:]
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { out[String(parts[0])] = String(parts[1]) }
            }
            return out
        }
    }

    public static func ask(host: String, port: Int, _ request: QuorumRequest, timeoutMs: Int64 = 5000,
                           transport: QuorumTransport = .plaintext, group: EventLoopGroup) throws -> Answer {
        let loop = group.next()
        let promise = Once(loop.makePromise(of: Answer.self))
        let channel: Channel
        do {
            channel = try ClientBootstrap(group: loop)
                .channelOption(ChannelOptions.connectTimeout, value: .milliseconds(timeoutMs))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try transport.secureOpened(channel, host: host)
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
                        try channel.pipeline.syncOperations.addHandler(AnswerHandler(promise: promise))
                    }
                }
                .connect(host: host, port: port).wait()
        } catch {
            promise.fail(error)
            throw QuorumError.unreachable("\(host):\(port): \(error)")
        }
        defer { channel.close(promise: nil) }
        var buffer = channel.allocator.buffer(capacity: 64)
        Frame.request(id: 1, request).encode(into: &buffer)
        channel.writeAndFlush(buffer, promise: nil)
        let timeout = loop.scheduleTask(in: .milliseconds(timeoutMs)) { promise.fail(QuorumError.timedOut) }
        defer { timeout.cancel() }
        return try promise.promise.futureResult.wait()
    }
}

/// A promise completed once: the first of answer, close, error or timeout wins (all on one loop).
final class Once: @unchecked Sendable {
    let promise: EventLoopPromise<QuorumClient.Answer>
    var done = false
    init(_ promise: EventLoopPromise<QuorumClient.Answer>) { self.promise = promise }
    func succeed(_ answer: QuorumClient.Answer) {
        guard !done else { return }
        done = true
        promise.succeed(answer)
    }
    func fail(_ error: Error) {
        guard !done else { return }
        done = true
        promise.fail(error)
    }
}

final class AnswerHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Frame
    let promise: Once
    init(promise: Once) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .answer(_, let ok, let text) = unwrapInboundIn(data) { promise.succeed(.init(ok: ok, text: text)) }
    }
    func channelInactive(context: ChannelHandlerContext) { promise.fail(QuorumError.unreachable("connection closed")) }
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}
