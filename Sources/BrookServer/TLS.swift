import BrookBroker
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOSSL

/// Why a listener's settings (TLS, or SASL between brokers) cannot be used, in words for the operator.
struct ListenerConfigError: Error, CustomStringConvertible {
    let description: String
    init(_ listener: String, _ problem: String) { description = "listener \(listener): \(problem)" }
}

/// A listener's TLS, from its `ssl.*` settings (Kafka's names, `listener.name.NAME.ssl.*`
/// winning over `ssl.*`):
/// - `ssl.keystore.type`: PEM (Brook's default; Kafka's, JKS, is Java's own format) or PKCS12.
///   PEM: `ssl.keystore.location`, a file holding the private key and the certificate chain, or
///   `ssl.keystore.key` and `ssl.keystore.certificate.chain` given inline; `ssl.key.password`
///   for an encrypted key. PKCS12: `ssl.keystore.location` and `ssl.keystore.password`.
/// - `ssl.truststore.location` (a PEM file of CA certificates) or `ssl.truststore.certificates`
///   (inline PEM): the CAs a client certificate must chain to.
/// - `ssl.client.auth`: none (default), requested (a certificate is checked if given), required.
/// - `ssl.enabled.protocols`: TLSv1.2 and/or TLSv1.3 (default both).
///
/// The context is rebuilt when a key store or trust store file changes (checked every few
/// seconds; for the contexts between nodes, `TLSFiles`): new connections get the renewed
/// certificate; open ones keep theirs. A file that
/// does not load keeps the previous context and is reported.
final class ListenerTLS: Sendable {
    let listener: String
    let settings: [String: String]
    /// The context is this node's as a client of the listener (another node's), not its server's.
    let client: Bool
    private let state: NIOLockedValueBox<(context: NIOSSLContext, stamps: [String: Date])>

    init(listener: String, settings: [String: String], client: Bool = false) throws(ListenerConfigError) {
        self.listener = listener
        self.settings = settings
        self.client = client
        let context = try Self.context(listener, settings, client: client)
        state = NIOLockedValueBox((context, Self.stamps(settings)))
    }

    /// The context new connections get.
    var context: NIOSSLContext { state.withLockedValue { $0.context } }

