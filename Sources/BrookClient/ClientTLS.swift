import NIOCore
import NIOSSL

/// TLS for a client connection (the `brook` tools' `security.protocol=SSL` / `SASL_SSL`): the CA
/// certificates that sign the broker's (`ssl.truststore.location`, PEM; the system's when not
/// given), a certificate and key for mTLS (`ssl.keystore.location`, one PEM file with both, or
/// `ssl.certificate.location` and `ssl.key.location`), and whether the broker's name is checked
/// against its certificate (`ssl.endpoint.identification.algorithm`: `https`, Kafka's default,
/// or empty for no check).
public struct ClientTLS: Sendable {
    public var trustFile: String?
    public var certificateFile: String?
    public var keyFile: String?
    public var keyPassword: String?
    public var verifyHostname = true
    /// A context made elsewhere (a broker's own, from its listener's settings), used as is.
    var made: NIOSSLContext?

    public init() {}

    public init(context: NIOSSLContext) { made = context }

    func context() throws -> NIOSSLContext {
        if let made { return made }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let trustFile { configuration.trustRoots = .file(trustFile) }
        if !verifyHostname { configuration.certificateVerification = .noHostnameVerification }
        if let certificateFile {
            let keyFile = keyFile ?? certificateFile
            let certificates = try NIOSSLCertificate.fromPEMFile(certificateFile)
            guard !certificates.isEmpty else { throw ClientError("no certificate in \(certificateFile)") }
            configuration.certificateChain = certificates.map { .certificate($0) }
            let key: NIOSSLPrivateKey
            if let password = keyPassword {
                key = try NIOSSLPrivateKey(file: keyFile, format: .pem) { provide in provide(Array(password.utf8)) }
            } else {
                key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
            }
            configuration.privateKey = .privateKey(key)
        }
        do { return try NIOSSLContext(configuration: configuration) } catch { throw ClientError("TLS settings cannot be used: \(error)") }
    }

    /// The handler that puts TLS under the connection to `host`.
    public func handler(host: String) throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(context: context(), serverHostname: Self.serverName(host))
    }

    /// The name sent as SNI and checked against the certificate: `host`, unless it is an IP
    /// address, which is not a server name (the certificate is then checked for the address).
    public static func serverName(_ host: String) -> String? {
        let isAddress = host.contains(":") || host.split(separator: ".").allSatisfy { Int($0) != nil }
        return isAddress ? nil : host
    }
}
