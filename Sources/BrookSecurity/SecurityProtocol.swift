/// A listener's security protocol (`listener.security.protocol.map`).
public enum SecurityProtocol: String, CaseIterable, Sendable {
    case plaintext = "PLAINTEXT"
    case ssl = "SSL"
    case saslPlaintext = "SASL_PLAINTEXT"
    case saslSSL = "SASL_SSL"

    /// Kafka's numbers for the protocols (broker registrations carry them).
    public var id: Int16 {
        switch self {
        case .plaintext: 0
        case .ssl: 1
        case .saslPlaintext: 2
        case .saslSSL: 3
        }
    }

    public var usesSASL: Bool { self == .saslPlaintext || self == .saslSSL }
    public var usesTLS: Bool { self == .ssl || self == .saslSSL }
}

/// The SASL mechanisms Brook serves.
public enum SaslMechanism: String, CaseIterable, Sendable {
    case plain = "PLAIN"
    case scramSHA256 = "SCRAM-SHA-256"
    case scramSHA512 = "SCRAM-SHA-512"
    case oauthBearer = "OAUTHBEARER"

    public var scram: ScramMechanism? {
        switch self {
        case .plain, .oauthBearer: nil
        case .scramSHA256: .sha256
        case .scramSHA512: .sha512
        }
    }
}

/// What a listener asks of its connections: its protocol, the SASL mechanisms it enables, the
/// PLAIN users its JAAS config lists, and how a client certificate's subject becomes a
/// principal on an SSL listener.
public struct ListenerSecurity: Sendable, Equatable {
    public var name: String
    public var securityProtocol: SecurityProtocol
    public var mechanisms: [SaslMechanism]
    public var plainUsers: [String: String]
    public var principalMapper: SslPrincipalMapper

    public init(name: String, securityProtocol: SecurityProtocol, mechanisms: [SaslMechanism] = [], plainUsers: [String: String] = [:],
                principalMapper: SslPrincipalMapper = .default) {
        self.name = name
        self.securityProtocol = securityProtocol
        self.mechanisms = mechanisms
        self.plainUsers = plainUsers
        self.principalMapper = principalMapper
    }

    public static let plaintext = ListenerSecurity(name: "PLAINTEXT", securityProtocol: .plaintext)
}
