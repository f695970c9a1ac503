import BrookBroker
import BrookClient
import BrookSecurity
@testable import BrookServer
import Testing

/// How a node reaches the others: `inter.broker.listener.name` / `security.inter.broker.protocol`,
/// the broker's own SASL login from the listener's JAAS config, and the controller listener's
/// protocol (PLAINTEXT or SSL; SASL stops the start).
@Suite struct InterBrokerConfigTests {
    static let listeners = [
        ("listeners", "CLIENT://127.0.0.1:9092,INTERNAL://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093"),
        ("controller.listener.names", "CONTROLLER"),
        ("listener.security.protocol.map", "CLIENT:SASL_SSL,INTERNAL:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"),
    ]

    static func config(_ more: [(String, String)]) throws -> BrokerConfig { try BrokerConfig(listeners + more) }

    static func refusal(_ more: [(String, String)]) -> String? {
        do { _ = try config(more); return nil } catch { return "\(error)" }
    }

    @Test func theInterBrokerListenerIsNamedOrFoundByItsProtocol() throws {
        #expect(try Self.config([]).interBrokerListener == "CLIENT")  // neither given: the first client listener
        #expect(try Self.config([("inter.broker.listener.name", "INTERNAL")]).interBrokerListener == "INTERNAL")
        #expect(try Self.config([("security.inter.broker.protocol", "SASL_PLAINTEXT")]).interBrokerListener == "INTERNAL")
    }

    @Test func namesThatDoNotFitStopTheStart() {
        #expect(Self.refusal([("inter.broker.listener.name", "NOPE")])?.contains("not a listener") == true)
        #expect(Self.refusal([("inter.broker.listener.name", "CONTROLLER")])?.contains("not a listener") == true)
        #expect(Self.refusal([("security.inter.broker.protocol", "SSL")])?.contains("no listener has that protocol") == true)
        #expect(Self.refusal([("inter.broker.listener.name", "INTERNAL"), ("security.inter.broker.protocol", "SASL_PLAINTEXT")])?
            .contains("not both") == true)
        #expect(Self.refusal([("sasl.mechanism.inter.broker.protocol", "GSSAPI")]) != nil)
    }

    @Test func aControllerListenerWithSaslStopsTheStart() {
        let refused = Self.refusal([("listener.security.protocol.map", "CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:SASL_SSL")])
        #expect(refused?.contains("not SASL") == true)
    }

    @Test func theBrokersOwnLoginComesFromTheListenersJaasConfig() throws {
        let config = try Self.config([
            ("inter.broker.listener.name", "INTERNAL"),
            ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
            ("listener.name.internal.plain.sasl.jaas.config",
             #"org.apache.kafka.common.security.plain.PlainLoginModule required username="b" password="pb" user_b="pb";"#),
            ("listener.name.internal.scram-sha-512.sasl.jaas.config",
             #"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="s3";"#),
        ])
        #expect(config.security.interBrokerMechanism == .scramSHA512)
        #expect(config.security.listenerLogins["INTERNAL"]?[.scramSHA512] == SecurityConfig.SaslLogin(user: "broker", password: "s3"))
        #expect(config.security.listenerLogins["INTERNAL"]?[.plain] == SecurityConfig.SaslLogin(user: "b", password: "pb"))
        let client = try InterBrokerClient(config: config)
        #expect(client.listener == "INTERNAL")
        #expect(client.sasl == SaslCredentials(mechanism: .scramSHA512, user: "broker", password: "s3"))
        #expect(client.tls == nil && client.files.isEmpty)
    }

    @Test func aSaslInterBrokerListenerWithoutTheBrokersLoginStopsTheStart() throws {
        // PLAIN users listed, but no username/password for the broker itself.
        let config = try Self.config([
            ("inter.broker.listener.name", "INTERNAL"),
            ("listener.name.internal.plain.sasl.jaas.config", #"org.apache.kafka.common.security.plain.PlainLoginModule required user_b="pb";"#),
        ])
        #expect(throws: (any Error).self) { try InterBrokerClient(config: config) }
        let disabled = try Self.config([
            ("inter.broker.listener.name", "INTERNAL"),
            ("listener.name.internal.sasl.enabled.mechanisms", "SCRAM-SHA-256"),
            ("listener.name.internal.plain.sasl.jaas.config",
             #"org.apache.kafka.common.security.plain.PlainLoginModule required username="b" password="pb" user_b="pb";"#),
        ])
        do {
            _ = try InterBrokerClient(config: disabled)
            Issue.record("PLAIN is not enabled on INTERNAL: expected a refusal")
        } catch {
            #expect("\(error)".contains("not enabled on the inter-broker listener"))
        }
    }

    @Test func aPlaintextControllerListenerAddsNothing() throws {
        let (transport, files) = try ControllerTransport.make(try Self.config([]), serving: true)
        #expect(transport.server == nil && transport.client == nil && files.isEmpty)
    }
}
