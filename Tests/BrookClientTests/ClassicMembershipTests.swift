import BrookCore
import BrookProtocol
import Testing

@testable import BrookClient
@testable import BrookGroups

@Suite struct ClassicMembershipTests {
    static func tp(_ topic: String, _ partition: Int32) -> TopicPartition { TopicPartition(topic, partition) }

    /// The Java client's documented examples (RangeAssignor and RoundRobinAssignor javadoc):
    /// C0 and C1 subscribed to t0 and t1 of three partitions each.
    @Test func theAssignorsMatchTheJavaClientsExamples() {
        let subscriptions = ["C0": ["t0", "t1"], "C1": ["t0", "t1"]]
        let counts: [String: Int32] = ["t0": 3, "t1": 3]
        #expect(ClassicAssignor.range.assign(subscriptions, partitions: counts) == [
            "C0": [Self.tp("t0", 0), Self.tp("t0", 1), Self.tp("t1", 0), Self.tp("t1", 1)],
            "C1": [Self.tp("t0", 2), Self.tp("t1", 2)],
        ])
        #expect(ClassicAssignor.roundRobin.assign(subscriptions, partitions: counts) == [
            "C0": [Self.tp("t0", 0), Self.tp("t0", 2), Self.tp("t1", 1)],
            "C1": [Self.tp("t0", 1), Self.tp("t1", 0), Self.tp("t1", 2)],
        ])
        // Round robin skips members not subscribed to a topic (C0: t0; C1: t0, t1; C2: t0, t1, t2).
        #expect(ClassicAssignor.roundRobin.assign(["C0": ["t0"], "C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]],
                                                  partitions: ["t0": 1, "t1": 2, "t2": 3]) == [
            "C0": [Self.tp("t0", 0)],
            "C1": [Self.tp("t1", 0)],
            "C2": [Self.tp("t1", 1), Self.tp("t2", 0), Self.tp("t2", 1), Self.tp("t2", 2)],
        ])
    }

    /// Any subscriptions: every partition of a subscribed, known topic goes to exactly one of
    /// its subscribers; range is balanced per topic, round robin overall when all subscribe alike.
    @Test(arguments: 0..<50 as Range<UInt64>)
    func everyPartitionGoesToOneSubscriber(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let topics = (0..<Int.random(in: 1...4, using: &random)).map { "t\($0)" }
        let counts = Dictionary(uniqueKeysWithValues: topics.map { ($0, Int32.random(in: 0...9, using: &random)) })
        let alike = Bool.random(using: &random)
        let members = (0..<Int.random(in: 1...5, using: &random)).map { "m\($0)" }
        let subscriptions = Dictionary(uniqueKeysWithValues: members.map { member in
            (member, alike ? topics : topics.filter { _ in Bool.random(using: &random) })
        })
        for assignor in ClassicAssignor.allCases {
            let assigned = assignor.assign(subscriptions, partitions: counts)
            #expect(Set(assigned.keys) == Set(members))
            var owners: [TopicPartition: String] = [:]
            for (member, partitions) in assigned {
                for tp in partitions {
                    #expect(owners[tp] == nil, "\(tp) given twice by \(assignor)")
                    #expect(subscriptions[member]!.contains(tp.topic), "\(tp) given to \(member), not subscribed")
                    owners[tp] = member
                }
            }
            let wanted = Set(subscriptions.values.joined()).flatMap { topic in (0..<counts[topic]!).map { Self.tp(topic, $0) } }
            #expect(Set(owners.keys) == Set(wanted), "every subscribed partition assigned by \(assignor)")
            if assignor == .range {
                for topic in topics {
                    let shares = members.filter { subscriptions[$0]!.contains(topic) }.map { m in assigned[m]!.count { $0.topic == topic } }
                    #expect((shares.max() ?? 0) - (shares.min() ?? 0) <= 1, "range balanced per topic")
                }
            } else if alike {
                let shares = members.map { assigned[$0]!.count }
                #expect(shares.max()! - shares.min()! <= 1, "round robin balanced")
            }
        }
    }

    @Test func aLeaderJoinsAssignsHeartbeatsAndGivesUpEverythingBeforeRejoining() {
        var m = ClassicMembership(assignors: [.range, .roundRobin], heartbeatIntervalMs: 1000)
        #expect(m.next(nowMs: 0).request == nil, "not subscribed")
        m.subscribe(["t"])
        #expect(m.next(nowMs: 0).request == .join(memberID: ""))
        m.sent()
        #expect(m.next(nowMs: 0).request == nil, "one request at a time")
        // Kafka's first join: MEMBER_ID_REQUIRED with the id to use.
        #expect(m.failed(.memberIDRequired, memberID: "m-1") == .rejoin)
        #expect(m.next(nowMs: 0).request == .join(memberID: "m-1"))
        m.sent()
        m.joined(memberID: "m-1", generation: 1, leader: "m-1", protocolName: "roundrobin",
                 members: [("m-1", ConsumerProtocol.encodeSubscription(["t"])), ("m-2", ConsumerProtocol.encodeSubscription(["t", "u"]))])
        #expect(m.next(nowMs: 0).request == .sync(generation: 1, memberID: "m-1", leader: true))
        #expect(m.topicsToAssign == ["t", "u"])
        let assigned = m.assignments(partitions: ["t": 2, "u": 1], racks: [:])
        #expect(assigned == ["m-1": [Self.tp("t", 0)], "m-2": [Self.tp("t", 1), Self.tp("u", 0)]], "the assignor the coordinator chose")
        m.sent()
        m.synced([Self.tp("t", 0)], nowMs: 100)
        #expect(m.owned == [Self.tp("t", 0)])
        #expect(m.next(nowMs: 500) == (nil, 1100))
        #expect(m.next(nowMs: 1100).request == .heartbeat(generation: 1, memberID: "m-1"))
        m.sent()
        m.heartbeatAnswered(nowMs: 1150)
        #expect(m.next(nowMs: 1200) == (nil, 2150))
        // The same partition counts change nothing; a topic grown makes the leader join again.
        m.metadataChanged(["t": 2, "u": 1])
        #expect(m.stage == .stable)
        m.metadataChanged(["t": 4, "u": 1])
        #expect(m.stage == .toJoin && m.toRevoke == [Self.tp("t", 0)])
        m.revoked()
        m.sent()
        m.joined(memberID: "m-1", generation: 2, leader: "m-1", protocolName: "roundrobin", members: [("m-1", ConsumerProtocol.encodeSubscription(["t"]))])
        m.sent()
        m.synced([Self.tp("t", 0)], nowMs: 2150)
        // A rebalance: everything is given up before the join goes.
        m.sent()
        #expect(m.failed(.rebalanceInProgress) == .rejoin)
        #expect(m.toRevoke == [Self.tp("t", 0)])
        #expect(m.next(nowMs: 2200).request == nil, "no join while partitions are owned")
        m.revoked()
        #expect(m.next(nowMs: 2200).request == .join(memberID: "m-1"))
        m.sent()
        m.joined(memberID: "m-1", generation: 2, leader: "m-2", protocolName: "range", members: [])
        #expect(m.next(nowMs: 2300).request == .sync(generation: 2, memberID: "m-1", leader: false))
        m.sent()
        m.synced([Self.tp("t", 1)], nowMs: 2400)
        // Fenced: the partitions are lost, not given up; the member joins again without its id.
        m.sent()
        #expect(m.failed(.unknownMemberID) == .fenced(lost: [Self.tp("t", 1)]))
        #expect(m.toRevoke.isEmpty && m.next(nowMs: 2500).request == .join(memberID: ""))
        // A changed subscription is a rebalance.
        m.sent()
        m.joined(memberID: "m-9", generation: 3, leader: "m-9", protocolName: "range", members: [("m-9", ConsumerProtocol.encodeSubscription(["t"]))])
        m.sent()
        m.synced([Self.tp("t", 0), Self.tp("t", 1)], nowMs: 2600)
        m.subscribe(["t", "u"])
        #expect(m.toRevoke == [Self.tp("t", 0), Self.tp("t", 1)])
        #expect(m.leave() == "m-9" && m.phase == .left)
    }

    @Test func aMemberThatStopsPollingLeavesLosesItsPartitionsAndJoinsAgainAsANewMember() {
        var m = ClassicMembership(assignors: [.range], heartbeatIntervalMs: 1000)
        m.subscribe(["t"])
        m.sent()
        m.joined(memberID: "m-1", generation: 3, leader: "m-2", protocolName: "range", members: [])
        m.sent()
        m.synced([Self.tp("t", 0)], nowMs: 100)
        let (memberID, lost) = m.leaveStale()
        #expect(memberID == "m-1" && lost == [Self.tp("t", 0)])
        #expect(m.phase == .stale && m.owned.isEmpty && m.toRevoke.isEmpty, "lost, not given up: nothing to commit")
        #expect(m.next(nowMs: 5000).request == nil, "nothing is sent until it polls")
        m.rejoin()
        #expect(m.next(nowMs: 5000).request == .join(memberID: ""))
        // Closed while stale: it left already.
        var s = ClassicMembership(assignors: [.range], heartbeatIntervalMs: 1000)
        s.subscribe(["t"])
        s.sent()
        s.joined(memberID: "m-5", generation: 1, leader: "m-5", protocolName: "range", members: [])
        s.sent()
        _ = s.synced([Self.tp("t", 0)], nowMs: 10)
        _ = s.leaveStale()
        #expect(s.leave() == nil && s.phase == .left)
    }

    @Test func classicSettingsNeedTheClassicProtocol() throws {
        let set = try ConsumerConfig(properties: ["bootstrap.servers": "a:1", "group.protocol": "classic", "session.timeout.ms": "10000",
                                                  "heartbeat.interval.ms": "500", "partition.assignment.strategy": "roundrobin, org.apache.kafka.clients.consumer.RangeAssignor"])
        #expect(set.groupProtocol == .classic && set.sessionTimeoutMs == 10_000 && set.heartbeatIntervalMs == 500 && set.assignors == [.roundRobin, .range])
        #expect(throws: ClientError.self) { try ConsumerConfig(properties: ["bootstrap.servers": "a:1", "session.timeout.ms": "10000"]) }
        let cooperative = try ConsumerConfig(properties: ["bootstrap.servers": "a:1", "group.protocol": "classic",
                                                          "partition.assignment.strategy": "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"])
        #expect(cooperative.assignors == [.cooperativeSticky])
        #expect(ClassicMembership(assignors: cooperative.assignors, heartbeatIntervalMs: 1).cooperative)
        #expect(!ClassicMembership(assignors: [.cooperativeSticky, .range], heartbeatIntervalMs: 1).cooperative, "eager unless every assignor is cooperative")
        #expect(throws: ClientError.self) {
            try ConsumerConfig(properties: ["bootstrap.servers": "a:1", "group.protocol": "classic", "partition.assignment.strategy": "uniform"])
        }
    }

    /// The sticky assignor over any subscriptions and claims: every subscribed partition to one
    /// subscriber; counts within one when all subscribe alike; run again on its own result it
    /// moves nothing; a member added takes partitions only for itself (nothing moves between
    /// the others); a claim of an older generation loses to a newer one.
    @Test(arguments: 0..<50 as Range<UInt64>)
    func theStickyAssignorKeepsPartitionsWithinBalance(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let topics = (0..<Int.random(in: 1...3, using: &random)).map { "t\($0)" }
        let counts = Dictionary(uniqueKeysWithValues: topics.map { ($0, Int32.random(in: 0...12, using: &random)) })
        let alike = Bool.random(using: &random)
        var members: [String: ClassicAssignor.Member] = [:]
        for i in 0..<Int.random(in: 1...5, using: &random) {
            members["m\(i)"] = .init(topics: alike ? topics : topics.filter { _ in Bool.random(using: &random) })
        }
        // Claims from an earlier life: random partitions, random generations.
        for id in members.keys.sorted() {
            members[id]!.generation = Int32.random(in: -1...3, using: &random)
            members[id]!.owned = Set(topics.flatMap { t in (0..<counts[t]!).map { Self.tp(t, $0) } }.filter { _ in Int.random(in: 0..<4, using: &random) == 0 })
        }
        func check(_ assigned: [String: [TopicPartition]], _ members: [String: ClassicAssignor.Member]) {
            var owners: [TopicPartition: String] = [:]
            for (member, partitions) in assigned {
                for tp in partitions {
                    #expect(owners[tp] == nil, "seed \(seed): \(tp) given twice")
                    #expect(members[member]!.topics.contains(tp.topic))
                    owners[tp] = member
                }
            }
            let wanted = Set(members.values.flatMap(\.topics)).flatMap { t in (0..<counts[t]!).map { Self.tp(t, $0) } }
            #expect(Set(owners.keys) == Set(wanted), "seed \(seed): every subscribed partition assigned")
            if alike {
                let shares = members.keys.map { assigned[$0]?.count ?? 0 }
                #expect(shares.max()! - shares.min()! <= 1, "seed \(seed): balanced \(shares)")
            }
        }
        let first = ClassicAssignor.sticky.assign(members: members, partitions: counts, racks: [:])
        check(first, members)
        var again = members
        for id in again.keys { again[id]!.owned = Set(first[id]!); again[id]!.generation = 4 }
        #expect(ClassicAssignor.cooperativeSticky.assign(members: again, partitions: counts, racks: [:]) == first, "seed \(seed): stable")
        if alike {
            again["new"] = .init(topics: topics)
            let grown = ClassicAssignor.sticky.assign(members: again, partitions: counts, racks: [:])
            check(grown, again)
            for id in members.keys { #expect(Set(grown[id]!).isSubset(of: Set(first[id]!)), "seed \(seed): \(id) took only its own") }
        }
    }

    @Test func theNewestClaimKeepsAPartition() {
        let claims: [String: ClassicAssignor.Member] = ["a": .init(topics: ["t"], owned: [Self.tp("t", 1)], generation: 1),
                                                        "b": .init(topics: ["t"], owned: [Self.tp("t", 1)], generation: 2)]
        #expect(ClassicAssignor.sticky.assign(members: claims, partitions: ["t": 2], racks: [:]) == ["a": [Self.tp("t", 0)], "b": [Self.tp("t", 1)]])
        // Two claims of the same generation: neither keeps it.
        var tied = claims
        tied["a"]!.generation = 2
        tied["b"]!.owned = [Self.tp("t", 0), Self.tp("t", 1)]
        #expect(ClassicAssignor.sticky.assign(members: tied, partitions: ["t": 2], racks: [:]) == ["a": [Self.tp("t", 1)], "b": [Self.tp("t", 0)]])
    }

    /// KIP-429 at the leader: a partition its owner still has is given to nobody else.
    @Test func theCooperativeLeaderGivesNoOneAPartitionStillOwned() {
        let assignment = ["a": [Self.tp("t", 0)], "b": [Self.tp("t", 1), Self.tp("t", 2)]]
        let adjusted = ClassicAssignor.withoutMoving(assignment, owned: ["a": [Self.tp("t", 0), Self.tp("t", 1)], "b": [Self.tp("t", 2)]])
        #expect(adjusted == ["a": [Self.tp("t", 0)], "b": [Self.tp("t", 2)]])
        #expect(ClassicAssignor.withoutMoving(assignment, owned: [:]) == assignment)
    }

    /// An eager leader (naming an eager assignor too) of a group that chose cooperative-sticky
    /// holds back what the cooperative members still own, as the Java client's leader does.
    @Test func anEagerLeaderOfACooperativeGroupHoldsBackOwnedPartitions() {
        var m = ClassicMembership(assignors: [.cooperativeSticky, .range], heartbeatIntervalMs: 1000)
        #expect(!m.cooperative)
        m.subscribe(["t"])
        m.sent()
        let owner = ConsumerProtocol.encode(.init(topics: ["t"], owned: ["t": [0, 1, 2, 3]], generation: 4))
        m.joined(memberID: "lead", generation: 5, leader: "lead", protocolName: "cooperative-sticky",
                 members: [("lead", ConsumerProtocol.encode(.init(topics: ["t"]))), ("b", owner)])
        let assigned = m.assignments(partitions: ["t": 4], racks: [:])
        #expect(assigned["lead"] == [], "b still owns all four: none moves to the leader yet")
        #expect(assigned["b"]?.count == 2)
    }

    /// A cooperative member keeps its partitions through a rebalance, says so in its join,
    /// gives up only what its assignment leaves out and then joins again.
    @Test func aCooperativeMemberGivesUpOnlyWhatMoves() {
        var m = ClassicMembership(assignors: [.cooperativeSticky], heartbeatIntervalMs: 1000)
        m.subscribe(["t"])
        m.sent()
        m.joined(memberID: "a", generation: 1, leader: "a", protocolName: "cooperative-sticky",
                 members: [("a", ConsumerProtocol.encode(.init(topics: ["t"])))])
        m.sent()
        #expect(m.assignments(partitions: ["t": 3], racks: [:]) == ["a": [Self.tp("t", 0), Self.tp("t", 1), Self.tp("t", 2)]])
        #expect(m.synced([Self.tp("t", 0), Self.tp("t", 1), Self.tp("t", 2)], nowMs: 0) == [Self.tp("t", 0), Self.tp("t", 1), Self.tp("t", 2)])
        // A rebalance: nothing given up; the join says what is owned, and from which generation.
        m.sent()
        #expect(m.failed(.rebalanceInProgress) == .rejoin)
        #expect(m.toRevoke.isEmpty)
        #expect(m.next(nowMs: 10).request == .join(memberID: "a"))
        let said = ConsumerProtocol.subscription(m.joinProtocols()[0].metadata)
        #expect(said?.owned == ["t": [0, 1, 2]] && said?.generation == 1 && said?.topics == ["t"])
        #expect(ConsumerProtocol.stickyUserData(said?.userData ?? []).map { $0.generation } == 1)
        m.sent()
        // The leader (another member, b, newly joined) sees a's claims: b gets nothing a still owns.
        m.joined(memberID: "a", generation: 2, leader: "a", protocolName: "cooperative-sticky",
                 members: [("a", m.joinProtocols()[0].metadata), ("b", ConsumerProtocol.encode(.init(topics: ["t"])))])
        #expect(m.assignments(partitions: ["t": 3], racks: [:]) == ["a": [Self.tp("t", 0), Self.tp("t", 1)], "b": []])
        m.sent()
        #expect(m.synced([Self.tp("t", 0), Self.tp("t", 1)], nowMs: 20).isEmpty)
        #expect(m.toRevoke == [Self.tp("t", 2)] && m.stage == .toJoin)
        #expect(m.next(nowMs: 20).request == nil, "gives up before it joins again")
        m.revoked()
        #expect(m.owned == [Self.tp("t", 0), Self.tp("t", 1)] && m.toRevoke.isEmpty)
        #expect(m.next(nowMs: 20).request == .join(memberID: "a"))
        // Unsubscribing a topic gives up its partitions at once.
        m.sent()
        m.joined(memberID: "a", generation: 3, leader: "b", protocolName: "cooperative-sticky", members: [])
        m.sent()
        #expect(m.synced([Self.tp("t", 0), Self.tp("t", 1), Self.tp("u", 0)], nowMs: 30) == [Self.tp("u", 0)])
        m.subscribe(["t"])
        m.subscribe(["u"])
        #expect(m.toRevoke == [Self.tp("t", 0), Self.tp("t", 1)])
        m.revoked()
        #expect(m.owned == [Self.tp("u", 0)] && m.stage == .toJoin)
        // Fenced: everything is lost.
        m.sent()
        #expect(m.failed(.illegalGeneration) == .fenced(lost: [Self.tp("u", 0)]))
        #expect(m.owned.isEmpty && m.joinProtocols()[0].metadata == ConsumerProtocol.encode(.init(topics: ["u"])))
    }
}

