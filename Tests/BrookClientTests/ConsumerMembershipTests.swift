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
        #expect(m.nextHeartbeatAtMs() == 1100, "heartbeats go on while the consumer takes its partitions")
        #expect(m.reconciled(m.reconciling!, owning: [Self.tp("a", 0), Self.tp("a", 1)]).isEmpty)
        #expect(m.nextHeartbeatAtMs() == Int64.min, "what it owns is reported at once")
        #expect(m.send() == .init(memberID: "m1", memberEpoch: 3, subscription: nil, owned: [Self.tp("a", 0), Self.tp("a", 1)]))
        #expect(m.answered(memberID: "m1", epoch: 3, intervalMs: 1000, assignment: nil, nowMs: 200).isEmpty)
        #expect(m.nextHeartbeatAtMs() == 1200)
        #expect(m.send() == .init(memberID: "m1", memberEpoch: 3, subscription: nil, owned: nil))
        // A smaller assignment: the partition not in it is revoked.
        let second = m.answered(memberID: nil, epoch: 3, intervalMs: 1000, assignment: [Self.tp("a", 1)], nowMs: 1300)
        #expect(second == .init(revoke: [Self.tp("a", 0)], assign: []))
        _ = m.reconciled(m.reconciling!, owning: [Self.tp("a", 1)])
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
        _ = m.reconciled(m.reconciling!, owning: [Self.tp("a", 0)])
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

    @Test func heartbeatsGoOnDuringAReconciliationAndANewAssignmentWaitsForItsEnd() {
        var m = ConsumerMembership(memberID: "m1")
        m.subscribe(["a"])
        _ = m.send()
        let first = m.answered(memberID: "m1", epoch: 1, intervalMs: 500, assignment: [Self.tp("a", 0), Self.tp("a", 1)], nowMs: 0)
        #expect(first.assign == [Self.tp("a", 0), Self.tp("a", 1)])
        let number = m.reconciling!
        _ = m.reconciled(number, owning: first.assign)
        _ = m.send()
        _ = m.answered(memberID: nil, epoch: 1, intervalMs: 500, assignment: nil, nowMs: 10)
        // A revocation whose callback takes long: heartbeats go on, saying nothing owned anew.
        _ = m.send()
        let revoke = m.answered(memberID: nil, epoch: 1, intervalMs: 500, assignment: [Self.tp("a", 1)], nowMs: 600)
        #expect(revoke == .init(revoke: [Self.tp("a", 0)], assign: []))
        let revoking = m.reconciling!
        #expect(m.nextHeartbeatAtMs() == 1100)
        #expect(m.send() == .init(memberID: "m1", memberEpoch: 1, subscription: nil, owned: nil))
        // An assignment answered meanwhile is not carried out now: it waits for the end.
        #expect(m.answered(memberID: nil, epoch: 2, intervalMs: 500, assignment: [Self.tp("a", 1), Self.tp("a", 2)], nowMs: 1110).isEmpty)
        #expect(m.reconciling == revoking && m.memberEpoch == 2)
        let next = m.reconciled(revoking, owning: [Self.tp("a", 1)])
        #expect(next == .init(revoke: [], assign: [Self.tp("a", 2)]))
        #expect(m.reconciling != nil && m.reconciling != revoking)
        #expect(m.nextHeartbeatAtMs() == Int64.min, "what it gave up is reported at once")
        #expect(m.send().owned == [Self.tp("a", 1)])
        _ = m.answered(memberID: nil, epoch: 2, intervalMs: 500, assignment: nil, nowMs: 1200)
        #expect(m.reconciled(m.reconciling!, owning: [Self.tp("a", 1), Self.tp("a", 2)]).isEmpty)
        #expect(m.reconciling == nil && m.send().owned == [Self.tp("a", 1), Self.tp("a", 2)])
    }

    @Test func aMemberFencedDuringAReconciliationAbandonsIt() {
        var m = ConsumerMembership(memberID: "m1")
        m.subscribe(["a"])
        _ = m.send()
        _ = m.answered(memberID: "m1", epoch: 1, intervalMs: 500, assignment: [Self.tp("a", 0)], nowMs: 0)
        _ = m.reconciled(m.reconciling!, owning: [Self.tp("a", 0)])
        _ = m.send()
        _ = m.answered(memberID: nil, epoch: 1, intervalMs: 500, assignment: [], nowMs: 10)
        #expect(m.reconciling != nil)
        _ = m.send()
        // A newer assignment waits, then the member is fenced: both are given up.
        _ = m.answered(memberID: nil, epoch: 2, intervalMs: 500, assignment: [Self.tp("a", 1)], nowMs: 600)
        _ = m.send()
        #expect(m.failed(.fencedMemberEpoch) == .fenced(lost: [Self.tp("a", 0)]))
        #expect(m.reconciling == nil && m.owned.isEmpty)
        #expect(m.send() == .init(memberID: "m1", memberEpoch: 0, subscription: ["a"], owned: []))
        #expect(m.answered(memberID: nil, epoch: 3, intervalMs: 500, assignment: nil, nowMs: 700).isEmpty, "the waiting assignment went with it")
        // Stale and closed members abandon theirs too.
        _ = m.send()
        _ = m.answered(memberID: nil, epoch: 3, intervalMs: 500, assignment: [Self.tp("a", 0)], nowMs: 800)
        #expect(m.reconciling != nil)
        _ = m.leaveStale(staticMember: false)
        #expect(m.reconciling == nil)
        m.rejoin()
        _ = m.send()
        _ = m.answered(memberID: nil, epoch: 4, intervalMs: 500, assignment: [Self.tp("a", 0)], nowMs: 900)
        #expect(m.reconciling != nil)
        _ = m.leave(staticMember: false)
        #expect(m.reconciling == nil)
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
            _ = m.reconciled(m.reconciling!, owning: [Self.tp("a", 0)])
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
            _ = m.reconciled(m.reconciling!, owning: [Self.tp("b", 0)])
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
        simulate(seed: seed, slowReconciliations: false)
    }

    /// As above with a session timeout of 1 s and reconciliations that take up to 2.5 s (a
    /// revocation callback that commits slowly): heartbeats go on meanwhile, so no member's
    /// session ends (the broker would give its partitions to others while it still holds them).
    @Test(arguments: 100..<110 as Range<UInt64>)
    func membersWhoseReconciliationsOutlastTheSessionStayInTheGroup(seed: UInt64) {
        simulate(seed: seed, slowReconciliations: true)
    }

    func simulate(seed: UInt64, slowReconciliations: Bool) {
        var random = SeededRandom(seed: seed)
        let ids = ["a": KafkaUUID(high: 1, low: 1), "b": KafkaUUID(high: 2, low: 2)]
        let names = Dictionary(uniqueKeysWithValues: ids.map { ($0.value, $0.key) })
        let view = StaticTopics(["a": (ids["a"]!, 6), "b": (ids["b"]!, 3)])
        var config = GroupConfig()
        config.consumerHeartbeatIntervalMs = 200
        if slowReconciliations { config.consumerSessionTimeoutMs = 1000 }
        var group = ConsumerGroup(id: "g", now: 0)
        struct Client {
            var membership: ConsumerMembership
            var owned: Set<TopicPartition> = []
            /// An answer on its way: when it arrives and what it is.
            var answer: (atMs: Int64, result: ConsumerHeartbeatResult)?
            /// A reconciliation under way: when it is done, what it changes, its number.
            var reconciling: (atMs: Int64, change: ConsumerMembership.Reconciliation, number: Int)?
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
        func duration() -> Int64 {
            slowReconciliations && Int.random(in: 0..<4, using: &random) == 0
                ? Int64.random(in: 1000...2500, using: &random) : Int64.random(in: 0...60, using: &random)
        }
        func step(disrupt: Bool) {
            now += Int64.random(in: 1...40, using: &random)
            let expired = group.tick(now: now)
            #expect(expired.isEmpty, "seed \(seed) at \(now) ms: sessions of \(expired) ended")
            for i in clients.indices where !clients[i].gone {
                // Answers that arrived.
                if let answer = clients[i].answer, answer.atMs <= now {
                    clients[i].answer = nil
                    let r = answer.result
                    if r.error == .none {
                        let change = clients[i].membership.answered(memberID: r.memberID, epoch: r.memberEpoch, intervalMs: r.heartbeatIntervalMs,
                                                                    assignment: r.assignment.map(assignment), nowMs: now)
                        if !change.isEmpty { clients[i].reconciling = (now + duration(), change, clients[i].membership.reconciling!) }
                    } else if case .fenced = clients[i].membership.failed(r.error) {
                        clients[i].owned = []
                        clients[i].reconciling = nil
                    }
                }
                // Reconciliations done: revoked partitions dropped, new ones taken.
                if let r = clients[i].reconciling, r.atMs <= now {
                    clients[i].reconciling = nil
                    clients[i].owned = clients[i].owned.subtracting(r.change.revoke).union(r.change.assign)
                    let next = clients[i].membership.reconciled(r.number, owning: clients[i].owned)
                    if !next.isEmpty { clients[i].reconciling = (now + duration(), next, clients[i].membership.reconciling!) }
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
                    let live = clients.indices.filter { !clients[$0].gone && clients[$0].answer == nil }
                    if live.count > 1, let i = live.randomElement(using: &random) {
                        clients[i].owned = []
                        clients[i].reconciling = nil
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
