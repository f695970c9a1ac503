import BrookCore
import BrookProtocol
import Testing

@testable import BrookClient
@testable import BrookGroups

@Suite struct ConsumerMembershipTests {
    static func tp(_ topic: String, _ partition: Int32) -> TopicPartition { TopicPartition(topic, partition) }

    @Test func aMemberJoinsTakesItsPartitionsAndReportsThem() {
        var m = ConsumerMembership(memberID: "m1")
        #expect(m.nextHeartbeatAtMs() == nil)
        m.subscribe(["b", "a", "a"])
        #expect(m.nextHeartbeatAtMs() == Int64.min)
        let join = m.send()
        #expect(join == .init(memberID: "m1", memberEpoch: 0, subscription: ["a", "b"], owned: []))
        #expect(m.nextHeartbeatAtMs() == nil, "one heartbeat in flight at a time")
        let first = m.answered(memberID: "m1", epoch: 3, intervalMs: 1000, assignment: [Self.tp("a", 0), Self.tp("a", 1)], nowMs: 100)
        #expect(first == .init(revoke: [], assign: [Self.tp("a", 0), Self.tp("a", 1)]))
        #expect(m.nextHeartbeatAtMs() == nil, "no heartbeat while the consumer takes its partitions")
        m.reconciled(owning: [Self.tp("a", 0), Self.tp("a", 1)])
        #expect(m.nextHeartbeatAtMs() == Int64.min, "what it owns is reported at once")
        #expect(m.send() == .init(memberID: "m1", memberEpoch: 3, subscription: nil, owned: [Self.tp("a", 0), Self.tp("a", 1)]))
        #expect(m.answered(memberID: "m1", epoch: 3, intervalMs: 1000, assignment: nil, nowMs: 200).isEmpty)
        #expect(m.nextHeartbeatAtMs() == 1200)
        #expect(m.send() == .init(memberID: "m1", memberEpoch: 3, subscription: nil, owned: nil))
        // A smaller assignment: the partition not in it is revoked.
        let second = m.answered(memberID: nil, epoch: 3, intervalMs: 1000, assignment: [Self.tp("a", 1)], nowMs: 1300)
        #expect(second == .init(revoke: [Self.tp("a", 0)], assign: []))
        m.reconciled(owning: [Self.tp("a", 1)])
        #expect(m.send().owned == [Self.tp("a", 1)])
        _ = m.answered(memberID: nil, epoch: 4, intervalMs: 0, assignment: nil, nowMs: 1400)
        #expect(m.memberEpoch == 4 && m.heartbeatIntervalMs == 1000)
        // A new subscription goes at once.
        m.subscribe(["c"])
        #expect(m.nextHeartbeatAtMs() == Int64.min)
        #expect(m.send().subscription == ["c"])
    }

    @Test func aFencedMemberLosesItsPartitionsAndJoinsAgain() {
        var m = ConsumerMembership(memberID: "m1")
        m.subscribe(["a"])
        _ = m.send()
        _ = m.answered(memberID: "m1", epoch: 2, intervalMs: 500, assignment: [Self.tp("a", 0)], nowMs: 0)
        m.reconciled(owning: [Self.tp("a", 0)])
        _ = m.send()
        #expect(m.failed(.fencedMemberEpoch) == .fenced(lost: [Self.tp("a", 0)]))
        #expect(m.owned.isEmpty && m.memberEpoch == 0)
        #expect(m.send() == .init(memberID: "m1", memberEpoch: 0, subscription: ["a"], owned: []))
        #expect(m.failed(.notCoordinator) == .coordinator)
        #expect(m.nextHeartbeatAtMs() == Int64.min)
        _ = m.send()
        _ = m.answered(memberID: "m1", epoch: 3, intervalMs: 500, assignment: nil, nowMs: 10)
        #expect(m.send().owned == nil, "acknowledged: not sent again")
        // A lost answer: the broker may have taken it, so the next heartbeat says everything.
        #expect(m.failed(.networkException) == .coordinator)
        let full = m.send()
        #expect(full.owned == [] && full.subscription == ["a"])
        #expect(m.failed(.networkException) == .coordinator)
        _ = m.send()
        #expect(m.failed(.groupAuthorizationFailed) == .fatal)
        #expect(m.phase == .left && m.nextHeartbeatAtMs() == nil)
    }

