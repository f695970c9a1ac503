import BrookCluster
import BrookCore
import BrookProtocol
import Testing

/// A controller over a log that commits every entry at once, and helpers to drive it.
struct ControllerHarness {
    var controller: ClusterController
    var log: [[MetadataRecord]] = []
    var now: Int64 = 0
    var epochs: [NodeID: BrokerEpoch] = [:]

    init(config: ControllerConfig = ControllerConfig()) {
        controller = ClusterController(committed: MetadataImage(), config: config, nowMs: 0, randomSeed: 42)
    }

    var image: MetadataImage { controller.image }

    mutating func commit<A>(_ decision: Decision<A>) -> A {
        if !decision.records.isEmpty {
            log.append(decision.records)
            try! controller.replay(decision.records, at: MetadataOffset(Int64(log.count)))
        }
        return decision.answer
    }

    /// Registers and unfences brokers 1...count (optionally in racks).
    mutating func startBrokers(_ count: Int, racks: [String]? = nil) {
        for i in 1...count {
            let id = NodeID(Int32(i))
            let request = BrokerRegistrationRequest(id: id, incarnation: KafkaUUID(high: 1, low: UInt64(i)),
                                                    endpoints: [.init(name: "PLAINTEXT", host: "h\(i)", port: 9092)], rack: racks?[(i - 1) % racks!.count])
            let (code, epoch) = commit(controller.register(request, nowMs: now))
            precondition(code == .none)
            epochs[id] = epoch
            _ = commit(controller.heartbeat(BrokerHeartbeatRequest(id: id, epoch: epoch, metadataOffset: MetadataOffset(Int64(log.count))), nowMs: now))
        }
    }

    mutating func heartbeatAll(except skipped: Set<NodeID> = []) {
        for (id, epoch) in epochs.sorted(by: { $0.key < $1.key }) where !skipped.contains(id) {
            _ = commit(controller.heartbeat(BrokerHeartbeatRequest(id: id, epoch: epoch, metadataOffset: MetadataOffset(Int64(log.count))), nowMs: now))
        }
    }

    mutating func advance(_ ms: Int64, silent: Set<NodeID> = []) {
        let end = now + ms
        while now < end {
            now = min(end, now + 500)
            heartbeatAll(except: silent)
            commit(controller.tick(nowMs: now))
        }
    }

    /// AlterPartitionReassignments of partition 0 of `topic` (nil: cancel); its error.
    mutating func reassign(_ topic: String, _ replicas: [NodeID]?, allow: Bool = true) -> ErrorCode {
        commit(controller.reassign([ReassignmentRequest(topic: topic, partition: 0, replicas: replicas)],
                                   allowReplicationFactorChange: allow))[0].error
    }

    /// The partition's leader asks the controller to add `replica` to its ISR; the error.
    mutating func leaderAdds(_ replica: NodeID, to key: TopicIDPartition) -> ErrorCode {
        let now = image.partition(key)!
        let request = AlterPartitionRequest(broker: now.leader!, brokerEpoch: epochs[now.leader!]!, partition: key,
                                            proposal: ISRProposal(leaderEpoch: now.leaderEpoch, partitionEpoch: now.partitionEpoch,
                                                                  isr: now.isr + [replica]))
        return commit(controller.alterPartition(request)).0
    }

    mutating func create(_ name: String, partitions: Int, rf: Int) -> KafkaUUID {
        let (code, id) = commit(controller.createTopic(NewTopic(name: name, partitions: partitions, replicationFactor: rf)))
        precondition(code == .none, "create \(name): \(code)")
        return id
    }
}

@Suite struct ClusterControllerTests {
    let n1 = NodeID(1), n2 = NodeID(2), n3 = NodeID(3)

    /// Fault campaign, seed 77001: a controller that became active on a node just restarted
    /// stood still for longer than a session and then fenced every broker at its first
    /// decision. A stall of the controller's own ticks is not the brokers' silence; a broker
    /// that does stop heartbeating is still fenced, even by a controller whose ticks are late.
    @Test func aControllerThatStoodStillFencesNoBrokerForIt() {
        var config = ControllerConfig()
        config.sessionTimeoutMs = 2000
        var h = ControllerHarness(config: config)
        h.startBrokers(3)
        h.advance(1000)
        let entries = h.log.count
        // Five seconds without a tick (nor a heartbeat read), then a tick.
        h.now += 5000
        h.commit(h.controller.tick(nowMs: h.now))
        #expect(h.log.count == entries, "no broker fenced for the controller's own stall")
        #expect(h.image.brokers.values.allSatisfy { !$0.fenced })
        // Heartbeats resume, but broker 3's do not: it is fenced within its session.
        h.advance(2500, silent: [n3])
        #expect(h.image.brokers[n3]?.fenced == true)
        #expect(h.image.brokers[n1]?.fenced == false && h.image.brokers[n2]?.fenced == false)
        // Ticks always late (every 700 ms, a quarter session being 500 ms) still fence a silent broker.
        var late = ControllerHarness(config: config)
        late.startBrokers(2)
        for _ in 0..<12 {
            late.now += 700
            late.heartbeatAll(except: [n2])
            late.commit(late.controller.tick(nowMs: late.now))
        }
        #expect(late.image.brokers[n2]?.fenced == true)
        #expect(late.image.brokers[n1]?.fenced == false)
    }

