import BrookClient
import BrookCore
import BrookProtocol
import Foundation

struct BrokerView: Encodable {
    var id: Int32
    var host: String
    var port: Int32
    var rack: String?
}

struct ClusterView: Encodable {
    var clusterId: String
    var controller: Int32?
    var brokers: [BrokerView]
    var topics: Int
    var partitions: Int
    var underReplicated: Int
    var offline: Int
}

struct TopicSummary: Encodable {
    var name: String
    var `internal`: Bool
    var partitions: Int
    var replicationFactor: Int
    var underReplicated: Int
    var records: Int64
}

struct PartitionView: Encodable {
    var partition: Int32
    var leader: Int32?
    var replicas: [Int32]
    var isr: [Int32]
    var startOffset: Int64?
    var endOffset: Int64?
}

struct TopicView: Encodable {
    var name: String
    var `internal`: Bool
    var partitions: [PartitionView]
    var configs: [ConfigView]
}

extension Console {
    /// Topics whose offsets the topic list reads, at most (the rest show no record count).
    static let topicListOffsetsMax = 2000

    /// The cluster's summary. The active controller is the quorum's leader (DescribeQuorum):
    /// Metadata names a broker clients can reach instead, which with a dedicated controller, or
    /// a fenced one, is not the controller (`ClusterMembership.View.controllerForClients`).
    func clusterView(_ client: ClusterClient) async throws -> ClusterView {
        let meta = try await client.metadata(topics: nil)
        let partitions = meta.topics.flatMap(\.partitions)
        let leader = (try? await admin(client).describeMetadataQuorum())?.leaderID.value ?? -1
        let controller = leader >= 0 ? leader : meta.controllerId.value
        return ClusterView(
            clusterId: meta.clusterId ?? clusterID, controller: controller >= 0 ? controller : nil,
            brokers: meta.brokers.sorted { $0.nodeId < $1.nodeId }.map { BrokerView(id: $0.nodeId.value, host: $0.host, port: $0.port, rack: $0.rack) },
            topics: meta.topics.count, partitions: partitions.count,
            underReplicated: partitions.count { $0.isrNodes.count < $0.replicaNodes.count },
            offline: partitions.count { $0.leaderId.value < 0 })
    }

    static func leaders(_ topic: MetadataResponse.MetadataResponseTopic) -> [Int32: NodeID] {
        Dictionary(topic.partitions.filter { $0.leaderId.value >= 0 }.map { ($0.partitionIndex, $0.leaderId) }) { a, _ in a }
    }

    func topicList(_ client: ClusterClient) async throws -> [TopicSummary] {
        let meta = try await client.metadata(topics: nil)
        var out: [TopicSummary] = []
        var offsetsRead = 0
        for topic in meta.topics.sorted(by: { ($0.name ?? "") < ($1.name ?? "") }) where topic.errorCode == 0 {
            guard let name = topic.name else { continue }
            var records: Int64 = 0
            if offsetsRead < Self.topicListOffsetsMax {
                offsetsRead += topic.partitions.count
                let leaders = Self.leaders(topic)
                let start = try await client.listOffsets(topic: name, leaders: leaders, timestamp: -2)
                let end = try await client.listOffsets(topic: name, leaders: leaders, timestamp: -1)
                records = end.reduce(0) { sum, entry in sum + max(0, entry.value.value - (start[entry.key]?.value ?? entry.value.value)) }
            }
            out.append(TopicSummary(name: name, internal: topic.isInternal, partitions: topic.partitions.count,
                                    replicationFactor: topic.partitions.map(\.replicaNodes.count).max() ?? 0,
                                    underReplicated: topic.partitions.count { $0.isrNodes.count < $0.replicaNodes.count },
                                    records: records))
        }
        return out
    }

    func topicMetadata(_ client: ClusterClient, _ name: String) async throws -> MetadataResponse.MetadataResponseTopic {
        let meta = try await client.metadata(topics: [name])
        guard let topic = meta.topics.first else { throw ConsoleError(404, "no topic \(name)") }
        if let failure = Self.failure(topic.errorCode, nil, "topic \(name)") { throw failure }
        return topic
    }

    func topicView(_ client: ClusterClient, _ name: String) async throws -> TopicView {
        let topic = try await topicMetadata(client, name)
        let leaders = Self.leaders(topic)
        let start = try await client.listOffsets(topic: name, leaders: leaders, timestamp: -2)
        let end = try await client.listOffsets(topic: name, leaders: leaders, timestamp: -1)
        let partitions = topic.partitions.sorted { $0.partitionIndex < $1.partitionIndex }.map { p in
            PartitionView(partition: p.partitionIndex, leader: p.leaderId.value >= 0 ? p.leaderId.value : nil,
                          replicas: p.replicaNodes.map(\.value), isr: p.isrNodes.map(\.value),
                          startOffset: start[p.partitionIndex]?.value, endOffset: end[p.partitionIndex]?.value)
        }
        return TopicView(name: name, internal: topic.isInternal, partitions: partitions,
                         configs: try await configs(client, .topic(name)))
    }

    func createTopic(_ client: ClusterClient, _ wanted: NewTopic) async throws -> [String: String] {
        let name = wanted.name.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty else { throw ConsoleError(400, "a topic needs a name") }
        try await admin(client).createTopics([BrookClient.NewTopic(name, partitions: wanted.partitions ?? -1,
                                                                  replicationFactor: wanted.replicationFactor ?? -1, configs: wanted.configs ?? [:])])
        return ["name": name]
    }

    func deleteTopic(_ client: ClusterClient, _ name: String) async throws {
        try await admin(client).deleteTopics([name])
    }

    func addPartitions(_ client: ClusterClient, _ name: String, _ count: Int32) async throws {
        try await admin(client).createPartitions([name: count])
    }

    /// Kafka's names for config sources, as the page shows them.
    static func sourceName(_ source: ConfigSource) -> String {
        switch source {
        case .topic: "DYNAMIC_TOPIC_CONFIG"
        case .dynamicBroker: "DYNAMIC_BROKER_CONFIG"
        case .dynamicDefaultBroker: "DYNAMIC_DEFAULT_BROKER_CONFIG"
        case .staticBroker: "STATIC_BROKER_CONFIG"
        case .default: "DEFAULT_CONFIG"
        case .dynamicBrokerLogger: "DYNAMIC_BROKER_LOGGER_CONFIG"
        case .clientMetrics: "CLIENT_METRICS_CONFIG"
        case .group: "GROUP_CONFIG"
        case .unknown: "UNKNOWN"
        }
    }

    /// A topic's or a broker's (asked of that broker) configs.
    func configs(_ client: ClusterClient, _ resource: ConfigResource) async throws -> [ConfigView] {
        try await admin(client).describeConfigs(resource).sorted { $0.name < $1.name }.map {
            ConfigView(name: $0.name, value: $0.isSensitive ? nil : $0.value, source: Self.sourceName($0.source),
                       readOnly: $0.isReadOnly, sensitive: $0.isSensitive, isDefault: $0.source == .default)
        }
    }

    func alterConfigs(_ client: ClusterClient, _ resource: ConfigResource, _ change: ConfigChange) async throws {
        try await admin(client).alterConfigs(resource, set: change.set ?? [:], delete: (change.delete ?? []).sorted())
    }
}
