import BrookBroker
import BrookClient
import BrookCore
import BrookServer
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// BrookClient's KIP-848 consumer against a broker on a loopback socket: a member whose
/// revocation callback takes longer than the group's session timeout keeps heartbeating
/// meanwhile, so it stays in the group, gives its partitions up once and is never fenced (its
/// partitions are not handed to another member while it still reads them).
@Suite struct SlowRevocationTests {
    final class Events: Sendable {
        let revoked = Mutex<[[TopicPartition]]>([])
        let lost = Mutex<[[TopicPartition]]>([])
    }

    static func freeLoopbackPort() throws -> Int {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let channel = try ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).wait()
        defer { try? channel.close().wait() }
        guard let port = channel.localAddress?.port else { throw UnexpectedOutcome(description: "no port bound") }
        return port
    }

    /// Polls until `condition` holds or `seconds` pass.
    static func waitFor(_ seconds: Double, _ condition: () async -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return await condition()
    }

    /// A broker serving on a free loopback port (with `settings` beside its data folder and
    /// listener), with `topic` made; `body` gets it and its bootstrap address. Everything is
    /// stopped and removed after.
    static func withLoopbackBroker(_ settings: [(String, String)], topic: NewTopic,
                                   _ body: (Broker, [String]) async throws -> Void) async throws {
        let port = try freeLoopbackPort()
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let broker = try Broker(config: BrokerConfig([
            ("log.dirs", directory), ("node.id", "1"), ("listeners", "PLAINTEXT://127.0.0.1:\(port)"),
        ] + settings), logger: quietLogger)
        let server = BrookServer(broker: broker, threads: 1, logger: quietLogger)
        try server.start()
        defer { server.shutdown() }
        let bootstrap = ["127.0.0.1:\(port)"]
        let admin = KafkaAdmin(AdminConfig(bootstrapServers: bootstrap))
        try await admin.createTopics([topic])
        await admin.close()
        try await body(broker, bootstrap)
    }

    @Test func aRevocationLongerThanTheSessionTimeoutKeepsTheMember() async throws {
        try await Self.withLoopbackBroker([
            ("group.consumer.min.session.timeout.ms", "500"), ("group.consumer.session.timeout.ms", "1500"),
            ("group.consumer.min.heartbeat.interval.ms", "100"), ("group.consumer.heartbeat.interval.ms", "250"),
        ], topic: NewTopic("slow", partitions: 4, replicationFactor: 1)) { _, bootstrap in
            try await Self.revokeSlowly(bootstrap)
        }
    }

    static func revokeSlowly(_ bootstrap: [String]) async throws {
        var config = ConsumerConfig(bootstrapServers: bootstrap)
        config.groupID = "slow-revokers"
        config.offsetReset = .earliest
        let events = Events()
        let first = KafkaConsumer(config)
        // Revoking takes 4 s, more than twice the 1.5 s session.
        try await first.subscribe(["slow"], listener: RebalanceListener(
            revoked: { partitions in
                try? await Task.sleep(for: .seconds(4))
                events.revoked.withLock { $0.append(partitions) }
            },
            lost: { partitions in events.lost.withLock { $0.append(partitions) } }))
        let second = KafkaConsumer(config)
        let polls = [first, second].map { consumer in
            Task { while !Task.isCancelled { _ = try? await consumer.poll(timeoutMs: 100) } }
        }
        defer { for poll in polls { poll.cancel() } }

        #expect(await waitFor(30) { await first.assignment().count == 4 }, "the first member takes all four partitions")
        try await second.subscribe(["slow"])
        let balanced = await waitFor(60) {
            let (a, b) = (await first.assignment(), await second.assignment())
            return a.count == 2 && b.count == 2 && Set(a).isDisjoint(with: b) && !events.revoked.withLock { $0.isEmpty }
        }
        #expect(balanced, "two partitions each after the slow revocation")
        #expect(events.revoked.withLock { $0.map(\.count) } == [2], "two partitions revoked, once")
        #expect(events.lost.withLock { $0 }.isEmpty, "never fenced: its session did not end while it revoked")
        for poll in polls { poll.cancel() }
        await first.close()
        await second.close()
    }
}