    @Test func aBrokerIsFencedUntilItCaughtUpWithItsRegistration() {
        var h = ControllerHarness()
        let request = BrokerRegistrationRequest(id: n1, incarnation: KafkaUUID(high: 1, low: 1), endpoints: [])
        let (_, epoch) = h.commit(h.controller.register(request, nowMs: 0))
        #expect(h.image.brokers[n1]?.fenced == true)
        let behind = h.commit(h.controller.heartbeat(BrokerHeartbeatRequest(id: n1, epoch: epoch, metadataOffset: .zero), nowMs: 1))
        #expect(!behind.isCaughtUp && behind.isFenced)
        let caughtUp = h.commit(h.controller.heartbeat(BrokerHeartbeatRequest(id: n1, epoch: epoch, metadataOffset: MetadataOffset(1)), nowMs: 2))
        #expect(caughtUp.isCaughtUp && !caughtUp.isFenced)
        #expect(h.image.brokers[n1]?.fenced == false)
        let stale = h.commit(h.controller.heartbeat(BrokerHeartbeatRequest(id: n1, epoch: BrokerEpoch(epoch.value - 1), metadataOffset: .zero), nowMs: 3))
        #expect(stale.error == .staleBrokerEpoch)
        let unknown = h.commit(h.controller.heartbeat(BrokerHeartbeatRequest(id: NodeID(9), epoch: epoch, metadataOffset: .zero), nowMs: 3))
        #expect(unknown.error == .brokerIDNotRegistered)
    }

    @Test func aSecondIncarnationWaitsForTheFirstsSessionToLapse() {
        var h = ControllerHarness()
        h.startBrokers(1)
        let again = BrokerRegistrationRequest(id: n1, incarnation: KafkaUUID(high: 9, low: 9), endpoints: [])
        #expect(h.commit(h.controller.register(again, nowMs: 100)).0 == .duplicateBrokerRegistration)
        h.advance(10_000, silent: [n1])
        #expect(h.image.brokers[n1]?.fenced == true)
        let (code, epoch) = h.commit(h.controller.register(again, nowMs: h.now))
        #expect(code == .none && epoch > h.epochs[n1]!)
    }

    @Test func aNewControllerTakesANewIncarnationOfABrokerItNeverHeardFrom() {
        var h = ControllerHarness()
        h.startBrokers(1)
        let id = h.create("orders", partitions: 1, rf: 1)
        // The node restarts, controller and broker both: the new controller has heard nothing.
        h.controller = ClusterController(committed: h.controller.committed, nowMs: 100, randomSeed: 5)
        let again = BrokerRegistrationRequest(id: n1, incarnation: KafkaUUID(high: 9, low: 9), endpoints: [])
        let (code, epoch) = h.commit(h.controller.register(again, nowMs: 100))
        #expect(code == .none && epoch > h.epochs[n1]!)
        h.epochs[n1] = epoch
        h.heartbeatAll()
        let partition = h.image.partition(TopicIDPartition(id, 0))
        #expect(partition?.leader == n1 && partition?.isr == [n1])
        // Once heard from, a third incarnation waits for the session, as before.
        let third = BrokerRegistrationRequest(id: n1, incarnation: KafkaUUID(high: 9, low: 10), endpoints: [])
        #expect(h.commit(h.controller.register(third, nowMs: 200)).0 == .duplicateBrokerRegistration)
    }

