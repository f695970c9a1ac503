import BrookCrypto
import BrookProtocol
import BrookSecurity
import NIOCore

/// A SASL identity for a client connection: PLAIN or SCRAM-SHA-256/512 with a user and password.
public struct SaslCredentials: Sendable, Equatable {
    public var mechanism: SaslMechanism
    public var user: String
    public var password: String

    public init(mechanism: SaslMechanism, user: String, password: String) {
        self.mechanism = mechanism
        self.user = user
        self.password = password
    }

    /// OAUTHBEARER with a bearer token (a JWT the broker verifies); `user` is only what the
    /// caller calls it.
    public static func oauthBearer(token: String, user: String = "") -> SaslCredentials {
        SaslCredentials(mechanism: .oauthBearer, user: user, password: token)
    }
}

extension BrokerConnection {
    /// SaslHandshake, then the mechanism's SaslAuthenticate steps. A refusal is a KafkaError
    /// with the broker's error and message.
    func authenticate(_ credentials: SaslCredentials) async throws {
        let handshake = try await send(SaslHandshakeRequest(mechanism: credentials.mechanism.rawValue), version: 1)
        guard handshake.errorCode == 0 else {
            throw KafkaError(ErrorCode(rawValue: handshake.errorCode),
                             "\(address) refused SASL mechanism \(credentials.mechanism.rawValue); it enables \(handshake.mechanisms.joined(separator: ", "))")
        }
        let version = try self.version(for: SaslAuthenticateRequest.self)
        func step(_ bytes: [UInt8]) async throws -> [UInt8] {
            let answer = try await send(SaslAuthenticateRequest(authBytes: ByteBuffer(bytes: bytes)), version: version)
            guard answer.errorCode == 0 else {
                throw KafkaError(ErrorCode(rawValue: answer.errorCode), "\(address)\(answer.errorMessage.map { ": \($0)" } ?? "")")
            }
            return Array(answer.authBytes.readableBytesView)
        }
        if credentials.mechanism == .oauthBearer {
            // The token is the password. A refusal is the answer's error, or (RFC 7628, as
            // Kafka's broker does it) a challenge holding the error as JSON, which the client
            // acknowledges with one 0x01 byte before the broker fails the exchange.
            let challenge = try await step(OAuthBearer.clientMessage(token: credentials.password))
            guard challenge.isEmpty else {
                let reason = String(decoding: challenge.prefix(512), as: UTF8.self)
                _ = try? await step([0x01])
                throw KafkaError(.saslAuthenticationFailed, "\(address) refused the OAUTHBEARER token: \(reason)")
            }
            return
        }
        guard let scram = credentials.mechanism.scram else {
            _ = try await step(PlainAuthentication.message(user: credentials.user, password: credentials.password))
            return
        }
        var exchange = ScramClientExchange(scram: Scram(scram), user: credentials.user, password: credentials.password)
        let serverFirst = try await step(exchange.clientFirst())
        guard let final = exchange.clientFinal(serverFirst) else { throw ClientError("\(address) sent a malformed SCRAM challenge") }
        let serverFinal = try await step(final)
        guard exchange.verify(serverFinal: serverFinal) else { throw ClientError("\(address) did not prove it holds the SCRAM credential") }
    }
}
