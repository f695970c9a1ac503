import BrookBroker
import BrookClient
import BrookCore
import Foundation
import Testing

/// BrookClient's consumer against a broker on a loopback socket: closing it closes its
/// incremental fetch session at the broker (a fetch at epoch -1, as the Java client sends), so
/// the broker's session cache does not keep the slot until the session expires.
@Suite struct ConsumerCloseTests {
    @Test func closingTheConsumerClosesItsFetchSession() async throws {
        try await SlowRevocationTests.withLoopbackBroker([], topic: NewTopic("closing", partitions: 8, replicationFactor: 1)) { broker, bootstrap in
            var config = ConsumerConfig(bootstrapServers: bootstrap)
            config.offsetReset = .earliest
            config.fetchMaxWaitMs = 50
            let consumer = KafkaConsumer(config)
            try await consumer.assign((0..<8).map { TopicPartition("closing", $0) })
            let opened = await SlowRevocationTests.waitFor(20) {
                _ = try? await consumer.poll(timeoutMs: 50)
                return broker.fetchSessions.count == 1
            }
            #expect(opened, "the consumer's fetches opened a session")
            // The answer that gives the consumer the session's id comes after the broker opened it.
            let until = Date().addingTimeInterval(0.5)
            while Date() < until { _ = try? await consumer.poll(timeoutMs: 50) }
            #expect(broker.fetchSessions.count == 1)
            await consumer.close()
            #expect(broker.fetchSessions.count == 0, "the session was closed with the consumer")
        }
    }
}