    @Test func leavingSaysEpochMinusOneOrMinusTwoForAStaticMember() {
        var never = ConsumerMembership(memberID: "m0")
        never.subscribe(["a"])
        #expect(never.leave(staticMember: false) == nil)
        // Closed while its first heartbeat is unanswered: it leaves all the same.
        var joining = ConsumerMembership(memberID: "m2")
        joining.subscribe(["a"])
        _ = joining.send()
        #expect(joining.leave(staticMember: false) == .init(memberID: "m2", memberEpoch: -1, subscription: nil, owned: nil))
        for staticMember in [false, true] {
            var m = ConsumerMembership(memberID: "m1")
            m.subscribe(["a"])
            _ = m.send()
            _ = m.answered(memberID: "m1", epoch: 1, intervalMs: 500, assignment: [], nowMs: 0)
            #expect(m.leave(staticMember: staticMember) == .init(memberID: "m1", memberEpoch: staticMember ? -2 : -1, subscription: nil, owned: nil))
            #expect(m.phase == .left && m.owned.isEmpty)
        }
    }

    @Test func aMemberThatStopsPollingLeavesLosesItsPartitionsAndJoinsAgainAtItsNextPoll() {
        for staticMember in [false, true] {
            var m = ConsumerMembership(memberID: "m1")
            m.subscribe(["a"])
            _ = m.send()
            _ = m.answered(memberID: "m1", epoch: 4, intervalMs: 500, assignment: [Self.tp("a", 0)], nowMs: 0)
            m.reconciled(owning: [Self.tp("a", 0)])
            let (beat, lost) = m.leaveStale(staticMember: staticMember)
            #expect(beat == .init(memberID: "m1", memberEpoch: staticMember ? -2 : -1, subscription: nil, owned: nil))
            #expect(lost == [Self.tp("a", 0)] && m.owned.isEmpty && m.phase == .stale)
            #expect(m.nextHeartbeatAtMs() == nil, "no heartbeat until it polls")
            // A subscription changed meanwhile goes with the join.
            m.subscribe(["a", "b"])
            #expect(m.nextHeartbeatAtMs() == nil)
            m.rejoin()
            #expect(m.nextHeartbeatAtMs() == Int64.min)
            #expect(m.send() == .init(memberID: "m1", memberEpoch: 0, subscription: ["a", "b"], owned: []))
            _ = m.answered(memberID: "m1", epoch: 6, intervalMs: 500, assignment: [Self.tp("b", 0)], nowMs: 10)
            m.reconciled(owning: [Self.tp("b", 0)])
            #expect(m.phase == .active && m.owned == [Self.tp("b", 0)])
            // Closed while stale: it left already.
            _ = m.send()
            _ = m.answered(memberID: "m1", epoch: 6, intervalMs: 500, assignment: nil, nowMs: 20)
            _ = m.leaveStale(staticMember: staticMember)
            #expect(m.leave(staticMember: staticMember) == nil && m.phase == .left)
        }
    }

