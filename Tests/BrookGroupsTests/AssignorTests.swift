@testable import BrookGroups
import BrookCore
import BrookProtocol
import Testing

/// The server-side assignors of KIP-848 (`uniform` and `range`).
@Suite struct AssignorTests {
    static func topic(_ name: String, _ partitions: Int32) -> SubscribedTopic {
        SubscribedTopic(name: name, id: KafkaUUID(high: 0xC0DE, low: UInt64(name.hashValueStable)), partitions: partitions)
    }

    static func table(_ topics: SubscribedTopic...) -> [String: SubscribedTopic] {
        Dictionary(uniqueKeysWithValues: topics.map { ($0.name, $0) })
    }

    static func members(_ ids: [String], _ topics: Set<String>, previous: [String: Assignment] = [:]) -> [AssignorMember] {
        ids.map { AssignorMember(memberID: $0, topics: topics, previous: previous[$0] ?? [:]) }
    }

    /// Every partition of every topic goes to exactly one member, which subscribes to it, and
    /// nothing else is handed out. Returns false (after recording issues) when not.
    @discardableResult
    static func expectComplete(_ result: [String: Assignment], _ members: [AssignorMember], _ topics: [String: SubscribedTopic],
                               _ context: String = "", sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        var ok = true
        func check(_ condition: Bool, _ message: @autoclosure () -> String) {
            if !condition {
                ok = false
                Issue.record("\(message()) \(context)", sourceLocation: sourceLocation)
            }
        }
        check(Set(result.keys) == Set(members.map(\.memberID)), "result members \(result.keys.sorted())")
        let byID = Dictionary(uniqueKeysWithValues: topics.values.map { ($0.id, $0) })
        for (member, assignment) in result {
            for (id, partitions) in assignment {
                guard let topic = byID[id] else { check(false, "\(member) got an unknown topic \(id)"); continue }
                check(partitions.allSatisfy { $0 >= 0 && $0 < topic.partitions }, "\(member) got \(topic.name) \(partitions.sorted())")
            }
        }
        for topic in topics.values.sorted(by: { $0.name < $1.name }) {
            let subscribers = members.filter { $0.topics.contains(topic.name) }
            for p in 0..<topic.partitions {
                let owners = result.filter { $0.value[topic.id]?.contains(p) ?? false }.map(\.key)
                if subscribers.isEmpty {
                    check(owners.isEmpty, "\(topic.name)-\(p) has no subscriber but went to \(owners)")
                    continue
                }
                check(owners.count == 1, "\(topic.name)-\(p) owned by \(owners.sorted())")
                if let owner = owners.first {
                    check(subscribers.contains { $0.memberID == owner }, "\(topic.name)-\(p) went to \(owner), not subscribed")
                }
            }
        }
        return ok
    }

    static func loads(_ result: [String: Assignment]) -> [String: Int] { result.mapValues(\.partitionCount) }

    static func spread(_ result: [String: Assignment]) -> Int {
        let l = loads(result).values
        return (l.max() ?? 0) - (l.min() ?? 0)
    }

    /// Partitions whose owner changed from `old` to `new` (partitions new in `new` do not count).
    static func moves(from old: [String: Assignment], to new: [String: Assignment]) -> Int {
        var owner: [KafkaUUID: [Int32: String]] = [:]
        for (m, a) in old { for (t, ps) in a { for p in ps { owner[t, default: [:]][p] = m } } }
        var moved = 0
        for (m, a) in new { for (t, ps) in a { for p in ps where owner[t]?[p] != nil && owner[t]?[p] != m { moved += 1 } } }
        return moved
    }

    // MARK: examples

    @Test func rangeGivesContiguousRangesInMemberOrder() throws {
        let topics = Self.table(Self.topic("orders", 6))
        let id = topics["orders"]!.id
        let result = ServerAssignor.range.assign(members: Self.members(["c", "a", "b"], ["orders"]), topics: topics)
        #expect(result == ["a": [id: [0, 1]], "b": [id: [2, 3]], "c": [id: [4, 5]]])
        Self.expectComplete(result, Self.members(["a", "b", "c"], ["orders"]), topics)
    }

    @Test func rangeGivesTheRemainderToTheFirstMembers() throws {
        let topics = Self.table(Self.topic("orders", 7))
        let id = topics["orders"]!.id
        let result = ServerAssignor.range.assign(members: Self.members(["a", "b", "c"], ["orders"]), topics: topics)
        #expect(result == ["a": [id: [0, 1, 2]], "b": [id: [3, 4]], "c": [id: [5, 6]]])
    }

    @Test func uniformBalancesThreeMembersOverSixPartitions() throws {
        let topics = Self.table(Self.topic("orders", 6))
        let members = Self.members(["a", "b", "c"], ["orders"])
        let result = ServerAssignor.uniform.assign(members: members, topics: topics)
        Self.expectComplete(result, members, topics)
        #expect(Self.loads(result) == ["a": 2, "b": 2, "c": 2])
    }

