import BrookBroker
import Logging
import NIOCore
import NIOPosix
import NIOSSL

extension BrookServer {
    /// Binds `mqtt.listeners` (after reading the retained messages), sharing the event loops and
    /// the connection limits with the Kafka listeners. Returns the bound addresses.
    func startMQTT() throws -> [SocketAddress] {
        let listeners = broker.config.mqtt.listeners
        guard !listeners.isEmpty else { return [] }
        let gateway = try MQTTGateway(broker: broker, loop: group.next(), logger: logger,
                                      peers: peers.map { PeerRequests(broker: broker, peers: $0, clientID: "brook-mqtt-\(broker.config.nodeID)") })
        gateway.loadRetained()
        gateway.loadSessions()
        gateway.startRouting()
        mqtt.withLockedValue { $0 = gateway }
        metrics?.attach(mqtt: gateway)
        let limits = self.limits
        let logger = gateway.logger
        var bound: [SocketAddress] = []
        for listener in listeners {
            let webSocket = MQTTWebSocket.isWebSocket(listener)
            var tls: ListenerTLS?
            // A TLS client's certificate names its principal, mapped as on a Kafka SSL listener.
            let mapper = MQTTWebSocket.usesTLS(listener) ? broker.config.security.listener(listener.name).principalMapper : nil
            if MQTTWebSocket.usesTLS(listener) {
                let made = try ListenerTLS(listener: listener.name, settings: broker.config.security.ssl(for: listener.name))
                tlsListeners.withLockedValue { $0.append(made) }
                tls = made
            }
            let bootstrap = Self.bootstrap(group: group, limits: limits, logger: logger, writeBuffer: .init(low: 64 * 1024, high: 256 * 1024)) { [tls] channel in
                do {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.context)) }
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
                guard webSocket else {
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(MQTTConnection(gateway: gateway, logger: logger, certificateMapper: mapper))
                    }
                }
                return MQTTWebSocket.configure(channel, frameBytesMax: gateway.settings.packetBytesMax + 16,
                                               upgradeTimeout: .milliseconds(gateway.settings.connectTimeoutMs)) {
                    MQTTConnection(gateway: gateway, logger: logger, certificateMapper: mapper)
                }
            }
            let channel = try bootstrap.bind(host: listener.host.isEmpty ? "0.0.0.0" : listener.host, port: listener.port).wait()
            channels.withLockedValue { $0.append(channel) }
            if let address = channel.localAddress { bound.append(address) }
        }
        logger.info("MQTT served on \(bound.map { "\($0)" }.joined(separator: ", ")); messages land in \(gateway.mapping.kafkaTopics.joined(separator: ", "))")
        return bound
    }
}
