import BrookCore
import BrookProtocol

/// What one broker must do with its own replicas when its metadata image moves from `old` to
/// `new`: the replica manager's to-do list, in partition order.
public enum LocalReplicaChange: Equatable, Sendable {
    /// Lead `partition` in its (new) leader epoch: open the replica if needed, start tracking
    /// followers from the log end.
    case lead(TopicIDPartition, PartitionInfo)
    /// Only the ISR (and partition epoch) moved while this broker leads: tell the replication state.
    case isrChanged(TopicIDPartition, PartitionInfo)
    /// Follow `partition`'s leader in its (new) leader epoch, or wait with no leader: stop
    /// leading, truncate as the leader's epochs say, fetch.
    case follow(TopicIDPartition, PartitionInfo)
    /// No replica here any more (topic deleted, or the broker left the replica list).
    case remove(TopicIDPartition)

    public static func between(_ old: MetadataImage, _ new: MetadataImage, broker: NodeID) -> [LocalReplicaChange] {
        var changes: [LocalReplicaChange] = []
        for topicID in new.topics.keys.sorted(by: { ($0.high, $0.low) < ($1.high, $1.low) }) {
            for (index, partition) in new.topics[topicID]!.partitions.enumerated() where partition.replicas.contains(broker) {
                let key = TopicIDPartition(topicID, Int32(index))
                let before = old.partition(key).flatMap { $0.replicas.contains(broker) ? $0 : nil }
                if before == partition { continue }
                let roleChanged = before == nil || before!.leaderEpoch != partition.leaderEpoch || before!.leader != partition.leader
                if partition.leader == broker {
                    changes.append(roleChanged ? .lead(key, partition) : .isrChanged(key, partition))
                } else if roleChanged {
                    changes.append(.follow(key, partition))
                }
            }
        }
        for (topicID, topic) in old.topics.sorted(by: { ($0.key.high, $0.key.low) < ($1.key.high, $1.key.low) }) {
            for (index, partition) in topic.partitions.enumerated() where partition.replicas.contains(broker) {
                let key = TopicIDPartition(topicID, Int32(index))
                if new.partition(key)?.replicas.contains(broker) != true { changes.append(.remove(key)) }
            }
        }
        return changes
    }
}
