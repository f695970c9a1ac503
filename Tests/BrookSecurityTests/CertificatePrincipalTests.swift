import BrookSecurity
import Foundation
import Testing

@Suite struct CertificatePrincipalTests {
    /// `openssl req -x509 -subj "/C=US/ST=CA/O=Example, Inc./OU=eng+OU=ops/CN=alice/emailAddress=alice@example.com" -multivalue-rdn`
    static let certificate = Array(Data(base64Encoded: """
        MIICUjCCAfegAwIBAgIUUSrvPtYqsGzAnZKhcdzhz2C057owCgYIKoZIzj0EAwIwfjELMAkGA1UEBhMCVVMxCzAJBgNVBAgMAkNBMRYwFAYDVQQKDA1FeGFtcGxlLCBJbmMuMRgwCgYDVQQLDANlbmcwCgYDVQQLDANvcHMxDjAMBgNVBAMMBWFsaWNlMSAwHgYJKoZIhvcNAQkBFhFhbGljZUBleGFtcGxlLmNvbTAeFw0yNjEyMDQyMTE5MzRaFw0zNjEyMDEyMTE5MzRaMH4xCzAJBgNVBAYTAlVTMQswCQYDVQQIDAJDQTEWMBQGA1UECgwNRXhhbXBsZSwgSW5jLjEYMAoGA1UECwwDZW5nMAoGA1UECwwDb3BzMQ4wDAYDVQQDDAVhbGljZTEgMB4GCSqGSIb3DQEJARYRYWxpY2VAZXhhbXBsZS5jb20wWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARPjsqBa3FeLsariigVLGGA6mcmhxvZ0Y4NFtLYBwCt/vU0U94NAdN/WCTAnKDi20V3qO9ZJsHFxW1/9cJPxsc6o1MwUTAdBgNVHQ4EFgQUWaY2Z2RBBQ5hD+mFZQKWxingjxcwHwYDVR0jBBgwFoAUWaY2Z2RBBQ5hD+mFZQKWxingjxcwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAxGrlMdSyTldnCd6NcvQUEFDVaClYKrAXWqWW0jWgruECIQDBtcO9tUh1VJO3D8ojHKQvG3CoxtEmHiOz1qlP6ChHoA==
        """)!)

    @Test func theSubjectIsReadInRFC2253sFormAsJavaGivesIt() {
        // The last RDN first; known types by keyword, the e-mail address by number and hex;
        // a comma in a value escaped; a multi-valued RDN joined by '+'.
        #expect(CertificateSubject.distinguishedName(certificateDER: Self.certificate)
                == "1.2.840.113549.1.9.1=#1611616c696365406578616d706c652e636f6d,CN=alice,OU=eng+OU=ops,O=Example\\, Inc.,ST=CA,C=US")
    }

    @Test func truncatedOrCorruptCertificatesAreNotReadAndDoNotTrap() {
        for length in stride(from: 0, to: Self.certificate.count, by: 7) {
            #expect(CertificateSubject.distinguishedName(certificateDER: Array(Self.certificate.prefix(length))) == nil)
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var bytes = Self.certificate
            for _ in 0..<3 { bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator) }
            _ = CertificateSubject.distinguishedName(certificateDER: bytes)
        }
    }

    @Test func mappingRulesAreKafkas() throws {
        let dn = "CN=alice,OU=ServiceUsers,O=Example,C=US"
        #expect(SslPrincipalMapper.default.name(for: dn) == dn)
        let rules = try SslPrincipalMapper.parse("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/, RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L, DEFAULT")
        #expect(rules.rules.count == 3)
        #expect(rules.name(for: dn) == "alice")
        #expect(rules.name(for: "CN=Bob,OU=Eng,O=X,L=Y,ST=Z,C=US") == "bob@eng")
        #expect(rules.name(for: "CN=carol,O=Other") == "CN=carol,O=Other")
        // Upper-casing, an escaped slash in a pattern, and no rule applying.
        let strict = try SslPrincipalMapper.parse("RULE:^CN=([a-z]+)\\/x$/$1/U")
        #expect(strict.name(for: "CN=dave/x") == "DAVE")
        #expect(strict.name(for: "CN=dave") == nil)
        for bad in ["", "RULE:abc", "RULE:a/b", "RULE:a/b/X", "NOPE", "DEFAULT DEFAULT", "RULE:(/x/"] {
            #expect(throws: SslPrincipalMapper.ParseError.self, "\(bad)") { try SslPrincipalMapper.parse(bad) }
        }
    }
}
