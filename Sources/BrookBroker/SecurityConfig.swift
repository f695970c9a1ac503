import BrookCluster
import BrookSecurity
import BrookStorage

/// The security settings of a broker's listeners, under Kafka's names:
/// `listener.security.protocol.map` (NAME:PROTOCOL,...), `sasl.enabled.mechanisms` and its
/// per-listener form `listener.name.NAME.sasl.enabled.mechanisms`, PLAIN users in
/// `listener.name.NAME.plain.sasl.jaas.config` (`user_NAME="password"` options),
/// `connection.failed.authentication.delay.ms`, `sasl.server.max.receive.size`.
///
/// A listener named after a protocol (`SASL_PLAINTEXT://...`) has that protocol without a map
/// entry, as in Kafka's default map; a name neither mapped nor a protocol is PLAINTEXT (Kafka
/// refuses to start; Brook's listeners named BROKER or CLIENT in existing configs keep working).
public struct SecurityConfig: Sendable, Equatable {
    public var protocolMap: [String: SecurityProtocol] = [:]
    /// `sasl.enabled.mechanisms` (Kafka's default, GSSAPI, is not served: Brook enables its
    /// SCRAM mechanisms and PLAIN, which is usable once a listener lists PLAIN users).
    public var enabledMechanisms: [SaslMechanism] = [.scramSHA512, .scramSHA256, .plain]
    /// Per listener (upper-case name): mechanisms and PLAIN users.
    public var listenerMechanisms: [String: [SaslMechanism]] = [:]
    public var listenerPlainUsers: [String: [String: String]] = [:]
    /// `connection.failed.authentication.delay.ms`: a connection whose authentication failed
    /// closes this long after its answer.
    public var failedAuthenticationDelayMs: Int64 = 100
    /// `connections.max.reauth.ms` (KIP-368): a SASL session ends this long after its
    /// authentication unless the client re-authenticates; 0 (Kafka's default) never.
    public var reauthenticationMs: Int64 = 0
    /// OAUTHBEARER's token checks: `sasl.oauthbearer.jwks.endpoint.url` (a file: the keys that
    /// sign tokens), `sasl.oauthbearer.expected.issuer` / `.expected.audience`,
    /// `sasl.oauthbearer.sub.claim.name`, `sasl.oauthbearer.clock.skew.seconds`; unsecured
    /// tokens only with Kafka's unsecured validator named in `sasl.server.callback.handler.class`.
    public var oauth = OAuthBearer.Settings()
    static let unsecuredValidator = "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler"
    static let validator = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
    /// Why OAUTHBEARER cannot be served as configured; nil when it can (or is not enabled).
    public var oauthProblem: String? {
        let enabled = enabledMechanisms.contains(.oauthBearer) || listenerMechanisms.values.contains { $0.contains(.oauthBearer) }
        guard enabled, oauth.keys == nil, !oauth.allowUnsecured else { return nil }
        return "OAUTHBEARER needs sasl.oauthbearer.jwks.endpoint.url (the keys that sign tokens), or for development sasl.server.callback.handler.class=\(Self.unsecuredValidator)"
    }
    /// `sasl.server.max.receive.size`: the largest frame taken before authentication.
    public var saslMaxReceiveBytes = 524_288
    /// `ssl.*` settings as given (`ssl.keystore.location`, ...), and per listener
    /// (`listener.name.NAME.ssl.*`, upper-case name), which win. Read by the server, which
    /// loads the keys and certificates (BrookServer's TLS).
    /// `authorizer.class.name` (Kafka's StandardAuthorizer, or Brook's own name for it) with
    /// `super.users` (User:a;User:b) and `allow.everyone.if.no.acl.found` (false): nil without one,
    /// and then every request is allowed, as in Kafka.
    public var authorizer: Authorizer?
    static let authorizerNames: Set<String> = ["org.apache.kafka.metadata.authorizer.StandardAuthorizer", "kafka.security.authorizer.AclAuthorizer", "brook"]
    var superUsers: Set<String> = []
    var allowEveryoneIfNoAclFound = false
    var authorizerEnabled = false
    public var ssl: [String: String] = [:]
    public var listenerSSL: [String: [String: String]] = [:]
    /// The broker's own identity on a SASL listener, for its connections to the other brokers:
    /// the `username` and `password` options of `listener.name.NAME.MECHANISM.sasl.jaas.config`
    /// (Kafka's), by upper-case listener name and mechanism.
    public var listenerLogins: [String: [SaslMechanism: SaslLogin]] = [:]
    /// `sasl.mechanism.inter.broker.protocol`: the mechanism of those connections. Kafka's
    /// default, GSSAPI, is not served: Brook's is PLAIN.
    public var interBrokerMechanism: SaslMechanism = .plain

