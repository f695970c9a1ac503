import Foundation

/// SASL OAUTHBEARER (RFC 7628) with JWT bearer tokens, as Kafka's validators check them: the
/// client's one message carries `auth=Bearer TOKEN`; the token is a JWS whose signature a key
/// of the configured set verifies (`RS256`, `ES256`), or, only when enabled for development, an
/// unsecured JWT (`alg` `none`, Kafka's unsecured validator). Claims: `exp` required and in the
/// future, `nbf` / `iat` not in the future (both within the allowed clock skew), the subject
/// claim (default `sub`) names the principal, `iss` and `aud` match when expected.
public enum OAuthBearer {
    public struct Settings: Sendable, Equatable {
        /// Verify signatures with these keys (from `sasl.oauthbearer.jwks.endpoint.url`, a file).
        public var keys: JsonWebKeySet?
        /// Take unsecured tokens (development only).
        public var allowUnsecured = false
        public var subjectClaim = "sub"
        public var expectedIssuer: String?
        public var expectedAudience: [String] = []
        public var clockSkewSeconds: Int64 = 30

        public init() {}
    }

    public enum Outcome: Equatable, Sendable {
        /// The principal's name and when the token expires (ms since the epoch).
        case authenticated(user: String, expiresAtMs: Int64)
        case failed(String)
    }

    /// The longest client message taken.
    public static let messageBytesMax = 16_384

    /// Checks the client's message at `nowMs`; `verifier` checks a signature by algorithm and key.
    public static func check(_ message: [UInt8], settings: Settings, nowMs: Int64, verifier: (any JwsVerifier)?) -> Outcome {
        guard message.count <= messageBytesMax, let text = String(validating: message, as: UTF8.self) else {
            return .failed("an OAUTHBEARER message that is not UTF-8 or longer than \(messageBytesMax) bytes")
        }
        // gs2-header, then key=value pairs each ended by \u{1}, and a final \u{1}.
        let parts = text.split(separator: "\u{1}", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[0].hasPrefix("n,") || parts[0].hasPrefix("y,"), parts.last == "", parts[parts.count - 2] == "" else {
            return .failed("a malformed OAUTHBEARER message")
        }
        guard let auth = parts.dropFirst().first(where: { $0.hasPrefix("auth=") }) else { return .failed("no auth= in the OAUTHBEARER message") }
        let value = auth.dropFirst("auth=".count)
        guard value.lowercased().hasPrefix("bearer ") else { return .failed("the auth value is not a Bearer token") }
        return validate(token: String(value.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces),
                        settings: settings, nowMs: nowMs, verifier: verifier)
    }

    /// A client's one message (RFC 7628's initial response): no authorization identity, the token.
    public static func clientMessage(token: String) -> [UInt8] {
        Array("n,,\u{1}auth=Bearer \(token)\u{1}\u{1}".utf8)
    }

    /// An unsecured JWT (`alg` `none`, no signature), as Kafka's unsecured login module makes
    /// for development: only a listener that takes unsecured tokens accepts it.
    public static func unsecuredToken(subject: String, issuedAt: Int64, lifetimeSeconds: Int64) -> String {
        func part(_ object: [String: Any]) -> String {
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        return part(["alg": "none"]) + "." + part(["sub": subject, "iat": issuedAt, "exp": issuedAt + lifetimeSeconds]) + "."
    }

    /// A JWT's three parts: header and claims as JSON objects, the signature's bytes; nil when
    /// `token` is not one.
    static func decode(_ token: String) -> (pieces: [Substring], header: [String: Any], claims: [String: Any], signature: [UInt8])? {
        let pieces = token.split(separator: ".", omittingEmptySubsequences: false)
        guard pieces.count == 3, let headerBytes = base64URL(pieces[0]), let payloadBytes = base64URL(pieces[1]),
              let signature = base64URL(pieces[2]),
              let header = (try? JSONSerialization.jsonObject(with: Data(headerBytes))) as? [String: Any],
              let claims = (try? JSONSerialization.jsonObject(with: Data(payloadBytes))) as? [String: Any] else { return nil }
        return (pieces, header, claims, signature)
    }

    /// The subject and expiry a token names, read without checking it: only for a token a
    /// broker has accepted (the console's login shows who it is, and ends with the token).
    public static func unverifiedSubject(of token: String, claim: String) -> (user: String, expiresAtMs: Int64)? {
        guard let (_, _, claims, _) = decode(token), let user = claims[claim] as? String, let exp = number(claims["exp"]) else { return nil }
        return (user, Int64(exp * 1000))
    }

    public static func validate(token: String, settings: Settings, nowMs: Int64, verifier: (any JwsVerifier)?) -> Outcome {
        guard let (pieces, header, claims, signature) = decode(token), let alg = header["alg"] as? String else {
            return .failed("a token that is not a JWT")
        }
        if alg == "none" {
            guard settings.allowUnsecured else { return .failed("an unsecured token, which this listener does not take") }
            guard signature.isEmpty else { return .failed("an unsecured token with a signature") }
        } else {
            guard let keys = settings.keys, let verifier else { return .failed("a signed token, and no keys to verify it") }
            let kid = header["kid"] as? String
            let candidates = keys.keys.filter { ($0.kid == nil || kid == nil || $0.kid == kid) && ($0.alg == nil || $0.alg == alg) }
            let signed = Array("\(pieces[0]).\(pieces[1])".utf8)
            guard candidates.contains(where: { verifier.verify(alg: alg, key: $0, signed: signed, signature: signature) }) else {
                return .failed("a token whose \(alg) signature no configured key verifies (kid \(kid ?? "none"))")
            }
        }
        let skewMs = settings.clockSkewSeconds * 1000
        guard let exp = number(claims["exp"]) else { return .failed("a token without exp") }
        let expiresAtMs = Int64(exp * 1000)
        guard expiresAtMs + skewMs > nowMs else { return .failed("an expired token") }
        for claim in ["nbf", "iat"] {
            if let t = number(claims[claim]), Int64(t * 1000) - skewMs > nowMs { return .failed("a token whose \(claim) is in the future") }
        }
        if let issuer = settings.expectedIssuer, claims["iss"] as? String != issuer { return .failed("a token from another issuer") }
        if !settings.expectedAudience.isEmpty {
            let audience = (claims["aud"] as? [String]) ?? (claims["aud"] as? String).map { [$0] } ?? []
            guard audience.contains(where: settings.expectedAudience.contains) else { return .failed("a token for another audience") }
        }
        guard let user = claims[settings.subjectClaim] as? String, !user.isEmpty else {
            return .failed("a token without its \(settings.subjectClaim) claim")
        }
        return .authenticated(user: user, expiresAtMs: expiresAtMs)
    }

    static func number(_ value: Any?) -> Double? {
        guard let n = value as? NSNumber else { return nil }
        let d = n.doubleValue
        return d.isFinite && abs(d) < 1e13 ? d : nil
    }

    /// Base64url without padding (RFC 7515).
    public static func base64URL(_ text: Substring) -> [UInt8]? {
        guard text.count <= 65_536 else { return nil }
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard !s.contains("=") else { return nil }
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).map(Array.init)
    }
}

/// Verifies a JWS signature with one key: BrookCrypto's over swift-crypto.
public protocol JwsVerifier: Sendable {
    func verify(alg: String, key: JsonWebKey, signed: [UInt8], signature: [UInt8]) -> Bool
}

/// A public key of a JSON Web Key Set (RFC 7517): RSA (`n`, `e`) or P-256 (`x`, `y`).
public struct JsonWebKey: Sendable, Equatable {
    public enum Material: Sendable, Equatable {
        case rsa(n: [UInt8], e: [UInt8])
        case p256(x: [UInt8], y: [UInt8])
    }

