import BrookCore
import BrookProtocol

/// The controller's answers to topic, partition, config and producer-id requests.
extension ClusterController {
    /// Active brokers for placement, in id order.
    var placementBrokers: [Placement.Broker] {
        image.brokers.values.filter(\.isActive).sorted { $0.id < $1.id }.map { Placement.Broker(id: $0.id, rack: $0.rack) }
    }

    /// CreateTopics, one topic: a TopicRecord, a PartitionRecord per partition, a ConfigRecord
    /// per config. The ISR is every replica that is active now; the first of them leads.
    public mutating func createTopic(_ topic: NewTopic) -> Decision<(ErrorCode, KafkaUUID)> {
        func refuse(_ code: ErrorCode) -> Decision<(ErrorCode, KafkaUUID)> { Decision(records: [], answer: (code, .zero)) }
        guard image.topicIDs[topic.name] == nil else { return refuse(.topicAlreadyExists) }
        guard image.topics.count < MetadataImage.topicsMax else { return refuse(.policyViolation) }
        let active = placementBrokers
        let assignments: [[NodeID]]
        if let given = topic.assignments {
            guard !given.isEmpty, given.count <= Limits.partitionsPerRequestMax else { return refuse(.invalidPartitions) }
            for replicas in given {
                guard !replicas.isEmpty, Set(replicas).count == replicas.count, replicas.allSatisfy({ image.brokers[$0] != nil }) else {
                    return refuse(.invalidReplicaAssignment)
                }
            }
            assignments = given
        } else {
            let partitions = topic.partitions ?? config.defaultPartitions
            let factor = topic.replicationFactor ?? config.defaultReplicationFactor
            guard partitions >= 1, partitions <= Limits.partitionsPerRequestMax else { return refuse(.invalidPartitions) }
            guard factor >= 1, factor <= active.count else { return refuse(.invalidReplicationFactor) }
            assignments = Placement.assign(partitions: 0, count: partitions, replicationFactor: factor, brokers: active,
                                           start: Int(random.next() % UInt64(max(1, active.count))))
        }
        guard assignments.count + topic.configs.count + 1 <= config.recordsPerEntryMax else { return refuse(.policyViolation) }
        var id = KafkaUUID.random(using: &random)
        while image.topics[id] != nil { id = KafkaUUID.random(using: &random) }
        var records: [MetadataRecord] = [.topic(TopicRecord(name: topic.name, topicId: id))]
        for (index, replicas) in assignments.enumerated() {
            guard let record = newPartition(id, Int32(index), replicas) else { return refuse(.invalidReplicationFactor) }
            records.append(record)
        }
        for (name, value) in topic.configs.sorted(by: { $0.key < $1.key }) {
            records.append(.config(ConfigRecord(resourceType: ConfigResource.Kind.topic.rawValue, resourceName: topic.name, name: name, value: value)))
        }
        return decide(records, (.none, id))
    }

    /// A PartitionRecord for new replicas `replicas`; nil when none of them is active.
    func newPartition(_ topicID: KafkaUUID, _ index: Int32, _ replicas: [NodeID]) -> MetadataRecord? {
        let isr = replicas.filter { image.brokers[$0]?.isActive ?? false }
        guard let leader = isr.first else { return nil }
        var record = PartitionRecord()
        record.topicId = topicID
        record.partitionId = index
        record.replicas = replicas
        record.isr = isr
        record.leader = leader
        record.leaderEpoch = LeaderEpoch(0)
        record.partitionEpoch = 0
        return .partition(record)
    }

    /// CreatePartitions: grows `name` to `total` partitions with its replication factor.
    public mutating func createPartitions(_ name: String, total: Int) -> Decision<ErrorCode> {
        guard let id = image.topicIDs[name], let topic = image.topics[id] else { return Decision(records: [], answer: .unknownTopicOrPartition) }
        let current = topic.partitions.count
        guard total > current, total - current <= Limits.partitionsPerRequestMax, total <= Limits.partitionsPerTopicMax else {
            return Decision(records: [], answer: .invalidPartitions)
        }
        let factor = topic.partitions[0].replicas.count
        let active = placementBrokers
        guard factor <= active.count else { return Decision(records: [], answer: .invalidReplicationFactor) }
        let assignments = Placement.assign(partitions: current, count: total - current, replicationFactor: factor, brokers: active,
                                           start: Int(random.next() % UInt64(active.count)))
        let records = assignments.enumerated().compactMap { newPartition(id, Int32(current + $0.offset), $0.element) }
        return decide(records, .none)
    }

    /// DeleteTopics, one topic.
    public mutating func deleteTopic(_ name: String) -> Decision<ErrorCode> {
        guard let id = image.topicIDs[name] else { return Decision(records: [], answer: .unknownTopicOrPartition) }
        return decide([.removeTopic(RemoveTopicRecord(topicId: id))], .none)
    }

