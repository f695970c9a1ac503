import BrookCore

/// The classic group protocol's assignors, run by the member the coordinator makes leader: each
/// takes every member's subscription and the partition counts, and gives each partition of a
/// subscribed topic to exactly one member subscribed to it, as the Java client's do (so a
/// group shared with Java or librdkafka members assigns alike whoever leads).
public enum ClassicAssignor: String, CaseIterable, Sendable {
    case range
    case roundRobin = "roundrobin"

    /// `subscriptions`: member id to topics; `partitions`: each topic's partition count
    /// (topics not there, unknown to the metadata, are left out).
    func assign(_ subscriptions: [String: [String]], partitions: [String: Int32]) -> [String: [TopicPartition]] {
        var out = Dictionary(uniqueKeysWithValues: subscriptions.keys.map { ($0, [TopicPartition]()) })
        switch self {
        case .range:
            // Per topic: its subscribers in member id order take consecutive ranges, the first
            // (count % members) one partition more.
            var subscribers: [String: [String]] = [:]
            for (member, topics) in subscriptions { for topic in Set(topics) { subscribers[topic, default: []].append(member) } }
            for (topic, members) in subscribers {
                guard let count = partitions[topic], count > 0 else { continue }
                let sorted = members.sorted()
                let each = Int(count) / sorted.count, extra = Int(count) % sorted.count
                var next = 0
                for (index, member) in sorted.enumerated() {
                    let take = each + (index < extra ? 1 : 0)
                    out[member, default: []] += (next..<next + take).map { TopicPartition(topic, Int32($0)) }
                    next += take
                }
            }
        case .roundRobin:
            // Every partition in (topic, partition) order, dealt to the members in id order,
            // skipping those not subscribed to its topic.
            let members = subscriptions.keys.sorted()
            let wanted = subscriptions.mapValues(Set.init)
            let all = Set(subscriptions.values.joined()).sorted().flatMap { topic in
                (0..<(partitions[topic] ?? 0)).map { TopicPartition(topic, $0) }
            }
            var cursor = 0
            for tp in all {
                for step in 0..<members.count {
                    let member = members[(cursor + step) % members.count]
                    guard wanted[member]?.contains(tp.topic) == true else { continue }
                    out[member, default: []].append(tp)
                    cursor = (cursor + step + 1) % members.count
                    break
                }
            }
        }
        return out.mapValues { $0.sorted() }
    }
}
