import BrookCore

/// The classic group protocol's assignors, run by the member the coordinator makes leader: each
/// takes every member's subscription and the partition counts, and gives each partition of a
/// subscribed topic to exactly one member subscribed to it, as the Java client's do (so a
/// group shared with Java or librdkafka members assigns alike whoever leads). The sticky ones
/// keep each member's partitions where they were, within balance (an assignment of their own,
/// not the Java client's to the letter: no member needs another's to be the same).
public enum ClassicAssignor: String, CaseIterable, Sendable {
    case range
    case roundRobin = "roundrobin"
    /// Eager, sticky: the partitions a member had (its user data) stay with it.
    case sticky
    /// KIP-429's incremental protocol: members keep their partitions through a rebalance and
    /// give up only those that move (a partition moves in two rebalances: its owner gives it
    /// up in the first, the next assigns it).
    case cooperativeSticky = "cooperative-sticky"

    /// Whether the member keeps its partitions through a rebalance (the cooperative protocol).
    public var cooperative: Bool { self == .cooperativeSticky }

    /// A member as the leader sees it: its topics, the partitions it says it had and the
    /// generation they were from (-1: unknown).
    struct Member: Equatable {
        var topics: [String]
        var owned: Set<TopicPartition> = []
        var generation: Int32 = -1
        /// The member's `client.rack` (subscription version 3).
        var rack: String?
    }

    /// `subscriptions`: member id to topics; `partitions`: each topic's partition count
    /// (topics not there, unknown to the metadata, are left out).
    func assign(_ subscriptions: [String: [String]], partitions: [String: Int32]) -> [String: [TopicPartition]] {
        assign(members: subscriptions.mapValues { Member(topics: $0) }, partitions: partitions, racks: [:])
    }

