import Foundation

/// The server's side of one SCRAM authentication (RFC 5802): the client's first message is
/// answered with the salt, the iteration count and the joined nonce; the client's final message
/// carries its proof, checked against the stored key; the server's final message proves the
/// server knew the server key. No channel binding (`n` or `y` flags only), as Kafka.
///
/// An unknown user gets a challenge like a known one (with a random salt) and fails at the
/// proof, so that the exchange does not tell which users exist.
public struct ScramServerExchange: Sendable {
    public enum Step: Equatable, Sendable {
        /// Send these bytes and wait for the client's next message.
        case challenge([UInt8])
        /// Authenticated as `user`; send `serverFinal`.
        case authenticated(user: String, serverFinal: [UInt8])
        /// Refused; the reason is for the broker's log, the client hears only that it failed.
        case failed(String)
    }

    enum State: Sendable {
        case awaitingClientFirst
        case awaitingClientFinal(First)
        case finished
    }

    struct First: Sendable {
        var user: String
        var credential: ScramCredential?
        var fakeCredential: ScramCredential
        var clientFirstBare: String
        var serverFirst: String
        var nonce: String
        var gs2Header: String
    }

    /// The longest message taken (a user name, a nonce and extensions fit easily).
    public static let messageBytesMax = 4096

    public let scram: Scram
    public var mechanism: ScramMechanism { scram.mechanism }
    let serverNonce: String
    var state = State.awaitingClientFirst

    /// `serverNonce`: printable characters without a comma, fresh for every exchange (tests
    /// give a fixed one).
    public init(scram: Scram, serverNonce: String? = nil) {
        self.scram = scram
        self.serverNonce = serverNonce ?? Data(randomBytes(24)).base64EncodedString()
        precondition(!self.serverNonce.contains(","), "a SCRAM nonce holds no comma")
    }

    /// Takes the client's next message; `credential` looks a user up.
    public mutating func step(_ message: [UInt8], credential: (String) -> ScramCredential?) -> Step {
        guard message.count <= Self.messageBytesMax, let text = String(validating: message, as: UTF8.self) else {
            state = .finished
            return .failed("a SCRAM message that is not UTF-8 or longer than \(Self.messageBytesMax) bytes")
        }
        switch state {
        case .awaitingClientFirst:
            return clientFirst(text, credential: credential)
        case .awaitingClientFinal(let first):
            state = .finished
            return clientFinal(text, first)
        case .finished:
            return .failed("a SCRAM message after the exchange ended")
        }
    }

    mutating func clientFirst(_ text: String, credential lookup: (String) -> ScramCredential?) -> Step {
        state = .finished
        let parts = text.split(separator: ",", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failed("a malformed client-first message") }
        let flag = parts[0], authzid = parts[1]
        guard flag == "n" || flag == "y" else { return .failed("channel binding is not supported") }
        guard authzid.isEmpty || authzid.hasPrefix("a=") else { return .failed("a malformed authorization id") }
        let bare = String(parts[2])
        let attributes = Self.attributes(bare)
        guard attributes.count >= 2, attributes[0].key == "n", attributes[1].key == "r",
              let user = Self.unescape(attributes[0].value), !user.isEmpty, !attributes[1].value.isEmpty,
              !attributes[1].value.contains(where: { $0.asciiValue.map { $0 < 0x21 || $0 > 0x7E } ?? true }) else {
            return .failed("a malformed client-first message")
        }
        if !authzid.isEmpty && Self.unescape(String(authzid.dropFirst(2))) != user {
            return .failed("an authorization id that is not the user")
        }
        for extra in attributes.dropFirst(2) where extra.key == "tokenauth" && extra.value == "true" {
            return .failed("delegation tokens are not supported")
        }
        let credential = lookup(user)
        let fake = ScramCredential(salt: randomBytes(mechanism.hashBytes), storedKey: randomBytes(mechanism.hashBytes),
                                   serverKey: randomBytes(mechanism.hashBytes), iterations: ScramMechanism.iterationsMin)
        let used = credential ?? fake
        let nonce = attributes[1].value + serverNonce
        let serverFirst = "r=\(nonce),s=\(Data(used.salt).base64EncodedString()),i=\(used.iterations)"
        state = .awaitingClientFinal(First(user: user, credential: credential, fakeCredential: fake, clientFirstBare: bare,
                                           serverFirst: serverFirst, nonce: nonce, gs2Header: "\(flag),\(authzid),"))
        return .challenge(Array(serverFirst.utf8))
    }

