import BrookCore
import BrookProtocol
import NIOCore
import NIOPosix
import Synchronization

/// Why a client call failed, in words for the command line.
public struct ClientError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One connection to a broker: requests go out with increasing correlation ids and their answers
/// are matched back (Kafka answers in order, but matching by id catches a confused peer).
public final class BrokerConnection: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<ResponseMatcher>
    let versions: [Int16: ClosedRange<Int16>]
    public let address: String
    /// Largest response frame accepted (a fetch answers at most `fetch.max.bytes`).
    static let responseBytesMax = 256 * 1024 * 1024

    init(channel: any Channel, handler: NIOLoopBound<ResponseMatcher>, versions: [Int16: ClosedRange<Int16>], address: String) {
        self.channel = channel
        self.handler = handler
        self.versions = versions
        self.address = address
    }

    /// Connects to `host:port`, asks which versions the broker serves and, given credentials,
    /// authenticates with SASL.
    public static func connect(_ address: String, clientID: String = "brook-cli", timeoutMs: Int64 = 10_000,
                               sasl: SaslCredentials? = nil, tls: ClientTLS? = nil) async throws -> BrokerConnection {
        let (host, port) = try parseAddress(address)
        let tlsHandler = try tls.map { try $0.handler(host: host) }
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(timeoutMs))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            throw ClientError("cannot connect to \(address): \(error)")
        }
        let matcher = try await channel.eventLoop.submit {
            let matcher = ResponseMatcher(clientID: clientID)
            if let tlsHandler { try channel.pipeline.syncOperations.addHandler(tlsHandler) }
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(KafkaFrameDecoder(frameBytesMin: 4, frameBytesMax: responseBytesMax)))
            try channel.pipeline.syncOperations.addHandler(matcher)
            return NIOLoopBound(matcher, eventLoop: channel.eventLoop)
        }.get()
        var connection = BrokerConnection(channel: channel, handler: matcher, versions: [:], address: address)
        // The handshake's answer within the same time, or the connection closes (which fails the
        // wait): a peer cut off right after accepting must not hold the caller.
        let deadline = channel.eventLoop.scheduleTask(in: .milliseconds(timeoutMs)) { channel.close(promise: nil) }
        defer { deadline.cancel() }
        let answer = try await connection.send(ApiVersionsRequest(clientSoftwareName: "brook", clientSoftwareVersion: Version.brook), version: 3)
        guard answer.errorCode == 0 else { throw ClientError("\(address) refused ApiVersions: \(ErrorCode(rawValue: answer.errorCode))") }
        let versions = Dictionary(answer.apiKeys.map { ($0.apiKey, $0.minVersion...$0.maxVersion) }) { a, _ in a }
        connection = BrokerConnection(channel: channel, handler: matcher, versions: versions, address: address)
        if let sasl { try await connection.authenticate(sasl) }
        return connection
    }

    static func parseAddress(_ address: String) throws -> (String, Int) {
        let first = address.split(separator: ",").first.map(String.init) ?? address
        guard let colon = first.lastIndex(of: ":"), let port = Int(first[first.index(after: colon)...]) else {
            throw ClientError("expected host:port, not '\(address)'")
        }
        var host = String(first[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    /// The highest version both sides know, or an UNSUPPORTED_VERSION error naming the API.
    public func version<R: KafkaRequest>(for _: R.Type) throws -> Int16 {
        guard let theirs = versions[R.apiKey] else { throw KafkaError(.unsupportedVersion, "\(address) does not serve \(R.apiName)") }
        let high = min(theirs.upperBound, R.versions.upperBound)
        guard high >= max(theirs.lowerBound, R.versions.lowerBound) else {
            throw KafkaError(.unsupportedVersion, "no \(R.apiName) version in common with \(address) (broker \(theirs), client \(R.versions))")
        }
        return high
    }

    public func send<R: KafkaRequest>(_ request: R) async throws -> R.Response {
        try await send(request, version: try version(for: R.self))
    }

    public func send<R: KafkaRequest>(_ request: R, version: Int16) async throws -> R.Response {
        let body = try await exchange(request, version: version, expectResponse: true)
        guard let body else { throw ClientError("no answer") }
        do { return try R.Response(decoding: body, version: version) } catch {
            throw ClientError("cannot decode the \(R.apiName) v\(version) answer: \(error)")
        }
    }

    /// As `send`, the answer awaited `timeoutMs` at most: then the connection is closed (which
    /// fails this request and every other one waiting on it).
    public func send<R: KafkaRequest>(_ request: R, version: Int16? = nil, timeoutMs: Int64) async throws -> R.Response {
        let channel = self.channel
        let deadline = channel.eventLoop.scheduleTask(in: .milliseconds(timeoutMs)) { channel.close(promise: nil) }
        defer { deadline.cancel() }
        return try await send(request, version: try version ?? self.version(for: R.self))
    }

    /// Writes `request` now, after every request started before on this connection, and returns
    /// the wait for its answer (`timeoutMs` at most: then the connection is closed). Requests
    /// started one after the other reach the broker in that order (a producer's batches of a
    /// partition, several in flight).
    public func start<R: KafkaRequest>(_ request: R, timeoutMs: Int64) throws -> PendingAnswer<R.Response> {
        try start(contentsOf: [request], timeoutMs: timeoutMs)[0]
    }

    /// As `start` for each of `requests`, in order, written together (one hop to the event
    /// loop and one flush: the broker may read them at once).
    public func start<R: KafkaRequest>(contentsOf requests: [R], timeoutMs: Int64) throws -> [PendingAnswer<R.Response>] {
        let version = try version(for: R.self)
        let handler = self.handler
        let channel = self.channel
        let promises = requests.map { _ in channel.eventLoop.makePromise(of: ByteBuffer?.self) }
        // The deadlines are set on the event loop with the writes: from here each would wake it.
        channel.eventLoop.execute {
            for (request, promise) in zip(requests, promises) {
                handler.value.send(request, version: version, expectResponse: true, promise: promise, channel: channel, flush: false)
                let deadline = channel.eventLoop.scheduleTask(in: .milliseconds(timeoutMs)) { channel.close(promise: nil) }
                promise.futureResult.whenComplete { _ in deadline.cancel() }
            }
            channel.flush()
        }
        return promises.map { PendingAnswer(future: $0.futureResult, version: version, apiName: R.apiName, connection: self) }
    }

    /// Sends a request that gets no answer (produce with acks=0).
    public func sendWithoutResponse<R: KafkaRequest>(_ request: R) async throws {
        _ = try await exchange(request, version: try version(for: R.self), expectResponse: false)
    }

    func exchange<R: KafkaRequest>(_ request: R, version: Int16, expectResponse: Bool) async throws -> ByteBuffer? {
        let promise = channel.eventLoop.makePromise(of: ByteBuffer?.self)
        let handler = self.handler
        let channel = self.channel
        channel.eventLoop.execute {
            handler.value.send(request, version: version, expectResponse: expectResponse, promise: promise, channel: channel)
        }
        return try await promise.futureResult.get()
    }

    public func close() async {
        try? await channel.close()
    }
}

/// The answer to a request written by `BrokerConnection.start`, still to come.
public struct PendingAnswer<Response: KafkaMessage>: Sendable {
    let future: EventLoopFuture<ByteBuffer?>
    let version: Int16
    let apiName: String
    /// The connection it was written on.
    public let connection: BrokerConnection

    /// Waits for the answer and decodes it.
    public func value() async throws -> Response {
        try decode(try await future.get())
    }

    /// Decodes the answer's body (nil: the connection gave none).
    func decode(_ body: ByteBuffer?) throws -> Response {
        guard let body else { throw ClientError("no answer") }
        do { return try Response(decoding: body, version: version) } catch {
            throw ClientError("cannot decode the \(apiName) v\(version) answer: \(error)")
        }
    }
}

/// Writes requests and hands each answer to the call waiting for its correlation id.
final class ResponseMatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    struct Pending {
        let apiKey: Int16
        let version: Int16
        let promise: EventLoopPromise<ByteBuffer?>
    }

    let clientID: String
    var nextCorrelationID: Int32 = 1
    var pending: [Int32: Pending] = [:]
    var failure: (any Error)?

    init(clientID: String) { self.clientID = clientID }

    /// `flush` false: the caller flushes after more writes.
    func send<R: KafkaRequest>(_ request: R, version: Int16, expectResponse: Bool, promise: EventLoopPromise<ByteBuffer?>, channel: any Channel,
                               flush: Bool = true) {
        if let failure { return promise.fail(failure) }
        let id = nextCorrelationID
        nextCorrelationID = nextCorrelationID == Int32.max ? 1 : nextCorrelationID + 1
        var writer = WireWriter()
        writer.writeInt32(0)
        RequestHeader(apiKey: R.apiKey, apiVersion: version, correlationID: id, clientID: clientID).encode(to: &writer)
        request.encode(to: &writer, version: version)
        writer.buffer.setInteger(Int32(writer.buffer.readableBytes - 4), at: writer.buffer.readerIndex)
        if expectResponse {
            pending[id] = Pending(apiKey: R.apiKey, version: version, promise: promise)
            if flush { channel.writeAndFlush(writer.buffer, promise: nil) } else { channel.write(writer.buffer, promise: nil) }
        } else {
            channel.writeAndFlush(writer.buffer).whenComplete { result in
                switch result {
                case .success: promise.succeed(nil)
                case .failure(let error): promise.fail(error)
                }
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var reader = WireReader(unwrapInboundIn(data))
        guard let id = try? reader.readInt32(), let entry = pending.removeValue(forKey: id) else {
            return fail(context, ClientError("an answer with an unknown correlation id"))
        }
        do {
            if ResponseHeader.usesV1(apiKey: entry.apiKey, apiVersion: entry.version) {
                for _ in 0..<(try reader.readTaggedFieldCount()) { _ = try reader.readTaggedField() }
            }
            entry.promise.succeed(reader.buffer)
        } catch {
            entry.promise.fail(error)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context, error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(context, ClientError("the broker closed the connection"))
    }

    func fail(_ context: ChannelHandlerContext, _ error: any Error) {
        if failure == nil { failure = error }
        let waiting = pending.values
        pending.removeAll()
        for entry in waiting { entry.promise.fail(error) }
        context.close(promise: nil)
    }
}