/// Members (ClassicMembership) against the broker's classic group coordinator (BrookGroups'
/// GroupCoordinator), joins and syncs parked until the rebalance completes, answers arriving
/// after random delays, members joining, leaving and changing their subscriptions: no
/// partition is ever owned by two members, and once quiet every subscribed partition is owned
/// by exactly one member.
@Suite struct ClassicMembershipSimulation {
    struct Client {
        var membership: ClassicMembership
        var owned: Set<TopicPartition> = []
        /// A join or sync parked at the coordinator (its pending id), or an answer on its way.
        var parked: PendingID?
        var arriving: (atMs: Int64, result: Answer)?
        var gone = false
    }

    enum Answer {
        case join(JoinResult)
        case sync(SyncResult)
        case heartbeat(ErrorCode)
    }

    @Test(arguments: 0..<40 as Range<UInt64>)
    func membersNeverShareAPartition(seed: UInt64) {
        // Even seeds: a cooperative group; odd: eager, with the sticky assignor among others.
        let cooperative = seed % 2 == 0
        var random = SeededRandom(seed: seed)
        let counts: [String: Int32] = ["a": 6, "b": 3]
        var coordinator = GroupCoordinator(config: { var c = GroupConfig(); c.initialRebalanceDelayMs = 300; return c }(), seed: seed)
        var clients: [Client] = []
        var nextPending: UInt64 = 0
        var now: Int64 = 0
        func join(_ topics: [String]) {
            let eager: [[ClassicAssignor]] = [[.range, .roundRobin], [.roundRobin, .range], [.sticky, .range]]
            var c = Client(membership: ClassicMembership(assignors: cooperative ? [.cooperativeSticky] : eager.randomElement(using: &random)!,
                                                         heartbeatIntervalMs: 500))
            c.membership.subscribe(topics)
            clients.append(c)
        }
        join(["a"])
        join(["a", "b"])
        func delay(_ disrupt: Bool) -> Int64 { Int64.random(in: 0...(disrupt ? 150 : 5), using: &random) }
        func deliver(_ effects: Effects, _ disrupt: Bool) {
            for (pending, result) in effects.joins {
                if let i = clients.firstIndex(where: { $0.parked == pending }) {
                    clients[i].parked = nil
                    clients[i].arriving = (now + delay(disrupt), .join(result))
                }
            }
            for (pending, result) in effects.syncs {
                if let i = clients.firstIndex(where: { $0.parked == pending }) {
                    clients[i].parked = nil
                    clients[i].arriving = (now + delay(disrupt), .sync(result))
                }
            }
        }
        func step(disrupt: Bool) {
            now += Int64.random(in: 1...40, using: &random)
            deliver(coordinator.tick(now: now), disrupt)
            for i in clients.indices where !clients[i].gone {
                if let arriving = clients[i].arriving, arriving.atMs <= now {
                    clients[i].arriving = nil
                    switch arriving.result {
                    case .join(let r):
                        if r.error == .none {
                            clients[i].membership.joined(memberID: r.memberID, generation: r.generation, leader: r.leader,
                                                         protocolName: r.protocolName, members: r.members.map { ($0.memberID, $0.metadata) })
                        } else if case .fenced = clients[i].membership.failed(r.error, memberID: r.memberID) { clients[i].owned = [] }
                    case .sync(let r):
                        if r.error == .none {
                            let given = ConsumerProtocol.assignedPartitions(r.assignment) ?? [:]
                            let assigned = Set(given.flatMap { t, ps in ps.map { TopicPartition(t, $0) } })
                            clients[i].owned.formUnion(clients[i].membership.synced(assigned, nowMs: now))
                        } else if case .fenced = clients[i].membership.failed(r.error) { clients[i].owned = [] }
                    case .heartbeat(let code):
                        if code == .none { clients[i].membership.heartbeatAnswered(nowMs: now) }
                        else if case .fenced = clients[i].membership.failed(code) { clients[i].owned = [] }
                    }
                }
                // Eager: everything given up before a join; cooperative: what the assignment left out.
                if !clients[i].membership.toRevoke.isEmpty {
                    clients[i].owned.subtract(clients[i].membership.toRevoke)
                    clients[i].membership.revoked()
                }
                guard clients[i].parked == nil, clients[i].arriving == nil,
                      let request = clients[i].membership.next(nowMs: now).request else { continue }
                clients[i].membership.sent()
                nextPending += 1
                let pending = PendingID(nextPending)
                switch request {
                case .join(let memberID):
                    clients[i].parked = pending
                    deliver(coordinator.join(JoinRequest(
                        groupID: "g", memberID: memberID, instanceID: nil, protocolType: "consumer",
                        protocols: clients[i].membership.joinProtocols().map { GroupProtocol(name: $0.name, metadata: $0.metadata) },
                        sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 5_000, requireKnownMemberID: true, supportsSkipAssignment: false,
                        clientID: "c\(i)", clientHost: "/sim"), pending: pending, now: now), disrupt)
                case .sync(let generation, let memberID, let leader):
                    var assignments: [String: [UInt8]] = [:]
                    if leader {
                        for (member, partitions) in clients[i].membership.assignments(partitions: counts, racks: [:]) {
                            assignments[member] = ConsumerProtocol.encodeAssignment(Dictionary(grouping: partitions, by: \.topic).mapValues { $0.map(\.partition) })
                        }
                    }
                    clients[i].parked = pending
                    deliver(coordinator.sync(SyncRequest(groupID: "g", generation: generation, memberID: memberID, instanceID: nil,
                                                         protocolType: "consumer", protocolName: clients[i].membership.assignor?.rawValue,
                                                         assignments: assignments), pending: pending, now: now), disrupt)
                case .heartbeat(let generation, let memberID):
                    let code = coordinator.heartbeat(groupID: "g", memberID: memberID, instanceID: nil, generation: generation, now: now)
                    clients[i].arriving = (now + delay(disrupt), .heartbeat(code))
                }
            }
            if disrupt {
                switch Int.random(in: 0..<300, using: &random) {
                case 0..<3 where clients.filter({ !$0.gone }).count < 5:
                    join(Bool.random(using: &random) ? ["a"] : ["a", "b"])
                case 3..<5:
                    // A member leaves (a consumer closed): its partitions given up first.
                    let live = clients.indices.filter { !clients[$0].gone && clients[$0].parked == nil && clients[$0].arriving == nil }
                    if live.count > 1, let i = live.randomElement(using: &random) {
                        clients[i].owned = []
                        if let memberID = clients[i].membership.leave() {
                            deliver(coordinator.leave(groupID: "g", members: [(memberID, nil)], now: now).2, disrupt)
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
        let live = clients.filter { !$0.gone }
        GroupSimulationChecks.eachSubscribedPartitionOwnedOnce(live.map(\.owned), subscribed: Set(live.flatMap(\.membership.subscription)),
                                                               partitions: { topic in counts[topic]! }, seed: seed)
        #expect(live.allSatisfy { $0.membership.stage == .stable })
    }
}

/// KIP-881: the range assignor with racks.
@Suite struct RackAwareRangeTests {
    static func tps(_ partitions: [Int32]) -> [TopicPartition] { partitions.map { TopicPartition("t", $0) } }
    /// Partition p's single replica in rack r(p % 3).
    static let oneReplicaEach: [TopicPartition: Set<String>] = Dictionary(uniqueKeysWithValues: (0..<7).map {
        (TopicPartition("t", Int32($0)), ["r\($0 % 3)"])
    })

    @Test func membersTakeThePartitionsInTheirRackFirst() {
        let racked = ["m0": "r0", "m1": "r1", "m2": "r2"].mapValues { ClassicAssignor.Member(topics: ["t"], rack: $0) }
        #expect(ClassicAssignor.range.assign(members: racked, partitions: ["t": 6], racks: Self.oneReplicaEach)
                == ["m0": Self.tps([0, 3]), "m1": Self.tps([1, 4]), "m2": Self.tps([2, 5])])
        // Seven: the first member with room for one more takes its third.
        #expect(ClassicAssignor.range.assign(members: racked, partitions: ["t": 7], racks: Self.oneReplicaEach)
                == ["m0": Self.tps([0, 3, 6]), "m1": Self.tps([1, 4]), "m2": Self.tps([2, 5])])
        // Two members in r0: the first takes its share there, the rest go where there is room.
        let crowded = ["m0": "r0", "m1": "r0", "m2": "r2"].mapValues { ClassicAssignor.Member(topics: ["t"], rack: $0) }
        #expect(ClassicAssignor.range.assign(members: crowded, partitions: ["t": 6], racks: Self.oneReplicaEach)
                == ["m0": Self.tps([0, 3]), "m1": Self.tps([1, 4]), "m2": Self.tps([2, 5])])
    }

    @Test func aMembersRackGoesInItsSubscriptionAndTheLeaderReadsIt() {
        var m = ClassicMembership(assignors: [.range], heartbeatIntervalMs: 1000, rack: "r1")
        m.subscribe(["t"])
        let metadata = m.joinProtocols()[0].metadata
        #expect(ConsumerProtocol.subscription(metadata)?.rack == "r1")
        #expect(metadata.starts(with: [0, 3]), "subscription version 3")
        m.sent()
        let other = ConsumerProtocol.encode(.init(topics: ["t"], rack: "r0"))
        m.joined(memberID: "a", generation: 1, leader: "a", protocolName: "range", members: [("a", metadata), ("b", other)])
        #expect(m.members["a"]?.rack == "r1" && m.members["b"]?.rack == "r0")
        let racks: [TopicPartition: Set<String>] = [TopicPartition("t", 0): ["r0"], TopicPartition("t", 1): ["r1"]]
        #expect(m.assignments(partitions: ["t": 2], racks: racks) == ["a": Self.tps([1]), "b": Self.tps([0])])
    }

    @Test func topicsOfTheSameSubscribersAndSizeKeepTheirPartitionsTogether() {
        func tp(_ topic: String, _ p: Int32) -> TopicPartition { TopicPartition(topic, p) }
        let members = ["m0": "r1", "m1": "r0"].mapValues { ClassicAssignor.Member(topics: ["t", "u"], rack: $0) }
        // Partition 0 of both in r0, partition 1 of both in r1: each member takes its rack's.
        let aligned: [TopicPartition: Set<String>] = [tp("t", 0): ["r0"], tp("u", 0): ["r0"], tp("t", 1): ["r1"], tp("u", 1): ["r1"]]
        #expect(ClassicAssignor.range.assign(members: members, partitions: ["t": 2, "u": 2], racks: aligned)
                == ["m0": [tp("t", 1), tp("u", 1)], "m1": [tp("t", 0), tp("u", 0)]])
        // Racks that disagree between the topics: partition numbers stay together, by range.
        let crossed: [TopicPartition: Set<String>] = [tp("t", 0): ["r1"], tp("u", 0): ["r0"], tp("t", 1): ["r0"], tp("u", 1): ["r1"]]
        #expect(ClassicAssignor.range.assign(members: members, partitions: ["t": 2, "u": 2], racks: crossed)
                == ["m0": [tp("t", 0), tp("u", 0)], "m1": [tp("t", 1), tp("u", 1)]])
    }

