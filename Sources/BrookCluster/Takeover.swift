import BrookCore
import BrookProtocol

/// A single node's data from before it ran on a metadata quorum: its topics (with the ids in
/// their `partition.metadata`), their config overrides, and the producer ids it reserved. A
/// bare `brook serve` is a one-voter cluster; the first time it starts on such a directory its
/// controller writes this into the metadata log, so nothing that was there is lost or renamed.
public struct SingleNodeData: Equatable, Sendable {
    public struct Topic: Equatable, Sendable {
        public var name: String
        public var id: KafkaUUID
        public var partitions: Int
        public var configs: [String: String]
        public init(name: String, id: KafkaUUID, partitions: Int, configs: [String: String] = [:]) {
            self.name = name
            self.id = id
            self.partitions = partitions
            self.configs = configs
        }
    }

    /// The node that holds the data: every partition's one replica and leader.
    public var node: NodeID
    public var topics: [Topic]
    /// The first producer id the cluster may hand out (the single node reserved those below).
    public var nextProducerID: ProducerID

    public init(node: NodeID, topics: [Topic], nextProducerID: ProducerID) {
        self.node = node
        self.topics = topics
        self.nextProducerID = nextProducerID
    }
}

extension MetadataImage {
    /// Set while a takeover did not fit in one entry (a cluster-wide broker config, as the
    /// cluster id); the active controller goes on with it at its next tick.
    public static let takeoverPendingConfig = "brook.takeover.pending"
    public var takeoverPending: Bool { config(ConfigResource(.broker, ""), Self.takeoverPendingConfig) != nil }
}

extension ClusterController {
    /// The records of `data` that `image` does not hold yet, in order, at most `budget`, and
    /// whether that is all of them. A topic whose name the image gives another id is skipped
    /// (its data stays on disk, not served).
    public static func takeoverRecords(_ data: SingleNodeData, in image: MetadataImage, budget: Int) -> (records: [MetadataRecord], complete: Bool) {
        precondition(budget > 0)
        var records: [MetadataRecord] = []
        if image.nextProducerID < data.nextProducerID {
            records.append(.producerIds(ProducerIdsRecord(brokerId: data.node, brokerEpoch: -1, nextProducerId: data.nextProducerID)))
        }
        for topic in data.topics where topic.partitions > 0 && topic.id != .zero {
            if let other = image.topicIDs[topic.name], other != topic.id { continue }
            if image.topicIDs[topic.name] == nil && image.topics[topic.id] != nil { continue }
            let have = image.topics[topic.id]?.partitions.count
            if have == nil {
                guard records.count < budget else { return (records, false) }
                records.append(.topic(TopicRecord(name: topic.name, topicId: topic.id)))
            }
            for index in (have ?? 0)..<max(have ?? 0, topic.partitions) {
                guard records.count < budget else { return (records, false) }
                var record = PartitionRecord()
                record.topicId = topic.id
                record.partitionId = Int32(index)
                record.replicas = [data.node]
                record.isr = [data.node]
                record.leader = data.node
                records.append(.partition(record))
            }
            let resource = ConfigResource(.topic, topic.name)
            for (name, value) in topic.configs.sorted(by: { $0.key < $1.key }) where image.config(resource, name) != value {
                guard records.count < budget else { return (records, false) }
                records.append(.config(ConfigRecord(resourceType: ConfigResource.Kind.topic.rawValue, resourceName: topic.name, name: name, value: value)))
            }
        }
        return (records, true)
    }

    /// The next entry of a takeover: as many of its records as fit, with the pending mark set
    /// while some remain and cleared with the last of them. Empty when there is nothing to do.
    func takeoverEntry(after head: [MetadataRecord]) -> [MetadataRecord] {
        guard let data = config.takeover, image.clusterID == nil || image.takeoverPending else { return head }
        var scratch = image
        do { try scratch.apply(head, at: MetadataOffset(image.offset.value + 1)) } catch {
            preconditionFailure("the controller made records that do not apply: \(error)")
        }
        let (records, complete) = Self.takeoverRecords(data, in: scratch, budget: config.recordsPerEntryMax - head.count - 1)
        let mark: String? = complete ? nil : "true"
        var entry = head + records
        if scratch.takeoverPending != (mark != nil) {
            entry.append(.config(ConfigRecord(resourceType: ConfigResource.Kind.broker.rawValue, resourceName: "",
                                              name: MetadataImage.takeoverPendingConfig, value: mark)))
        }
        return entry
    }
}

