import Foundation

/// A SCRAM mechanism (RFC 5802, RFC 7677) by Kafka's code in AlterUserScramCredentials and the
/// metadata log: 1 is SCRAM-SHA-256, 2 is SCRAM-SHA-512.
public enum ScramMechanism: Int8, CaseIterable, Sendable, CustomStringConvertible {
    case sha256 = 1
    case sha512 = 2

    /// Kafka's bounds on a credential's iteration count.
    public static let iterationsMin: Int32 = 4096
    public static let iterationsMax: Int32 = 16384

    public init?(name: String) {
        guard let found = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = found
    }

    /// The SASL mechanism name.
    public var name: String {
        switch self {
        case .sha256: "SCRAM-SHA-256"
        case .sha512: "SCRAM-SHA-512"
        }
    }

    public var description: String { name }

    /// The hash's output size in bytes.
    public var hashBytes: Int {
        switch self {
        case .sha256: 32
        case .sha512: 64
        }
    }
}

/// The digests SCRAM is built from, per mechanism: its hash and that hash's HMAC. BrookSecurity
/// holds no cryptography of its own: BrookCrypto provides these over swift-crypto, and the
/// broker is given them (so that what only needs SCRAM's grammar, the fuzzing harness and the
/// allocation benchmarks, builds without a crypto library).
public protocol ScramDigests: Sendable {
    func hash(_ mechanism: ScramMechanism, _ data: [UInt8]) -> [UInt8]
    func hmac(_ mechanism: ScramMechanism, key: [UInt8], _ data: [UInt8]) -> [UInt8]
}

/// A SCRAM mechanism with its digests: what the exchanges and the credentials compute with.
public struct Scram: Sendable {
    public let mechanism: ScramMechanism
    public let digests: any ScramDigests

    public init(_ mechanism: ScramMechanism, digests: any ScramDigests) {
        self.mechanism = mechanism
        self.digests = digests
    }

    public func hash(_ data: [UInt8]) -> [UInt8] {
        let out = digests.hash(mechanism, data)
        precondition(out.count == mechanism.hashBytes, "a \(mechanism.name) hash of the wrong size")
        return out
    }

    public func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        let out = digests.hmac(mechanism, key: key, data)
        precondition(out.count == mechanism.hashBytes, "a \(mechanism.name) HMAC of the wrong size")
        return out
    }

    /// Hi(password, salt, i): PBKDF2 with this mechanism's HMAC and one block of output, the
    /// salted password the client computes (and `brook user` computes for it).
    public func saltedPassword(_ password: String, salt: [UInt8], iterations: Int32) -> [UInt8] {
        precondition(iterations >= 1, "SCRAM iterations must be positive")
        let key = Array(password.utf8)
        var u = hmac(key: key, salt + [0, 0, 0, 1])
        var result = u
        for _ in 1..<iterations {
            u = hmac(key: key, u)
            for i in result.indices { result[i] ^= u[i] }
        }
        return result
    }

    /// The credential a server keeps for a salted password: the stored key and the server key,
    /// from which the password cannot be recovered.
    public func credential(saltedPassword: [UInt8], salt: [UInt8], iterations: Int32) -> ScramCredential {
        let clientKey = hmac(key: saltedPassword, Array("Client Key".utf8))
        return ScramCredential(salt: salt, storedKey: hash(clientKey),
                               serverKey: hmac(key: saltedPassword, Array("Server Key".utf8)), iterations: iterations)
    }

    /// The credential for a password with a fresh random salt.
    public func credential(password: String, iterations: Int32 = ScramMechanism.iterationsMin) -> ScramCredential {
        let salt = randomBytes(mechanism.hashBytes)
        return credential(saltedPassword: saltedPassword(password, salt: salt, iterations: iterations), salt: salt, iterations: iterations)
    }
}

/// One user's SCRAM credential for one mechanism, as the metadata log keeps it.
public struct ScramCredential: Equatable, Sendable {
    public var salt: [UInt8]
    public var storedKey: [UInt8]
    public var serverKey: [UInt8]
    public var iterations: Int32

    public init(salt: [UInt8], storedKey: [UInt8], serverKey: [UInt8], iterations: Int32) {
        self.salt = salt
        self.storedKey = storedKey
        self.serverKey = serverKey
        self.iterations = iterations
    }
}

/// Bytes from the system's cryptographic random source.
public func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}

/// Equal contents, compared in a time that does not depend on where they differ.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for i in a.indices { difference |= a[i] ^ b[i] }
    return difference == 0
}

/// A credential given at first start, as Kafka's `kafka-storage format --add-scram` takes it:
/// `SCRAM-SHA-256=[name=alice,password=alice-secret]`, optionally with `iterations=8192`.
public struct ScramBootstrap: Equatable, Sendable {
    public var mechanism: ScramMechanism
    public var user: String
    public var password: String
    public var iterations: Int32

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    public static func parse(_ text: String) throws(ParseError) -> ScramBootstrap {
        func fail(_ why: String) -> ParseError { ParseError(description: "--add-scram '\(text.prefix(80))': \(why)") }
        guard let equals = text.firstIndex(of: "="), text.hasSuffix("]") else {
            throw fail("expected MECHANISM=[name=USER,password=PASSWORD(,iterations=N)]")
        }
        guard let mechanism = ScramMechanism(name: text[..<equals].trimmingCharacters(in: .whitespaces)) else {
            throw fail("the mechanism is SCRAM-SHA-256 or SCRAM-SHA-512")
        }
        let body = text[text.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        guard body.hasPrefix("["), body.hasSuffix("]") else { throw fail("expected [name=USER,password=PASSWORD]") }
        var fields: [String: String] = [:]
        // A password may hold commas when quoted ("...").
        var rest = Substring(body.dropFirst().dropLast())
        while !rest.isEmpty {
            guard let eq = rest.firstIndex(of: "=") else { throw fail("expected key=value") }
            let key = rest[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            rest = rest[rest.index(after: eq)...]
            var value: String
            if rest.first == "\"" {
                rest = rest.dropFirst()
                guard let close = rest.firstIndex(of: "\"") else { throw fail("an unclosed quote") }
                value = String(rest[..<close])
                rest = rest[rest.index(after: close)...]
            } else {
                let end = rest.firstIndex(of: ",") ?? rest.endIndex
                value = String(rest[..<end])
                rest = rest[end...]
            }
            value = value.trimmingCharacters(in: .whitespaces)
            guard fields[key] == nil else { throw fail("\(key) given twice") }
            fields[key] = value
            rest = rest.drop(while: { $0 == " " })
            if rest.first == "," { rest = rest.dropFirst() } else if !rest.isEmpty { throw fail("expected ',' after \(key)") }
        }
        guard let user = fields.removeValue(forKey: "name"), !user.isEmpty else { throw fail("name is needed") }
        guard let password = fields.removeValue(forKey: "password"), !password.isEmpty else { throw fail("password is needed") }
        var iterations = ScramMechanism.iterationsMin
        if let text = fields.removeValue(forKey: "iterations") {
            guard let n = Int32(text), (ScramMechanism.iterationsMin...ScramMechanism.iterationsMax).contains(n) else {
                throw fail("iterations must be \(ScramMechanism.iterationsMin)...\(ScramMechanism.iterationsMax)")
            }
            iterations = n
        }
        guard fields.isEmpty else { throw fail("unknown \(fields.keys.sorted().joined(separator: ", ")) (name, password, iterations)") }
        return ScramBootstrap(mechanism: mechanism, user: user, password: password, iterations: iterations)
    }
}
