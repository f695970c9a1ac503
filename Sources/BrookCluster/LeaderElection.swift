import BrookCore
import BrookProtocol

/// ElectLeaders' two kinds of election (its ElectionType field).
public enum ElectionType: Int8, Sendable {
    /// The preferred replica (the first of the replicas) leads again, if it is active and in sync.
    case preferred = 0
    /// Where no replica leads, the first active one does with an ISR of itself (records it lacks
    /// are lost, which is what unclean means).
    case unclean = 1
}

/// The partitions of one topic an election is asked for.
public struct ElectionTarget: Equatable, Sendable {
    public var topic: String
    public var partitions: [Int32]
    public init(topic: String, partitions: [Int32]) {
        self.topic = topic
        self.partitions = partitions
    }
}

/// One partition's outcome of an admin request (an election, a reassignment).
public struct PartitionAnswer: Equatable, Sendable {
    public var topic: String
    public var partition: Int32
    public var error: ErrorCode
    public var message: String?
}

extension ClusterController {
    /// ElectLeaders. `targets` nil: every partition, and only those where an election was tried
    /// are answered (as Kafka). One entry holds every change, at most `recordsPerEntryMax`;
    /// partitions past that are answered REQUEST_TIMED_OUT, to be asked again.
    public mutating func electLeaders(_ type: ElectionType, _ targets: [ElectionTarget]?) -> Decision<[PartitionAnswer]> {
        let host = self  // what the elections read; only `decide` at the end changes self
        var records: [MetadataRecord] = []
        var results: [PartitionAnswer] = []
        let asked: [(String, Int32)]
        if let targets {
            asked = targets.flatMap { t in t.partitions.map { (t.topic, $0) } }
        } else {
            asked = image.topics.values.sorted { $0.name < $1.name }.flatMap { t in t.partitions.indices.map { (t.name, Int32($0)) } }
        }
        for (name, index) in asked {
            guard let id = image.topicIDs[name], let topic = image.topics[id], index >= 0, Int(index) < topic.partitions.count else {
                results.append(PartitionAnswer(topic: name, partition: index, error: .unknownTopicOrPartition,
                                              message: "The partition does not exist."))
                continue
            }
            let partition = topic.partitions[Int(index)]
            let key = TopicIDPartition(id, index)
            let isActive: (NodeID) -> Bool = { host.canHost($0, key) }
            var change: (leader: NodeID, isr: [NodeID])?
            var wipesELR = false
            var refusal: (ErrorCode, String)?
            switch type {
            case .preferred:
                let preferred = partition.replicas[0]
                if partition.leader == preferred {
                    refusal = (.electionNotNeeded, "Leader is already the preferred replica.")
                } else if isActive(preferred) && partition.isr.contains(preferred) {
                    change = (preferred, partition.isr)
                } else {
                    refusal = (.preferredLeaderNotAvailable, "The preferred replica \(preferred) is not active or not in sync.")
                }
            case .unclean:
                if partition.leader != nil {
                    refusal = (.electionNotNeeded, "The partition has a leader.")
                } else if let clean = partition.replicas.first(where: { isActive($0) && partition.isr.contains($0) }) {
                    change = (clean, partition.isr)
                } else if let eligible = partition.elr.first(where: isActive) {
                    // Still a clean election (KIP-966): an eligible leader replica has every committed record.
                    change = (eligible, [eligible])
                } else if let any = partition.replicas.first(where: isActive) {
                    wipesELR = true
                    change = (any, [any])
                } else {
                    refusal = (.eligibleLeadersNotAvailable, "No replica of the partition is active.")
                }
            }
            if let (code, message) = refusal {
                if targets != nil || code != .electionNotNeeded {
                    results.append(PartitionAnswer(topic: name, partition: index, error: code, message: message))
                }
                continue
            }
            guard let change else { continue }
            guard records.count < config.recordsPerEntryMax else {
                results.append(PartitionAnswer(topic: name, partition: index, error: .requestTimedOut,
                                              message: "Too many elections at once; ask again."))
                continue
            }
            let elr = wipesELR ? [] : change.isr == partition.isr ? partition.elr : eligibleLeaders(key, partition, isr: change.isr)
            records.append(PartitionChanges.record(key, from: partition, leader: change.leader, isr: change.isr,
                                                   minISR: minInSyncReplicas(of: id), elr: elr))
            results.append(PartitionAnswer(topic: name, partition: index, error: .none, message: nil))
        }
        return decide(records, results)
    }

    /// `auto.leader.rebalance.enable`: a broker that leads fewer than its share of the partitions
    /// it is preferred for (more than `leader.imbalance.per.broker.percentage` of them led
    /// elsewhere) gets them back where it is active and in sync. Checked every
    /// `leader.imbalance.check.interval.seconds`.
    mutating func rebalanceLeaders(nowMs: Int64) -> [MetadataRecord] {
        guard config.autoLeaderRebalance, nowMs - lastRebalanceCheckMs >= config.leaderImbalanceCheckIntervalMs else { return [] }
        lastRebalanceCheckMs = nowMs
        var preferredCount: [NodeID: Int] = [:]
        var misplaced: [NodeID: [(TopicIDPartition, PartitionInfo)]] = [:]
        for (id, topic) in image.topics.sorted(by: { $0.value.name < $1.value.name }) {
            for (index, partition) in topic.partitions.enumerated() {
                let preferred = partition.replicas[0]
                preferredCount[preferred, default: 0] += 1
                if partition.leader != preferred { misplaced[preferred, default: []].append((TopicIDPartition(id, Int32(index)), partition)) }
            }
        }
        var records: [MetadataRecord] = []
        for (broker, partitions) in misplaced.sorted(by: { $0.key < $1.key }) {
            guard let total = preferredCount[broker], total > 0, image.brokers[broker]?.isActive ?? false,
                  partitions.count * 100 > total * config.leaderImbalancePerBrokerPercentage else { continue }
            for (key, partition) in partitions where partition.isr.contains(broker) && canHost(broker, key)
                && records.count < config.recordsPerEntryMax {
                records.append(PartitionChanges.record(key, from: partition, leader: broker, isr: partition.isr, minISR: minInSyncReplicas(of: key.topicID)))
            }
        }
        return records
    }
}
