import BrookSecurity
import Crypto
import _CryptoExtras

/// SCRAM's digests over swift-crypto: SHA-256 / SHA-512 and their HMACs.
public struct SwiftCryptoDigests: ScramDigests {
    public init() {}

    public func hash(_ mechanism: ScramMechanism, _ data: [UInt8]) -> [UInt8] {
        switch mechanism {
        case .sha256: Array(SHA256.hash(data: data))
        case .sha512: Array(SHA512.hash(data: data))
        }
    }

    public func hmac(_ mechanism: ScramMechanism, key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        let key = SymmetricKey(data: key)
        switch mechanism {
        case .sha256: return Array(HMAC<SHA256>.authenticationCode(for: data, using: key))
        case .sha512: return Array(HMAC<SHA512>.authenticationCode(for: data, using: key))
        }
    }
}

extension Scram {
    /// The mechanism with swift-crypto's digests.
    public init(_ mechanism: ScramMechanism) {
        self.init(mechanism, digests: SwiftCryptoDigests())
    }
}

/// JWS signatures over swift-crypto: RS256 (PKCS #1 v1.5 with SHA-256, keys of 2048 bits and
/// more) and ES256 (P-256, the signature as r || s).
public struct SwiftCryptoJwsVerifier: JwsVerifier {
    public init() {}

    public func verify(alg: String, key: JsonWebKey, signed: [UInt8], signature: [UInt8]) -> Bool {
        switch (alg, key.material) {
        case ("RS256", .rsa(let n, let e)):
            guard let publicKey = try? _RSA.Signing.PublicKey(n: n, e: e) else { return false }
            return publicKey.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: signed, padding: .insecurePKCS1v1_5)
        case ("ES256", .p256(let x, let y)):
            guard let publicKey = try? P256.Signing.PublicKey(x963Representation: [0x04] + x + y),
                  let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return publicKey.isValidSignature(parsed, for: signed)
        default:
            return false
        }
    }
}
