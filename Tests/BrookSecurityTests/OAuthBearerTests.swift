import BrookCrypto
import BrookSecurity
@preconcurrency import Crypto
import Foundation
import Testing

@Suite struct OAuthBearerTests {
    static func b64url(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    nonisolated(unsafe) static let key = P256.Signing.PrivateKey()

    static func token(_ claims: String, header: String = #"{"alg":"ES256","kid":"k1"}"#, signer: P256.Signing.PrivateKey = key) -> String {
        let signed = "\(b64url(Array(header.utf8))).\(b64url(Array(claims.utf8)))"
        let signature = try! signer.signature(for: Array(signed.utf8)).rawRepresentation
        return "\(signed).\(b64url(signature))"
    }

    static var settings: OAuthBearer.Settings {
        let raw = key.publicKey.x963Representation
        var s = OAuthBearer.Settings()
        s.keys = try! JsonWebKeySet.parse(Array("""
            {"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"\(b64url(raw[1..<33]))","y":"\(b64url(raw[33..<65]))"}]}
            """.utf8))
        s.expectedAudience = ["brook"]
        return s
    }

    static func message(_ token: String) -> [UInt8] { Array("n,,\u{1}auth=Bearer \(token)\u{1}\u{1}".utf8) }

    @Test func signedTokensAreCheckedWithTheirClaims() {
        let now: Int64 = 1_800_000_000_000
        let verifier = SwiftCryptoJwsVerifier()
        let good = Self.token(#"{"sub":"alice","exp":1800000300,"aud":"brook"}"#)
        #expect(OAuthBearer.check(Self.message(good), settings: Self.settings, nowMs: now, verifier: verifier)
                == .authenticated(user: "alice", expiresAtMs: 1_800_000_300_000))
        let cases: [(String, String)] = [
            (Self.token(#"{"sub":"alice","exp":1700000000,"aud":"brook"}"#), "expired"),
            (Self.token(#"{"sub":"alice","exp":1800000300,"aud":"other"}"#), "audience"),
            (Self.token(#"{"exp":1800000300,"aud":"brook"}"#), "sub"),
            (Self.token(#"{"sub":"alice","exp":1800000300,"aud":"brook"}"#, signer: P256.Signing.PrivateKey()), "signature"),
            (Self.token(#"{"sub":"alice","exp":1800000300,"aud":"brook","nbf":1800000200}"#), "nbf"),
            (Self.b64url(Array(#"{"alg":"none"}"#.utf8)) + "." + Self.b64url(Array(#"{"sub":"a","exp":1800000300}"#.utf8)) + ".", "unsecured"),
        ]
        for (token, what) in cases {
            guard case .failed(let reason) = OAuthBearer.check(Self.message(token), settings: Self.settings, nowMs: now, verifier: verifier) else {
                Issue.record("\(what) was taken"); continue
            }
            #expect(!reason.isEmpty)
        }
        var unsecured = OAuthBearer.Settings()
        unsecured.allowUnsecured = true
        let plain = Self.b64url(Array(#"{"alg":"none"}"#.utf8)) + "." + Self.b64url(Array(#"{"sub":"dev","exp":1800000300}"#.utf8)) + "."
        #expect(OAuthBearer.check(Self.message(plain), settings: unsecured, nowMs: now, verifier: nil) == .authenticated(user: "dev", expiresAtMs: 1_800_000_300_000))
        for bad in ["", "n,,", "n,,\u{1}auth=Basic x\u{1}\u{1}", "n,,\u{1}auth=Bearer a.b\u{1}\u{1}", "p=x,,\u{1}auth=Bearer \(good)\u{1}\u{1}"] {
            guard case .failed = OAuthBearer.check(Array(bad.utf8), settings: Self.settings, nowMs: now, verifier: verifier) else {
                Issue.record("'\(bad.prefix(30))' was taken"); continue
            }
        }
    }

    /// What a client sends (BrookClient, the console, brook's tools) is what the broker reads; an
    /// unsecured token made for development is taken only where unsecured tokens are; the
    /// console reads a token's subject and expiry without checking it (after a broker did).
    @Test func theClientsSideAgreesWithTheBrokers() {
        let now: Int64 = 1_800_000_000_000
        let signed = Self.token(#"{"sub":"carol","exp":1800000300,"aud":"brook"}"#)
        #expect(OAuthBearer.clientMessage(token: signed) == Self.message(signed))
        let verifier = SwiftCryptoJwsVerifier()
        #expect(OAuthBearer.check(OAuthBearer.clientMessage(token: signed), settings: Self.settings, nowMs: now, verifier: verifier)
                == .authenticated(user: "carol", expiresAtMs: 1_800_000_300_000))
        let dev = OAuthBearer.unsecuredToken(subject: "alice", issuedAt: 1_800_000_000, lifetimeSeconds: 3600)
        var unsecured = OAuthBearer.Settings()
        unsecured.allowUnsecured = true
        #expect(OAuthBearer.validate(token: dev, settings: unsecured, nowMs: now, verifier: nil) == .authenticated(user: "alice", expiresAtMs: 1_800_003_600_000))
        guard case .failed = OAuthBearer.validate(token: dev, settings: Self.settings, nowMs: now, verifier: verifier) else {
            Issue.record("an unsecured token was taken by a listener with keys"); return
        }
        #expect(OAuthBearer.unverifiedSubject(of: signed, claim: "sub")! == ("carol", 1_800_000_300_000))
        #expect(OAuthBearer.unverifiedSubject(of: signed, claim: "email") == nil)
        #expect(OAuthBearer.unverifiedSubject(of: "not.a-token", claim: "sub") == nil)
    }
}