    public var kid: String?
    public var alg: String?
    public var material: Material
}

public struct JsonWebKeySet: Sendable, Equatable {
    public var keys: [JsonWebKey]

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// The keys of a JWKS document; keys of other types (and private parts) are skipped.
    public static func parse(_ data: [UInt8]) throws(ParseError) -> JsonWebKeySet {
        guard data.count <= 1_048_576, let object = (try? JSONSerialization.jsonObject(with: Data(data))) as? [String: Any],
              let list = object["keys"] as? [[String: Any]] else {
            throw ParseError(description: "not a JSON Web Key Set ({\"keys\": [...]})")
        }
        var keys: [JsonWebKey] = []
        for entry in list.prefix(100) {
            let kid = entry["kid"] as? String
            let alg = entry["alg"] as? String
            if let use = entry["use"] as? String, use != "sig" { continue }
            switch (entry["kty"] as? String, entry["crv"] as? String) {
            case ("RSA", _):
                guard let n = (entry["n"] as? String).flatMap({ OAuthBearer.base64URL(Substring($0)) }),
                      let e = (entry["e"] as? String).flatMap({ OAuthBearer.base64URL(Substring($0)) }) else { continue }
                keys.append(JsonWebKey(kid: kid, alg: alg, material: .rsa(n: n, e: e)))
            case ("EC", "P-256"):
                guard let x = (entry["x"] as? String).flatMap({ OAuthBearer.base64URL(Substring($0)) }),
                      let y = (entry["y"] as? String).flatMap({ OAuthBearer.base64URL(Substring($0)) }), x.count == 32, y.count == 32 else { continue }
                keys.append(JsonWebKey(kid: kid, alg: alg, material: .p256(x: x, y: y)))
            default:
                continue
            }
        }
        guard !keys.isEmpty else { throw ParseError(description: "no RSA or P-256 signing key in the key set") }
        return JsonWebKeySet(keys: keys)
    }
}