    @Test func withoutADifferenceRacksMakeNoneAndTheRangesAreTheJavaClients() {
        let plain = ["m0": Self.tps([0, 1]), "m1": Self.tps([2, 3]), "m2": Self.tps([4, 5])]
        // No member names a rack.
        let unracked = ["m0", "m1", "m2"].reduce(into: [String: ClassicAssignor.Member]()) { $0[$1] = .init(topics: ["t"]) }
        #expect(ClassicAssignor.range.assign(members: unracked, partitions: ["t": 6], racks: Self.oneReplicaEach) == plain)
        // Every partition has a replica in every member's rack.
        let everywhere = Dictionary(uniqueKeysWithValues: (0..<6).map { (TopicPartition("t", Int32($0)), Set(["r0", "r1", "r2"])) })
        let racked = ["m0": "r0", "m1": "r1", "m2": "r2"].mapValues { ClassicAssignor.Member(topics: ["t"], rack: $0) }
        #expect(ClassicAssignor.range.assign(members: racked, partitions: ["t": 6], racks: everywhere) == plain)
        // No replica in any member's rack.
        let elsewhere = ["m0": "x", "m1": "y", "m2": "z"].mapValues { ClassicAssignor.Member(topics: ["t"], rack: $0) }
        #expect(ClassicAssignor.range.assign(members: elsewhere, partitions: ["t": 6], racks: Self.oneReplicaEach) == plain)
    }

