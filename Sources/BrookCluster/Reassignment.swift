import BrookCore
import BrookProtocol

/// One partition's reassignment as asked (AlterPartitionReassignments): the replicas to move
/// to, or nil to cancel the one running.
public struct ReassignmentRequest: Equatable, Sendable {
    public var topic: String
    public var partition: Int32
    public var replicas: [NodeID]?
    public init(topic: String, partition: Int32, replicas: [NodeID]?) {
        self.topic = topic
        self.partition = partition
        self.replicas = replicas
    }
}

/// Partition reassignment as KIP-455 has it, decided by the controller:
/// - start: the partition's replicas become the target followed by the current replicas not in
///   it; the new ones are `adding` (they fetch from the leader and catch up), the old ones
///   `removing`. The leader epoch moves, so that the leader tracks its new followers.
/// - completion, as soon as every target replica is in the ISR (at the start, or in the entry
///   of the AlterPartition that brings the last one in): the replicas become the target, the
///   ISR loses the removed ones, and a removed leader hands over to the first target replica in
///   sync.
/// - cancel: back to the original replicas (those not being added), which must still have an
///   in-sync member.
/// Throttling (`leader.replication.throttled.rate`, KIP-73) is the brokers' (ReplicationThrottles):
/// the controller only keeps the configs.
extension ClusterController {
    public mutating func reassign(_ requests: [ReassignmentRequest], allowReplicationFactorChange: Bool) -> Decision<[PartitionAnswer]> {
        var records: [MetadataRecord] = []
        var answers: [PartitionAnswer] = []
        var scratch = image
        for request in requests {
            func answer(_ code: ErrorCode, _ message: String? = nil) {
                answers.append(PartitionAnswer(topic: request.topic, partition: request.partition, error: code, message: message))
            }
            guard let id = scratch.topicIDs[request.topic], let topic = scratch.topics[id], request.partition >= 0,
                  Int(request.partition) < topic.partitions.count else {
                answer(.unknownTopicOrPartition, "The partition does not exist.")
                continue
            }
            let key = TopicIDPartition(id, request.partition)
            let partition = topic.partitions[Int(request.partition)]
            let original = partition.replicas.filter { !partition.adding.contains($0) }
            let change: [MetadataRecord]
            if let target = request.replicas {
                guard !target.isEmpty, target.count <= Self.replicasMax, Set(target).count == target.count,
                      target.allSatisfy({ scratch.brokers[$0] != nil }) else {
                    answer(.invalidReplicaAssignment, "The replicas \(target) name an unknown broker, or one twice, or none.")
                    continue
                }
                guard allowReplicationFactorChange || target.count == original.count else {
                    answer(.invalidReplicationFactor, "The reassignment changes the replication factor from \(original.count) to \(target.count).")
                    continue
                }
                change = Self.reassignment(key, partition, from: original, to: target, isActive: { (scratch.brokers[$0]?.isActive ?? false) && !(offline[$0]?.contains(key) ?? false) })
            } else {
                guard partition.reassignmentTarget != nil else {
                    answer(.noReassignmentInProgress, "No reassignment of this partition is running.")
                    continue
                }
                guard let back = Self.finish(key, partition, replicas: original, isActive: { (scratch.brokers[$0]?.isActive ?? false) && !(offline[$0]?.contains(key) ?? false) }) else {
                    answer(.invalidReplicaAssignment, "No original replica is in sync; the reassignment cannot be cancelled now.")
                    continue
                }
                change = [back]
            }
            guard records.count + change.count <= config.recordsPerEntryMax else {
                answer(.requestTimedOut, "Too many reassignments at once; ask again.")
                continue
            }
            do {
                try scratch.apply(change, at: MetadataOffset(scratch.offset.value + 1))
            } catch {
                // Never expected; refused rather than trusted (a record that does not apply
                // would stop the controller).
                answer(.invalidReplicaAssignment, "The reassignment cannot be applied: \(error)")
                continue
            }
            records += change
            answer(.none)
        }
        return decide(records, answers)
    }

    /// At most this many replicas per partition (the quorum's wire and Kafka's practice).
    public static let replicasMax = 64

    /// The records that start moving `partition` from `original` (its replicas before any move)
    /// to `target`, and complete it at once when the target is already in sync. A move that
    /// replaces a running one keeps every replica assigned now until it completes (one being
    /// added may already be in the ISR).
    static func reassignment(_ key: TopicIDPartition, _ partition: PartitionInfo, from original: [NodeID], to target: [NodeID],
                             isActive: (NodeID) -> Bool) -> [MetadataRecord] {
        if target == original && partition.reassignmentTarget == nil { return [] }
        var start = PartitionChangeRecord()
        start.topicId = key.topicID
        start.partitionId = key.partition
        let replicas = target + partition.replicas.filter { !target.contains($0) }
        start.replicas = replicas
        start.addingReplicas = target.filter { !original.contains($0) }
        start.removingReplicas = partition.replicas.filter { !target.contains($0) }
        // The leader stays, in a new epoch (it then tracks the replicas being added).
        if let leader = partition.leader { start.leader = leader }
        var started = partition
        started.replicas = replicas
        started.adding = start.addingReplicas ?? []
        started.removing = start.removingReplicas ?? []
        if partition.leader != nil { started.leaderEpoch = LeaderEpoch(partition.leaderEpoch.value + 1) }
        started.partitionEpoch = partition.partitionEpoch.next
        guard let done = completion(key, started, isActive: isActive) else { return [.partitionChange(start)] }
        return [.partitionChange(start), done]
    }

    /// The record that completes `partition`'s reassignment: nil unless every target replica is
    /// in the ISR.
    static func completion(_ key: TopicIDPartition, _ partition: PartitionInfo, isActive: (NodeID) -> Bool) -> MetadataRecord? {
        guard let target = partition.reassignmentTarget, Set(target).isSubset(of: partition.isr) else { return nil }
        return finish(key, partition, replicas: target, isActive: isActive)
    }

    /// The record that leaves `partition` with `replicas` only (nil when none of them is in
    /// sync). A leader that goes hands over to the first of them in sync and active (none: no
    /// leader until a repair finds one).
    static func finish(_ key: TopicIDPartition, _ partition: PartitionInfo, replicas: [NodeID], isActive: (NodeID) -> Bool) -> MetadataRecord? {
        let isr = partition.isr.filter { replicas.contains($0) }
        guard !isr.isEmpty else { return nil }
        var change = PartitionChangeRecord()
        change.topicId = key.topicID
        change.partitionId = key.partition
        change.replicas = replicas
        change.isr = isr
        change.addingReplicas = []
        change.removingReplicas = []
        if let leader = partition.leader, replicas.contains(leader) {
            change.leader = leader
        } else {
            change.leader = replicas.first { isr.contains($0) && isActive($0) } ?? NodeID(-1)
        }
        return .partitionChange(change)
    }
}
