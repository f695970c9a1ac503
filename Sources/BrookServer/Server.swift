import BrookBroker
import BrookCore
import BrookProtocol
import Logging
import NIOCore
import NIOConcurrencyHelpers
import NIOPosix
import NIOSSL

/// The broker on SwiftNIO: one listener per `listeners` entry, an event loop per core, and a
/// maintenance thread for flushes, retention and compaction.
public final class BrookServer: Sendable {
    public let broker: Broker
    let group: MultiThreadedEventLoopGroup
    let maintenance: NIOThreadPool
    let memory: RequestMemory
    let logger: Logger
    let channels = NIOLockedValueBox<[any Channel]>([])
    let maintenanceTask = NIOLockedValueBox<RepeatedTask?>(nil)
    let groupTimerTask = NIOLockedValueBox<RepeatedTask?>(nil)
    /// The TLS listeners' contexts, checked for renewed files every few seconds.
    let tlsListeners = NIOLockedValueBox<[ListenerTLS]>([])
    let tlsReloadTask = NIOLockedValueBox<RepeatedTask?>(nil)
    let limits: ConnectionLimits
    /// The MQTT side, when `mqtt.listeners` names a listener.
    let mqtt = NIOLockedValueBox<MQTTGateway?>(nil)
    /// Requests and connections counted, when the node keeps metrics.
    let metrics: ServerMetrics?
    /// How this node reaches the other brokers of its cluster (the MQTT side's writes and reads
    /// of partitions they lead); nil for a node on its own.
    let peers: InterBrokerClient?
    /// Spans for sampled Produce and Fetch requests (tracing.*), when configured.
    let tracing: RequestTracing?
    static let tlsReloadCheck = TimeAmount.seconds(5)