    /// `racks`: the racks of each partition's replicas, where known (the range assignor is
    /// rack-aware with them, KIP-881).
    func assign(members: [String: Member], partitions: [String: Int32],
                racks: [TopicPartition: Set<String>]) -> [String: [TopicPartition]] {
        let subscriptions = members.mapValues(\.topics)
        var out = Dictionary(uniqueKeysWithValues: subscriptions.keys.map { ($0, [TopicPartition]()) })
        switch self {
        case .sticky, .cooperativeSticky:
            return Self.sticky(members, partitions: partitions, racks: racks)
        case .range:
            var subscribers: [String: [String]] = [:]
            for (member, topics) in subscriptions { for topic in Set(topics) { subscribers[topic, default: []].append(member) } }
            // Topics with the same subscribers and partition count are dealt together (their
            // partition i to the same member), as the Java client's.
            struct Shape: Hashable {
                var subscribers: [String]
                var count: Int32
            }
            var together: [Shape: [String]] = [:]
            for (topic, subscribed) in subscribers {
                guard let count = partitions[topic], count > 0 else { continue }
                together[Shape(subscribers: subscribed.sorted(), count: count), default: []].append(topic)
            }
            for (shape, topics) in together {
                let ranges = Self.range(topics.sorted(), count: shape.count, members: shape.subscribers.map { ($0, members[$0]?.rack) },
                                        racks: racks)
                for (member, taken) in ranges { out[member, default: []] += taken }
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

    /// The range assignor for topics of `count` partitions with the same subscribers (dealt
    /// together: partition i of each to the same member): the subscribers (in member id order)
    /// take consecutive ranges of partition numbers, the first (count % members) one more, as
    /// the Java client's. Rack-aware (KIP-881, as the Java client's since 3.5) when members
    /// name racks, some partitions have replicas in them, and not every partition has a replica
    /// in every member's rack: each member first takes, in partition order and up to its share,
    /// partition numbers with a replica in its rack in every topic, then the rest are dealt the
    /// same way to members still short of their share.
    static func range(_ topics: [String], count: Int32, members: [(id: String, rack: String?)],
                      racks: [TopicPartition: Set<String>]) -> [String: [TopicPartition]] {
        precondition(!topics.isEmpty && !members.isEmpty && count > 0, "topics with partitions and subscribers")
        let each = Int(count) / members.count
        var extra = Int(count) % members.count
        // Partition number i's racks: those with a replica of partition i of every topic.
        let unitRacks: [Set<String>] = (0..<count).map { i in
            topics.dropFirst().reduce(racks[TopicPartition(topics[0], i)] ?? []) { $0.intersection(racks[TopicPartition($1, i)] ?? []) }
        }
        let memberRacks = Set(members.compactMap(\.rack))
        let rackAware = !memberRacks.isEmpty && unitRacks.contains { !$0.isDisjoint(with: memberRacks) }
            && unitRacks.contains { !memberRacks.isSubset(of: $0) }
        var units: [String: [Int32]] = [:]
        var unassigned = Array(0..<count)
        func deal(_ mayTake: (String?, Int32) -> Bool) {
            for (id, rack) in members where !unassigned.isEmpty {
                let have = units[id]?.count ?? 0
                let room = max(0, each + (extra > 0 ? 1 : 0) - have)
                guard room > 0 else { continue }
                var taken: [Int32] = []
                for i in unassigned where taken.count < room && mayTake(rack, i) { taken.append(i) }
                guard !taken.isEmpty else { continue }
                let chosen = Set(taken)
                units[id, default: []] += taken
                unassigned.removeAll { chosen.contains($0) }
                if have + chosen.count > each { extra -= 1 }
            }
        }
        if rackAware { deal { rack, i in rack.map { unitRacks[Int(i)].contains($0) } ?? false } }
        deal { _, _ in true }
        precondition(unassigned.isEmpty, "every partition dealt")
        return units.mapValues { numbers in topics.flatMap { topic in numbers.map { TopicPartition(topic, $0) } }.sorted() }
    }

    /// Each partition stays with the member that had it (the newest generation's claim; two
    /// claims from the same generation keep it with neither); the rest go one at a time to
    /// the subscriber with the fewest; then partitions move, those a member did not have
    /// first, from a member with the most to a subscriber with at least two fewer, until none
    /// can (with identical subscriptions: counts within one of each other).
    ///
    /// Rack-aware (KIP-881, as the Java client's sticky assignors since 3.5) when members name
    /// racks, some partitions have replicas in them and not every partition has one in every
    /// member's rack: a member keeps a partition it had only if the partition has a replica in
    /// its rack or no subscriber's rack has one; a partition to place goes to the subscriber
    /// with the fewest among those in one of its racks, if any; balancing moves first the
    /// partitions outside their member's rack, each to a member in one of its racks if one has
    /// room; last, such partitions move or are swapped into their racks where the counts allow
    /// (`alignRacks`). Balance comes first: a partition leaves its rack when that is the only
    /// way to it.
    static func sticky(_ members: [String: Member], partitions: [String: Int32],
                       racks: [TopicPartition: Set<String>] = [:]) -> [String: [TopicPartition]] {
        let ids = members.keys.sorted()
        let wanted = members.mapValues { Set($0.topics) }
        let all = Set(members.values.flatMap(\.topics)).sorted().flatMap { topic in
            (0..<max(0, partitions[topic] ?? 0)).map { TopicPartition(topic, $0) }
        }
        let exists = Set(all)
        func eligible(_ id: String, _ tp: TopicPartition) -> Bool { wanted[id]?.contains(tp.topic) == true }
        let memberRacks = Set(members.values.compactMap(\.rack))
        let rackAware = !memberRacks.isEmpty && all.contains { !(racks[$0] ?? []).isDisjoint(with: memberRacks) }
            && all.contains { !memberRacks.isSubset(of: racks[$0] ?? []) }
        /// `id`'s rack has a replica of `tp` (false when not rack-aware).
        func inRack(_ id: String, _ tp: TopicPartition) -> Bool {
            rackAware && (members[id]?.rack.map { racks[tp]?.contains($0) ?? false } ?? false)
        }
        func rackHasSubscriber(_ tp: TopicPartition) -> Bool { rackAware && ids.contains { eligible($0, tp) && inRack($0, tp) } }
        var claims: [TopicPartition: (member: String, generation: Int32, tied: Bool)] = [:]
        for id in ids {
            let member = members[id]!
            for tp in member.owned where exists.contains(tp) && eligible(id, tp) && (inRack(id, tp) || !rackHasSubscriber(tp)) {
                if let claim = claims[tp] {
                    if member.generation > claim.generation { claims[tp] = (id, member.generation, false) }
                    else if member.generation == claim.generation { claims[tp]!.tied = true }
                } else {
                    claims[tp] = (id, member.generation, false)
                }
            }
        }
        var assigned = Dictionary(uniqueKeysWithValues: ids.map { ($0, Set<TopicPartition>()) })
        for (tp, claim) in claims where !claim.tied { assigned[claim.member]!.insert(tp) }
        let kept = assigned
        /// The subscriber with the fewest (at most `limit`), among those in one of `tp`'s racks
        /// when there are such.
        func fewest(_ tp: TopicPartition, atMost limit: Int, except: String? = nil) -> String? {
            var best: String?
            var bestInRack = false
            for id in ids where id != except && eligible(id, tp) && assigned[id]!.count <= limit {
                let here = inRack(id, tp)
                if best == nil || (here && !bestInRack) || (here == bestInRack && assigned[id]!.count < assigned[best!]!.count) {
                    best = id
                    bestInRack = here
                }
            }
            return best
        }
        for tp in all where claims[tp].map({ $0.tied }) ?? true {
            if let to = fewest(tp, atMost: Int.max) { assigned[to]!.insert(tp) }
        }
        // Each move lowers the sum of the squared counts by at least two: it ends.
        var moving = true
        while moving {
            moving = false
            let donors = ids.sorted { (assigned[$0]!.count, $1) > (assigned[$1]!.count, $0) }
            search: for donor in donors {
                let have = assigned[donor]!.count
                guard have >= 2 else { break }
                let candidates = assigned[donor]!.sorted { a, b in
                    let (awayA, awayB) = (!inRack(donor, a) && rackHasSubscriber(a), !inRack(donor, b) && rackHasSubscriber(b))
                    if awayA != awayB { return awayA }
                    let (keptA, keptB) = (kept[donor]!.contains(a), kept[donor]!.contains(b))
                    return keptA != keptB ? !keptA : a > b
                }
                for tp in candidates {
                    guard let to = fewest(tp, atMost: have - 2, except: donor) else { continue }
                    assigned[donor]!.remove(tp)
                    assigned[to]!.insert(tp)
                    moving = true
                    break search
                }
            }
        }
        if rackAware { alignRacks(&assigned, ids: ids, eligible: eligible, inRack: inRack) }
        return assigned.mapValues { $0.sorted() }
    }

    /// Once balanced, a partition outside its member's rack moves to a subscriber in one of its
    /// racks that has fewer partitions, or is swapped with one such a subscriber has outside its
    /// own rack and in the first member's: the counts stay as balanced, and each step puts one
    /// or two more partitions in their racks, so it ends.
    static func alignRacks(_ assigned: inout [String: Set<TopicPartition>], ids: [String],
                           eligible: (String, TopicPartition) -> Bool, inRack: (String, TopicPartition) -> Bool) {
        var changed = true
        while changed {
            changed = false
            search: for a in ids {
                for tp in assigned[a]!.sorted() where !inRack(a, tp) {
                    for b in ids where b != a && eligible(b, tp) && inRack(b, tp) {
                        if assigned[b]!.count < assigned[a]!.count {
                            assigned[a]!.remove(tp)
                            assigned[b]!.insert(tp)
                        } else if let back = assigned[b]!.sorted().first(where: { !inRack(b, $0) && inRack(a, $0) && eligible(a, $0) }) {
                            assigned[a]!.remove(tp)
                            assigned[b]!.insert(tp)
                            assigned[b]!.remove(back)
                            assigned[a]!.insert(back)
                        } else {
                            continue
                        }
                        changed = true
                        break search
                    }
                }
            }
        }
    }

    /// The cooperative protocol's rule for the leader: a partition that one member owns now
    /// and the assignment gives to another is given to nobody this time (its owner gives it
    /// up and joins again; the next rebalance assigns it), so no partition is ever owned twice.
    static func withoutMoving(_ assignment: [String: [TopicPartition]], owned: [String: Set<TopicPartition>]) -> [String: [TopicPartition]] {
        var givenUp: Set<TopicPartition> = []
        for (member, partitions) in owned { givenUp.formUnion(partitions.subtracting(assignment[member] ?? [])) }
        guard !givenUp.isEmpty else { return assignment }
        return assignment.mapValues { $0.filter { !givenUp.contains($0) } }
    }
}