    @Test func topicsArePlacedAcrossActiveBrokersWithTheirISR() {
        var h = ControllerHarness()
        h.startBrokers(3)
        let id = h.create("orders", partitions: 6, rf: 3)
        let topic = h.image.topics[id]!
        #expect(topic.name == "orders" && topic.partitions.count == 6)
        for p in topic.partitions {
            #expect(p.replicas.count == 3 && p.isr == p.replicas && p.leader == p.replicas[0])
            #expect(p.leaderEpoch == LeaderEpoch(0) && p.partitionEpoch == .zero)
        }
        #expect(Set(topic.partitions.map { $0.leader! }).count == 3)
        #expect(h.commit(h.controller.createTopic(NewTopic(name: "orders", partitions: 1, replicationFactor: 1))).0 == .topicAlreadyExists)
        #expect(h.commit(h.controller.createTopic(NewTopic(name: "big", partitions: 1, replicationFactor: 4))).0 == .invalidReplicationFactor)
        #expect(h.commit(h.controller.createTopic(NewTopic(name: "none", partitions: 0, replicationFactor: 1))).0 == .invalidPartitions)
        #expect(h.commit(h.controller.createPartitions("orders", total: 8)) == .none)
        #expect(h.image.topics[id]!.partitions.count == 8)
        #expect(h.commit(h.controller.createPartitions("orders", total: 8)) == .invalidPartitions)
        #expect(h.commit(h.controller.deleteTopic("orders")) == .none)
        #expect(h.image.topic(named: "orders") == nil)
    }

    @Test func aTopicsConfigsAreReplacedWholeThroughTheLog() {
        var h = ControllerHarness()
        h.startBrokers(1)
        _ = h.create("orders", partitions: 1, rf: 1)
        func set(_ configs: [String: String]) -> ErrorCode {
            let (entries, answers) = h.controller.admin(.setTopicConfigs(topic: "orders", configs: configs))
            for records in entries {
                h.log.append(records)
                try! h.controller.replay(records, at: MetadataOffset(Int64(h.log.count)))
            }
            return answers[0].error
        }
        let resource = ConfigResource(.topic, "orders")
        #expect(set(["retention.ms": "1000", "min.insync.replicas": "2"]) == .none)
        #expect(h.image.configs[resource] == ["retention.ms": "1000", "min.insync.replicas": "2"])
        // What is not named goes back to the default; an unchanged set writes nothing.
        #expect(set(["retention.ms": "2000"]) == .none)
        #expect(h.image.configs[resource] == ["retention.ms": "2000"])
        let entries = h.log.count
        #expect(set(["retention.ms": "2000"]) == .none)
        #expect(h.log.count == entries)
        #expect(h.controller.admin(.setTopicConfigs(topic: "nope", configs: [:])).answers[0].error == .unknownTopicOrPartition)
    }

    /// A replica lost with a failed log directory (told in the broker's heartbeats) is treated
    /// as a fenced broker's for its partition only: it leaves the ISR and the ELR, another
    /// replica leads, and neither AlterPartition nor an election brings it back while the
    /// broker keeps telling; the broker's other replicas are untouched.
    @Test func aReplicaLostWithItsLogDirectoryLeavesTheISRAndLeadsNothing() {
        var config = ControllerConfig()
        config.minInSyncReplicas = 3
        var h = ControllerHarness(config: config)
        h.startBrokers(3)
        let id = h.create("t", partitions: 2, rf: 3)
        let lost = TopicIDPartition(id, 0)
        let p0 = h.image.partition(lost)!
        let leader = p0.leader!
        let other = h.image.partition(TopicIDPartition(id, 1))!
        func heartbeat(_ broker: NodeID, offline: [TopicIDPartition]) {
            _ = h.commit(h.controller.heartbeat(BrokerHeartbeatRequest(id: broker, epoch: h.epochs[broker]!, metadataOffset: MetadataOffset(Int64(h.log.count)),
                                                                       offlineReplicas: offline), nowMs: h.now))
        }
        heartbeat(leader, offline: [lost])
        let after = h.image.partition(lost)!
        #expect(after.leader != nil && after.leader != leader)
        #expect(!after.isr.contains(leader) && after.isr.count == 2)
        // Below min ISR 3, the ELR gets no replica that lost its data.
        #expect(!after.elr.contains(leader))
        #expect(h.image.partition(TopicIDPartition(id, 1))!.isr == other.isr)
        // Telling it again changes nothing.
        let entries = h.log.count
        heartbeat(leader, offline: [lost])
        #expect(h.log.count == entries)
        // The new leader cannot take it back in, nor can an election make it lead.
        let now = h.image.partition(lost)!
        let back = h.controller.alterPartition(AlterPartitionRequest(
            broker: now.leader!, brokerEpoch: h.epochs[now.leader!]!, partition: lost,
            proposal: ISRProposal(leaderEpoch: now.leaderEpoch, partitionEpoch: now.partitionEpoch, isr: now.isr + [leader])))
        #expect(back.answer.0 == .ineligibleReplica)
        #expect(now.replicas[0] == leader, "the lost replica is the preferred one")
        let elected = h.commit(h.controller.electLeaders(.preferred, [ElectionTarget(topic: "t", partitions: [0])]))
        #expect(elected.map(\.error) == [.preferredLeaderNotAvailable])
        // A new incarnation (the broker restarted, its directory replaced) may catch up again.
        let request = BrokerRegistrationRequest(id: leader, incarnation: KafkaUUID(high: 9, low: 9), endpoints: [])
        h.advance(Int64(config.sessionTimeoutMs) + 1000, silent: [leader])
        let (code, epoch) = h.commit(h.controller.register(request, nowMs: h.now))
        #expect(code == .none)
        h.epochs[leader] = epoch
        heartbeat(leader, offline: [])
        let again = h.image.partition(lost)!
        let rejoin = h.controller.alterPartition(AlterPartitionRequest(
            broker: again.leader!, brokerEpoch: h.epochs[again.leader!]!, partition: lost,
            proposal: ISRProposal(leaderEpoch: again.leaderEpoch, partitionEpoch: again.partitionEpoch, isr: again.isr + [leader])))
        #expect(rejoin.answer.0 == .none)
    }