    /// Random members (some with racks), racks and counts: each partition to exactly one
    /// subscriber, each subscriber's share as the plain range assignor's counts (each or one
    /// more, the extra ones as many as the remainder).
    @Test(arguments: 0..<30 as Range<UInt64>)
    func everyPartitionOnceInShares(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let topics = ["t", "u"]
        var members: [String: ClassicAssignor.Member] = [:]
        for i in 0..<Int.random(in: 1...6, using: &random) {
            let subscribed = topics.filter { _ in Bool.random(using: &random) }
            members["m\(i)"] = .init(topics: subscribed.isEmpty ? ["t"] : subscribed,
                                     rack: Int.random(in: 0..<4, using: &random) == 0 ? nil : "r\(Int.random(in: 0..<3, using: &random))")
        }
        let counts: [String: Int32] = ["t": Int32.random(in: 1...13, using: &random), "u": Int32.random(in: 1...5, using: &random)]
        var racks: [TopicPartition: Set<String>] = [:]
        for topic in topics {
            for p in 0..<counts[topic]! {
                racks[TopicPartition(topic, p)] = Set((0..<3).filter { _ in Bool.random(using: &random) }.map { "r\($0)" })
            }
        }
        let out = ClassicAssignor.range.assign(members: members, partitions: counts, racks: racks)
        for topic in topics {
            let subscribers = members.filter { $0.value.topics.contains(topic) }.keys
            guard !subscribers.isEmpty else { continue }
            let given = out.values.flatMap { $0.filter { $0.topic == topic } }
            #expect(given.sorted() == (0..<counts[topic]!).map { TopicPartition(topic, $0) }, "seed \(seed): \(topic) once each")
            let shares = subscribers.map { id in out[id]!.filter { $0.topic == topic }.count }
            let each = Int(counts[topic]!) / subscribers.count, extra = Int(counts[topic]!) % subscribers.count
            #expect(shares.filter { $0 == each + 1 }.count == extra && shares.allSatisfy { $0 == each || $0 == each + 1 }, "seed \(seed): \(shares)")
            for id in members.keys where !subscribers.contains(id) { #expect(out[id]!.allSatisfy { $0.topic != topic }) }
        }
        // Topics of the same subscribers and size: each member has the same partition numbers of both.
        let tSubscribers = Set(members.filter { $0.value.topics.contains("t") }.keys)
        if counts["t"] == counts["u"], !tSubscribers.isEmpty, tSubscribers == Set(members.filter { $0.value.topics.contains("u") }.keys) {
            for id in tSubscribers {
                #expect(out[id]!.filter { $0.topic == "t" }.map(\.partition) == out[id]!.filter { $0.topic == "u" }.map(\.partition), "seed \(seed)")
            }
        }
    }
}

/// The sticky assignors with racks (KIP-881): partitions go to members in one of their racks
/// where balance allows, a member keeps a partition outside its rack only when no subscriber's
/// rack has it, and without racks nothing changes.
@Suite struct RackAwareStickyTests {
    static func tps(_ partitions: [Int32]) -> [TopicPartition] { partitions.map { TopicPartition("t", $0) } }
    static func members(_ racks: [String: String], owned: [String: [Int32]] = [:]) -> [String: ClassicAssignor.Member] {
        Dictionary(uniqueKeysWithValues: racks.map { id, rack in
            (id, ClassicAssignor.Member(topics: ["t"], owned: Set(tps(owned[id] ?? [])), generation: owned[id] == nil ? -1 : 3, rack: rack))
        })
    }