    @Test func uniformMovesOnePartitionWhenAFourthMemberJoins() throws {
        let topics = Self.table(Self.topic("orders", 6))
        let before = ServerAssignor.uniform.assign(members: Self.members(["a", "b", "c"], ["orders"]), topics: topics)
        let members = Self.members(["a", "b", "c", "d"], ["orders"], previous: before)
        let after = ServerAssignor.uniform.assign(members: members, topics: topics)
        Self.expectComplete(after, members, topics)
        #expect(Self.spread(after) <= 1)
        #expect(Self.loads(after)["d"] == 1)
        #expect(Self.moves(from: before, to: after) == 1)
    }

    @Test func uniformIsStableWhenNothingChanges() throws {
        let topics = Self.table(Self.topic("orders", 7), Self.topic("payments", 5))
        let ids = ["a", "b", "c"]
        let before = ServerAssignor.uniform.assign(members: Self.members(ids, ["orders", "payments"]), topics: topics)
        let after = ServerAssignor.uniform.assign(members: Self.members(ids, ["orders", "payments"], previous: before), topics: topics)
        #expect(after == before)
    }

    /// Adding one member to a balanced group of n: the newcomer needs floor(P / (n + 1))
    /// partitions, and nobody else needs to move.
    static func expectMinimalMovesOnJoin(_ history: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        for partitions in Int32(1)...24 {
            for n in 1...6 {
                let topics = Self.table(Self.topic("orders", partitions))
                let ids = (0..<n).map { "m\($0)" }
                let before: [String: Assignment]
                switch history {
                case "fresh":
                    before = ServerAssignor.uniform.assign(members: Self.members(ids, ["orders"]), topics: topics)
                case "after a leave":
                    let earlier = ServerAssignor.uniform.assign(members: Self.members(ids + ["x-gone"], ["orders"]), topics: topics)
                    before = ServerAssignor.uniform.assign(members: Self.members(ids, ["orders"], previous: earlier), topics: topics)
                default:
                    before = ServerAssignor.range.assign(members: Self.members(ids, ["orders"]), topics: topics)
                }
                try #require(Self.spread(before) <= 1, sourceLocation: sourceLocation)
                let members = Self.members(ids + ["new"], ["orders"], previous: before)
                let after = ServerAssignor.uniform.assign(members: members, topics: topics)
                let context = "(\(history): \(partitions) partitions, \(n) + 1 members)"
                Self.expectComplete(after, members, topics, context, sourceLocation: sourceLocation)
                #expect(Self.spread(after) <= 1, "\(context)", sourceLocation: sourceLocation)
                #expect(Self.moves(from: before, to: after) == Int(partitions) / (n + 1), "\(context)", sourceLocation: sourceLocation)
            }
        }
    }

    @Test func uniformMovesTheMinimumWhenAMemberJoinsItsOwnFreshAssignment() throws {
        try Self.expectMinimalMovesOnJoin("fresh")
    }

    @Test(arguments: ["after a leave", "from range"])
    func uniformMovesTheMinimumWhenAMemberJoinsAnyBalancedAssignment(_ history: String) throws {
        try Self.expectMinimalMovesOnJoin(history)
    }

    /// The brief's scenario with 11 partitions: a fourth member needs 2, taking one each from
    /// the two members with 4; Brook's uniform also moves 7 from b to a.
    @Test
    func uniformMovesTwoPartitionsWhenAFourthMemberJoinsElevenPartitions() throws {
        let topics = Self.table(Self.topic("orders", 11))
        let id = topics["orders"]!.id
        let before: [String: Assignment] = ["a": [id: [0, 1, 2, 3]], "b": [id: [4, 5, 6, 7]], "c": [id: [8, 9, 10]]]
        let members = Self.members(["a", "b", "c", "d"], ["orders"], previous: before)
        let after = ServerAssignor.uniform.assign(members: members, topics: topics)
        Self.expectComplete(after, members, topics)
        #expect(Self.loads(after)["d"] == 2)
        #expect(Self.spread(after) <= 1)
        #expect(Self.moves(from: before, to: after) == 2)
    }

    /// Removing one member from a balanced group: only its partitions need to move.
    @Test
    func uniformMovesOnlyTheLeaversPartitions() throws {
        for partitions in Int32(1)...24 {
            for n in 2...6 {
                let topics = Self.table(Self.topic("orders", partitions))
                let ids = (0..<n).map { "m\($0)" }
                let before = ServerAssignor.uniform.assign(members: Self.members(ids, ["orders"]), topics: topics)
                let gone = ids[n / 2]
                let stay = ids.filter { $0 != gone }
                let members = Self.members(stay, ["orders"], previous: before)
                let after = ServerAssignor.uniform.assign(members: members, topics: topics)
                let context = "(\(partitions) partitions, \(n) - 1 members)"
                Self.expectComplete(after, members, topics, context)
                #expect(Self.spread(after) <= 1, "\(context)")
                var kept = before
                kept[gone] = nil
                #expect(Self.moves(from: kept, to: after) == 0, "\(context)")
            }
        }
    }