    @Test func aBrokersDynamicConfigsAreReplacedWholeAndTheClusterIDStays() {
        var h = ControllerHarness()
        h.startBrokers(1)
        force(&h, [.config(ConfigRecord(resourceType: 4, resourceName: "", name: MetadataImage.clusterIDConfig, value: "abc"))])
        func set(_ broker: String, _ configs: [String: String]) -> ErrorCode {
            let (entries, answers) = h.controller.admin(.setBrokerConfigs(broker: broker, configs: configs))
            for records in entries { force(&h, records) }
            return answers[0].error
        }
        #expect(set("1", ["leader.replication.throttled.rate": "1000"]) == .none)
        #expect(set("", ["follower.replication.throttled.rate": "500"]) == .none)
        #expect(h.image.config(ConfigResource(.broker, "1"), "leader.replication.throttled.rate") == "1000")
        #expect(h.image.configs[ConfigResource(.broker, "")] == [MetadataImage.clusterIDConfig: "abc", "follower.replication.throttled.rate": "500"])
        // The cluster-wide set, replaced whole, keeps the cluster's id; an unchanged set writes nothing.
        #expect(set("", [:]) == .none)
        #expect(h.image.configs[ConfigResource(.broker, "")] == [MetadataImage.clusterIDConfig: "abc"])
        #expect(h.image.clusterID == "abc")
        let entries = h.log.count
        #expect(set("1", ["leader.replication.throttled.rate": "1000"]) == .none)
        #expect(h.log.count == entries)
        // Neither the cluster's id nor a resource that is no broker can be set.
        #expect(set("", [MetadataImage.clusterIDConfig: "other"]) == .invalidRequest)
        #expect(set("x", ["leader.replication.throttled.rate": "1"]) == .invalidRequest)
        #expect(set("-1", ["leader.replication.throttled.rate": "1"]) == .invalidRequest)
        #expect(h.image.clusterID == "abc" && h.log.count == entries)
    }

    @Test func aGroupsConfigsAreConfigRecordsOfTypeGroupReplacedWhole() {
        var h = ControllerHarness()
        h.startBrokers(1)
        func set(_ group: String, _ configs: [String: String]) -> ErrorCode {
            let (entries, answers) = h.controller.admin(.setGroupConfigs(group: group, configs: configs))
            for records in entries {
                #expect(records.allSatisfy { if case .config(let r) = $0 { r.resourceType == 32 && r.resourceName == group } else { false } })
                force(&h, records)
            }
            return answers[0].error
        }
        #expect(set("g", ["consumer.heartbeat.interval.ms": "6000", "consumer.session.timeout.ms": "50000"]) == .none)
        #expect(h.image.configs[ConfigResource(.group, "g")] == ["consumer.heartbeat.interval.ms": "6000", "consumer.session.timeout.ms": "50000"])
        let entries = h.log.count
        #expect(set("g", ["consumer.heartbeat.interval.ms": "6000", "consumer.session.timeout.ms": "50000"]) == .none)
        #expect(h.log.count == entries)
        #expect(set("g", ["consumer.session.timeout.ms": "55000"]) == .none)
        #expect(h.image.configs[ConfigResource(.group, "g")] == ["consumer.session.timeout.ms": "55000"])
        // The last config gone, the resource is gone; no name, no resource.
        #expect(set("g", [:]) == .none)
        #expect(h.image.configs[ConfigResource(.group, "g")] == nil)
        #expect(set("", ["consumer.session.timeout.ms": "55000"]) == .invalidRequest)
    }

    /// Commits records that did not come from the controller (another controller's entry).
    func force(_ h: inout ControllerHarness, _ records: [MetadataRecord]) {
        h.log.append(records)
        try! h.controller.replay(records, at: MetadataOffset(Int64(h.log.count)))
    }

