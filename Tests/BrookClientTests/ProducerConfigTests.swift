@testable import BrookClient
import Testing

/// The producer's properties as the Java client reads them, and the defaults that depend on
/// each other: idempotence (on unless acks is not all or more than 5 batches in flight are
/// asked) and the batches in flight (5 when idempotent, more when not).
@Suite struct ProducerConfigTests {
    static func config(_ properties: [String: String]) throws -> ProducerConfig {
        try ProducerConfig(properties: properties.merging(["bootstrap.servers": "127.0.0.1:9092"]) { a, _ in a })
    }

    @Test func anIdempotentProducerKeepsFiveBatchesInFlight() throws {
        let plain = try Self.config([:])
        #expect(plain.isIdempotent && plain.effectiveMaxInFlight == 5 && plain.accumulator.maxInFlight == 5)
        let all = try Self.config(["acks": "all", "max.in.flight.requests.per.connection": "3"])
        #expect(all.isIdempotent && all.effectiveMaxInFlight == 3)
        let asked = try Self.config(["enable.idempotence": "true", "max.in.flight.requests.per.connection": "5"])
        #expect(asked.isIdempotent && asked.accumulator.maxInFlight == 5 && asked.accumulator.idempotent)
    }

    @Test func aProducerThatIsNotIdempotentKeepsMoreInFlightUnlessTold() throws {
        for properties in [["acks": "1"], ["acks": "0"], ["enable.idempotence": "false"]] {
            let config = try Self.config(properties)
            #expect(!config.isIdempotent, "\(properties)")
            #expect(config.effectiveMaxInFlight == ProducerConfig.maxInFlightNotIdempotent && config.accumulator.maxInFlight == 50, "\(properties)")
        }
        let told = try Self.config(["acks": "1", "max.in.flight.requests.per.connection": "5"])
        #expect(!told.isIdempotent && told.effectiveMaxInFlight == 5)
        // More than 5 asked, idempotence not asked: it is off, as in the Java client.
        let many = try Self.config(["max.in.flight.requests.per.connection": "10"])
        #expect(!many.isIdempotent && many.accumulator.maxInFlight == 10 && !many.accumulator.idempotent)
        // Set on the struct: acks=1 makes it not idempotent, with the larger default.
        var set = ProducerConfig(bootstrapServers: ["127.0.0.1:9092"])
        set.acks = 1
        #expect(!set.isIdempotent && set.effectiveMaxInFlight == 50)
        set.acks = -1
        #expect(set.isIdempotent && set.effectiveMaxInFlight == 5)
    }

    @Test func contradictionsAreRefused() {
        #expect(throws: ClientError.self) { try Self.config(["enable.idempotence": "true", "max.in.flight.requests.per.connection": "6"]) }
        #expect(throws: ClientError.self) { try Self.config(["enable.idempotence": "true", "acks": "1"]) }
        #expect(throws: ClientError.self) { try Self.config(["transactional.id": "t", "acks": "1"]) }
        #expect(throws: ClientError.self) { try Self.config(["transactional.id": "t", "max.in.flight.requests.per.connection": "6"]) }
        #expect(throws: (any Error).self) { try Self.config(["max.in.flight.requests.per.connection": "0"]) }
    }

    /// A transactional producer set up field by field without idempotence keeps 5 in flight and
    /// is refused when it starts its transactions (before anything is sent).
    @Test func aTransactionalProducerWithoutIdempotenceIsRefused() async {
        var config = ProducerConfig(bootstrapServers: ["127.0.0.1:1"])
        config.transactionalID = "t"
        config.acks = 1
        #expect(!config.isIdempotent && config.effectiveMaxInFlight == 5)
        let producer = KafkaProducer(config)
        await #expect(throws: ProduceError.self) { try await producer.initTransactions() }
        await producer.close()
    }
}
