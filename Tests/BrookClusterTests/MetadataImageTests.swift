import BrookCluster
import BrookCore
import BrookProtocol
import Testing

@Suite struct MetadataImageTests {
    let topicID = KafkaUUID(high: 0x1234, low: 0x5678)
    let n1 = NodeID(1), n2 = NodeID(2), n3 = NodeID(3)

    func register(_ id: NodeID, epoch: Int64) -> MetadataRecord {
        var r = RegisterBrokerRecord()
        r.brokerId = id
        r.brokerEpoch = epoch
        r.incarnationId = KafkaUUID(high: 1, low: UInt64(id.value))
        r.endPoints = [.init(name: "PLAINTEXT", host: "h", port: 9092, securityProtocol: 0)]
        return .registerBroker(r)
    }

    func partition(_ index: Int32, replicas: [NodeID], leader: NodeID) -> MetadataRecord {
        var r = PartitionRecord()
        r.topicId = topicID
        r.partitionId = index
        r.replicas = replicas
        r.isr = replicas
        r.leader = leader
        r.leaderEpoch = LeaderEpoch(0)
        r.partitionEpoch = 0
        return .partition(r)
    }

    func built() throws -> MetadataImage {
        var image = MetadataImage()
        try image.apply([register(n1, epoch: 1), register(n2, epoch: 2), register(n3, epoch: 3)], at: MetadataOffset(1))
        try image.apply([.topic(TopicRecord(name: "t", topicId: topicID)),
                         partition(0, replicas: [n1, n2, n3], leader: n1), partition(1, replicas: [n2, n3, n1], leader: n2)],
                        at: MetadataOffset(2))
        return image
    }

    @Test func recordsBuildTheImage() throws {
        let image = try built()
        #expect(image.offset == MetadataOffset(2))
        #expect(image.brokers.count == 3 && image.brokers[n1]!.fenced && image.brokers[n1]!.registeredAt == MetadataOffset(1))
        #expect(image.topic(named: "t")?.partitions.count == 2)
        #expect(image.partition(TopicIDPartition(topicID, 1))?.leader == n2)
        #expect(image.highestBrokerEpoch == BrokerEpoch(3))
    }

    @Test func aPartitionChangeMovesTheEpochsAsKafkaDoes() throws {
        var image = try built()
        var isrOnly = PartitionChangeRecord()
        isrOnly.topicId = topicID
        isrOnly.partitionId = 0
        isrOnly.isr = [n1, n2]
        try image.apply([.partitionChange(isrOnly)], at: MetadataOffset(3))
        var p = image.partition(TopicIDPartition(topicID, 0))!
        #expect(p.isr == [n1, n2] && p.leader == n1 && p.leaderEpoch == LeaderEpoch(0) && p.partitionEpoch == PartitionEpoch(1))
        var newLeader = PartitionChangeRecord()
        newLeader.topicId = topicID
        newLeader.partitionId = 0
        newLeader.leader = n2
        try image.apply([.partitionChange(newLeader)], at: MetadataOffset(4))
        p = image.partition(TopicIDPartition(topicID, 0))!
        #expect(p.leader == n2 && p.leaderEpoch == LeaderEpoch(1) && p.partitionEpoch == PartitionEpoch(2))
    }

    @Test func anEntryThatDoesNotApplyChangesNothing() throws {
        var image = try built()
        let before = image
        var bad = PartitionChangeRecord()
        bad.topicId = topicID
        bad.partitionId = 0
        bad.leader = NodeID(9) // not in the ISR
        var fine = PartitionChangeRecord()
        fine.topicId = topicID
        fine.partitionId = 1
        fine.isr = [n2]
        #expect(throws: MetadataError.self) { try image.apply([.partitionChange(fine), .partitionChange(bad)], at: MetadataOffset(3)) }
        #expect(image == before)
        #expect(throws: MetadataError.self) { try image.apply([.noOp(NoOpRecord())], at: MetadataOffset(2)) }
        var emptyISR = PartitionChangeRecord()
        emptyISR.topicId = topicID
        emptyISR.partitionId = 1
        emptyISR.isr = []
        #expect(throws: MetadataError.self) { try image.apply([.partitionChange(emptyISR)], at: MetadataOffset(3)) }
        #expect(throws: MetadataError.self) { try image.apply([partition(5, replicas: [n1], leader: n1)], at: MetadataOffset(3)) }
    }

    @Test func removingATopicDropsItsNameAndConfigs() throws {
        var image = try built()
        try image.apply([.config(ConfigRecord(resourceType: 2, resourceName: "t", name: "retention.ms", value: "1000"))], at: MetadataOffset(3))
        #expect(image.config(ConfigResource(.topic, "t"), "retention.ms") == "1000")
        try image.apply([.removeTopic(RemoveTopicRecord(topicId: topicID))], at: MetadataOffset(4))
        #expect(image.topic(named: "t") == nil && image.configs.isEmpty)
    }

    @Test func aBrokerLearnsWhatToLeadFollowAndDrop() throws {
        let old = try built()
        var new = old
        var moved = PartitionChangeRecord()
        moved.topicId = topicID
        moved.partitionId = 0
        moved.leader = n2
        var shrunk = PartitionChangeRecord()
        shrunk.topicId = topicID
        shrunk.partitionId = 1
        shrunk.isr = [n2, n3]
        try new.apply([.partitionChange(moved), .partitionChange(shrunk)], at: MetadataOffset(3))
        let first = LocalReplicaChange.between(MetadataImage(), old, broker: n2)
        #expect(first.count == 2)
        guard case .follow(let k0, _) = first[0], k0.partition == 0, case .lead(let k1, _) = first[1], k1.partition == 1 else {
            Issue.record("expected follow p0, lead p1: \(first)")
            return
        }
        let changes = LocalReplicaChange.between(old, new, broker: n2)
        guard changes.count == 2, case .lead(let a, let info) = changes[0], a.partition == 0, info.leaderEpoch == LeaderEpoch(1),
              case .isrChanged(let b, _) = changes[1], b.partition == 1 else {
            Issue.record("expected lead p0, isrChanged p1: \(changes)")
            return
        }
        var removed = new
        try removed.apply([.removeTopic(RemoveTopicRecord(topicId: topicID))], at: MetadataOffset(4))
        #expect(LocalReplicaChange.between(new, removed, broker: n1) == [.remove(TopicIDPartition(topicID, 0)), .remove(TopicIDPartition(topicID, 1))])
    }
}
