import BrookBroker
import BrookClient
import BrookSecurity
import Foundation
import Logging
import NIOConcurrencyHelpers

/// The web console's server side: a JSON API (ConsoleAPI) over a Kafka client of the whole
/// cluster (ClusterClient), reached through this broker's inter-broker listener with that
/// listener's security. On a SASL listener the console asks for a login and acts as that user,
/// so the brokers' own authentication and ACLs decide what it may see and do; elsewhere it acts
/// as whatever that listener makes of it (ANONYMOUS, or this broker's certificate), and with an
/// authorizer on it is then read-only. `console.read.only` makes it read-only anyway.
public final class Console: Sendable {
    struct Session: Sendable {
        let user: String
        let client: ClusterClient
        var lastUsedNs: UInt64
        /// When its OAUTHBEARER token expires (ms since 1970): the session ends with it.
        var expiresAtMs: Int64 = .max
    }

    let node: Int32
    let clusterID: String
    let bootstrap: String
    let tls: ClientTLS?
    /// The SASL mechanism a login uses; nil when the listener has no SASL (no login).
    let mechanism: SaslMechanism?
    /// The claim that names a token's user (`sasl.oauthbearer.sub.claim.name`).
    let subjectClaim: String
    let readOnlyReason: String?
    let logger: Logger
    let sessions = NIOLockedValueBox<[String: Session]>([:])
    /// The client when no login is asked for, made on first use.
    let shared: ClusterClient?

    static let sessionsMax = 1000
    static let sessionIdleNs: UInt64 = 3600 * 1_000_000_000
    static let cookie = "brook_session"

    /// nil (with the reason logged) when the inter-broker listener cannot be used by the console.
    public static func make(config: BrokerConfig, clusterID: String, logger: Logger) -> Console? {
        guard config.consoleEnable else { return nil }
        do { return try Console(config: config, clusterID: clusterID, logger: logger) } catch {
            logger.warning("no web console: \(error)")
            return nil
        }
    }

    init(config: BrokerConfig, clusterID: String, logger: Logger) throws {
        node = config.nodeID.value
        self.clusterID = clusterID
        self.logger = logger
        let listener = config.interBrokerListener
        let endpoint = config.advertised(named: listener)
        bootstrap = endpoint.host.contains(":") ? "[\(endpoint.host)]:\(endpoint.port)" : "\(endpoint.host):\(endpoint.port)"
        let security = config.security
        let used = security.securityProtocol(of: listener)
        tls = used.usesTLS
            ? ClientTLS(context: try ListenerTLS(listener: listener, settings: security.ssl(for: listener), client: true).context)
            : nil
        if used.usesSASL {
            // A password when the listener takes one, else a bearer token.
            let enabled = security.listener(listener).mechanisms
            guard let chosen = [SaslMechanism.scramSHA512, .scramSHA256, .plain, .oauthBearer].first(where: enabled.contains) else {
                throw ListenerConfigError(listener, "the console logs in with PLAIN, SCRAM or OAUTHBEARER, none of which this listener enables")
            }
            mechanism = chosen
        } else {
            mechanism = nil
        }
        subjectClaim = security.oauth.subjectClaim
        if config.consoleReadOnly {
            readOnlyReason = "console.read.only=true"
        } else if mechanism == nil && security.authorizer != nil {
            readOnlyReason = "an authorizer is on and listener \(listener) has no SASL login for the console to act as its user"
        } else {
            readOnlyReason = nil
        }
        let (address, tls) = (bootstrap, tls)
        shared = mechanism == nil
            ? ClusterClient(bootstrap: [address]) { target in
                try await BrokerConnection.connect(target, clientID: "brook-console", timeoutMs: 5000, tls: tls)
            }
            : nil
    }

    /// Kafka's admin calls over `client`'s connections, each given 10 s (a page waits no longer).
    func admin(_ client: ClusterClient) -> KafkaAdmin {
        var config = AdminConfig(bootstrapServers: [bootstrap])
        config.clientID = "brook-console"
        config.apiTimeoutMs = 10_000
        return KafkaAdmin(config, cluster: client)
    }