    /// A user name and password a broker authenticates with.
    public struct SaslLogin: Sendable, Equatable {
        public var user: String
        public var password: String
        public init(user: String, password: String) {
            self.user = user
            self.password = password
        }
    }

    /// The `ssl.*` settings of a listener, without the prefix (`keystore.location`, ...).
    public func ssl(for listener: String) -> [String: String] {
        ssl.merging(listenerSSL[listener.uppercased()] ?? [:]) { $1 }
    }

    public init() {}

    public func securityProtocol(of listener: String) -> SecurityProtocol {
        protocolMap[listener.uppercased()] ?? SecurityProtocol(rawValue: listener.uppercased()) ?? .plaintext
    }

    public func listener(_ name: String) -> ListenerSecurity {
        let key = name.uppercased()
        let protocolUsed = securityProtocol(of: name)
        // Checked when set (a value that does not parse stops the start).
        let rules = ssl(for: name)["principal.mapping.rules"].flatMap { try? SslPrincipalMapper.parse($0) } ?? .default
        guard protocolUsed.usesSASL else { return ListenerSecurity(name: name, securityProtocol: protocolUsed, principalMapper: rules) }
        return ListenerSecurity(name: name, securityProtocol: protocolUsed, mechanisms: listenerMechanisms[key] ?? enabledMechanisms,
                                plainUsers: listenerPlainUsers[key] ?? [:], principalMapper: rules)
    }

