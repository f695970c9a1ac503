/// SASL PLAIN (RFC 4616): one message, `[authzid] NUL user NUL password`, checked against the
/// users a listener's JAAS config lists (`user_NAME="password"`).
public enum PlainAuthentication {
    /// The longest PLAIN message taken.
    public static let messageBytesMax = 4096

    public enum Outcome: Equatable, Sendable {
        case authenticated(user: String)
        case failed(String)
    }

    public static func check(_ message: [UInt8], users: [String: String]) -> Outcome {
        guard message.count <= messageBytesMax else { return .failed("a PLAIN message longer than \(messageBytesMax) bytes") }
        let parts = message.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let authzid = String(validating: parts[0], as: UTF8.self),
              let user = String(validating: parts[1], as: UTF8.self), !user.isEmpty else {
            return .failed("a malformed PLAIN message")
        }
        guard authzid.isEmpty || authzid == user else { return .failed("an authorization id that is not the user") }
        guard let expected = users[user] else {
            // The same work as a known user's check, so that the time does not tell.
            _ = constantTimeEqual(Array(parts[2]), Array(parts[2]))
            return .failed("unknown user '\(user)'")
        }
        guard constantTimeEqual(Array(parts[2]), Array(expected.utf8)) else { return .failed("a wrong password for user '\(user)'") }
        return .authenticated(user: user)
    }

    /// The message a client sends.
    public static func message(user: String, password: String) -> [UInt8] {
        [0] + Array(user.utf8) + [0] + Array(password.utf8)
    }
}

/// A JAAS configuration as Kafka takes it in `sasl.jaas.config` values:
/// `org.apache...PlainLoginModule required username="admin" password="secret" user_admin="secret";`
public struct JaasConfig: Equatable, Sendable {
    public var loginModule: String
    public var flag: String
    public var options: [String: String]

    /// The users a PLAIN login module lists (`user_NAME="password"`).
    public var plainUsers: [String: String] {
        var users: [String: String] = [:]
        for (key, value) in options where key.hasPrefix("user_") && key.count > 5 { users[String(key.dropFirst(5))] = value }
        return users
    }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Parses one login module entry (the trailing `;` is optional).
    public static func parse(_ text: String) throws(ParseError) -> JaasConfig {
        var scanner = Scanner(Array(text.unicodeScalars))
        guard let module = scanner.word(), let flag = scanner.word() else { throw ParseError(description: "expected a login module and a flag") }
        guard ["required", "requisite", "sufficient", "optional"].contains(flag) else {
            throw ParseError(description: "expected required, requisite, sufficient or optional after \(module), found '\(flag)'")
        }
        var options: [String: String] = [:]
        while true {
            scanner.skipSpaces()
            if scanner.atEnd { break }
            if scanner.peek == ";" {
                scanner.index += 1
                scanner.skipSpaces()
                guard scanner.atEnd else { throw ParseError(description: "text after the ';' that ends the login module") }
                break
            }
            guard let key = scanner.word(stoppingAt: "=") else { throw ParseError(description: "expected an option name") }
            guard scanner.peek == "=" else { throw ParseError(description: "expected '=' after \(key)") }
            scanner.index += 1
            guard let value = try scanner.value() else { throw ParseError(description: "expected a value for \(key)") }
            options[key] = value
        }
        return JaasConfig(loginModule: module, flag: flag, options: options)
    }

    struct Scanner {
        let scalars: [Unicode.Scalar]
        var index = 0
        init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }
        var atEnd: Bool { index >= scalars.count }
        var peek: Unicode.Scalar? { atEnd ? nil : scalars[index] }
        mutating func skipSpaces() { while let c = peek, c.properties.isWhitespace { index += 1 } }
        mutating func word(stoppingAt stop: Unicode.Scalar = ";") -> String? {
            skipSpaces()
            var out = ""
            while let c = peek, !c.properties.isWhitespace, c != stop, c != ";" {
                out.unicodeScalars.append(c)
                index += 1
            }
            return out.isEmpty ? nil : out
        }
        mutating func value() throws(ParseError) -> String? {
            guard peek == "\"" else { return word() }
            index += 1
            var out = ""
            while let c = peek {
                index += 1
                if c == "\"" { return out }
                if c == "\\", let next = peek {
                    index += 1
                    out.unicodeScalars.append(next)
                } else {
                    out.unicodeScalars.append(c)
                }
            }
            throw ParseError(description: "a quoted value that does not end")
        }
    }
}
