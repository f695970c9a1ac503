@testable import BrookBroker
import BrookCluster
import BrookCore
import BrookProtocol
import Synchronization
import Testing

/// Dynamic broker configs (issue 17): the broker-wide topic defaults set on a BROKER resource
/// go to the controller, and every topic without its own value takes them from the image.
@Suite struct DynamicBrokerConfigTests {
    typealias Alterable = IncrementalAlterConfigsRequest.AlterConfigsResource.AlterableConfig
    let n1 = NodeID(1)

    /// What the broker sent the controller.
    final class Sent: Sendable {
        let requests = Mutex<[ControllerAdminRequest]>([])
    }

    func clusterHarness(_ sent: Sent = Sent()) throws -> BrokerHarness {
        let h = try BrokerHarness([("process.roles", "broker,controller"), ("log.retention.ms", "86400000")])
        h.broker.cluster.attach(forward: { request, done in
            sent.requests.withLock { $0.append(request) }
            guard case .setBrokerConfigs(let broker, _) = request else { return done(.success([])) }
            done(.success([TopicAnswer(name: broker, error: .none)]))
        }, alterPartitions: { changes, done in done(changes.map { _ in (.none, nil) }) })
        return h
    }

    @Test func theTopicDefaultsAreCheckedThenSetByTheController() throws {
        let sent = Sent()
        let h = try clusterHarness(sent)
        defer { h.close() }
        let answer = try h.send(IncrementalAlterConfigsRequest(resources: [
            .init(resourceType: 4, resourceName: "", configs: [Alterable(name: "log.retention.ms", configOperation: 0, value: "3600000"),
                                                               Alterable(name: "message.max.bytes", configOperation: 0, value: "2000000")]),
            .init(resourceType: 4, resourceName: "1", configs: [Alterable(name: "log.segment.bytes", configOperation: 0, value: "10")]),
            .init(resourceType: 4, resourceName: "1", configs: [Alterable(name: "log.cleanup.policy", configOperation: 0, value: "sometimes")]),
            .init(resourceType: 4, resourceName: "1", configs: [Alterable(name: "min.insync.replicas", configOperation: 0, value: "2")]),
            .init(resourceType: 4, resourceName: "1", configs: [Alterable(name: "log.retention.hours", configOperation: 0, value: "2")]),
            .init(resourceType: 4, resourceName: "1", configs: [Alterable(name: "log.retention.ms", configOperation: 1, value: nil)]),
        ]), version: 1)
        let invalidConfig = ErrorCode.invalidConfig.rawValue
        #expect(answer.responses.map(\.errorCode) == [0, invalidConfig, invalidConfig, ErrorCode.invalidRequest.rawValue, 0, 0])
        #expect(answer.responses[1].errorMessage?.contains("log.segment.bytes") == true, "\(answer.responses[1].errorMessage ?? "")")
        #expect(sent.requests.withLock { $0 } == [
            .setBrokerConfigs(broker: "", configs: ["log.retention.ms": "3600000", "message.max.bytes": "2000000"]),
            .setBrokerConfigs(broker: "1", configs: ["log.retention.hours": "2"]),
            .setBrokerConfigs(broker: "1", configs: [:]),
        ])
    }

    @Test func everyTopicWithoutItsOwnValueTakesThemAtOnce() throws {
        let h = try clusterHarness()
        defer { h.close() }
        let manager = ReplicaManager(broker: h.broker, node: n1)
        defer { manager.stop() }
        let ids = [KafkaUUID(high: 7, low: 1), KafkaUUID(high: 7, low: 2)]
        func partition(_ id: KafkaUUID) -> MetadataRecord {
            var r = PartitionRecord()
            r.topicId = id
            r.partitionId = 0
            r.replicas = [n1]
            r.isr = [n1]
            r.leader = n1
            r.leaderEpoch = LeaderEpoch(0)
            return .partition(r)
        }
        var image = MetadataImage()
        try image.apply([.topic(TopicRecord(name: "plain", topicId: ids[0])), partition(ids[0]),
                         .topic(TopicRecord(name: "own", topicId: ids[1])), partition(ids[1]),
                         .config(ConfigRecord(resourceType: 2, resourceName: "own", name: "retention.ms", value: "1000")),
                         .config(ConfigRecord(resourceType: 4, resourceName: "", name: "log.retention.ms", value: "3600000"))],
                        at: MetadataOffset(1))
        func settle() {
            manager.imageChanged(image)
            manager.drain()
            h.broker.cluster.update(.init(image: image, activeController: n1, fenced: false))
        }
        func retention(_ topic: String) throws -> Int64 {
            let p = try #require(h.broker.topics.topic(topic)?.hosted.first)
            return try p.withLog { $0.config.retentionMs }
        }
        settle()
        #expect(try retention("plain") == 3_600_000)
        #expect(try retention("own") == 1000)
        // This broker's own value wins over every broker's, in hours as in ms.
        try image.apply([.config(ConfigRecord(resourceType: 4, resourceName: "1", name: "log.retention.hours", value: "2"))], at: MetadataOffset(2))
        settle()
        #expect(try retention("plain") == 7_200_000)
        let topic = try h.send(DescribeConfigsRequest(resources: [.init(resourceType: 2, resourceName: "plain", configurationKeys: ["retention.ms"])],
                                                      includeSynonyms: true, includeDocumentation: false), version: 4).results[0].configs[0]
        #expect(topic.value == "7200000" && topic.configSource == 2)
        #expect(topic.synonyms.map(\.name) == ["log.retention.hours", "log.retention.ms", "log.retention.ms", "log.retention.ms"])
        #expect(topic.synonyms.map(\.source) == [2, 3, 4, 5])
        let broker = try h.send(DescribeConfigsRequest(resources: [.init(resourceType: 4, resourceName: "1", configurationKeys: ["log.retention.ms", "num.partitions"])],
                                                       includeSynonyms: true, includeDocumentation: false), version: 4).results[0].configs
        #expect(broker.map(\.name) == ["num.partitions", "log.retention.ms"])
        #expect(broker.map(\.readOnly) == [true, false])
        #expect(broker[1].value == "7200000" && broker[1].configSource == 2)
        // Removed again: back to the static setting.
        try image.apply([.config(ConfigRecord(resourceType: 4, resourceName: "1", name: "log.retention.hours", value: nil)),
                         .config(ConfigRecord(resourceType: 4, resourceName: "", name: "log.retention.ms", value: nil))], at: MetadataOffset(3))
        settle()
        #expect(try retention("plain") == 86_400_000)
        #expect(try retention("own") == 1000)
    }

    @Test func theStaticAndDynamicDefaultsAreLayeredByTopicConfigName() throws {
        var image = MetadataImage()
        try image.apply([.config(ConfigRecord(resourceType: 4, resourceName: "", name: "log.roll.hours", value: "1")),
                         .config(ConfigRecord(resourceType: 4, resourceName: "", name: "compression.type", value: "zstd")),
                         .config(ConfigRecord(resourceType: 4, resourceName: "2", name: "compression.type", value: "lz4")),
                         .config(ConfigRecord(resourceType: 4, resourceName: "", name: "log.retention.minutes", value: "5")),
                         .config(ConfigRecord(resourceType: 4, resourceName: "", name: "log.retention.ms", value: "1000"))],
                        at: MetadataOffset(1))
        let one = DynamicBrokerConfigs.topicDefaults(base: ["segment.ms": "5", "retention.bytes": "7"], node: NodeID(1), image: image)
        #expect(one == ["segment.ms": "3600000", "retention.bytes": "7", "compression.type": "zstd", "retention.ms": "1000"])
        #expect(DynamicBrokerConfigs.topicDefaults(base: [:], node: NodeID(2), image: image)["compression.type"] == "lz4")
        #expect(DynamicBrokerConfigs.topicDefaults(base: ["segment.ms": "5"], node: NodeID(1), image: nil) == ["segment.ms": "5"])
    }
}
