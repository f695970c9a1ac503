import BrookBroker
import BrookClient
import BrookQuorum
import BrookSecurity
import NIOCore
import NIOSSL

/// How this broker reaches the other brokers (replica fetches, transaction markers): their
/// endpoint of `inter.broker.listener.name`, with that listener's security as a client, as
/// Kafka does. TLS: the listener's trust store checks the other's certificate, its key store is
/// this broker's certificate (mTLS). SASL: `sasl.mechanism.inter.broker.protocol` with the
/// `username` and `password` of the listener's `MECHANISM.sasl.jaas.config`.
public struct InterBrokerClient: Sendable {
    public let listener: String
    let tls: ListenerTLS?
    let sasl: SaslCredentials?
    /// The TLS files to watch for renewed certificates.
    public var files: TLSFiles { TLSFiles(tls.map { [$0] } ?? []) }
    /// Why this broker cannot reach the others, for a node that has none (`alone`).
    let problem: String?

    /// Settings that cannot be used stop the start, with what is wrong; `alone` (a single node,
    /// with no other broker to reach): they are said when a connection is tried.
    public init(config: BrokerConfig, alone: Bool = false) throws {
        do {
            self = try InterBrokerClient(checking: config)
        } catch where alone {
            listener = config.interBrokerListener
            tls = nil
            sasl = nil
            problem = "\(error)"
        }
    }

    init(checking config: BrokerConfig) throws {
        problem = nil
        listener = config.interBrokerListener
        let security = config.security
        let used = security.securityProtocol(of: listener)
        if used.usesTLS {
            tls = try ListenerTLS(listener: listener, settings: security.ssl(for: listener), client: true)
        } else {
            tls = nil
        }
        if used.usesSASL {
            let mechanism = security.interBrokerMechanism
            guard security.listener(listener).mechanisms.contains(mechanism) else {
                throw ListenerConfigError(listener, "sasl.mechanism.inter.broker.protocol=\(mechanism.rawValue) is not enabled on the inter-broker listener")
            }
            guard let login = security.listenerLogins[listener.uppercased()]?[mechanism] else {
                throw ListenerConfigError(listener, "listener.name.\(listener.lowercased()).\(mechanism.rawValue.lowercased()).sasl.jaas.config needs username and password: the broker's own login to the other brokers")
            }
            sasl = SaslCredentials(mechanism: mechanism, user: login.user, password: login.password)
        } else {
            sasl = nil
        }
    }

    public func connect(_ address: String, clientID: String, timeoutMs: Int64) async throws -> BrokerConnection {
        if let problem { throw ClientError(problem) }
        return try await BrokerConnection.connect(address, clientID: clientID, timeoutMs: timeoutMs, sasl: sasl,
                                                  tls: tls.map { ClientTLS(context: $0.context) })
    }
}

/// TLS on the quorum's connections when the controller listener (the first of
/// `controller.listener.names`) is SSL in `listener.security.protocol.map`, from that
/// listener's `ssl.*` settings (`listener.name.controller.ssl.*`): a controller serves with its
/// key store and, with `ssl.client.auth=required`, takes only peers and brokers whose
/// certificates its trust store signs (mTLS: the quorum has no SASL); every node connects as a
/// client with the same settings. PLAINTEXT otherwise (SASL there stops the start:
/// BrokerConfig's checks).
public enum ControllerTransport {
    /// `serving`: this node is a controller (the server side needs its key store). With the
    /// transport, the TLS files to watch for renewed certificates.
    public static func make(_ config: BrokerConfig, serving: Bool) throws -> (QuorumTransport, TLSFiles) {
        guard let name = config.controllerListenerNames.first, config.security.securityProtocol(of: name).usesTLS else {
            return (.plaintext, .none)
        }
        let settings = config.security.ssl(for: name)
        let client = try ListenerTLS(listener: name, settings: settings, client: true)
        let opened: @Sendable (Channel, String) throws -> Void = { channel, host in
            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: client.context, serverHostname: ClientTLS.serverName(host)))
        }
        guard serving else { return (QuorumTransport(client: opened), TLSFiles([client])) }
        let server = try ListenerTLS(listener: name, settings: settings)
        let transport = QuorumTransport(server: { channel in try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: server.context)) },
                                        client: opened)
        return (transport, TLSFiles([server, client]))
    }
}
