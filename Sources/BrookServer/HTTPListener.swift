import BrookBroker
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Whether the node is alive and whether it serves, for orchestrators: `/health` answers 200
/// until shutdown begins, `/ready` answers 200 once clients are served (a broker in a cluster:
/// after its first catch-up with the metadata log) and until shutdown begins.
public final class NodeHealth: Sendable {
    let ready = Atomic<Bool>(false)
    let stopping = Atomic<Bool>(false)

    public init() {}

    public func markReady() { ready.store(true, ordering: .relaxed) }
    public func markStopping() { stopping.store(true, ordering: .relaxed) }
    public var isReady: Bool { ready.load(ordering: .relaxed) && !isStopping }
    public var isStopping: Bool { stopping.load(ordering: .relaxed) }
}

/// `http.listeners`: `/metrics` (Prometheus's text format, from ServerMetrics), `/health`,
/// `/ready`, and the web console (its page at `/`, its assets under `/console/`, its JSON API
/// under `/api/`), over NIO's HTTP/1.1 server; an `https://` listener over TLS, with the
/// `ssl.*` settings of a Kafka listener (`listener.name.https.ssl.*` winning over `ssl.*`),
/// its key store reloaded when its files change, and the console's cookie `Secure` there. GET and HEAD but for the API's changes; request
/// bodies only for the API, at most 64 KiB; at most `connectionsMax` connections, idle ones
/// closed after a minute. A scrape runs off the event loop, one at a time.
public final class HTTPListener: Sendable {
    let metrics: ServerMetrics
    let health: NodeHealth
    let logger: Logger
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let pool = NIOThreadPool(numberOfThreads: 1)
    let channels = NIOLockedValueBox<[any Channel]>([])
    let connections = Atomic<Int>(0)
    /// The console, once the broker it shows has started (nil: an index page at `/`).
    let console = NIOLockedValueBox<Console?>(nil)
    /// The TLS listeners' contexts, rebuilt when their files change.
    let tls = NIOLockedValueBox<[ListenerTLS]>([])
    static let connectionsMax = 64
    static let bodyBytesMax = 64 * 1024
    static let idle = TimeAmount.seconds(60)

    public init(metrics: ServerMetrics, health: NodeHealth, logger: Logger) {
        self.metrics = metrics
        self.health = health
        self.logger = logger
        pool.start()
    }

    /// Binds each listener. `optional`: a listener whose address is taken is skipped with a
    /// warning (the default `http.listeners`, so that two nodes can run on one machine); else
    /// the error is thrown. `ssl`: a listener's `ssl.*` settings, by its name (`https`).
    @discardableResult
    public func start(_ listeners: [Listener], optional: Bool, ssl: (String) -> [String: String] = { _ in [:] }) throws -> [SocketAddress] {
        var bound: [SocketAddress] = []
        let (metrics, health, pool, logger, console) = (self.metrics, self.health, self.pool, self.logger, self.console)
        for listener in listeners {
            var tls: ListenerTLS?
            if listener.name.lowercased() == "https" {
                let made = try ListenerTLS(listener: listener.name, settings: ssl(listener.name))
                self.tls.withLockedValue { $0.append(made) }
                tls = made
            }
            let bootstrap = ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 64)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { [self] channel in
                    guard connections.wrappingAdd(1, ordering: .relaxed).newValue <= Self.connectionsMax else {
                        connections.wrappingSubtract(1, ordering: .relaxed)
                        return channel.close()
                    }
                    channel.closeFuture.whenComplete { [self] _ in connections.wrappingSubtract(1, ordering: .relaxed) }
                    return channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        // The idle timer first: a TLS handshake that never ends is closed too.
                        try sync.addHandler(IdleStateHandler(readTimeout: Self.idle))
                        if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls.context)) }
                        try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                        try sync.addHandler(HTTPRequestHandler(metrics: metrics, health: health, pool: pool, console: console, secure: tls != nil))
                    }
                }
            do {
                let channel = try bootstrap.bind(host: listener.host.isEmpty ? "0.0.0.0" : listener.host, port: listener.port).wait()
                channels.withLockedValue { $0.append(channel) }
                if let address = channel.localAddress { bound.append(address) }
            } catch {
                guard optional else { throw HTTPListenerError(listener: listener, error: error) }
                logger.warning("no HTTP listener (metrics, health) on \(listener.host):\(listener.port): \(error); set http.listeners to serve one elsewhere, or to nothing")
            }
        }
        if !tls.withLockedValue({ $0.isEmpty }) {
            let (stores, logger) = (tls, logger)
            group.next().scheduleRepeatedTask(initialDelay: .seconds(5), delay: .seconds(5)) { _ in
                for store in stores.withLockedValue({ $0 }) { store.reloadIfChanged(logger: logger) }
            }
        }
        return bound
    }

    public func attach(console: Console?) { self.console.withLockedValue { $0 = console } }

    public func shutdown() {
        for channel in channels.withLockedValue({ $0 }) { try? channel.close().wait() }
        try? group.syncShutdownGracefully()
        try? pool.syncShutdownGracefully()
    }
}

public struct HTTPListenerError: Error, CustomStringConvertible {
    let listener: Listener
    let error: any Error
    public var description: String { "cannot listen for HTTP on \(listener.host):\(listener.port) (http.listeners): \(error)" }
}

