import BrookSecurity
import Crypto

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
