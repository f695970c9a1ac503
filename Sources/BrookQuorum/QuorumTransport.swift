import NIOCore

/// What goes under the quorum's frames on a connection: nothing (PLAINTEXT), or TLS handlers made
/// by whoever holds the keys (`brook serve` builds them from the controller listener's `ssl.*`
/// settings; the tools from `--command-config`). The quorum module itself has no TLS library.
///
/// `server` secures a connection a controller accepted; `client` one this node opened to
/// `host` (a controller's address in `controller.quorum.voters`). Each runs on the channel's
/// event loop before the framing handlers are added; a throw closes the connection.
public struct QuorumTransport: Sendable {
    public var server: (@Sendable (Channel) throws -> Void)?
    public var client: (@Sendable (Channel, _ host: String) throws -> Void)?

    public init(server: (@Sendable (Channel) throws -> Void)? = nil, client: (@Sendable (Channel, _ host: String) throws -> Void)? = nil) {
        self.server = server
        self.client = client
    }

    public static let plaintext = QuorumTransport()

    func secureAccepted(_ channel: Channel) throws { try server?(channel) }
    func secureOpened(_ channel: Channel, host: String) throws { try client?(channel, host) }
}
