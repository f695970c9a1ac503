import BrookSecurity

/// The SASL exchanges a client drives before it is authenticated: PLAIN messages, SCRAM's
/// client-first and client-final messages against a known credential (and the client side's
/// parse of a server-first message), JAAS option strings from configs, and the subject of a
/// client certificate (the committed corpus has a real one, seed-certificate), and OAUTHBEARER's
/// message with an unsecured token.
///
/// The digests are a stand-in (the harness builds without a crypto library): what is fuzzed is
/// the exchanges' grammar and state, which compute with whatever digests they are given.
enum SaslFuzzing {
    /// Not a cryptographic hash: FNV-1a spread over the mechanism's output size.
    struct StandInDigests: ScramDigests {
        func hash(_ mechanism: ScramMechanism, _ data: [UInt8]) -> [UInt8] {
            var state: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in data { state = (state ^ UInt64(byte)) &* 0x100_0000_01b3 }
            return (0..<mechanism.hashBytes).map { i in
                state = (state ^ UInt64(i)) &* 0x100_0000_01b3
                return UInt8(truncatingIfNeeded: state >> 24)
            }
        }

        func hmac(_ mechanism: ScramMechanism, key: [UInt8], _ data: [UInt8]) -> [UInt8] {
            hash(mechanism, key + [0x36] + data)
        }
    }

    static let scram = Scram(.sha256, digests: StandInDigests())
    static let credential = scram.credential(
        saltedPassword: scram.saltedPassword("pencil", salt: Array("salt".utf8), iterations: 4096),
        salt: Array("salt".utf8), iterations: 4096)
    static let users = ["user": "pencil"]
    static let unsecured: OAuthBearer.Settings = {
        var settings = OAuthBearer.Settings()
        settings.allowUnsecured = true
        return settings
    }()

    static let target = FuzzTarget(
        name: "sasl",
        input: "kind (1 byte, modulo 6: 0 a PLAIN message, 1 SCRAM client-first (16-bit length) then client-final, 2 a JAAS config string, 3 a SCRAM server-first for the client side, 4 a client certificate (DER) whose subject names an SSL principal, 5 an OAUTHBEARER message with an unsecured JWT), then its bytes",
        inputBytesMax: 8192
    ) { bytes in
        var input = FuzzInput(bytes)
        switch input.byte() % 6 {
        case 0:
            if case .authenticated(let user) = PlainAuthentication.check(Array(input.rest()), users: users) {
                precondition(user == "user", "PLAIN authenticated an unknown user")
            }
        case 1:
            let first = Array(input.take(Int(input.uint16())))
            var exchange = ScramServerExchange(scram: scram, serverNonce: "fuzz")
            guard case .challenge = exchange.step(first, credential: { $0 == "user" ? credential : nil }) else { return }
            if case .authenticated(let user, _) = exchange.step(Array(input.rest()), credential: { $0 == "user" ? credential : nil }) {
                precondition(user == "user", "SCRAM authenticated an unknown user")
            }
        case 2:
            let text = String(decoding: input.rest(), as: UTF8.self)
            if let config = try? JaasConfig.parse(text) { _ = config.plainUsers }
        case 3:
            var client = ScramClientExchange(scram: scram, user: "user", password: "pencil", clientNonce: "fuzz")
            _ = client.clientFirst()
            if let final = client.clientFinal(Array(input.rest())) { _ = client.verify(serverFinal: final) }
        case 4:
            if let subject = CertificateSubject.distinguishedName(certificateDER: Array(input.rest())) {
                _ = SslPrincipalMapper.default.name(for: subject)
            }
        default:
            if case .authenticated(let user, _) = OAuthBearer.check(Array(input.rest()), settings: unsecured, nowMs: 0, verifier: nil) {
                precondition(!user.isEmpty, "OAUTHBEARER authenticated an empty principal")
            }
        }
    }

    static var seeds: [FuzzSeeds.Seed] {
        let clientFirst = Array("n,,n=user,r=rOprNGfwEbeRWgbNEkqO".utf8)
        var client = ScramClientExchange(scram: scram, user: "user", password: "pencil", clientNonce: "rOprNGfwEbeRWgbNEkqO")
        _ = client.clientFirst()
        let serverFirst = Array("r=rOprNGfwEbeRWgbNEkqOfuzz,s=c2FsdA==,i=4096".utf8)
        let final = client.clientFinal(serverFirst) ?? []
        return [
            .init(target: "sasl", name: "seed-plain", bytes: [0] + PlainAuthentication.message(user: "user", password: "pencil")),
            .init(target: "sasl", name: "seed-scram", bytes: [1] + FuzzSeeds.uint16(clientFirst.count) + clientFirst + final),
            .init(target: "sasl", name: "seed-jaas", bytes: [2] + Array(#"org.apache.kafka.common.security.plain.PlainLoginModule required username="a" password="b" user_a="b";"#.utf8)),
            .init(target: "sasl", name: "seed-server-first", bytes: [3] + serverFirst),
            .init(target: "sasl", name: "seed-oauthbearer", bytes: [5] + Array("n,,\u{1}auth=Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6MTAwMH0.\u{1}\u{1}".utf8)),
        ]
    }
}
