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

    /// Requests the broker makes of itself in process (the MQTT side's writes and reads, which
    /// checks its clients' ACLs itself): every one allowed.
    public let isBroker: Bool

    public init(eventLoop: any EventLoop, listener: ListenerSecurity = .plaintext, isBroker: Bool = false) {
        self.eventLoop = eventLoop
        self.listener = listener
        self.isBroker = isBroker
        authentication = listener.securityProtocol.usesSASL ? .awaitingHandshake : .none
    }

    /// The mechanism of the first authentication; a re-authentication must use it again.
    public private(set) var mechanism: SaslMechanism?
    /// When the session ends (`connections.max.reauth.ms` after the last authentication, KIP-368):
    /// after it, anything but a re-authentication closes the connection. nil: no end.
    public private(set) var sessionExpiresAtMs: Int64?

    /// True while the listener asks for authentication that has not happened yet: only
    /// ApiVersions, SaslHandshake and SaslAuthenticate are served, in small frames. A
    /// re-authentication under way does not stop other requests (served as the principal
    /// authenticated before).
    public var awaitsAuthentication: Bool {
        switch authentication {
        case .none, .authenticated: false
        default: mechanism == nil
        }
    }

    /// Whether a session that had an end has passed it.
    public func sessionExpired(nowMs: Int64) -> Bool {
        sessionExpiresAtMs.map { nowMs >= $0 } ?? false
    }

    /// The exchange succeeded for `user`. A re-authentication must name the same principal with
    /// the same mechanism (false, and the caller refuses it, as Kafka does); `lifetimeMs` > 0
    /// ends the new session that long from `nowMs`.
    func authenticated(as user: String, with mechanism: SaslMechanism, nowMs: Int64, lifetimeMs: Int64) -> Bool {
        eventLoop.preconditionInEventLoop()
        if self.mechanism != nil {
            guard "User:" + user == principal, mechanism == self.mechanism else { return false }
        }
        authentication = .authenticated
        principal = "User:" + user
        self.mechanism = mechanism
        sessionExpiresAtMs = lifetimeMs > 0 ? nowMs + lifetimeMs : nil
        return true
    }

    /// On an SSL listener, the principal a client certificate gives: `User:` and its subject as
    /// `ssl.principal.mapping.rules` map it. On SASL_SSL the SASL exchange names the principal.
    public func identified(byCertificate name: String) {
        eventLoop.preconditionInEventLoop()
        guard case .none = authentication else { return }
        principal = "User:" + name
    }

    /// How long the connection is not to be read once its next response is out (a client quota's
    /// throttle, KIP-219); taken by the server.
    public private(set) var throttledMs: Int64 = 0

    func throttle(_ ms: Int64) {
        eventLoop.preconditionInEventLoop()
        throttledMs = max(throttledMs, ms)
    }

    /// The throttle to apply now, cleared.
    public func takeThrottle() -> Int64 {
        eventLoop.preconditionInEventLoop()
        defer { throttledMs = 0 }
        return throttledMs
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
