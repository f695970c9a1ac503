import BrookCluster
import BrookCore
import BrookProtocol
import Testing

/// Eligible leader replicas (KIP-966): replicas that leave the ISR while it is below
/// min.insync.replicas stay electable, because the leader's high watermark stands still then.
@Suite struct EligibleLeaderTests {
    let n1 = NodeID(1), n2 = NodeID(2), n3 = NodeID(3)

    /// Three brokers, topic "e" of one partition on all three with min.insync.replicas=2 (the
    /// cluster default); the partition's key and its replicas in order.
    func cluster() -> (ControllerHarness, TopicIDPartition, [NodeID]) {
        var config = ControllerConfig()
        config.minInSyncReplicas = 2
        var h = ControllerHarness(config: config)
        h.startBrokers(3)
        let id = h.create("e", partitions: 1, rf: 3)
        let key = TopicIDPartition(id, 0)
        return (h, key, h.image.partition(key)!.replicas)
    }

    /// The leader asks for `isr`; the error.
    func shrink(_ h: inout ControllerHarness, _ key: TopicIDPartition, to isr: [NodeID]) -> ErrorCode {
        let p = h.image.partition(key)!
        let request = AlterPartitionRequest(broker: p.leader!, brokerEpoch: h.epochs[p.leader!]!, partition: key,
                                            proposal: ISRProposal(leaderEpoch: p.leaderEpoch, partitionEpoch: p.partitionEpoch, isr: isr))
        return h.commit(h.controller.alterPartition(request)).0
    }

    @Test func replicasLeavingTheISRBelowMinISRStayEligibleAndOneLeadsWhenTheISRIsGone() throws {
        var (h, key, replicas) = cluster()
        let (a, b, c) = (replicas[0], replicas[1], replicas[2])
        // Down to min ISR: the ISR still commits, nobody is eligible outside it.
        #expect(shrink(&h, key, to: [a, b]) == .none)
        #expect(h.image.partition(key)!.elr == [])
        // Below it: the HW stands still, the replica that left keeps every committed record.
        #expect(shrink(&h, key, to: [a]) == .none)
        #expect(h.image.partition(key)!.elr == [b])
        // The leader dies. Without the ELR the partition would wait for it; b leads cleanly,
        // and a (which had every committed record too) becomes eligible in turn.
        h.advance(10_000, silent: [a])
        var p = h.image.partition(key)!
        #expect(p.leader == b && p.isr == [b] && p.elr == [a])
        // c was out of the ISR while it was at min ISR: it may lack committed records, and it
        // never leads cleanly, even with b gone too.
        h.advance(10_000, silent: [a, b])
        p = h.image.partition(key)!
        #expect(p.leader == nil && p.isr == [b] && p.elr == [a])
        // a returns (a new incarnation): it leads from the ELR.
        let (_, epoch) = h.commit(h.controller.register(BrokerRegistrationRequest(id: a, incarnation: KafkaUUID(high: 9, low: 9), endpoints: []),
                                                        nowMs: h.now))
        h.epochs[a] = epoch
        h.advance(1000, silent: [b])
        p = h.image.partition(key)!
        #expect(p.leader == a && p.isr == [a] && p.elr == [b])
        // Back at min ISR (c caught up): the HW moves on without the others, the ELR empties.
        #expect(h.leaderAdds(c, to: key) == .none)
        p = h.image.partition(key)!
        #expect(p.isr == [a, c] && p.elr == [])
        // The ELR survives a snapshot.
        _ = shrink(&h, key, to: [a])
        #expect(h.image.partition(key)!.elr == [c])
        let rebuilt = try MetadataImage(snapshot: h.image.snapshotRecords(), at: h.image.offset)
        #expect(rebuilt.partition(key)!.elr == [c])
    }

    @Test func aLowerMinISRClearsTheELRWhereTheISRIsEnoughNow() {
        var (h, key, replicas) = cluster()
        #expect(shrink(&h, key, to: [replicas[0]]) == .none)
        #expect(h.image.partition(key)!.elr == [replicas[1], replicas[2]])
        let (entries, answers) = h.controller.admin(.setTopicConfigs(topic: "e", configs: ["min.insync.replicas": "1"]))
        for records in entries {
            h.log.append(records)
            try! h.controller.replay(records, at: MetadataOffset(Int64(h.log.count)))
        }
        #expect(answers[0].error == .none)
        #expect(h.image.partition(key)!.elr == [])
    }

    @Test func anUncleanElectionEmptiesTheELRAndAnEligibleReplicaComesFirst() {
        var config = ControllerConfig()
        config.minInSyncReplicas = 2
        config.uncleanLeaderElection = true
        var h = ControllerHarness(config: config)
        h.startBrokers(3)
        let key = TopicIDPartition(h.create("u", partitions: 1, rf: 3), 0)
        let replicas = h.image.partition(key)!.replicas
        let (a, b, c) = (replicas[0], replicas[1], replicas[2])
        #expect(shrink(&h, key, to: [a, b]) == .none)
        #expect(shrink(&h, key, to: [a]) == .none)
        // a and b gone: b is eligible but inactive; c is neither, so only an unclean election
        // can pick it, and what b and a hold beyond c's log is no longer committed.
        h.advance(10_000, silent: [a, b])
        let p = h.image.partition(key)!
        #expect(p.leader == c && p.isr == [c] && p.elr == [])
    }

