import BrookCore
import Testing

/// The checks both membership simulations (KIP-848 and classic) make of their members.
enum GroupSimulationChecks {
    /// Safety, after every step: no partition owned by two live members (`owned`: each live
    /// member's index and partitions).
    static func noPartitionSharedBy(_ owned: [(index: Int, partitions: Set<TopicPartition>)], seed: UInt64, nowMs: Int64) {
        var seen: [TopicPartition: Int] = [:]
        for (i, partitions) in owned {
            for p in partitions {
                #expect(seen[p] == nil, "seed \(seed) at \(nowMs) ms: \(p) owned by members \(seen[p] ?? -1) and \(i)")
                seen[p] = i
            }
        }
    }

    /// Once quiet: every partition of the subscribed topics (`partitions`: each one's count)
    /// owned by exactly one live member.
    static func eachSubscribedPartitionOwnedOnce(_ owned: [Set<TopicPartition>], subscribed: Set<String>,
                                                 partitions: (String) -> Int32, seed: UInt64) {
        let all = Set(subscribed.flatMap { topic in (0..<partitions(topic)).map { TopicPartition(topic, $0) } })
        let flat = owned.flatMap { $0 }
        #expect(flat.count == Set(flat).count)
        #expect(Set(flat) == all, "seed \(seed): owned \(flat.sorted()), wanted \(all.sorted())")
    }
}