/// One HTTP connection's requests, answered in order (NIO's pipelining handler holds the next
/// request until the answer before it is written).
final class HTTPRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let metrics: ServerMetrics
    let health: NodeHealth
    let pool: NIOThreadPool
    let console: NIOLockedValueBox<Console?>
    /// Served over TLS: the console's cookie is `Secure`.
    let secure: Bool
    var head: HTTPRequestHead?
    var body: [UInt8] = []
    var bodyBytes = 0

    init(metrics: ServerMetrics, health: NodeHealth, pool: NIOThreadPool, console: NIOLockedValueBox<Console?>, secure: Bool) {
        self.metrics = metrics
        self.health = health
        self.pool = pool
        self.console = console
        self.secure = secure
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            head = request
            body = []
            bodyBytes = 0
        case .body(var bytes):
            bodyBytes += bytes.readableBytes
            if bodyBytes > HTTPListener.bodyBytesMax { return context.close(promise: nil) }
            // Kept only for the API; elsewhere a body is read and dropped.
            if head?.uri.hasPrefix("/api/") == true, let read = bytes.readBytes(length: bytes.readableBytes) { body += read }
        case .end:
            guard let request = head else { return }
            head = nil
            if request.uri.hasPrefix("/api/") { return answerAPI(request, context: context) }
            answer(request, context: context)
        }
    }

    /// Security headers of every console answer: its own scripts and styles only, never framed.
    static let consoleHeaders = [
        ("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
        ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"), ("Cache-Control", "no-store"),
    ]

    func answerAPI(_ request: HTTPRequestHead, context: ChannelHandlerContext) {
        guard let console = console.withLockedValue({ $0 }) else {
            return respond(request, .serviceUnavailable, "application/json", Array(#"{"error":"the console is off or not started yet"}"#.utf8), context: context)
        }
        let method = request.method.rawValue
        guard ["GET", "POST", "PUT", "DELETE"].contains(method) else {
            return respond(request, .methodNotAllowed, "application/json", Array(#"{"error":"GET, POST, PUT or DELETE"}"#.utf8), context: context)
        }
        // A change must say it is JSON: a cross-site form cannot (with the SameSite cookie, no
        // other site can act as the logged-in user).
        if method != "GET", request.headers["Content-Type"].first?.lowercased().hasPrefix("application/json") != true {
            return respond(request, .unsupportedMediaType, "application/json", Array(#"{"error":"send JSON (Content-Type: application/json)"}"#.utf8),
                           context: context)
        }
        guard let call = ConsoleRequest(method: method, uri: request.uri, cookie: request.headers["Cookie"].first, body: body) else {
            return respond(request, .notFound, "application/json", Array(#"{"error":"not found"}"#.utf8), context: context)
        }
        body = []
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let promise = loop.makePromise(of: ConsoleResponse.self)
        promise.completeWithTask { await console.handle(call) }
        let secure = self.secure
        promise.futureResult.whenSuccess { answer in
            let (handler, context) = bound.value
            let headers = answer.headers.map { name, value in (name, secure && name == "Set-Cookie" ? value + "; Secure" : value) }
            handler.respond(request, HTTPResponseStatus(statusCode: answer.status), "application/json", answer.body,
                            extra: Self.consoleHeaders + headers, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }

    func answer(_ request: HTTPRequestHead, context: ChannelHandlerContext) {
        guard request.method == .GET || request.method == .HEAD else {
            return respond(request, .methodNotAllowed, "text/plain; charset=utf-8", Array("only GET and HEAD are served\n".utf8),
                           extra: [("Allow", "GET, HEAD")], context: context)
        }
        let path = request.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? "/"
        switch path {
        case "/metrics":
            let metrics = self.metrics
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            pool.runIfActive(eventLoop: loop) { metrics.render() }.whenComplete { result in
                let (handler, context) = bound.value
                switch result {
                case .success(let body):
                    handler.respond(request, .ok, "text/plain; version=0.0.4; charset=utf-8", body, context: context)
                case .failure:
                    handler.respond(request, .serviceUnavailable, "text/plain; charset=utf-8", Array("stopping\n".utf8), context: context)
                }
            }
        case "/health":
            let stopping = health.isStopping
            respond(request, stopping ? .serviceUnavailable : .ok, "text/plain; charset=utf-8",
                    Array((stopping ? "stopping\n" : "ok\n").utf8), context: context)
        case "/ready":
            let ready = health.isReady
            respond(request, ready ? .ok : .serviceUnavailable, "text/plain; charset=utf-8",
                    Array((ready ? "ready\n" : "not ready\n").utf8), context: context)
        case "/", "/index.html":
            if console.withLockedValue({ $0 }) != nil, let page = ConsoleAssets.files["index.html"] {
                respond(request, .ok, page.type, Array(page.body.utf8), extra: Self.consoleHeaders, context: context)
            } else {
                respond(request, .ok, "text/html; charset=utf-8", Array(Self.index.utf8), context: context)
            }
        case _ where path.hasPrefix("/console/"):
            guard console.withLockedValue({ $0 }) != nil, let asset = ConsoleAssets.files[String(path.dropFirst("/console/".count))] else {
                return respond(request, .notFound, "text/plain; charset=utf-8", Array("not found\n".utf8), context: context)
            }
            respond(request, .ok, asset.type, Array(asset.body.utf8), extra: Self.consoleHeaders, context: context)
        default:
            respond(request, .notFound, "text/plain; charset=utf-8", Array("not found\n".utf8), context: context)
        }
    }

    static let index = """
        <!doctype html>
        <html><head><meta charset="utf-8"><title>Brook</title></head>
        <body><h1>Brook</h1><ul>
        <li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
        <li><a href="/health">/health</a>: 200 while the node runs</li>
        <li><a href="/ready">/ready</a>: 200 while it serves clients</li>
        </ul></body></html>

        """

    func respond(_ request: HTTPRequestHead, _ status: HTTPResponseStatus, _ type: String, _ body: [UInt8],
                 extra: [(String, String)] = [], context: ChannelHandlerContext) {
        var headers = HTTPHeaders([("Content-Type", type), ("Content-Length", String(body.count))] + extra)
        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let keepAlive = request.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}