    /// Takes `key` if it is a security setting; false if it is not one.
    mutating func set(_ key: String, _ value: String) throws(BrokerConfigError) -> Bool {
        switch key {
        case "listener.security.protocol.map":
            var map: [String: SecurityProtocol] = [:]
            for entry in value.split(separator: ",").map({ $0.trimmed }) where !entry.isEmpty {
                let parts = entry.split(separator: ":", omittingEmptySubsequences: false).map { $0.trimmed }
                guard parts.count == 2, !parts[0].isEmpty, let p = SecurityProtocol(rawValue: parts[1].uppercased()) else {
                    throw .invalid(key, value, "expected NAME:PROTOCOL,... with PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
                }
                map[parts[0].uppercased()] = p
            }
            protocolMap = map
        case "sasl.enabled.mechanisms":
            enabledMechanisms = try Self.mechanisms(key, value)
        case "sasl.mechanism.inter.broker.protocol":
            guard let mechanism = SaslMechanism(rawValue: value.trimmed.uppercased()), mechanism != .oauthBearer else {
                throw .invalid(key, value, "brokers authenticate to each other with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
            }
            interBrokerMechanism = mechanism
        case "authorizer.class.name":
            let name = value.trimmed
            guard name.isEmpty || Self.authorizerNames.contains(name) else {
                throw .invalid(key, value, "expected org.apache.kafka.metadata.authorizer.StandardAuthorizer (or empty for none)")
            }
            authorizerEnabled = !name.isEmpty
            updateAuthorizer()
        case "super.users":
            superUsers = Set(value.split(separator: ";").map { $0.trimmed }.filter { !$0.isEmpty })
            for user in superUsers where !user.contains(":") { throw .invalid(key, value, "expected TYPE:NAME;... (User:admin)") }
            updateAuthorizer()
        case "allow.everyone.if.no.acl.found":
            switch value.trimmed.lowercased() {
            case "true": allowEveryoneIfNoAclFound = true
            case "false": allowEveryoneIfNoAclFound = false
            default: throw .invalid(key, value, "expected true or false")
            }
            updateAuthorizer()
        case "connection.failed.authentication.delay.ms":
            guard let n = Int64(value.trimmed), (0...60_000).contains(n) else { throw .invalid(key, value, "expected 0...60000") }
            failedAuthenticationDelayMs = n
        case "sasl.oauthbearer.jwks.endpoint.url":
            let value = value.trimmed
            guard !value.isEmpty else { oauth.keys = nil; return true }
            guard !value.hasPrefix("http://"), !value.hasPrefix("https://") else {
                throw .invalid(key, value, "Brook reads the key set from a file (file:///path); fetching it over HTTP is not built")
            }
            let path = value.hasPrefix("file://") ? String(value.dropFirst("file://".count)) : value
            guard let text = try? FileSystem.readFile(path) else { throw .invalid(key, value, "cannot read \(path)") }
            do { oauth.keys = try JsonWebKeySet.parse(Array(text.utf8)) } catch { throw .invalid(key, value, error.description) }
        case "sasl.oauthbearer.expected.issuer":
            oauth.expectedIssuer = value.trimmed.isEmpty ? nil : value.trimmed
        case "sasl.oauthbearer.expected.audience":
            oauth.expectedAudience = value.split(separator: ",").map { $0.trimmed }.filter { !$0.isEmpty }
        case "sasl.oauthbearer.sub.claim.name":
            guard !value.trimmed.isEmpty else { throw .invalid(key, value, "a claim name") }
            oauth.subjectClaim = value.trimmed
        case "sasl.oauthbearer.clock.skew.seconds":
            guard let n = Int64(value.trimmed), (0...3600).contains(n) else { throw .invalid(key, value, "expected 0...3600") }
            oauth.clockSkewSeconds = n
        case "sasl.server.callback.handler.class":
            switch value.trimmed {
            case Self.unsecuredValidator: oauth.allowUnsecured = true
            case Self.validator, "": oauth.allowUnsecured = false
            default: throw .invalid(key, value, "Brook serves \(Self.validator) (signed tokens) or \(Self.unsecuredValidator)")
            }
        case "connections.max.reauth.ms":
            guard let n = Int64(value.trimmed), n >= 0, n <= 31_536_000_000 else { throw .invalid(key, value, "expected 0 (off) to a year in ms") }
            reauthenticationMs = n
        case "sasl.server.max.receive.size":
            guard let n = Int(value.trimmed), (1024...104_857_600).contains(n) else { throw .invalid(key, value, "expected 1024...104857600") }
            saslMaxReceiveBytes = n
        case _ where key.hasPrefix("ssl."):
            try Self.checkSSL(key, value)
            ssl[String(key.dropFirst(4))] = value.trimmed
        default:
            guard key.hasPrefix("listener.name.") else { return false }
            let rest = key.dropFirst("listener.name.".count)
            guard let dot = rest.firstIndex(of: ".") else { return false }
            let listener = rest[..<dot].uppercased()
            let setting = rest[rest.index(after: dot)...]
            switch setting {
            case "sasl.enabled.mechanisms":
                listenerMechanisms[listener] = try Self.mechanisms(key, value)
            case "plain.sasl.jaas.config":
                do {
                    let jaas = try JaasConfig.parse(value)
                    listenerPlainUsers[listener] = jaas.plainUsers
                    keepLogin(jaas, listener, .plain)
                } catch {
                    throw .invalid(key, "(hidden)", "\(error)")
                }
            case _ where setting.hasPrefix("ssl."):
                try Self.checkSSL(String(setting), value)
                listenerSSL[listener, default: [:]][String(setting.dropFirst(4))] = value.trimmed
            case "oauthbearer.sasl.server.callback.handler.class":
                return try set("sasl.server.callback.handler.class", value)
            case "oauthbearer.sasl.jaas.config":
                // The broker's OAUTHBEARER login module has no options it uses.
                do { _ = try JaasConfig.parse(value) } catch { throw .invalid(key, "(hidden)", "\(error)") }
            case "scram-sha-256.sasl.jaas.config", "scram-sha-512.sasl.jaas.config":
                // Users are in the metadata log; username and password are the broker's own login.
                do {
                    keepLogin(try JaasConfig.parse(value), listener, setting.hasPrefix("scram-sha-256") ? .scramSHA256 : .scramSHA512)
                } catch {
                    throw .invalid(key, "(hidden)", "\(error)")
                }
            default:
                return false
            }
        }
        return true
    }

    mutating func keepLogin(_ jaas: JaasConfig, _ listener: String, _ mechanism: SaslMechanism) {
        if let user = jaas.options["username"], let password = jaas.options["password"] {
            listenerLogins[listener, default: [:]][mechanism] = SaslLogin(user: user, password: password)
        } else {
            listenerLogins[listener]?[mechanism] = nil
        }
    }

    /// The `ssl.*` settings read here rather than by the server's TLS setup.
    static func checkSSL(_ key: String, _ value: String) throws(BrokerConfigError) {
        guard key.hasSuffix("ssl.principal.mapping.rules") else { return }
        do { _ = try SslPrincipalMapper.parse(value) } catch { throw .invalid(key, value, error.description) }
    }

    mutating func updateAuthorizer() {
        authorizer = authorizerEnabled ? Authorizer(superUsers: superUsers, allowEveryoneIfNoAclFound: allowEveryoneIfNoAclFound) : nil
    }

    static func mechanisms(_ key: String, _ value: String) throws(BrokerConfigError) -> [SaslMechanism] {
        var out: [SaslMechanism] = []
        for name in value.split(separator: ",").map({ $0.trimmed.uppercased() }) where !name.isEmpty {
            guard let mechanism = SaslMechanism(rawValue: name) else {
                throw .invalid(key, value, "\(name) is not served; Brook serves \(SaslMechanism.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if !out.contains(mechanism) { out.append(mechanism) }
        }
        return out
    }
}