    /// Members (this core) against the broker's KIP-848 group (BrookGroups' ConsumerGroup),
    /// answers arriving after random delays, reconciliations taking random time, members
    /// joining, leaving and changing their subscriptions: no partition is ever owned by two
    /// members, and once things are quiet every subscribed partition is owned by exactly one
    /// member, as the broker has it.
    @Test(arguments: 0..<20 as Range<UInt64>)
    func membersAgainstTheBrokersGroupNeverShareAPartition(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let ids = ["a": KafkaUUID(high: 1, low: 1), "b": KafkaUUID(high: 2, low: 2)]
        let names = Dictionary(uniqueKeysWithValues: ids.map { ($0.value, $0.key) })
        let view = StaticTopics(["a": (ids["a"]!, 6), "b": (ids["b"]!, 3)])
        var config = GroupConfig()
        config.consumerHeartbeatIntervalMs = 200
        var group = ConsumerGroup(id: "g", now: 0)
        struct Client {
            var membership: ConsumerMembership
            var owned: Set<TopicPartition> = []
            /// An answer on its way: when it arrives and what it is.
            var answer: (atMs: Int64, result: ConsumerHeartbeatResult)?
            /// A reconciliation under way: when it is done and what it changes.
            var reconciling: (atMs: Int64, change: ConsumerMembership.Reconciliation)?
            var gone = false
            init(memberID: String) { membership = ConsumerMembership(memberID: memberID) }
        }
        var clients: [Client] = []
        func join(_ topics: [String]) {
            var c = Client(memberID: "member-\(clients.count)")
            c.membership.subscribe(topics)
            clients.append(c)
        }
        join(["a"])
        join(["a", "b"])
        var now: Int64 = 0
        func assignment(_ given: Assignment) -> Set<TopicPartition> {
            Set(given.flatMap { id, partitions in partitions.map { TopicPartition(names[id]!, $0) } })
        }
        func step(disrupt: Bool) {
            now += Int64.random(in: 1...40, using: &random)
            for i in clients.indices where !clients[i].gone {
                // Answers that arrived.
                if let answer = clients[i].answer, answer.atMs <= now {
                    clients[i].answer = nil
                    let r = answer.result
                    if r.error == .none {
                        let change = clients[i].membership.answered(memberID: r.memberID, epoch: r.memberEpoch, intervalMs: r.heartbeatIntervalMs,
                                                                    assignment: r.assignment.map(assignment), nowMs: now)
                        if !change.isEmpty { clients[i].reconciling = (now + Int64.random(in: 0...60, using: &random), change) }
                    } else if case .fenced = clients[i].membership.failed(r.error) {
                        clients[i].owned = []
                    }
                }
                // Reconciliations done: revoked partitions dropped, new ones taken.
                if let r = clients[i].reconciling, r.atMs <= now {
                    clients[i].reconciling = nil
                    clients[i].owned = clients[i].owned.subtracting(r.change.revoke).union(r.change.assign)
                    clients[i].membership.reconciled(owning: clients[i].owned)
                }
                // Heartbeats due: the broker handles each when it is sent.
                if let at = clients[i].membership.nextHeartbeatAtMs(), at <= now, clients[i].answer == nil {
                    let beat = clients[i].membership.send()
                    let owned = beat.owned.map { set in
                        Dictionary(grouping: set, by: \.topic).reduce(into: Assignment()) { $0[ids[$1.key]!] = Set($1.value.map(\.partition)) }
                    }
                    let request = ConsumerHeartbeatRequest(groupID: "g", memberID: beat.memberID, memberEpoch: beat.memberEpoch,
                                                           rebalanceTimeoutMs: beat.memberEpoch == 0 ? 60_000 : -1,
                                                           subscribedTopicNames: beat.subscription, ownedPartitions: owned)
                    let result = group.heartbeat(request, newMemberID: "unused", topics: view, config: config, now: now)
                    clients[i].answer = (now + Int64.random(in: 0...(disrupt ? 80 : 5), using: &random), result)
                }
            }
            if disrupt {
                switch Int.random(in: 0..<200, using: &random) {
                case 0..<3 where clients.filter({ !$0.gone }).count < 5:
                    join(Bool.random(using: &random) ? ["a"] : ["a", "b"])
                case 3..<5:
                    // A member leaves (a consumer closed): its partitions are given up first.
                    let live = clients.indices.filter { !clients[$0].gone && clients[$0].reconciling == nil && clients[$0].answer == nil }
                    if live.count > 1, let i = live.randomElement(using: &random) {
                        clients[i].owned = []
                        if let beat = clients[i].membership.leave(staticMember: false) {
                            _ = group.heartbeat(ConsumerHeartbeatRequest(groupID: "g", memberID: beat.memberID, memberEpoch: beat.memberEpoch),
                                                newMemberID: "unused", topics: view, config: config, now: now)
                        }
                        clients[i].gone = true
                    }
                case 5..<7:
                    let live = clients.indices.filter { !clients[$0].gone }
                    if let i = live.randomElement(using: &random) {
                        clients[i].membership.subscribe(Bool.random(using: &random) ? ["a"] : ["a", "b"])
                    }
                default: break
                }
            }
            GroupSimulationChecks.noPartitionSharedBy(clients.enumerated().filter { !$0.element.gone }.map { ($0.offset, $0.element.owned) },
                                                      seed: seed, nowMs: now)
        }
        for _ in 0..<3000 { step(disrupt: true) }
        for _ in 0..<1500 { step(disrupt: false) }
        // Quiet: every subscribed partition owned once, as the broker has it.
        let live = clients.filter { !$0.gone }
        GroupSimulationChecks.eachSubscribedPartitionOwnedOnce(live.map(\.owned), subscribed: Set(live.flatMap(\.membership.subscription)),
                                                               partitions: { topic in view.topics[topic]!.partitions }, seed: seed)
        for c in live {
            let member = group.members[c.membership.memberID]
            #expect(member.map { assignment($0.assigned) } == c.owned)
            #expect(member?.state == .stable)
        }
    }
}
