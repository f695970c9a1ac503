import BrookCore
import BrookProtocol

/// The controller's partition decisions as pure functions of a partition and the brokers'
/// liveness: who leads, who stays in the ISR. Every change is one PartitionChangeRecord.
public enum PartitionChanges {
    /// The leader, ISR and eligible leader replicas `partition` should have when only brokers
    /// for which `isActive` holds may lead or be in sync; nil when they are right as they are.
    ///
    /// - An inactive broker leaves the ISR, except the last member: the ISR is never empty, so
    ///   the broker that holds every acknowledged record stays named until it returns.
    /// - The leader stays while it is active; otherwise the first replica (preferred first)
    ///   that is active and in the ISR leads (a clean election); with none, the first active
    ///   eligible leader replica (KIP-966: it left the ISR while the ISR was below min ISR, so
    ///   it has every committed record) leads with an ISR of itself, also a clean election.
    ///   With none, and `unclean` allowed (`unclean.leader.election.enable`), the first active
    ///   replica leads with an ISR of itself: records it lacks are lost, which is what unclean
    ///   means, and the ELR goes. Otherwise none leads.
    public static func repair(_ partition: PartitionInfo, isActive: (NodeID) -> Bool, unclean: Bool,
                              minISR: Int) -> (leader: NodeID?, isr: [NodeID], elr: [NodeID])? {
        var isr = partition.isr.filter(isActive)
        if isr.isEmpty { isr = partition.isr.count == 1 ? partition.isr : [partition.leader ?? partition.isr[0]] }
        var leader = partition.leader
        var clean = true
        if let current = leader, !(isActive(current) && isr.contains(current)) { leader = nil }
        if leader == nil {
            leader = partition.replicas.first { isActive($0) && isr.contains($0) }
            if leader == nil, let eligible = partition.elr.first(where: isActive) {
                leader = eligible
                isr = [eligible]
            }
            if leader == nil, unclean, let any = partition.replicas.first(where: isActive) {
                leader = any
                isr = [any]
                clean = false
            }
        }
        if let leader, !isr.contains(leader) { isr.append(leader) }
        let elr = clean ? eligibleLeaders(partition, isr: isr, minISR: minISR) : []
        guard leader != partition.leader || isr != partition.isr || elr != partition.elr else { return nil }
        return (leader, isr, elr)
    }

    /// min.insync.replicas as the ELR rules use it: at most the replication factor (a topic
    /// whose min ISR exceeds its replicas would otherwise never commit anything), at least 1.
    public static func effectiveMinISR(_ minISR: Int, replicas: Int) -> Int {
        max(1, min(minISR, replicas))
    }

    /// The eligible leader replicas once `partition`'s ISR becomes `isr` (KIP-966). While the
    /// ISR has fewer than min ISR members the leader's high watermark stands still, so every
    /// member that leaves the ISR then (and every one already eligible) still holds every
    /// committed record: they are eligible. Once the ISR is back at min ISR the high watermark
    /// moves on without them, and the ELR empties.
    public static func eligibleLeaders(_ partition: PartitionInfo, isr: [NodeID], minISR: Int) -> [NodeID] {
        guard isr.count < effectiveMinISR(minISR, replicas: partition.replicas.count) else { return [] }
        let candidates = Set(partition.elr + partition.isr)
        return partition.replicas.filter { candidates.contains($0) && !isr.contains($0) }
    }

    /// The record that takes `partition` of `topicID` to `leader` and `isr`; Kafka's -2 when the
    /// leader stays, -1 when none leads. The ELR follows the ISR (`eligibleLeaders`) unless
    /// given (an unclean election empties it).
    public static func record(_ key: TopicIDPartition, from partition: PartitionInfo, leader: NodeID?, isr: [NodeID],
                              minISR: Int, elr given: [NodeID]? = nil) -> MetadataRecord {
        var change = PartitionChangeRecord()
        change.topicId = key.topicID
        change.partitionId = key.partition
        if isr != partition.isr { change.isr = isr }
        let elr = given ?? (isr == partition.isr ? partition.elr : eligibleLeaders(partition, isr: isr, minISR: minISR))
        if elr != partition.elr { change.eligibleLeaderReplicas = elr }
        if leader != partition.leader { change.leader = leader ?? NodeID(-1) } else { change.leader = NodeID(-2) }
        return .partitionChange(change)
    }
}