    @Test(arguments: ServerAssignor.allCases)
    func heterogeneousSubscriptionsOnlyGetTheirTopics(_ assignor: ServerAssignor) throws {
        let topics = Self.table(Self.topic("a", 5), Self.topic("b", 3), Self.topic("unwanted", 4))
        let members = [AssignorMember(memberID: "m1", topics: ["a"], previous: [:]),
                       AssignorMember(memberID: "m2", topics: ["a", "b"], previous: [:]),
                       AssignorMember(memberID: "m3", topics: ["b"], previous: [:]),
                       AssignorMember(memberID: "m4", topics: ["missing"], previous: [:])]
        let result = assignor.assign(members: members, topics: topics)
        Self.expectComplete(result, members, topics)
        let a = topics["a"]!.id, b = topics["b"]!.id
        #expect(Set(result["m1"]!.keys).isSubset(of: [a]))
        #expect(Set(result["m3"]!.keys).isSubset(of: [b]))
        #expect(result["m4"] == [:])
        #expect(result.values.allSatisfy { $0[topics["unwanted"]!.id] == nil })
    }

    @Test func uniformDropsPreviousPartitionsOfAShrunkTopic() throws {
        let topics = Self.table(Self.topic("orders", 2))
        let id = topics["orders"]!.id
        let members = Self.members(["a", "b"], ["orders"], previous: ["a": [id: [0, 5]], "b": [id: [1, 7]]])
        let result = ServerAssignor.uniform.assign(members: members, topics: topics)
        #expect(result == ["a": [id: [0]], "b": [id: [1]]])
    }

    // MARK: property

    /// A few hundred random groups (from fixed seeds): both assignors hand out every partition
    /// exactly once to a subscriber; `uniform` balances homogeneous subscriptions within one
    /// partition (and `range` does too for a single topic), with or without a previous target.
    @Test func randomGroupsAreAssignedCompletely() throws {
        var failures = 0
        for seed in UInt64(1)...300 where failures < 5 {
            var rng = SeededRandom(seed: seed)
            var topics: [String: SubscribedTopic] = [:]
            for i in 0..<Int.random(in: 1...4, using: &rng) {
                let name = "t\(i)"
                topics[name] = SubscribedTopic(name: name, id: KafkaUUID(high: seed, low: UInt64(i + 1)),
                                               partitions: Int32.random(in: 1...16, using: &rng))
            }
            let names = topics.keys.sorted()
            let homogeneous = Bool.random(using: &rng)
            var subscriptions: [String: Set<String>] = [:]
            for m in 0..<Int.random(in: 1...8, using: &rng) {
                var subs = Set(names)
                if !homogeneous {
                    subs = Set(names.filter { _ in Bool.random(using: &rng) })
                    if subs.isEmpty { subs = [names.randomElement(using: &rng)!] }
                    if Int.random(in: 0..<5, using: &rng) == 0 { subs.insert("no-such-topic") }
                }
                subscriptions["member-\(m)"] = subs
            }
            // Half the cases start from an earlier target: some members gone, and the topics
            // then of another size.
            var previous: [String: Assignment] = [:]
            if Bool.random(using: &rng) {
                var earlierTopics = topics
                for (name, t) in topics { earlierTopics[name]!.partitions = max(1, t.partitions + Int32.random(in: -3...3, using: &rng)) }
                let earlierMembers = subscriptions.keys.sorted().filter { _ in Int.random(in: 0..<4, using: &rng) > 0 } + ["departed"]
                let earlier = earlierMembers.map { AssignorMember(memberID: $0, topics: subscriptions[$0] ?? Set(names), previous: [:]) }
                previous = ServerAssignor.uniform.assign(members: earlier, topics: earlierTopics)
            }
            let members = subscriptions.keys.sorted().map {
                AssignorMember(memberID: $0, topics: subscriptions[$0]!, previous: previous[$0] ?? [:])
            }
            for assignor in ServerAssignor.allCases {
                let context = "(seed \(seed), \(assignor), \(members.count) members, topics \(names.map { "\($0):\(topics[$0]!.partitions)" }), homogeneous \(homogeneous))"
                let result = assignor.assign(members: members, topics: topics)
                if !Self.expectComplete(result, members, topics, context) { failures += 1 }
                if homogeneous && (assignor == .uniform || topics.count == 1) {
                    if Self.spread(result) > 1 {
                        failures += 1
                        Issue.record("loads \(Self.loads(result)) \(context)")
                    }
                }
            }
        }
        #expect(failures == 0)
    }
}

extension String {
    /// A hash that does not change between runs (Swift's `hashValue` is seeded per process).
    var hashValueStable: UInt32 {
        var h: UInt32 = 2_166_136_261
        for b in utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        return h
    }
}