    @Test func partitionsGoToTheirRacksAndLeaveThemOnlyForBalance() {
        let one = RackAwareRangeTests.oneReplicaEach
        let racked = Self.members(["m0": "r0", "m1": "r1", "m2": "r2"])
        for assignor in [ClassicAssignor.sticky, .cooperativeSticky] {
            #expect(assignor.assign(members: racked, partitions: ["t": 6], racks: one)
                    == ["m0": Self.tps([0, 3]), "m1": Self.tps([1, 4]), "m2": Self.tps([2, 5])])
        }
        // Owned across racks: each partition goes back to its rack's member.
        let misplaced = Self.members(["m0": "r0", "m1": "r1", "m2": "r2"], owned: ["m0": [1, 2], "m1": [0, 5], "m2": [3, 4]])
        #expect(ClassicAssignor.sticky.assign(members: misplaced, partitions: ["t": 6], racks: one)
                == ["m0": Self.tps([0, 3]), "m1": Self.tps([1, 4]), "m2": Self.tps([2, 5])])
        // Owned in its rack: kept, even where another member of that rack has fewer.
        let twoInR0 = Self.members(["m0": "r0", "m1": "r0", "m2": "r1"], owned: ["m0": [0, 3]])
        let kept = ClassicAssignor.sticky.assign(members: twoInR0, partitions: ["t": 6], racks: one)
        #expect(kept["m0"] == Self.tps([0, 3]))
        // Every partition in r0, one member per rack: balance first, two leave the rack.
        let allInR0 = Dictionary(uniqueKeysWithValues: (0..<4).map { (TopicPartition("t", Int32($0)), Set(["r0"])) })
        let balanced = ClassicAssignor.sticky.assign(members: Self.members(["m0": "r0", "m1": "r1"]), partitions: ["t": 4], racks: allInR0)
        #expect(balanced["m0"]?.count == 2 && balanced["m1"]?.count == 2)
        // A partition no subscriber's rack has stays where it was.
        let elsewhere = Self.members(["m0": "r0", "m1": "r1"], owned: ["m1": [2]])
        let r9: [TopicPartition: Set<String>] = [TopicPartition("t", 0): ["r0"], TopicPartition("t", 1): ["r1"], TopicPartition("t", 2): ["r9"]]
        #expect(ClassicAssignor.sticky.assign(members: elsewhere, partitions: ["t": 3], racks: r9)["m1"]?.contains(TopicPartition("t", 2)) == true)
    }

    /// Over seeds: every partition once, to a subscriber; counts within one (the same
    /// subscriptions); members without racks get what they got before racks were considered;
    /// and no partition sits outside its member's rack while a member in its rack could take it
    /// and give one back (a swap that keeps the counts).
    @Test(arguments: 0..<40 as Range<UInt64>)
    func aSeededGroupIsCompleteBalancedAndRackAligned(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let count = Int32.random(in: 1...24, using: &random)
        let rackNames = ["r0", "r1", "r2"]
        var racks: [TopicPartition: Set<String>] = [:]
        for p in 0..<count {
            racks[TopicPartition("t", p)] = Set((0..<Int.random(in: 1...2, using: &random)).map { _ in rackNames.randomElement(using: &random)! })
        }
        let ids = (0..<Int.random(in: 1...6, using: &random)).map { "m\($0)" }
        var owned: [String: [Int32]] = [:]
        for p in 0..<count where Bool.random(using: &random) { owned[ids.randomElement(using: &random)!, default: []].append(p) }
        let members = Self.members(Dictionary(uniqueKeysWithValues: ids.map { ($0, rackNames.randomElement(using: &random)!) }), owned: owned)
        let out = ClassicAssignor.sticky.assign(members: members, partitions: ["t": count], racks: racks)
        let given = out.values.flatMap { $0 }
        #expect(given.count == Int(count) && Set(given).count == Int(count), "seed \(seed): every partition once")
        let sizes = out.values.map(\.count)
        #expect((sizes.max() ?? 0) - (sizes.min() ?? 0) <= 1, "seed \(seed): balanced \(sizes)")
        let unracked = members.mapValues { var m = $0; m.rack = nil; return m }
        #expect(ClassicAssignor.sticky.assign(members: unracked, partitions: ["t": count], racks: racks)
                == ClassicAssignor.sticky.assign(members: unracked, partitions: ["t": count], racks: [:]), "seed \(seed): no racks, no change")
        func inRack(_ id: String, _ tp: TopicPartition) -> Bool { racks[tp]!.contains(members[id]!.rack!) }
        for (a, mine) in out {
            for tp in mine where !inRack(a, tp) {
                for (b, theirs) in out where b != a && inRack(b, tp) {
                    let swappable = theirs.contains { !inRack(b, $0) && inRack(a, $0) }
                    #expect(!swappable, "seed \(seed): \(tp) outside \(a)'s rack while \(b) could swap")
                }
            }
        }
    }
}