    /// Rebuilds the context if a file it was built from changed; says what happened.
    func reloadIfChanged(logger: Logger) {
        let now = Self.stamps(settings)
        guard state.withLockedValue({ $0.stamps }) != now else { return }
        do {
            let context = try Self.context(listener, settings, client: client)
            state.withLockedValue { $0 = (context, now) }
            logger.notice("listener \(listener): reloaded its TLS key store and trust store\(client ? " (this node's side as a client)" : "")")
        } catch {
            state.withLockedValue { $0.stamps = now }
            logger.error("listener \(listener): the changed TLS files do not load, the previous ones stay in use: \(error)")
        }
    }

    static func files(_ settings: [String: String]) -> [String] {
        [settings["keystore.location"], settings["truststore.location"]].compactMap { $0 }.filter { !$0.isEmpty }
    }

    static func stamps(_ settings: [String: String]) -> [String: Date] {
        var out: [String: Date] = [:]
        for path in files(settings) {
            out[path] = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date ?? .distantPast
        }
        return out
    }

    static func context(_ listener: String, _ settings: [String: String], client: Bool = false) throws(ListenerConfigError) -> NIOSSLContext {
        let configuration = client ? try clientConfiguration(listener, settings) : try self.configuration(listener, settings)
        do { return try NIOSSLContext(configuration: configuration) } catch {
            throw ListenerConfigError(listener, "the TLS settings do not make a context: \(error)")
        }
    }

    static func configuration(_ listener: String, _ settings: [String: String]) throws(ListenerConfigError) -> TLSConfiguration {
        func fail(_ problem: String) -> ListenerConfigError { ListenerConfigError(listener, problem) }
        let (chain, key) = try keyStore(listener, settings)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        let trust = try trustRoots(listener, settings)
        switch (settings["client.auth"] ?? "none").lowercased() {
        case "none": configuration.certificateVerification = .none
        case "requested": configuration.certificateVerification = .optionalVerification
        case "required": configuration.certificateVerification = .noHostnameVerification
        case let other: throw fail("ssl.client.auth \(other): expected none, requested or required")
        }
        if configuration.certificateVerification != .none {
            guard let trust else { throw fail("ssl.client.auth checks client certificates: ssl.truststore.location is needed") }
            configuration.trustRoots = trust
            configuration.sendCANameList = true
        }
        (configuration.minimumTLSVersion, configuration.maximumTLSVersion) = try versions(listener, settings)
        return configuration
    }

    /// The TLS this node speaks as a client to another's `listener` (a broker's inter-broker
    /// listener, a controller listener), from the same `ssl.*` settings, as Kafka does: the trust
    /// store checks the other's certificate (the system's CAs without one), the key store is the
    /// certificate shown when asked (mTLS) if there is one, `ssl.endpoint.identification.algorithm` (https,
    /// Kafka's default, or empty) says whether the other's address must be in its certificate.
    static func clientConfiguration(_ listener: String, _ settings: [String: String]) throws(ListenerConfigError) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if !(settings["keystore.location"] ?? "").isEmpty || settings["keystore.key"] != nil {
            let (chain, key) = try keyStore(listener, settings)
            configuration.certificateChain = chain.map { .certificate($0) }
            configuration.privateKey = .privateKey(key)
        }
        if let trust = try trustRoots(listener, settings) { configuration.trustRoots = trust }
        switch (settings["endpoint.identification.algorithm"] ?? "https").lowercased() {
        case "https": configuration.certificateVerification = .fullVerification
        case "": configuration.certificateVerification = .noHostnameVerification
        case let other: throw ListenerConfigError(listener, "ssl.endpoint.identification.algorithm \(other): expected https or empty")
        }
        (configuration.minimumTLSVersion, configuration.maximumTLSVersion) = try versions(listener, settings)
        return configuration
    }

    /// The certificate chain and private key of `ssl.keystore.*`.
    static func keyStore(_ listener: String, _ settings: [String: String]) throws(ListenerConfigError) -> ([NIOSSLCertificate], NIOSSLPrivateKey) {
        func fail(_ problem: String) -> ListenerConfigError { ListenerConfigError(listener, problem) }
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        let keyPassword = settings["key.password"]
        do {
            switch (settings["keystore.type"] ?? "PEM").uppercased() {
            case "PEM":
                if let location = settings["keystore.location"], !location.isEmpty {
                    chain = try NIOSSLCertificate.fromPEMFile(location)
                    if let keyPassword {
                        key = try NIOSSLPrivateKey(file: location, format: .pem) { set in set(Array(keyPassword.utf8)) }
                    } else {
                        key = try NIOSSLPrivateKey(file: location, format: .pem)
                    }
                } else if let keyText = settings["keystore.key"], let chainText = settings["keystore.certificate.chain"] {
                    chain = try NIOSSLCertificate.fromPEMBytes(Array(chainText.utf8))
                    if let keyPassword {
                        key = try NIOSSLPrivateKey(bytes: Array(keyText.utf8), format: .pem) { set in set(Array(keyPassword.utf8)) }
                    } else {
                        key = try NIOSSLPrivateKey(bytes: Array(keyText.utf8), format: .pem)
                    }
                } else {
                    throw fail("ssl.keystore.location (a PEM file with the key and its certificates), or ssl.keystore.key and ssl.keystore.certificate.chain, is needed")
                }
            case "PKCS12":
                guard let location = settings["keystore.location"], !location.isEmpty else { throw fail("ssl.keystore.location is needed") }
                let bundle = try NIOSSLPKCS12Bundle(file: location, passphrase: Array((settings["keystore.password"] ?? "").utf8))
                chain = bundle.certificateChain
                key = bundle.privateKey
            case let other:
                throw fail("ssl.keystore.type \(other) is not served: use PEM or PKCS12 (convert a JKS store with keytool -importkeystore -deststoretype PKCS12)")
            }
        } catch let error as ListenerConfigError {
            throw error
        } catch {
            throw fail("the key store does not load: \(error)")
        }
        guard !chain.isEmpty else { throw fail("the key store holds no certificate") }
        return (chain, key)
    }

    /// The CAs of `ssl.truststore.*`, nil when none is given.
    static func trustRoots(_ listener: String, _ settings: [String: String]) throws(ListenerConfigError) -> NIOSSLTrustRoots? {
        func fail(_ problem: String) -> ListenerConfigError { ListenerConfigError(listener, problem) }
        if let location = settings["truststore.location"], !location.isEmpty {
            guard (settings["truststore.type"] ?? "PEM").uppercased() == "PEM" else { throw fail("ssl.truststore.type must be PEM") }
            guard FileManager.default.isReadableFile(atPath: location) else { throw fail("ssl.truststore.location \(location) cannot be read") }
            return .file(location)
        }
        if let text = settings["truststore.certificates"], !text.isEmpty {
            do { return .certificates(try NIOSSLCertificate.fromPEMBytes(Array(text.utf8))) } catch {
                throw fail("ssl.truststore.certificates do not load: \(error)")
            }
        }
        return nil
    }

    /// `ssl.enabled.protocols` as the lowest and highest version.
    static func versions(_ listener: String, _ settings: [String: String]) throws(ListenerConfigError) -> (TLSVersion, TLSVersion) {
        func fail(_ problem: String) -> ListenerConfigError { ListenerConfigError(listener, problem) }
        let protocols = (settings["enabled.protocols"] ?? "TLSv1.2,TLSv1.3").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var versions: [TLSVersion] = []
        for name in protocols where !name.isEmpty {
            switch name {
            case "TLSv1.2": versions.append(.tlsv12)
            case "TLSv1.3": versions.append(.tlsv13)
            default: throw fail("ssl.enabled.protocols: \(name) is not served (TLSv1.2, TLSv1.3)")
            }
        }
        guard !versions.isEmpty else { throw fail("ssl.enabled.protocols names no protocol") }
        return (versions.contains(.tlsv12) ? .tlsv12 : .tlsv13, versions.contains(.tlsv13) ? .tlsv13 : .tlsv12)
    }
}

/// The TLS contexts a node uses between nodes (the controller listener's, the inter-broker
/// listener's as a client), rebuilt when their files change: `brook serve` calls
/// `reloadIfChanged` every few seconds, as the client listeners' are.
public final class TLSFiles: Sendable {
    let stores: [ListenerTLS]
    init(_ stores: [ListenerTLS]) { self.stores = stores }
    public static let none = TLSFiles([])
    public var isEmpty: Bool { stores.isEmpty }
    public func reloadIfChanged(logger: Logger) { for store in stores { store.reloadIfChanged(logger: logger) } }
}