    /// A logged-in user's client, by its cookie's token (idle sessions end after an hour).
    /// A session idle too long or whose token expired ends here: its connections are closed.
    func session(_ token: String?) -> Session? {
        guard let token else { return nil }
        let now = DispatchTime.now().uptimeNanoseconds
        let (found, ended): (Session?, Session?) = sessions.withLockedValue { table in
            guard var found = table[token] else { return (nil, nil) }
            guard Self.isLive(found, now: now) else {
                table[token] = nil
                return (nil, found)
            }
            found.lastUsedNs = now
            table[token] = found
            return (found, nil)
        }
        if let ended { Task { await ended.client.close() } }
        return found
    }

    static func isLive(_ session: Session, now: UInt64) -> Bool {
        now - session.lastUsedNs < sessionIdleNs && session.expiresAtMs > wallMs()
    }

    static func wallMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Logs a user in by opening a SASL connection as them (with their password, or their
    /// bearer token on an OAUTHBEARER listener); returns who they are and the session's token.
    func login(_ given: Login) async throws -> (user: String, token: String) {
        guard let mechanism else { throw ConsoleError(400, "this console has no login: its listener has no SASL") }
        let credentials: SaslCredentials
        let user: String
        var expiresAtMs = Int64.max
        if mechanism == .oauthBearer {
            guard let bearer = given.token?.trimmingCharacters(in: .whitespacesAndNewlines), !bearer.isEmpty,
                  bearer.utf8.count <= OAuthBearer.messageBytesMax else {
                throw ConsoleError(400, "this console logs in with a bearer token (OAUTHBEARER)")
            }
            // Who the token names, for the page (the broker checks the token itself below).
            guard let subject = OAuthBearer.unverifiedSubject(of: bearer, claim: subjectClaim) else { throw ConsoleError(401, "login failed") }
            (user, expiresAtMs) = subject
            credentials = .oauthBearer(token: bearer, user: user)
        } else {
            guard let name = given.user, let password = given.password else { throw ConsoleError(400, "a login takes a user and a password") }
            user = name
            credentials = SaslCredentials(mechanism: mechanism, user: name, password: password)
        }
        let token = try await open(credentials, user: user, expiresAtMs: expiresAtMs)
        return (user, token)
    }

    func open(_ credentials: SaslCredentials, user: String, expiresAtMs: Int64) async throws -> String {
        let (address, tls) = (bootstrap, tls)
        let client = ClusterClient(bootstrap: [address]) { target in
            try await BrokerConnection.connect(target, clientID: "brook-console", timeoutMs: 5000, sasl: credentials, tls: tls)
        }
        do { _ = try await client.metadata(topics: []) } catch {
            await client.close()
            logger.info("console login of \(user) refused: \(error)")
            throw ConsoleError(401, "login failed")
        }
        var generator = SystemRandomNumberGenerator()
        let token = (0..<4).map { _ in String(format: "%016llx", generator.next() as UInt64) }.joined()
        let now = DispatchTime.now().uptimeNanoseconds
        let evicted: [Session] = sessions.withLockedValue { table in
            var gone: [Session] = []
            for (key, old) in table where !Self.isLive(old, now: now) { gone.append(old); table[key] = nil }
            if table.count >= Self.sessionsMax, let oldest = table.min(by: { $0.value.lastUsedNs < $1.value.lastUsedNs }) {
                gone.append(oldest.value)
                table[oldest.key] = nil
            }
            table[token] = Session(user: user, client: client, lastUsedNs: now, expiresAtMs: expiresAtMs)
            return gone
        }
        for old in evicted { await old.client.close() }
        return token
    }

    func logout(_ token: String?) async {
        guard let token, let gone = sessions.withLockedValue({ $0.removeValue(forKey: token) }) else { return }
        await gone.client.close()
    }

    public func shutdown() async {
        let all = sessions.withLockedValue { table in
            defer { table.removeAll() }
            return Array(table.values)
        }
        for session in all { await session.client.close() }
        await shared?.close()
    }
}

/// An API answer other than 200: the HTTP status and a message for the page.
struct ConsoleError: Error, CustomStringConvertible {
    let status: Int
    let description: String
    init(_ status: Int, _ description: String) {
        self.status = status
        self.description = description
    }
}
