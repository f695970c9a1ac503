@testable import BrookBroker
import BrookCluster
import BrookCore
import BrookProtocol
import NIOCore
import Testing

/// Metadata in a cluster answers from the image this broker follows.
@Suite struct ClusterMetadataTests {
    func register(_ id: Int32, fenced: Bool) -> MetadataRecord { registerBroker(id, fenced: fenced) }

    /// A fenced broker (dead, or not yet caught up) stays in the broker list: librdkafka drops
    /// the handle of a broker missing from Metadata, and its coordinator lookups then wait on
    /// that handle forever (found by the transactional interop test, one run in about 20).
    @Test func fencedBrokersAreListedButNeverLead() throws {
        let h = try BrokerHarness([("process.roles", "broker,controller")])
        defer { h.close() }
        h.broker.cluster.attach(forward: { _, done in done(.success([])) }, alterPartitions: { changes, done in done(changes.map { _ in (.none, nil) }) })
        var image = MetadataImage()
        try image.apply([register(1, fenced: false), register(2, fenced: true), register(3, fenced: false)], at: MetadataOffset(1))
        h.broker.cluster.update(.init(image: image, activeController: NodeID(1), fenced: false))
        let response = try h.send(MetadataRequest(topics: nil), version: 12)
        #expect(response.brokers.map(\.nodeId) == [NodeID(1), NodeID(2), NodeID(3)])
        #expect(response.brokers.map(\.port) == [9091, 9092, 9093])
    }

    /// Clients are given a broker as the controller, as in Kafka's KRaft mode: the active
    /// controller when it is an unfenced broker, else this broker, else another unfenced one.
    /// A controller id missing from the broker list (a dedicated controller) left librdkafka's
    /// admin client waiting for that broker until CreateTopics timed out.
    @Test func theControllerClientsAreGivenIsAnUnfencedListedBroker() throws {
        let h = try BrokerHarness([("process.roles", "broker,controller")])
        defer { h.close() }
        h.broker.cluster.attach(forward: { _, done in done(.success([])) }, alterPartitions: { changes, done in done(changes.map { _ in (.none, nil) }) })
        func controllers(_ records: [MetadataRecord], active: Int32?) throws -> (metadata: NodeID, cluster: NodeID) {
            var image = MetadataImage()
            try image.apply(records, at: MetadataOffset(1))
            h.broker.cluster.update(.init(image: image, activeController: active.map { NodeID($0) }, fenced: false))
            let metadata = try h.send(MetadataRequest(topics: nil), version: 12)
            let cluster = try h.send(DescribeClusterRequest(), version: 1)
            return (metadata.controllerId, cluster.controllerId)
        }
        let three = [register(1, fenced: false), register(2, fenced: true), register(3, fenced: false)]
        #expect(try controllers(three, active: 3) == (NodeID(3), NodeID(3)))
        // A dedicated controller (no broker), a fenced broker, none known: this broker.
        #expect(try controllers(three, active: 7) == (NodeID(1), NodeID(1)))
        #expect(try controllers(three, active: 2) == (NodeID(1), NodeID(1)))
        #expect(try controllers(three, active: nil) == (NodeID(1), NodeID(1)))
        // This broker not in the image yet: the unfenced broker of lowest id.
        let others = [register(2, fenced: true), register(3, fenced: false), register(4, fenced: false)]
        #expect(try controllers(others, active: 7) == (NodeID(3), NodeID(3)))
        #expect(try controllers([register(2, fenced: true)], active: 7) == (NodeID(-1), NodeID(-1)))
    }

    /// A group whose `__consumer_offsets` partition is between leaders is pointed at this
    /// broker, which answers its requests with NOT_COORDINATOR until there is a leader:
    /// librdkafka asks again after each of those, where a COORDINATOR_NOT_AVAILABLE from
    /// FindCoordinator left its TxnOffsetCommit waiting for good after two retries (the fault
    /// campaign's stalled copier, seed 1555952120). Transactional ids keep the plain answer.
    @Test func aGroupBetweenCoordinatorsIsPointedAtThisBroker() throws {
        let h = try BrokerHarness([("process.roles", "broker,controller")])
        defer { h.close() }
        h.broker.cluster.attach(forward: { _, done in done(.success([])) }, alterPartitions: { changes, done in done(changes.map { _ in (.none, nil) }) })
        let offsets = KafkaUUID(high: 9, low: 9)
        let txns = KafkaUUID(high: 9, low: 10)
        _ = try h.broker.topics.create(name: "__consumer_offsets", partitions: 1, configs: [:], id: offsets, hosting: { _ in true })
        _ = try h.broker.topics.create(name: "__transaction_state", partitions: 1, configs: [:], id: txns, hosting: { _ in true })
        var image = MetadataImage()
        var records = [register(1, fenced: false), register(2, fenced: false), register(3, fenced: true),
                       .topic(TopicRecord(name: "__consumer_offsets", topicId: offsets)),
                       .topic(TopicRecord(name: "__transaction_state", topicId: txns))]
        for id in [offsets, txns] {
            var partition = PartitionRecord()
            partition.topicId = id
            partition.partitionId = 0
            partition.replicas = [NodeID(1), NodeID(2), NodeID(3)]
            partition.isr = [NodeID(2), NodeID(3)]
            partition.leader = NodeID(2)
            partition.leaderEpoch = LeaderEpoch(0)
            records.append(.partition(partition))
        }
        try image.apply(records, at: MetadataOffset(1))
        var version = 1
        func lead(_ leader: Int32) throws {
            version += 1
            var change = PartitionChangeRecord()
            change.topicId = offsets
            change.partitionId = 0
            change.leader = NodeID(leader)
            try image.apply([.partitionChange(change)], at: MetadataOffset(Int64(version)))
            h.broker.cluster.update(.init(image: image, activeController: NodeID(1), fenced: false))
        }
        func group() throws -> FindCoordinatorResponse.Coordinator? {
            try h.send(FindCoordinatorRequest(keyType: 0, coordinatorKeys: ["g"]), version: 4).coordinators.first
        }

        try lead(2)
        #expect(try group()?.nodeId == NodeID(2))
        #expect(try group()?.port == 9092)
        try lead(-1)
        #expect(try group()?.errorCode == 0)
        #expect(try group()?.nodeId == NodeID(1))
        let join = try h.send(JoinGroupRequest(groupId: "g", sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000, memberId: "",
                                               protocolType: "consumer", protocols: [.init(name: "range", metadata: ByteBuffer())]), version: 5)
        #expect(join.errorCode == ErrorCode.notCoordinator.rawValue)
        try lead(3)  // fenced: as good as none
        #expect(try group()?.nodeId == NodeID(1))

        // The transaction state's partition has no leader: COORDINATOR_NOT_AVAILABLE as before.
        var change = PartitionChangeRecord()
        change.topicId = txns
        change.partitionId = 0
        change.leader = NodeID(-1)
        version += 1
        try image.apply([.partitionChange(change)], at: MetadataOffset(Int64(version)))
        h.broker.cluster.update(.init(image: image, activeController: NodeID(1), fenced: false))
        let txn = try h.send(FindCoordinatorRequest(keyType: 1, coordinatorKeys: ["tx"]), version: 4).coordinators.first
        #expect(txn?.errorCode == ErrorCode.coordinatorNotAvailable.rawValue)
    }
}
