import BrookBroker
import BrookCore
import BrookProtocol
import Foundation
import NIOCore
import NIOEmbedded
import Testing

/// A classic (non-flexible) string has an int16 length: at most 32767 bytes. WireWriter stops the
/// process (precondition) on a longer one, so an answer that echoes a client's string inside a
/// longer message, or a config value set through a flexible version and read back through a
/// classic one, must never reach it. These run in a child process (exit tests), since today
/// they crash it.
@Suite struct OversizedStringTests {
    /// Runs requests against a fresh broker in `directory`, in the calling process; returns
    /// normally when the broker answered them all (with errors or not).
    static func answer(in directory: String, _ frames: [ByteBuffer]) throws {
        let broker = try Broker(config: BrokerConfig([("log.dirs", directory), ("node.id", "1")]), logger: quietLogger)
        defer { broker.shutdown() }
        let loop = EmbeddedEventLoop()
        for frame in frames {
            _ = try broker.handle(frame: frame, eventLoop: loop)
        }
    }

    static func frame<R: KafkaRequest>(_ request: R, version: Int16) -> ByteBuffer {
        var writer = WireWriter()
        RequestHeader(apiKey: R.apiKey, apiVersion: version, correlationID: 1, clientID: "big").encode(to: &writer)
        request.encode(to: &writer, version: version)
        return writer.buffer
    }

    static let longest = String(repeating: "x", count: Int(Int16.max))

    /// DescribeConfigs v1, broker resource named by 32767 bytes: the error message quotes it.
    @Test func describeConfigsQuotingALongBrokerName() async {
        // Made and removed here: the child process that crashes cannot clean up after itself.
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        await #expect(processExitsWith: .success) { [directory = directory as String] in
            try OversizedStringTests.answer(in: directory, [OversizedStringTests.frame(
                DescribeConfigsRequest(resources: [.init(resourceType: 4, resourceName: OversizedStringTests.longest)]), version: 1)])
        }
    }

    /// CreatePartitions v0 for a missing topic named by 32767 bytes: "Topic '…' does not exist."
    @Test func createPartitionsQuotingALongTopicName() async {
        // Made and removed here: the child process that crashes cannot clean up after itself.
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        await #expect(processExitsWith: .success) { [directory = directory as String] in
            try OversizedStringTests.answer(in: directory, [OversizedStringTests.frame(
                CreatePartitionsRequest(topics: [.init(name: OversizedStringTests.longest, count: 2)]), version: 0)])
        }
    }

    /// A 40000-byte config value set with IncrementalAlterConfigs v1 (compact strings) and read
    /// back with DescribeConfigs v3 (classic strings).
    @Test func longConfigValueReadThroughAClassicVersion() async {
        // Made and removed here: the child process that crashes cannot clean up after itself.
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        await #expect(processExitsWith: .success) { [directory = directory as String] in
            let value = String(repeating: "1", count: 40_000)
            try OversizedStringTests.answer(in: directory, [
                OversizedStringTests.frame(CreateTopicsRequest(topics: [.init(name: "t", numPartitions: 1, replicationFactor: 1)]), version: 7),
                OversizedStringTests.frame(IncrementalAlterConfigsRequest(resources: [.init(resourceType: 2, resourceName: "t", configs: [
                    .init(name: "leader.replication.throttled.replicas", configOperation: 0, value: value),
                ])]), version: 1),
                OversizedStringTests.frame(DescribeConfigsRequest(resources: [.init(resourceType: 2, resourceName: "t")]), version: 3),
            ])
        }
    }

    /// The same requests with strings that fit are answered (the harness itself works).
    @Test func shortStringsAreAnswered() throws {
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.answer(in: directory, [
            Self.frame(DescribeConfigsRequest(resources: [.init(resourceType: 4, resourceName: "2")]), version: 1),
            Self.frame(CreatePartitionsRequest(topics: [.init(name: "missing", count: 2)]), version: 0),
        ])
    }
}