    func clientFinal(_ text: String, _ first: First) -> Step {
        guard let proofStart = text.range(of: ",p=", options: .backwards) else { return .failed("a client-final message without a proof") }
        let withoutProof = String(text[..<proofStart.lowerBound])
        let attributes = Self.attributes(withoutProof)
        guard attributes.count >= 2, attributes[0].key == "c", attributes[1].key == "r",
              let binding = Data(base64Encoded: attributes[0].value),
              let proof = Data(base64Encoded: String(text[proofStart.upperBound...])) else {
            return .failed("a malformed client-final message")
        }
        guard Array(binding) == Array(first.gs2Header.utf8) else { return .failed("the channel binding does not match the client-first message") }
        // Kafka takes a final nonce that ends with the joined one: librdkafka sends its own nonce
        // again in front of the joined nonce, and Kafka's brokers accept it.
        guard attributes[1].value.hasSuffix(first.nonce), attributes[1].value.utf8.count <= 2 * first.nonce.utf8.count else {
            return .failed("the nonce does not match")
        }
        let credential = first.credential ?? first.fakeCredential
        let authMessage = Array("\(first.clientFirstBare),\(first.serverFirst),\(withoutProof)".utf8)
        let clientSignature = scram.hmac(key: credential.storedKey, authMessage)
        guard proof.count == clientSignature.count else { return .failed("a proof of the wrong length") }
        let clientKey = zip(Array(proof), clientSignature).map { $0 ^ $1 }
        guard constantTimeEqual(scram.hash(clientKey), credential.storedKey), first.credential != nil else {
            return .failed(first.credential == nil ? "no \(mechanism.name) credential for user '\(first.user)'" : "a wrong password for user '\(first.user)'")
        }
        let serverSignature = scram.hmac(key: credential.serverKey, authMessage)
        return .authenticated(user: first.user, serverFinal: Array("v=\(Data(serverSignature).base64EncodedString())".utf8))
    }

    /// `k=v` attributes separated by commas, in order (values may hold `=`).
    static func attributes(_ text: String) -> [(key: String, value: String)] {
        text.split(separator: ",", omittingEmptySubsequences: false).map { part in
            guard let equals = part.firstIndex(of: "="), part.distance(from: part.startIndex, to: equals) >= 1 else { return ("", String(part)) }
            return (String(part[..<equals]), String(part[part.index(after: equals)...]))
        }
    }

    /// A SCRAM name with `=2C` and `=3D` turned back into `,` and `=`; nil for any other `=`.
    static func unescape(_ name: String) -> String? {
        var out = ""
        var rest = Substring(name)
        while let equals = rest.firstIndex(of: "=") {
            out += rest[..<equals]
            let code = rest[equals...].prefix(3)
            switch code {
            case "=2C": out += ","
            case "=3D": out += "="
            default: return nil
            }
            rest = rest[equals...].dropFirst(3)
        }
        return out + rest
    }
}

/// The client's side of SCRAM, for `brook` tools and tests.
public struct ScramClientExchange: Sendable {
    public let scram: Scram
    public var mechanism: ScramMechanism { scram.mechanism }
    public let user: String
    let password: String
    let clientNonce: String
    var clientFirstBare = ""
    var expectedServerSignature: [UInt8] = []

    public init(scram: Scram, user: String, password: String, clientNonce: String? = nil) {
        self.scram = scram
        self.user = user
        self.password = password
        self.clientNonce = clientNonce ?? Data(randomBytes(24)).base64EncodedString()
    }

    public mutating func clientFirst() -> [UInt8] {
        let escaped = user.replacingOccurrences(of: "=", with: "=3D").replacingOccurrences(of: ",", with: "=2C")
        clientFirstBare = "n=\(escaped),r=\(clientNonce)"
        return Array("n,,\(clientFirstBare)".utf8)
    }

    /// The client-final message for the server's first message; nil when that is malformed.
    public mutating func clientFinal(_ serverFirst: [UInt8]) -> [UInt8]? {
        guard let text = String(validating: serverFirst, as: UTF8.self) else { return nil }
        let attributes = ScramServerExchange.attributes(text)
        guard attributes.count >= 3, attributes[0].key == "r", attributes[1].key == "s", attributes[2].key == "i",
              attributes[0].value.hasPrefix(clientNonce), let salt = Data(base64Encoded: attributes[1].value),
              let iterations = Int32(attributes[2].value), iterations >= 1, iterations <= 1_000_000 else { return nil }
        let salted = scram.saltedPassword(password, salt: Array(salt), iterations: iterations)
        let clientKey = scram.hmac(key: salted, Array("Client Key".utf8))
        let storedKey = scram.hash(clientKey)
        let withoutProof = "c=biws,r=\(attributes[0].value)"
        let authMessage = Array("\(clientFirstBare),\(text),\(withoutProof)".utf8)
        let signature = scram.hmac(key: storedKey, authMessage)
        let proof = zip(clientKey, signature).map { $0 ^ $1 }
        expectedServerSignature = scram.hmac(key: scram.hmac(key: salted, Array("Server Key".utf8)), authMessage)
        return Array("\(withoutProof),p=\(Data(proof).base64EncodedString())".utf8)
    }

    /// Whether the server's final message proves it holds the credential.
    public func verify(serverFinal: [UInt8]) -> Bool {
        guard let text = String(validating: serverFinal, as: UTF8.self), text.hasPrefix("v="),
              let signature = Data(base64Encoded: String(text.dropFirst(2))) else { return false }
        return constantTimeEqual(Array(signature), expectedServerSignature)
    }
}
