import ArgumentParser
import BrookClient
import BrookBroker
import BrookCore
import BrookProtocol
import BrookSecurity
import Foundation

struct ClientOptions: ParsableArguments {
    @Option(name: .customLong("bootstrap-server"), help: "The broker to talk to, host:port.")
    var bootstrapServer = "127.0.0.1:9092"

    @Option(name: .customLong("command-config"),
            help: "A client properties file, as Kafka's tools take: security.protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), sasl.mechanism and sasl.jaas.config with username and password, ssl.truststore.location and ssl.keystore.location (PEM).")
    var commandConfig: String?

    func connect() async throws -> BrokerConnection { try await connect(to: bootstrapServer) }

    /// A connection to `address` (another broker of the cluster) with the same settings.
    func connect(to address: String, clientID: String = "brook-cli") async throws -> BrokerConnection {
        let settings = try commandSettings()
        let sasl = try credentials(settings)
        let tls = try tlsSettings(settings)
        do { return try await BrokerConnection.connect(address, clientID: clientID, sasl: sasl, tls: tls) } catch { throw CommandFailure("\(error)") }
    }

    /// The admin client the tools use: the bootstrap server with `--command-config`'s security,
    /// each call tried again after a passing failure for `default.api.timeout.ms` (10 s unless
    /// the properties say otherwise: a tool fails readably rather than wait a minute).
    func admin(clientID: String = "brook-cli") throws -> KafkaAdmin {
        let settings = try commandSettings()
        let servers = bootstrapServer.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !servers.isEmpty else { throw ValidationError("--bootstrap-server takes host:port[,host:port]") }
        var config = AdminConfig(bootstrapServers: servers)
        config.clientID = clientID
        config.apiTimeoutMs = 10_000
        if let text = settings["default.api.timeout.ms"] {
            guard let ms = Int64(text), ms > 0 else { throw ValidationError("default.api.timeout.ms=\(text): expected a number of ms") }
            config.apiTimeoutMs = ms
        }
        return KafkaAdmin(config, sasl: try credentials(settings), tls: try tlsSettings(settings))
    }

    /// The settings of `--command-config` (none without it).
    func commandSettings() throws -> [String: String] { try ClientProperties.read(commandConfig) }
    func securityProtocol(_ settings: [String: String]) throws -> SecurityProtocol { try ClientProperties.securityProtocol(settings) }
    func tlsSettings(_ settings: [String: String]) throws -> ClientTLS? { try ClientProperties.tls(settings) }
    func credentials(_ settings: [String: String]) throws -> SaslCredentials? { try ClientProperties.credentials(settings) }
}