    /// A broker that comes back after an unclean shutdown (a crash, a power loss) may have lost
    /// records it had: it leaves every ELR at its registration. After a clean one it stays.
    @Test func anUncleanShutdownTakesTheBrokerOutOfEveryELR() {
        for clean in [true, false] {
            var (h, key, replicas) = cluster()
            let (a, b) = (replicas[0], replicas[1])
            #expect(shrink(&h, key, to: [a, b]) == .none)
            #expect(shrink(&h, key, to: [a]) == .none)
            #expect(h.image.partition(key)!.elr == [b])
            // b stops (its session lapses): fenced, it stays eligible until it says how it stopped.
            h.advance(10_000, silent: [b])
            #expect(h.image.partition(key)!.elr == [b])
            let request = BrokerRegistrationRequest(id: b, incarnation: KafkaUUID(high: 8, low: 8), endpoints: [], cleanShutdown: clean)
            let (code, epoch) = h.commit(h.controller.register(request, nowMs: h.now))
            #expect(code == .none)
            h.epochs[b] = epoch
            #expect(h.image.partition(key)!.elr == (clean ? [b] : []))
        }
    }

    /// Found in review: a broker that registered uncleanly while still in the ISR (a new
    /// controller takes it at once) left the ISR in the repairs of its registration and was
    /// made eligible there, as any member leaving an ISR below min ISR is.
    @Test func theRepairsOfAnUncleanRegistrationDoNotMakeTheBrokerEligible() {
        var (h, key, replicas) = cluster()
        let (a, b) = (replicas[0], replicas[1])
        #expect(shrink(&h, key, to: [a, b]) == .none)
        var config = ControllerConfig()
        config.minInSyncReplicas = 2
        h.controller = ClusterController(committed: h.image, config: config, nowMs: h.now, randomSeed: 7)
        let request = BrokerRegistrationRequest(id: b, incarnation: KafkaUUID(high: 5, low: 5), endpoints: [], cleanShutdown: false)
        let (code, epoch) = h.commit(h.controller.register(request, nowMs: h.now))
        #expect(code == .none)
        h.epochs[b] = epoch
        let p = h.image.partition(key)!
        #expect(p.isr == [a] && p.elr == [])
    }

    @Test func theELRRulesCapMinISRAtTheReplicationFactor() {
        let alone = PartitionInfo(replicas: [n1], isr: [n1], leader: n1, leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0))
        #expect(PartitionChanges.effectiveMinISR(3, replicas: 1) == 1)
        #expect(PartitionChanges.eligibleLeaders(alone, isr: [n1], minISR: 3) == [])
        let three = PartitionInfo(replicas: [n1, n2, n3], isr: [n1, n2], leader: n1, leaderEpoch: LeaderEpoch(0),
                                  partitionEpoch: PartitionEpoch(0), elr: [])
        #expect(PartitionChanges.eligibleLeaders(three, isr: [n1], minISR: 2) == [n2])
        #expect(PartitionChanges.eligibleLeaders(three, isr: [n1], minISR: 1) == [])
    }
}

/// UnregisterBroker: the registration goes with the broker's leaderships, ISR and ELR places.
@Suite struct UnregisterBrokerTests {
    @Test func anUnregisteredBrokerLeavesTheImageAndEveryPlaceButTheReplicaLists() {
        var config = ControllerConfig()
        config.minInSyncReplicas = 2
        var h = ControllerHarness(config: config)
        h.startBrokers(3)
        let key = TopicIDPartition(h.create("x", partitions: 1, rf: 3), 0)
        let replicas = h.image.partition(key)!.replicas
        let (a, b) = (replicas[0], replicas[1])
        // b becomes eligible (the ISR went below min ISR), then a (the leader) is unregistered
        // while stopped: b leads from the ELR, and a is in no ISR or ELR.
        let p = h.image.partition(key)!
        for isr in [[a, b], [a]] {
            let q = h.image.partition(key)!
            let request = AlterPartitionRequest(broker: a, brokerEpoch: h.epochs[a]!, partition: key,
                                                proposal: ISRProposal(leaderEpoch: q.leaderEpoch, partitionEpoch: q.partitionEpoch, isr: isr))
            #expect(h.commit(h.controller.alterPartition(request)).0 == .none)
        }
        #expect(p.leader == a && h.image.partition(key)!.elr == [b])
        #expect(h.commit(h.controller.unregisterBroker(a)) == .none)
        h.epochs[a] = nil
        let after = h.image.partition(key)!
        #expect(h.image.brokers[a] == nil)
        #expect(after.leader == b && after.isr == [b] && !after.elr.contains(a) && after.replicas == replicas)
        #expect(h.commit(h.controller.unregisterBroker(a)) == .brokerIDNotRegistered)
        // The answer travels on the controllers' wire as the other admin requests do.
        let (entries, answers) = h.controller.admin(.unregisterBroker(NodeID(42)))
        #expect(entries.isEmpty && answers.map(\.error) == [.brokerIDNotRegistered])
    }
}