    /// IncrementalAlterConfigs for one resource: nil values delete.
    public mutating func setConfigs(_ resource: ConfigResource, _ values: [(String, String?)]) -> Decision<ErrorCode> {
        if resource.kind == .topic, image.topicIDs[resource.name] == nil { return Decision(records: [], answer: .unknownTopicOrPartition) }
        guard values.count < config.recordsPerEntryMax else { return Decision(records: [], answer: .policyViolation) }
        var records = values.map {
            MetadataRecord.config(ConfigRecord(resourceType: resource.kind.rawValue, resourceName: resource.name, name: $0.0, value: $0.1))
        }
        // A lower min.insync.replicas lets the high watermark move again where the ISR now has
        // enough members: from then on the eligible leader replicas may lack committed records.
        if resource.kind == .topic, let id = image.topicIDs[resource.name], let change = values.last(where: { $0.0 == "min.insync.replicas" }) {
            let minISR = change.1.flatMap { Int($0) } ?? config.minInSyncReplicas
            for (index, partition) in image.topics[id]!.partitions.enumerated() where !partition.elr.isEmpty
                && partition.isr.count >= PartitionChanges.effectiveMinISR(minISR, replicas: partition.replicas.count) {
                guard records.count < config.recordsPerEntryMax else {
                    // Too many for this entry: the repairs of the next ticks recompute them.
                    dirty.formUnion(partition.replicas)
                    continue
                }
                records.append(PartitionChanges.record(TopicIDPartition(id, Int32(index)), from: partition, leader: partition.leader,
                                                       isr: partition.isr, minISR: minISR, elr: []))
            }
        }
        return decide(records, .none)
    }

    /// AllocateProducerIds: the next block for a registered broker.
    public mutating func allocateProducerIDs(broker: NodeID, epoch: BrokerEpoch) -> Decision<(ErrorCode, ProducerID, Int64)> {
        guard let known = image.brokers[broker] else { return Decision(records: [], answer: (.brokerIDNotRegistered, .none, 0)) }
        guard known.epoch == epoch else { return Decision(records: [], answer: (.staleBrokerEpoch, .none, 0)) }
        let first = image.nextProducerID
        let next = ProducerID(first.value + config.producerIDBlockSize)
        return decide([.producerIds(ProducerIdsRecord(brokerId: broker, brokerEpoch: epoch.value, nextProducerId: next))],
                      (.none, first, config.producerIDBlockSize))
    }

    /// AlterPartition from a partition's leader: the new ISR, checked against the partition's
    /// current leader, leader epoch and partition epoch. Answers the committed state.
    public mutating func alterPartition(_ request: AlterPartitionRequest) -> Decision<(ErrorCode, PartitionInfo?)> {
        let decision = alterPartitions([request])
        return Decision(records: decision.records, answer: decision.answer[0])
    }

    /// A leader's ISR changes for many partitions at once (Kafka sends every partition a leader
    /// has to change in one AlterPartition): each checked as `alterPartition` checks one, the
    /// changes of all that pass in one metadata log entry. Answers one per request, in order. A
    /// partition named twice is refused the second time (INVALID_REQUEST): both name the same
    /// partition epoch, and only one change can follow it.
    public mutating func alterPartitions(_ requests: [AlterPartitionRequest]) -> Decision<[(ErrorCode, PartitionInfo?)]> {
        precondition(requests.count <= AlterPartitionRequest.partitionsMax, "\(requests.count) partitions in one AlterPartition")
        var answers: [(ErrorCode, PartitionInfo?)?] = []
        answers.reserveCapacity(requests.count)
        var records: [MetadataRecord] = []
        var seen = Set<TopicIDPartition>()
        for request in requests {
            guard seen.insert(request.partition).inserted else {
                answers.append((.invalidRequest, nil))
                continue
            }
            switch isrChange(request) {
            case .refused(let code): answers.append((code, nil))
            case .records(let change) where records.count + change.count > config.recordsPerEntryMax:
                // Past this entry's size (a controller configured small): the leader asks again.
                answers.append((.requestTimedOut, nil))
            case .records(let change):
                records += change
                answers.append(change.isEmpty ? (.none, image.partition(request.partition)) : nil)
            }
        }
        let decision = decide(records, ())
        // Changed partitions answer their state with the entry applied.
        let filled = zip(requests, answers).map { request, answer in answer ?? (.none, image.partition(request.partition)) }
        return Decision(records: decision.records, answer: filled)
    }

    /// The records one leader's ISR change makes (none when the ISR is already so), or why it
    /// is refused.
    func isrChange(_ request: AlterPartitionRequest) -> ISRChange {
        guard let broker = image.brokers[request.broker], broker.epoch == request.brokerEpoch else { return .refused(.staleBrokerEpoch) }
        guard let partition = image.partition(request.partition) else { return .refused(.unknownTopicID) }
        let proposal = request.proposal
        guard partition.leader == request.broker else { return .refused(.notLeaderOrFollower) }
        guard proposal.leaderEpoch == partition.leaderEpoch else {
            return .refused(proposal.leaderEpoch < partition.leaderEpoch ? .fencedLeaderEpoch : .unknownLeaderEpoch)
        }
        guard proposal.partitionEpoch == partition.partitionEpoch else { return .refused(.invalidUpdateVersion) }
        let isr = proposal.isr
        guard isr.contains(request.broker), Set(isr).count == isr.count, Set(isr).isSubset(of: partition.replicas) else {
            return .refused(.invalidRequest)
        }
        for joining in isr where !partition.isr.contains(joining) {
            guard canHost(joining, request.partition) else { return .refused(.ineligibleReplica) }
        }
        guard isr != partition.isr else { return .records([]) }
        var records = [PartitionChanges.record(request.partition, from: partition, leader: partition.leader, isr: isr,
                                               minISR: minInSyncReplicas(of: request.partition.topicID),
                                               elr: eligibleLeaders(request.partition, partition, isr: isr))]
        // The last target replica of a reassignment came in: it completes in the same entry.
        var grown = partition
        grown.isr = isr
        let key = request.partition
        if let done = Self.completion(key, grown, isActive: { canHost($0, key) }) {
            records.append(done)
        }
        return .records(records)
    }

    enum ISRChange {
        case refused(ErrorCode)
        case records([MetadataRecord])
    }
}