/// A client properties file as Kafka's tools take it (`--command-config`).
enum ClientProperties {
    static func read(_ path: String?) throws -> [String: String] {
        guard let path else { return [:] }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("cannot read --command-config \(path)")
        }
        return Dictionary(BrokerConfig.readProperties(text), uniquingKeysWith: { $1 })
    }

    static func securityProtocol(_ settings: [String: String]) throws -> SecurityProtocol {
        let protocolName = settings["security.protocol"]?.uppercased() ?? "PLAINTEXT"
        guard let securityProtocol = SecurityProtocol(rawValue: protocolName) else { throw ValidationError("unknown security.protocol \(protocolName)") }
        return securityProtocol
    }

    /// TLS as Kafka's client properties give it, if security.protocol uses it: PEM trust and key
    /// stores (`ssl.truststore.location`, `ssl.keystore.location` with `ssl.key.password`),
    /// `ssl.endpoint.identification.algorithm`.
    static func tls(_ settings: [String: String]) throws -> ClientTLS? {
        guard try securityProtocol(settings).usesTLS else { return nil }
        for key in ["ssl.truststore.type", "ssl.keystore.type"] {
            if let type = settings[key], type.uppercased() != "PEM" { throw ValidationError("\(key)=\(type): brook's tools read PEM files") }
        }
        var tls = ClientTLS()
        tls.trustFile = settings["ssl.truststore.location"] ?? settings["ssl.ca.location"]
        tls.certificateFile = settings["ssl.keystore.location"] ?? settings["ssl.certificate.location"]
        tls.keyFile = settings["ssl.key.location"]
        tls.keyPassword = settings["ssl.key.password"]
        tls.verifyHostname = (settings["ssl.endpoint.identification.algorithm"] ?? "https").lowercased() == "https"
        return tls
    }

    /// The SASL identity the properties give, if their security.protocol uses SASL.
    static func credentials(_ settings: [String: String]) throws -> SaslCredentials? {
        guard try securityProtocol(settings).usesSASL else { return nil }
        let name = settings["sasl.mechanism"]?.uppercased() ?? "GSSAPI"
        guard let mechanism = SaslMechanism(rawValue: name) else {
            throw ValidationError("sasl.mechanism \(name): brook's tools speak \(SaslMechanism.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if mechanism == .oauthBearer { return try oauthBearer(settings) }
        guard let jaas = settings["sasl.jaas.config"] else { throw ValidationError("--command-config has no sasl.jaas.config") }
        let options: [String: String]
        do { options = try JaasConfig.parse(jaas).options } catch { throw ValidationError("sasl.jaas.config: \(error)") }
        guard let user = options["username"], let password = options["password"] else {
            throw ValidationError("sasl.jaas.config needs username=\"...\" and password=\"...\"")
        }
        return SaslCredentials(mechanism: mechanism, user: user, password: password)
    }

    /// OAUTHBEARER's token, as Kafka's clients are told where it is: read from a file
    /// (`sasl.oauthbearer.token.endpoint.url=file:///path`, as KIP-768 has Kafka's clients do), or an
    /// unsecured one made here from `sasl.jaas.config`'s OAuthBearerLoginModule options
    /// (`unsecuredLoginStringClaim_sub="alice"`, `unsecuredLoginLifetimeSeconds`; development only).
    static func oauthBearer(_ settings: [String: String]) throws -> SaslCredentials {
        if let url = settings["sasl.oauthbearer.token.endpoint.url"] {
            guard url.hasPrefix("file:"), let path = URL(string: url)?.path, !path.isEmpty else {
                throw ValidationError("sasl.oauthbearer.token.endpoint.url: brook's tools read a token from a file: URL, not from an identity provider")
            }
            guard let data = FileManager.default.contents(atPath: path), data.count <= OAuthBearer.messageBytesMax,
                  let token = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !token.isEmpty else {
                throw ValidationError("cannot read an OAUTHBEARER token from \(path)")
            }
            return .oauthBearer(token: token)
        }
        guard let jaas = settings["sasl.jaas.config"] else {
            throw ValidationError("OAUTHBEARER needs sasl.oauthbearer.token.endpoint.url=file:///TOKEN or sasl.jaas.config with unsecuredLoginStringClaim_sub")
        }
        let options: [String: String]
        do { options = try JaasConfig.parse(jaas).options } catch { throw ValidationError("sasl.jaas.config: \(error)") }
        guard let subject = options["unsecuredLoginStringClaim_sub"], !subject.isEmpty else {
            throw ValidationError("sasl.jaas.config for OAUTHBEARER needs unsecuredLoginStringClaim_sub=\"...\" (an unsecured token), or give a token file")
        }
        guard let lifetime = Int64(options["unsecuredLoginLifetimeSeconds"] ?? "3600"), lifetime > 0, lifetime <= 315_360_000 else {
            throw ValidationError("unsecuredLoginLifetimeSeconds must be a number of seconds from 1 to ten years")
        }
        let now = Int64(Date().timeIntervalSince1970)
        return .oauthBearer(token: OAuthBearer.unsecuredToken(subject: subject, issuedAt: now, lifetimeSeconds: lifetime), user: subject)
    }
}

/// `key=value` pairs as Kafka's tools take them (`--config retention.ms=1000`).
func parsePairs(_ items: [String], option: String) throws -> [String: String] {
    var pairs: [String: String] = [:]
    for item in items.flatMap({ $0.split(separator: ",").map(String.init) }) {
        let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("\(option) takes key=value, not '\(item)'") }
        pairs[parts[0]] = parts[1]
    }
    return pairs
}

/// Fails the command with the broker's error code and message.
func check(_ code: Int16, _ message: String?, _ what: String) throws {
    guard code != 0 else { return }
    throw CommandFailure("\(what): \(ErrorCode(rawValue: code))\(message.map { ": \($0)" } ?? "")")
}

struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
