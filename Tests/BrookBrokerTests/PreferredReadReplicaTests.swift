@testable import BrookBroker
import BrookCluster
import BrookCore
import BrookProtocol
import Testing

/// KIP-392 on the leader: with the rack-aware selector, a consumer of another rack is sent to an
/// in-sync replica of its rack, but only for an offset the leader holds between its log start
/// and high watermark; any other offset is answered here, so that the consumer's reset policy
/// (OFFSET_OUT_OF_RANGE) applies rather than a follower's refusal.
@Suite struct PreferredReadReplicaTests {
    let topicID = KafkaUUID(high: 0x39, low: 0x2)
    let n1 = NodeID(1), n2 = NodeID(2)

    func consumerFetch(_ h: BrokerHarness, offset: Int64, rack: String) throws -> FetchResponse.FetchableTopicResponse.PartitionData {
        var request = h.fetchRequest("t", offset: offset)
        request.rackId = rack
        return try h.send(request, version: 12).responses[0].partitions[0]
    }

    @Test func onlyOffsetsTheLeaderHoldsAreRedirectedToTheConsumersRack() throws {
        let h = try BrokerHarness([("process.roles", "broker,controller"), ("broker.rack", "a"),
                                   ("replica.selector.class", BrokerConfig.rackAwareSelectorClass)])
        defer { h.close() }
        h.broker.cluster.attach(forward: { _, done in done(.success([])) }, alterPartitions: { changes, done in done(changes.map { _ in (.none, nil) }) })
        let manager = ReplicaManager(broker: h.broker, node: n1)
        defer { manager.stop() }
        var partition = PartitionRecord()
        partition.topicId = topicID
        partition.partitionId = 0
        partition.replicas = [n1, n2]
        partition.isr = [n1, n2]
        partition.leader = n1
        partition.leaderEpoch = LeaderEpoch(0)
        var image = MetadataImage()
        try image.apply([registerBroker(1, rack: "a"), registerBroker(2, rack: "b"), .topic(TopicRecord(name: "t", topicId: topicID)),
                         .partition(partition)], at: MetadataOffset(1))
        h.broker.cluster.update(.init(image: image, activeController: n1, fenced: false))
        manager.imageChanged(image)
        manager.drain()
        // Three records, acks=1: the log ends at 3, the high watermark stays at 0 until broker 2
        // fetches them.
        let written = try h.send(h.produceRequest("t", batches: [batch(["x", "y", "z"], timestamps: [1, 2, 3])], acks: 1), version: 9)
        #expect(written.responses[0].partitionResponses[0].errorCode == 0)
        let held = try #require(h.broker.topics.partition("t", 0)).offsets
        #expect(held.logStart == Offset(0) && held.highWatermark == Offset(0))

        let sent = try consumerFetch(h, offset: 0, rack: "b")
        #expect(sent.errorCode == 0 && sent.preferredReadReplica == n2 && sent.highWatermark == Offset(0))
        // Past the high watermark, past the log end, or from the leader's own rack: answered here.
        let aboveHW = try consumerFetch(h, offset: 2, rack: "b")
        #expect(aboveHW.errorCode == 0 && aboveHW.preferredReadReplica == NodeID(-1))
        let pastEnd = try consumerFetch(h, offset: 50, rack: "b")
        #expect(pastEnd.errorCode == ErrorCode.offsetOutOfRange.rawValue && pastEnd.preferredReadReplica == NodeID(-1))
        let sameRack = try consumerFetch(h, offset: 0, rack: "a")
        #expect(sameRack.errorCode == 0 && sameRack.preferredReadReplica == NodeID(-1))
        let noRack = try consumerFetch(h, offset: 0, rack: "")
        #expect(noRack.errorCode == 0 && noRack.preferredReadReplica == NodeID(-1))
    }
}