    /// `threads`: the event loops (`num.network.threads`); nil: one per core.
    public init(broker: Broker, threads: Int? = nil, logger: Logger, metrics: ServerMetrics? = nil, tracing: RequestTracing? = nil,
                peers: InterBrokerClient? = nil) {
        self.broker = broker
        self.tracing = tracing
        self.peers = peers
        self.logger = logger
        self.metrics = metrics
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads ?? System.coreCount))
        maintenance = NIOThreadPool(numberOfThreads: 1)
        memory = RequestMemory(bytesMax: broker.config.queuedMaxRequestBytes)
        limits = ConnectionLimits(config: broker.config)
        metrics?.attach(memory: memory)
    }

    /// Loads every TLS listener's key store and trust store, to refuse unusable settings before
    /// anything starts.
    public static func checkListeners(_ config: BrokerConfig) throws {
        for listener in config.clientListeners where config.security.securityProtocol(of: listener.name).usesTLS {
            _ = try ListenerTLS(listener: listener.name, settings: config.security.ssl(for: listener.name))
        }
        for listener in config.mqtt.listeners where MQTTWebSocket.usesTLS(listener) {
            _ = try ListenerTLS(listener: listener.name, settings: config.security.ssl(for: listener.name))
        }
    }

    /// Binds every listener; returns the bound addresses (port 0 becomes the real port).
    @discardableResult
    public func start() throws -> [SocketAddress] {
        maintenance.start()
        let broker = self.broker
        let memory = self.memory
        let logger = self.logger
        let limits = self.limits
        var bound: [SocketAddress] = []
        for listener in broker.config.clientListeners {
            let security = broker.config.security.listener(listener.name)
            if security.mechanisms.contains(.plain) && security.plainUsers.isEmpty && security.securityProtocol.usesSASL {
                logger.info("listener \(listener.name): PLAIN is enabled but listener.name.\(listener.name.lowercased()).plain.sasl.jaas.config lists no users")
            }
            var settings = ConnectionHandler.Settings(frameBytesMax: broker.config.socketRequestMaxBytes,
                                                      idleMs: broker.config.connectionsMaxIdleMs,
                                                      frameReceiveMs: broker.config.requestReceiveTimeoutMs)
            settings.listener = security
            settings.frameBytesBeforeAuthenticationMax = broker.config.security.saslMaxReceiveBytes
            settings.failedAuthenticationCloseDelayMs = broker.config.security.failedAuthenticationDelayMs
            settings.requests = metrics?.requests
            settings.slowRequestMs = broker.config.slowRequestLogMs
            settings.tracing = tracing
            settings.connections = metrics?.listener(listener.name)
            var tls: ListenerTLS?
            if security.securityProtocol.usesTLS {
                let made = try ListenerTLS(listener: listener.name, settings: broker.config.security.ssl(for: listener.name))
                tlsListeners.withLockedValue { $0.append(made) }
                tls = made
                // Record bytes cannot go from the file to the socket (sendfile) through TLS:
                // they are read into the response and encrypted.
                settings.zeroCopy = false
            }
            let bootstrap = Self.bootstrap(group: group, limits: limits, logger: logger,
                                           writeBuffer: .init(low: 256 * 1024, high: 1024 * 1024)) { [settings] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.context)) }
                    try channel.pipeline.syncOperations.addHandler(ConnectionHandler(broker: broker, memory: memory, logger: logger, settings: settings))
                }
            }
            // An empty host is every interface, as in Kafka (`PLAINTEXT://:9092`).
            let channel = try bootstrap.bind(host: listener.host.isEmpty ? "0.0.0.0" : listener.host, port: listener.port).wait()
            channels.withLockedValue { $0.append(channel) }
            if let address = channel.localAddress { bound.append(address) }
        }
        bound += try startMQTT()
        scheduleMaintenance()
        let tlsToCheck = tlsListeners.withLockedValue { $0 }
        if !tlsToCheck.isEmpty {
            let task = group.next().scheduleRepeatedTask(initialDelay: Self.tlsReloadCheck, delay: Self.tlsReloadCheck) { _ in
                for tls in tlsToCheck { tls.reloadIfChanged(logger: logger) }
            }
            tlsReloadTask.withLockedValue { $0 = task }
        }
        return bound
    }

    /// A listener's bootstrap: accepting pauses at the open-file limit; each connection is
    /// admitted by the connection limits (`max.connections`, per IP) before `child` sets it up.
    static func bootstrap(group: MultiThreadedEventLoopGroup, limits: ConnectionLimits, logger: Logger, writeBuffer: ChannelOptions.Types.WriteBufferWaterMark,
                          child: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // At the open-file limit accept fails at once, over and over: without a pause the
            // listener spins a core (found in issue 14). Accepting pauses for a second instead.
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptPause(logger: logger))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.autoRead, value: true)
            .childChannelOption(.writeBufferWaterMark, value: writeBuffer)
            .childChannelInitializer { channel in
                let ip = channel.remoteAddress?.ipAddress ?? "?"
                if let refused = limits.admit(ip) {
                    ConnectionLimits.refusals.warn(logger, "closing a connection from \(ip) as it is accepted: \(refused)")
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in limits.release(ip) }
                return child(channel)
            }
    }

    func scheduleMaintenance() {
        let broker = self.broker
        let pool = maintenance
        let interval = broker.config.retentionCheckIntervalMs
        let lastRetention = NIOLockedValueBox<Int64>(broker.clock.now().ms)
        let running = NIOLockedValueBox(false)
        let task = group.next().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            // One pass at a time, off the event loops (compaction may take a while).
            guard running.withLockedValue({ busy in defer { busy = true }; return !busy }) else { return }
            pool.submit { _ in
                let now = broker.clock.now().ms
                let due = lastRetention.withLockedValue { last in
                    guard now - last >= interval else { return false }
                    last = now
                    return true
                }
                broker.runMaintenance(retention: due)
                running.withLockedValue { $0 = false }
            }
        }
        // The group coordinator's timers (sessions, join and sync deadlines, offset expiry).
        let groups = broker.groups
        let groupTask = group.next().scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { _ in
            groups.tick()
        }
        maintenanceTask.withLockedValue { $0 = task }
        groupTimerTask.withLockedValue { $0 = groupTask }
    }

    /// Ends the MQTT clients' connections, their persistent sessions saved (a shutdown's first
    /// step, while this broker still leads its partitions).
    public func endMQTTClients() {
        mqtt.withLockedValue { $0 }?.shutDown()
    }

    /// Stops listening, closes connections, and closes every log cleanly.
    public func shutdown() {
        maintenanceTask.withLockedValue { $0?.cancel() }
        groupTimerTask.withLockedValue { $0?.cancel() }
        tlsReloadTask.withLockedValue { $0?.cancel() }
        mqtt.withLockedValue { $0 }?.shutDown()
        for channel in channels.withLockedValue({ $0 }) { try? channel.close().wait() }
        try? group.syncShutdownGracefully()
        try? maintenance.syncShutdownGracefully()
        broker.shutdown()
    }
}

/// Pauses accepting for a second when accept fails (EMFILE and friends), by turning the
/// listener's autoRead off, which takes it out of the poll set. (NIO's AcceptBackoffHandler holds
/// back the next read, but a read still pending after the failed accept leaves the socket
/// polled, and the event loop spins.) Says why, rate-limited.
final class AcceptPause: ChannelInboundHandler {
    typealias InboundIn = any Channel
    static let pause = TimeAmount.seconds(1)
    let logger: Logger
    var paused = false

    init(logger: Logger) { self.logger = logger }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is IOError else { return context.fireErrorCaught(error) }
        ConnectionHandler.warnings.warn(logger, "accepting connections paused for 1 s: \(error) (at the open-file limit? raise ulimit -n)")
        guard !paused else { return }
        paused = true
        let channel = context.channel
        channel.setOption(.autoRead, value: false).whenComplete { _ in
            let handler = NIOLoopBound(self, eventLoop: channel.eventLoop)
            channel.eventLoop.scheduleTask(in: Self.pause) {
                handler.value.paused = false
                channel.setOption(.autoRead, value: true).whenComplete { _ in }
            }
        }
    }
}
