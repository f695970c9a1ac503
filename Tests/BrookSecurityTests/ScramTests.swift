import BrookCrypto
import BrookSecurity
import Foundation
import Testing

@Suite struct ScramTests {
    // RFC 7677's SCRAM-SHA-256 example: user "user", password "pencil".
    static let salt = Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!)
    static let clientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    static let serverNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    static let serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    static let clientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    static let serverFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

    static var pencil: ScramCredential {
        let m = Scram(.sha256)
        return m.credential(saltedPassword: m.saltedPassword("pencil", salt: salt, iterations: 4096), salt: salt, iterations: 4096)
    }

    @Test func theServerSideOfRFC7677sExampleGivesItsMessages() {
        var exchange = ScramServerExchange(scram: Scram(.sha256), serverNonce: Self.serverNonce)
        let credential = Self.pencil
        #expect(exchange.step(Array(Self.clientFirst.utf8)) { $0 == "user" ? credential : nil } == .challenge(Array(Self.serverFirst.utf8)))
        #expect(exchange.step(Array(Self.clientFinal.utf8)) { _ in credential } == .authenticated(user: "user", serverFinal: Array(Self.serverFinal.utf8)))
        // Nothing more is taken.
        guard case .failed = exchange.step(Array(Self.clientFinal.utf8), credential: { _ in credential }) else { Issue.record("a third step was taken"); return }
    }

    @Test func theClientSideOfRFC7677sExampleGivesItsMessages() {
        var client = ScramClientExchange(scram: Scram(.sha256), user: "user", password: "pencil", clientNonce: "rOprNGfwEbeRWgbNEkqO")
        #expect(String(decoding: client.clientFirst(), as: UTF8.self) == Self.clientFirst)
        #expect(client.clientFinal(Array(Self.serverFirst.utf8)).map { String(decoding: $0, as: UTF8.self) } == Self.clientFinal)
        #expect(client.verify(serverFinal: Array(Self.serverFinal.utf8)))
        #expect(!client.verify(serverFinal: Array("v=AAAA".utf8)))
    }

    static func run(_ mechanism: ScramMechanism, user: String, password: String, stored: [String: ScramCredential]) -> ScramServerExchange.Step {
        var client = ScramClientExchange(scram: Scram(mechanism), user: user, password: password)
        var server = ScramServerExchange(scram: Scram(mechanism))
        guard case .challenge(let first) = server.step(client.clientFirst(), credential: { stored[$0] }) else { return .failed("no challenge") }
        guard let final = client.clientFinal(first) else { return .failed("the client could not answer") }
        let step = server.step(final, credential: { stored[$0] })
        if case .authenticated(_, let serverFinal) = step { #expect(client.verify(serverFinal: serverFinal)) }
        return step
    }

    @Test(arguments: ScramMechanism.allCases)
    func rightPasswordsPassAndWrongOnesAndUnknownUsersFailAlike(_ mechanism: ScramMechanism) {
        let scram = Scram(mechanism)
        let stored = ["alice": scram.credential(password: "alice-secret"), "a,b=c": scram.credential(password: "odd")]
        guard case .authenticated(let user, _) = Self.run(mechanism, user: "alice", password: "alice-secret", stored: stored) else {
            Issue.record("alice was refused"); return
        }
        #expect(user == "alice")
        guard case .authenticated(let odd, _) = Self.run(mechanism, user: "a,b=c", password: "odd", stored: stored) else {
            Issue.record("a user name with ',' and '=' was refused"); return
        }
        #expect(odd == "a,b=c")
        #expect(Self.run(mechanism, user: "alice", password: "wrong", stored: stored) == .failed("a wrong password for user 'alice'"))
        #expect(Self.run(mechanism, user: "mallory", password: "x", stored: stored) == .failed("no \(mechanism.name) credential for user 'mallory'"))
    }

    /// librdkafka repeats its nonce in front of the joined one in its final message; Kafka's
    /// brokers take any final nonce that ends with the joined one, and so does Brook.
    @Test func aFinalNonceWithTheClientNonceRepeatedIsTaken() {
        let mechanism = Scram(.sha256)
        let credential = mechanism.credential(password: "secret")
        var server = ScramServerExchange(scram: mechanism, serverNonce: "SERVER")
        guard case .challenge(let first) = server.step(Array("n,,n=bob,r=CLIENT".utf8), credential: { _ in credential }) else {
            Issue.record("no challenge"); return
        }
        let text = String(decoding: first, as: UTF8.self)
        #expect(text.hasPrefix("r=CLIENTSERVER,"))
        let salted = mechanism.saltedPassword("secret", salt: credential.salt, iterations: credential.iterations)
        let clientKey = mechanism.hmac(key: salted, Array("Client Key".utf8))
        let withoutProof = "c=biws,r=CLIENTCLIENTSERVER"
        let signature = mechanism.hmac(key: mechanism.hash(clientKey), Array("n=bob,r=CLIENT,\(text),\(withoutProof)".utf8))
        let proof = Data(zip(clientKey, signature).map { $0 ^ $1 }).base64EncodedString()
        guard case .authenticated = server.step(Array("\(withoutProof),p=\(proof)".utf8), credential: { _ in credential }) else {
            Issue.record("librdkafka's final nonce was refused"); return
        }
    }

    @Test func malformedAndHostileMessagesFailWithoutATrap() {
        let credential = Self.pencil
        for message in ["", "n", "p=tls-unique,,n=user,r=abc", "n,,r=abc,n=user", "n,,n=,r=abc", "n,,n=us=er,r=abc",
                        "n,a=other,n=user,r=abc", "n,,n=user,r=abc,tokenauth=true", "n,,n=user,r=", String(repeating: "x", count: 5000)] {
            var exchange = ScramServerExchange(scram: Scram(.sha256))
            guard case .failed = exchange.step(Array(message.utf8), credential: { _ in credential }) else {
                Issue.record("'\(message.prefix(40))' was taken"); continue
            }
        }
        // A final message with another nonce, another binding, or a short proof.
        for final in ["c=biws,r=other,p=AAAA", "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
                      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA", "c=biws", "garbage"] {
            var exchange = ScramServerExchange(scram: Scram(.sha256), serverNonce: Self.serverNonce)
            _ = exchange.step(Array(Self.clientFirst.utf8)) { _ in credential }
            guard case .failed = exchange.step(Array(final.utf8), credential: { _ in credential }) else {
                Issue.record("'\(final)' was taken"); continue
            }
        }
        // Random bytes at either step.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let bytes = (0..<Int.random(in: 0...80, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            var exchange = ScramServerExchange(scram: Scram(.sha512), serverNonce: "n")
            _ = exchange.step(bytes) { _ in credential }
            _ = exchange.step(bytes) { _ in credential }
        }
    }

    @Test func plainChecksUsersAndPasswords() {
        let users = ["admin": "admin-secret", "alice": "alice-secret"]
        #expect(PlainAuthentication.check(PlainAuthentication.message(user: "alice", password: "alice-secret"), users: users) == .authenticated(user: "alice"))
        #expect(PlainAuthentication.check(Array("alice\0alice\0alice-secret".utf8), users: users) == .authenticated(user: "alice"))
        #expect(PlainAuthentication.check(Array("admin\0alice\0alice-secret".utf8), users: users) == .failed("an authorization id that is not the user"))
        #expect(PlainAuthentication.check(PlainAuthentication.message(user: "alice", password: "nope"), users: users) == .failed("a wrong password for user 'alice'"))
        #expect(PlainAuthentication.check(PlainAuthentication.message(user: "bob", password: "x"), users: users) == .failed("unknown user 'bob'"))
        #expect(PlainAuthentication.check(Array("alice".utf8), users: users) == .failed("a malformed PLAIN message"))
        #expect(PlainAuthentication.check([], users: users) == .failed("a malformed PLAIN message"))
    }

    @Test func jaasConfigsAsKafkaWritesThem() throws {
        let config = try JaasConfig.parse(#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="a \"quoted\" secret";"#)
        #expect(config.loginModule == "org.apache.kafka.common.security.plain.PlainLoginModule")
        #expect(config.flag == "required")
        #expect(config.options["username"] == "admin")
        #expect(config.plainUsers == ["admin": "admin-secret", "alice": #"a "quoted" secret"#])
        #expect(try JaasConfig.parse("org.x.ScramLoginModule required").options.isEmpty)
        #expect(throws: JaasConfig.ParseError.self) { try JaasConfig.parse("org.x.Module") }
        #expect(throws: JaasConfig.ParseError.self) { try JaasConfig.parse("org.x.Module maybe a=b;") }
        #expect(throws: JaasConfig.ParseError.self) { try JaasConfig.parse(#"org.x.Module required a="b"#) }
        #expect(throws: JaasConfig.ParseError.self) { try JaasConfig.parse("org.x.Module required a=b; more") }
    }

    @Test func addScramTakesKafkasFormat() throws {
        let given = try ScramBootstrap.parse("SCRAM-SHA-512=[name=admin,password=\"a,b=c\",iterations=8192]")
        #expect(given.mechanism == .sha512 && given.user == "admin" && given.password == "a,b=c" && given.iterations == 8192)
        #expect(try ScramBootstrap.parse("SCRAM-SHA-256=[name=alice,password=alice-secret]").iterations == 4096)
        for bad in ["SCRAM-SHA-1=[name=a,password=b]", "SCRAM-SHA-256=[name=a]", "SCRAM-SHA-256=[password=b]", "SCRAM-SHA-256=name=a,password=b",
                    "SCRAM-SHA-256=[name=a,password=b,iterations=100]", "SCRAM-SHA-256=[name=a,password=b,salt=x]",
                    "SCRAM-SHA-256=[name=a,name=b,password=c]", "SCRAM-SHA-256=[name=a,password=\"b]", ""] {
            #expect(throws: ScramBootstrap.ParseError.self, "\(bad)") { try ScramBootstrap.parse(bad) }
        }
    }
}
