import BrookProtocol

/// Partitions by topic id.
public typealias Assignment = [KafkaUUID: Set<Int32>]

extension Dictionary where Key == KafkaUUID, Value == Set<Int32> {
    /// The partitions in `self` and not in `other`.
    public func subtracting(_ other: Assignment) -> Assignment {
        var out: Assignment = [:]
        for (topic, parts) in self {
            let left = parts.subtracting(other[topic] ?? [])
            if !left.isEmpty { out[topic] = left }
        }
        return out
    }

    public func intersection(_ other: Assignment) -> Assignment {
        var out: Assignment = [:]
        for (topic, parts) in self {
            let both = parts.intersection(other[topic] ?? [])
            if !both.isEmpty { out[topic] = both }
        }
        return out
    }

    public func union(_ other: Assignment) -> Assignment {
        var out = self
        for (topic, parts) in other where !parts.isEmpty { out[topic, default: []].formUnion(parts) }
        return out
    }

    public var partitionCount: Int { values.reduce(0) { $0 + $1.count } }
}

/// A subscribed topic as the assignors see it.
public struct SubscribedTopic: Sendable, Equatable {
    public var name: String
    public var id: KafkaUUID
    public var partitions: Int32
}

/// One member as the assignors see it.
public struct AssignorMember: Sendable {
    public var memberID: String
    public var topics: Set<String>
    /// Its current target, for stickiness.
    public var previous: Assignment
}

/// The server-side assignors of KIP-848 (group.consumer.assignors).
public enum ServerAssignor: String, Sendable, CaseIterable {
    case uniform
    case range

    /// Every partition of every subscribed topic goes to exactly one member subscribed to it.
    public func assign(members: [AssignorMember], topics: [String: SubscribedTopic]) -> [String: Assignment] {
        let sorted = members.sorted { $0.memberID < $1.memberID }
        var result: [String: Assignment] = [:]
        for m in sorted { result[m.memberID] = [:] }
        switch self {
        case .range: Self.range(sorted, topics, &result)
        case .uniform: Self.uniform(sorted, topics, &result)
        }
        return result
    }

    /// Per topic, its subscribers (by member id) take contiguous ranges, the first ones one
    /// more when the count does not divide.
    static func range(_ members: [AssignorMember], _ topics: [String: SubscribedTopic], _ result: inout [String: Assignment]) {
        for topic in topics.values.sorted(by: { $0.name < $1.name }) {
            let subscribers = members.filter { $0.topics.contains(topic.name) }
            guard !subscribers.isEmpty else { continue }
            let count = Int(topic.partitions), per = count / subscribers.count, extra = count % subscribers.count
            var next = 0
            for (i, member) in subscribers.enumerated() {
                let take = per + (i < extra ? 1 : 0)
                if take > 0 { result[member.memberID]![topic.id] = Set((next..<next + take).map { Int32($0) }) }
                next += take
            }
        }
    }

    /// Balanced within one partition for members with the same subscription, sticky: a member
    /// keeps up to its fair share of what it had, and a freed partition goes back to its
    /// previous owner when that owner is among the least loaded.
    static func uniform(_ members: [AssignorMember], _ topics: [String: SubscribedTopic], _ result: inout [String: Assignment]) {
        let ordered = topics.values.sorted { $0.name < $1.name }
        var subscribers: [String: [String]] = [:]
        for topic in ordered { subscribers[topic.name] = members.filter { $0.topics.contains(topic.name) }.map(\.memberID) }
        var load: [String: Int] = [:]
        var owner: [KafkaUUID: [Int32: String]] = [:]
        for m in members { for (t, parts) in m.previous { for p in parts { owner[t, default: [:]][p] = m.memberID } } }
        var taken: [KafkaUUID: Set<Int32>] = [:]
        func keep(_ m: AssignorMember, _ topic: SubscribedTopic, _ p: Int32) {
            result[m.memberID]![topic.id, default: []].insert(p)
            taken[topic.id, default: []].insert(p)
            load[m.memberID, default: 0] += 1
        }
        // Each member keeps up to the floor of its fair share of what it had; then, while some
        // partitions must sit above the floors (the remainder), members keep one more.
        var floors: [String: Int] = [:]
        var total = 0
        for topic in ordered where !subscribers[topic.name]!.isEmpty { total += Int(topic.partitions) }
        for m in members {
            var share = 0.0
            for topic in ordered where m.topics.contains(topic.name) {
                share += Double(topic.partitions) / Double(subscribers[topic.name]!.count)
            }
            floors[m.memberID] = Int((share + 1e-9).rounded(.down))
        }
        var extra = max(0, total - floors.values.reduce(0, +))
        for round in 0..<2 {
            for m in members {
                var allowed = round == 0 ? floors[m.memberID]! : (extra > 0 ? floors[m.memberID]! + 1 : 0)
                allowed -= load[m.memberID, default: 0]
                for topic in ordered where m.topics.contains(topic.name) {
                    for p in (m.previous[topic.id] ?? []).sorted()
                    where allowed > 0 && p < topic.partitions && !(taken[topic.id]?.contains(p) ?? false) {
                        keep(m, topic, p)
                        allowed -= 1
                        if round == 1 { extra -= 1 }
                    }
                }
            }
        }
        // The rest to the least loaded, preferring the previous owner.
        for topic in ordered {
            let eligible = subscribers[topic.name]!
            guard !eligible.isEmpty else { continue }
            for p in 0..<topic.partitions where !(taken[topic.id]?.contains(p) ?? false) {
                let least = eligible.map { load[$0, default: 0] }.min()!
                var chosen = eligible.first { load[$0, default: 0] == least }!
                if let previous = owner[topic.id]?[p], eligible.contains(previous), load[previous, default: 0] == least {
                    chosen = previous
                }
                result[chosen]![topic.id, default: []].insert(p)
                load[chosen, default: 0] += 1
            }
        }
    }
}
