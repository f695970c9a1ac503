import BrookSecurity
import NIOCore

/// Why a waiting request ended without an answer: its connection closed first.
public struct ConnectionClosed: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "the connection closed while the request waited" }
}

/// What one client connection has waiting in the broker (parked fetches today): each waiting
/// thing registers how to cancel itself, and the connection cancels them all when it closes,
/// so nothing a client left behind outlives it. Touched only on the connection's event loop.
///
/// It also holds who the client is: the listener's security and, on a SASL listener, where the
/// authentication stands and the principal it gave.
public final class ConnectionScope: @unchecked Sendable {
    public let eventLoop: any EventLoop
    private var cancels: [Int: () -> Void] = [:]
    private var nextToken = 0
    public private(set) var isClosed = false
    public let listener: ListenerSecurity
    /// Where the SASL exchange stands (`.none` on listeners without SASL).
    var authentication: Authentication
    /// Kafka's principal: `User:NAME` once authenticated (or from a client certificate on an SSL
    /// listener), `User:ANONYMOUS` otherwise.
    public private(set) var principal = "User:ANONYMOUS"

    enum Authentication {
        case none
        case awaitingHandshake
        case handshaken(SaslMechanism)
        case scram(ScramServerExchange)
        case authenticated
        case failed
    }

    public init(eventLoop: any EventLoop, listener: ListenerSecurity = .plaintext) {
        self.eventLoop = eventLoop
        self.listener = listener
        authentication = listener.securityProtocol.usesSASL ? .awaitingHandshake : .none
    }

    /// True while the listener asks for authentication that has not happened yet: only
    /// ApiVersions, SaslHandshake and SaslAuthenticate are served, in small frames.
    public var awaitsAuthentication: Bool {
        switch authentication {
        case .none, .authenticated: false
        default: true
        }
    }

    func authenticated(as user: String) {
        eventLoop.preconditionInEventLoop()
        authentication = .authenticated
        principal = "User:" + user
    }

    /// On an SSL listener, the principal a client certificate gives: `User:` and its subject as
    /// `ssl.principal.mapping.rules` map it. On SASL_SSL the SASL exchange names the principal.
    public func identified(byCertificate name: String) {
        eventLoop.preconditionInEventLoop()
        guard case .none = authentication else { return }
        principal = "User:" + name
    }

    /// How many waiting things the connection holds.
    public var waitingCount: Int {
        eventLoop.preconditionInEventLoop()
        return cancels.count
    }

    /// Registers `cancel`, run once if the connection closes first; nil when it has closed already
    /// (the caller then cancels at once).
    func register(_ cancel: @escaping () -> Void) -> Int? {
        eventLoop.preconditionInEventLoop()
        guard !isClosed else { return nil }
        nextToken += 1
        cancels[nextToken] = cancel
        return nextToken
    }

    func unregister(_ token: Int) {
        eventLoop.preconditionInEventLoop()
        cancels[token] = nil
    }

    /// Cancels everything still waiting; later registrations are refused.
    public func close() {
        eventLoop.preconditionInEventLoop()
        guard !isClosed else { return }
        isClosed = true
        let pending = cancels
        cancels.removeAll()
        for (_, cancel) in pending.sorted(by: { $0.key < $1.key }) { cancel() }
    }
}
