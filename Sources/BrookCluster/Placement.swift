import BrookCore

/// Where a new partition's replicas go: spread over the active brokers, across racks when they
/// have them, with leaders (the first replica) spread evenly.
///
/// Brokers are listed rack by rack in turn (a, b, c, a, b, c, ...), so neighbours in the list
/// sit in different racks. Partition p's first replica is the broker at (start + p); its
/// followers come after it at a shift that grows every full round of the list, so the
/// followers of one broker's leaderships are not always the same brokers (Kafka's striped
/// assignment does the same).
public enum Placement {
    public struct Broker: Equatable, Sendable {
        public var id: NodeID
        public var rack: String?
        public init(id: NodeID, rack: String? = nil) {
            self.id = id
            self.rack = rack
        }
    }

    /// The rack-alternating order of `brokers`.
    public static func interleaved(_ brokers: [Broker]) -> [NodeID] {
        var byRack: [String: [NodeID]] = [:]
        for broker in brokers { byRack[broker.rack ?? "", default: []].append(broker.id) }
        let racks = byRack.keys.sorted().map { byRack[$0]!.sorted() }
        var order: [NodeID] = []
        var round = 0
        while order.count < brokers.count {
            for r in racks.indices where round < racks[r].count { order.append(racks[r][round]) }
            round += 1
        }
        return order
    }

    /// Replica lists for partitions `first ..< first + count`, each `replicationFactor` long.
    /// Followers are taken in the shifted order, racks not yet used by the partition first.
    public static func assign(partitions first: Int, count: Int, replicationFactor: Int, brokers: [Broker], start: Int) -> [[NodeID]] {
        let order = interleaved(brokers)
        let n = order.count
        precondition(replicationFactor >= 1 && replicationFactor <= n, "replication factor \(replicationFactor) with \(n) brokers")
        var rackOf: [NodeID: String] = [:]
        for broker in brokers { rackOf[broker.id] = broker.rack ?? "" }
        var result: [[NodeID]] = []
        result.reserveCapacity(count)
        for p in first..<(first + count) {
            let leaderIndex = (start + p) % n
            var replicas = [order[leaderIndex]]
            if n > 1 {
                let shift = 1 + ((start + p) / n) % (n - 1)
                let candidates = (0..<(n - 1)).map { order[(leaderIndex + 1 + (shift - 1 + $0) % (n - 1)) % n] }
                var racks: Set<String> = [rackOf[replicas[0]]!]
                for candidate in candidates where replicas.count < replicationFactor && !racks.contains(rackOf[candidate]!) {
                    replicas.append(candidate)
                    racks.insert(rackOf[candidate]!)
                }
                for candidate in candidates where replicas.count < replicationFactor && !replicas.contains(candidate) {
                    replicas.append(candidate)
                }
            }
            precondition(Set(replicas).count == replicas.count, "placement repeated a broker: \(replicas)")
            result.append(replicas)
        }
        return result
    }
}