    /// Partition `index` of `id` led by its second replica, as after a failover.
    func ledBySecond(_ h: inout ControllerHarness, _ id: KafkaUUID, _ index: Int32, isr: [NodeID]? = nil) -> PartitionInfo {
        let p = h.image.topics[id]!.partitions[Int(index)]
        force(&h, [PartitionChanges.record(TopicIDPartition(id, index), from: p, leader: p.replicas[1], isr: isr ?? p.isr, minISR: 1)])
        return p
    }

    @Test func preferredElectionGivesTheLeadershipBackToTheFirstReplica() {
        var h = ControllerHarness()
        h.startBrokers(3)
        let id = h.create("t", partitions: 2, rf: 3)
        let p0 = ledBySecond(&h, id, 0)
        #expect(h.image.topics[id]!.partitions[0].leaderEpoch == LeaderEpoch(1))
        let results = h.commit(h.controller.electLeaders(.preferred, [ElectionTarget(topic: "t", partitions: [0, 1, 7]),
                                                                      ElectionTarget(topic: "nope", partitions: [0])]))
        #expect(results.map(\.error) == [.none, .electionNotNeeded, .unknownTopicOrPartition, .unknownTopicOrPartition])
        let after = h.image.topics[id]!.partitions[0]
        #expect(after.leader == p0.replicas[0] && after.leaderEpoch == LeaderEpoch(2) && after.isr == p0.isr)
        // Every partition: nothing left to do, and nothing listed.
        #expect(h.commit(h.controller.electLeaders(.preferred, nil)).isEmpty)
        // A preferred replica out of the ISR may not lead.
        let p1 = h.image.topics[id]!.partitions[1]
        _ = ledBySecond(&h, id, 1, isr: [p1.replicas[1], p1.replicas[2]])
        #expect(h.commit(h.controller.electLeaders(.preferred, [ElectionTarget(topic: "t", partitions: [1])])).map(\.error)
                == [.preferredLeaderNotAvailable])
        #expect(h.controller.electLeaders(.preferred, nil).answer.map(\.error) == [.preferredLeaderNotAvailable])
    }

    @Test func uncleanElectionOnlyWhereNoReplicaLeads() {
        var h = ControllerHarness()
        h.startBrokers(3)
        let id = h.create("t", partitions: 1, rf: 2)
        let replicas = h.image.topics[id]!.partitions[0].replicas
        #expect(h.commit(h.controller.electLeaders(.unclean, [ElectionTarget(topic: "t", partitions: [0])])).map(\.error) == [.electionNotNeeded])
        // The first replica goes, then the second (the last in sync) while the first returns.
        h.advance(10_000, silent: [replicas[0]])
        h.advance(10_000, silent: [replicas[1]])
        let stuck = h.image.topics[id]!.partitions[0]
        #expect(stuck.leader == nil && stuck.isr == [replicas[1]])
        #expect(h.commit(h.controller.electLeaders(.preferred, [ElectionTarget(topic: "t", partitions: [0])])).map(\.error) == [.preferredLeaderNotAvailable])
        #expect(h.commit(h.controller.electLeaders(.unclean, [ElectionTarget(topic: "t", partitions: [0])])).map(\.error) == [.none])
        let after = h.image.topics[id]!.partitions[0]
        #expect(after.leader == replicas[0] && after.isr == [replicas[0]])
    }

    @Test func leadershipsDriftBackToPreferredReplicasWhenRebalancingIsOn() {
        for enabled in [true, false] {
            var config = ControllerConfig()
            config.autoLeaderRebalance = enabled
            config.leaderImbalanceCheckIntervalMs = 1000
            var h = ControllerHarness(config: config)
            h.startBrokers(3)
            let id = h.create("t", partitions: 3, rf: 3)
            let p0 = ledBySecond(&h, id, 0)
            h.advance(2000)
            #expect(h.image.topics[id]!.partitions[0].leader == (enabled ? p0.replicas[0] : p0.replicas[1]))
        }
        // At the imbalance threshold (1 of the 10 partitions a broker prefers is led elsewhere:
        // 10%, not above leader.imbalance.per.broker.percentage) nothing moves.
        var config = ControllerConfig()
        config.leaderImbalanceCheckIntervalMs = 1000
        var h = ControllerHarness(config: config)
        h.startBrokers(3)
        let id = h.create("t", partitions: 30, rf: 3)
        let preferred = h.image.topics[id]!.partitions[0].replicas[0]
        #expect(h.image.topics[id]!.partitions.filter { $0.replicas[0] == preferred }.count == 10)
        let p0 = ledBySecond(&h, id, 0)
        h.advance(2000)
        #expect(h.image.topics[id]!.partitions[0].leader == p0.replicas[1])
    }

    @Test func aLapsedSessionFencesTheBrokerAndMovesItsLeadershipsInTheSameEntry() {
        var h = ControllerHarness()
        h.startBrokers(3)
        let id = h.create("t", partitions: 3, rf: 3)
        let led = h.image.topics[id]!.partitions.enumerated().filter { $0.element.leader == n2 }.map(\.offset)
        #expect(!led.isEmpty)
        let entries = h.log.count
        h.advance(10_000, silent: [n2])
        #expect(h.image.brokers[n2]?.fenced == true)
        let fenceEntry = h.log[entries...].first { $0.contains { if case .fenceBroker = $0 { true } else { false } } }!
        #expect(fenceEntry.contains { if case .partitionChange = $0 { true } else { false } })
        for (index, p) in h.image.topics[id]!.partitions.enumerated() {
            #expect(p.leader != n2 && !p.isr.contains(n2))
            if led.contains(index) { #expect(p.leaderEpoch == LeaderEpoch(1)) }
        }
    }

    @Test func theLastISRMemberStaysAndLeadsAgainWhenItReturns() {
        var h = ControllerHarness()
        h.startBrokers(2)
        let id = h.create("solo", partitions: 1, rf: 1)
        let owner = h.image.topics[id]!.partitions[0].leader!
        h.advance(10_000, silent: [owner])
        var p = h.image.topics[id]!.partitions[0]
        #expect(p.leader == nil && p.isr == [owner], "offline, the ISR still names the broker with the data")
        // It comes back as a new incarnation, catches up, and is unfenced: it leads again.
        let request = BrokerRegistrationRequest(id: owner, incarnation: KafkaUUID(high: 7, low: 7), endpoints: [])
        let (_, epoch) = h.commit(h.controller.register(request, nowMs: h.now))
        h.epochs[owner] = epoch
        h.advance(1000)
        p = h.image.topics[id]!.partitions[0]
        #expect(p.leader == owner && p.leaderEpoch == LeaderEpoch(2))
    }

    @Test func uncleanElectionOnlyWhenEnabled() {
        for unclean in [false, true] {
            var config = ControllerConfig()
            config.uncleanLeaderElection = unclean
            var h = ControllerHarness(config: config)
            h.startBrokers(3)
            let id = h.create("u", partitions: 1, rf: 2)
            let p0 = h.image.topics[id]!.partitions[0]
            let (leader, follower) = (p0.replicas[0], p0.replicas[1])
            // The follower drops out of the ISR, then the leader dies.
            let shrink = AlterPartitionRequest(broker: leader, brokerEpoch: h.epochs[leader]!, partition: TopicIDPartition(id, 0),
                                               proposal: ISRProposal(leaderEpoch: p0.leaderEpoch, partitionEpoch: p0.partitionEpoch, isr: [leader]))
            #expect(h.commit(h.controller.alterPartition(shrink)).0 == .none)
            h.advance(10_000, silent: [leader])
            let p = h.image.topics[id]!.partitions[0]
            if unclean {
                #expect(p.leader == follower && p.isr == [follower])
            } else {
                #expect(p.leader == nil && p.isr == [leader])
            }
        }
    }

    @Test func alterPartitionIsCheckedAgainstEpochsAndEligibility() {
        var h = ControllerHarness()
        h.startBrokers(3)
        let id = h.create("a", partitions: 1, rf: 3)
        let key = TopicIDPartition(id, 0)
        let p = h.image.partition(key)!
        let leader = p.leader!
        let others = p.replicas.filter { $0 != leader }
        func ask(_ isr: [NodeID], leaderEpoch: LeaderEpoch? = nil, partitionEpoch: PartitionEpoch? = nil, from: NodeID? = nil) -> ErrorCode {
            let current = h.image.partition(key)!
            let request = AlterPartitionRequest(broker: from ?? leader, brokerEpoch: h.epochs[from ?? leader]!, partition: key,
                                                proposal: ISRProposal(leaderEpoch: leaderEpoch ?? current.leaderEpoch,
                                                                      partitionEpoch: partitionEpoch ?? current.partitionEpoch, isr: isr))
            return h.commit(h.controller.alterPartition(request)).0
        }
        #expect(ask([leader, others[0]], from: others[0]) == .notLeaderOrFollower)
        #expect(ask([leader, others[0]], leaderEpoch: LeaderEpoch(-1)) == .fencedLeaderEpoch)
        #expect(ask([leader, others[0]], partitionEpoch: PartitionEpoch(99)) == .invalidUpdateVersion)
        #expect(ask([others[0]]) == .invalidRequest, "the leader stays in its ISR")
        #expect(ask([leader, others[0]]) == .none)
        #expect(h.image.partition(key)!.isr == [leader, others[0]])
        #expect(h.image.partition(key)!.partitionEpoch == PartitionEpoch(1))
        // A fenced broker may not join.
        h.advance(10_000, silent: [others[1]])
        #expect(ask([leader, others[0], others[1]]) == .ineligibleReplica)
    }

    /// A leader's ISR changes for many partitions go in one request and make one entry; each is
    /// checked alone, and a refused one does not stop the rest.
    @Test func manyISRChangesInOneRequestMakeOneEntry() {
        var h = ControllerHarness()
        h.startBrokers(3)
        let id = h.create("many", partitions: 30, rf: 3)
        let keys = (0..<30).map { TopicIDPartition(id, Int32($0)) }
        let leader = h.image.partition(keys[0])!.leader!
        let led = keys.filter { h.image.partition($0)!.leader == leader }
        #expect(led.count >= 3)
        func shrink(_ key: TopicIDPartition, partitionEpoch: PartitionEpoch? = nil) -> AlterPartitionRequest {
            let p = h.image.partition(key)!
            let follower = p.replicas.first { $0 != leader }!
            return AlterPartitionRequest(broker: leader, brokerEpoch: h.epochs[leader]!, partition: key,
                                         proposal: ISRProposal(leaderEpoch: p.leaderEpoch, partitionEpoch: partitionEpoch ?? p.partitionEpoch,
                                                               isr: p.isr.filter { $0 != follower }))
        }
        var requests = led.map { shrink($0) }
        requests[1] = shrink(led[1], partitionEpoch: PartitionEpoch(99))
        requests.append(shrink(led[0]))
        let entriesBefore = h.log.count
        let answers = h.commit(h.controller.alterPartitions(requests))
        #expect(h.log.count == entriesBefore + 1, "one entry")
        #expect(h.log.last?.count == led.count - 1, "a record for each change taken")
        #expect(answers.count == requests.count)
        #expect(answers[1].0 == .invalidUpdateVersion && answers[1].1 == nil)
        #expect(answers.last?.0 == .invalidRequest, "a partition named twice")
        for (i, key) in led.enumerated() where i != 1 {
            #expect(answers[i].0 == ErrorCode.none)
            #expect(answers[i].1 == h.image.partition(key))
            #expect(h.image.partition(key)!.isr.count == 2)
            #expect(h.image.partition(key)!.partitionEpoch == PartitionEpoch(1))
        }
        #expect(h.image.partition(led[1])!.isr.count == 3)
        // Asked again, the same ISRs are already so: answered, nothing appended.
        let again = h.commit(h.controller.alterPartitions([shrink(led[0], partitionEpoch: PartitionEpoch(1))].map {
            var r = $0
            r.proposal.isr = h.image.partition(led[0])!.isr
            return r
        }))
        #expect(again[0].0 == ErrorCode.none && h.log.count == entriesBefore + 1)
    }

    @Test func aReassignmentAddsTheNewReplicasThenDropsTheOldOnesOnceTheyAreInSync() {
        var h = ControllerHarness()
        h.startBrokers(3)
        let id = h.create("m", partitions: 1, rf: 2)
        let key = TopicIDPartition(id, 0)
        let before = h.image.partition(key)!
        let (a, b) = (before.replicas[0], before.replicas[1])
        let c = [n1, n2, n3].first { !before.replicas.contains($0) }!
        #expect(before.leader == a)
        func reassign(_ replicas: [NodeID]?, allow: Bool = true) -> ErrorCode { h.reassign("m", replicas, allow: allow) }
        #expect(reassign(nil) == .noReassignmentInProgress)
        #expect(reassign([b, NodeID(9)]) == .invalidReplicaAssignment)
        #expect(reassign([b, b]) == .invalidReplicaAssignment)
        #expect(reassign([b], allow: false) == .invalidReplicationFactor)
        #expect(h.reassign("nope", [a]) == .unknownTopicOrPartition)
        // Start: c is added, a will go; the leader stays, in a new epoch.
        #expect(reassign([b, c]) == .none)
        let moving = h.image.partition(key)!
        #expect(moving.replicas == [b, c, a] && moving.adding == [c] && moving.removing == [a])
        #expect(moving.isr == before.isr && moving.leader == a && moving.leaderEpoch == LeaderEpoch(1))
        #expect(moving.reassignmentTarget == [b, c])
        // c catches up: the leader's AlterPartition brings it in, and the move completes in the
        // same entry; a, the leader, is removed, so b leads.
        let entries = h.log.count
        #expect(h.leaderAdds(c, to: key) == .none)
        #expect(h.log.count == entries + 1)
        let done = h.image.partition(key)!
        #expect(done.replicas == [b, c] && done.isr == [b, c] && done.leader == b && done.adding.isEmpty && done.removing.isEmpty)
        #expect(done.reassignmentTarget == nil)
        // A move to replicas already in sync completes at once; a cancel goes back.
        #expect(reassign([c, b]) == .none)
        #expect(h.image.partition(key)!.replicas == [c, b] && h.image.partition(key)!.reassignmentTarget == nil)
        #expect(reassign([c, b, a]) == .none)
        #expect(h.image.partition(key)!.adding == [a])
        #expect(reassign(nil) == .none)
        let back = h.image.partition(key)!
        #expect(back.replicas == [c, b] && back.adding.isEmpty && Set(back.isr) == [b, c])
        // The image's snapshot keeps a running move.
        #expect(reassign([a, b]) == .none)
        let rebuilt = try! MetadataImage(snapshot: h.image.snapshotRecords(), at: h.image.offset)
        #expect(rebuilt.partition(key) == h.image.partition(key))
    }

    @Test func aReassignmentReplacingARunningOneKeepsWhatJoinedTheISR() {
        var h = ControllerHarness()
        h.startBrokers(4)
        let id = h.create("m", partitions: 1, rf: 2)
        let key = TopicIDPartition(id, 0)
        let before = h.image.partition(key)!
        let (a, b) = (before.replicas[0], before.replicas[1])
        let others = [n1, n2, n3, NodeID(4)].filter { !before.replicas.contains($0) }
        let (c, d) = (others[0], others[1])
        func reassign(_ replicas: [NodeID]) -> ErrorCode { h.reassign("m", replicas) }
        #expect(reassign([c, d]) == .none)
        // c catches up and joins the ISR; d has not yet, so the move runs on.
        #expect(h.leaderAdds(c, to: key) == .none)
        #expect(h.image.partition(key)!.isr.contains(c) && h.image.partition(key)!.reassignmentTarget == [c, d])
        // A new move back: c (in the ISR) stays assigned until it completes, which is at once here.
        #expect(reassign([a, b]) == .none)
        let back = h.image.partition(key)!
        #expect(back.replicas == [a, b] && Set(back.isr) == [a, b] && back.reassignmentTarget == nil)
        #expect(reassign(Array(repeating: a, count: 1) + (0..<70).map { NodeID(Int32(100 + $0)) }) == .invalidReplicaAssignment)
    }

    @Test func controlledShutdownMovesLeadershipsBeforeTheBrokerStops() {
        var h = ControllerHarness()
        h.startBrokers(3)
        let id = h.create("c", partitions: 6, rf: 3)
        let leaving = n1
        func leave() -> BrokerHeartbeatAnswer {
            h.commit(h.controller.heartbeat(BrokerHeartbeatRequest(id: leaving, epoch: h.epochs[leaving]!, metadataOffset: MetadataOffset(Int64(h.log.count)), wantShutdown: true), nowMs: h.now))
        }
        let first = leave()
        #expect(!first.shouldShutDown && !first.isFenced)
        #expect(h.image.brokers[leaving]?.inControlledShutdown == true)
        for p in h.image.topics[id]!.partitions {
            #expect(p.leader != leaving && !p.isr.contains(leaving))
        }
        // Leading nothing, it is fenced, and may stop.
        let second = leave()
        #expect(second.shouldShutDown && second.isFenced)
        #expect(h.image.brokers[leaving]?.fenced == true)
    }

    @Test func producerIDBlocksNeverOverlap() {
        var h = ControllerHarness()
        h.startBrokers(2)
        let a = h.commit(h.controller.allocateProducerIDs(broker: n1, epoch: h.epochs[n1]!))
        let b = h.commit(h.controller.allocateProducerIDs(broker: n2, epoch: h.epochs[n2]!))
        #expect(a.0 == .none && b.0 == .none)
        #expect(b.1.value == a.1.value + a.2)
        #expect(h.commit(h.controller.allocateProducerIDs(broker: n1, epoch: BrokerEpoch(0))).0 == .staleBrokerEpoch)
    }

    /// A new controller rebuilt from the committed log decides as the old one would have.
    @Test func aNewControllerStartsFromTheCommittedImage() throws {
        var h = ControllerHarness()
        h.startBrokers(3)
        _ = h.create("x", partitions: 2, rf: 2)
        // One decision the old controller made is never committed.
        _ = h.controller.createTopic(NewTopic(name: "lost", partitions: 1, replicationFactor: 1))
        #expect(h.controller.image.topic(named: "lost") != nil && h.controller.pending.count == 1)
        var replayed = MetadataImage()
        for (i, entry) in h.log.enumerated() { try replayed.apply(entry, at: MetadataOffset(Int64(i + 1))) }
        let next = ClusterController(committed: replayed, nowMs: h.now, randomSeed: 1)
        #expect(next.image == h.controller.committed)
        #expect(next.image.topic(named: "lost") == nil && next.image.topic(named: "x") != nil)
    }
}
