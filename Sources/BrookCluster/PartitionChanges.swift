import BrookCore
import BrookProtocol

/// The controller's partition decisions as pure functions of a partition and the brokers'
/// liveness: who leads, who stays in the ISR. Every change is one PartitionChangeRecord.
public enum PartitionChanges {
    /// The leader and ISR `partition` should have when only brokers for which `isActive` holds
    /// may lead or be in sync; nil when they are right as they are.
    ///
    /// - An inactive broker leaves the ISR, except the last member: the ISR is never empty, so
    ///   the broker that holds every acknowledged record stays named until it returns.
    /// - The leader stays while it is active; otherwise the first replica (preferred first)
    ///   that is active and in the ISR leads (a clean election). With none, and `unclean`
    ///   allowed (`unclean.leader.election.enable`), the first active replica leads with an ISR
    ///   of itself: records it lacks are lost, which is what unclean means. Otherwise none leads.
    public static func repair(_ partition: PartitionInfo, isActive: (NodeID) -> Bool, unclean: Bool) -> (leader: NodeID?, isr: [NodeID])? {
        var isr = partition.isr.filter(isActive)
        if isr.isEmpty { isr = partition.isr.count == 1 ? partition.isr : [partition.leader ?? partition.isr[0]] }
        var leader = partition.leader
        if let current = leader, !(isActive(current) && isr.contains(current)) { leader = nil }
        if leader == nil {
            leader = partition.replicas.first { isActive($0) && isr.contains($0) }
            if leader == nil, unclean, let any = partition.replicas.first(where: isActive) {
                leader = any
                isr = [any]
            }
        }
        if let leader, !isr.contains(leader) { isr.append(leader) }
        guard leader != partition.leader || isr != partition.isr else { return nil }
        return (leader, isr)
    }

    /// The record that takes `partition` of `topicID` to `leader` and `isr`; Kafka's -2 when the
    /// leader stays, -1 when none leads.
    public static func record(_ key: TopicIDPartition, from partition: PartitionInfo, leader: NodeID?, isr: [NodeID]) -> MetadataRecord {
        var change = PartitionChangeRecord()
        change.topicId = key.topicID
        change.partitionId = key.partition
        if isr != partition.isr { change.isr = isr }
        if leader != partition.leader { change.leader = leader ?? NodeID(-1) } else { change.leader = NodeID(-2) }
        return .partitionChange(change)
    }
}
