@testable import BrookBroker
import BrookCluster
import BrookCore
import BrookProtocol
import Testing

/// DescribeQuorum on a broker: forwarded to the quorum's leader (here a stand-in attached as a
/// cluster broker's is), answered in Kafka's shape; refused per partition for anything but the
/// metadata partition, or when no leader answers.
@Suite struct DescribeQuorumTests {
    static let metadata = DescribeQuorumRequest(topics: [.init(topicName: "__cluster_metadata", partitions: [.init(partitionIndex: 0)])])

    @Test func theLeadersAnswerInKafkasShape() throws {
        let h = try BrokerHarness()
        let quorum = QuorumDescription(
            leader: NodeID(2), term: 9, highWatermark: 40,
            voters: [.init(id: NodeID(1), logEnd: 38, lastFetchMs: 1000, lastCaughtUpMs: 900), .init(id: NodeID(2), logEnd: 41, lastCaughtUpMs: 1100)],
            observers: [.init(id: NodeID(5), logEnd: 40, lastFetchMs: 1050, lastCaughtUpMs: 1050)],
            endpoints: [NodeID(1): "127.0.0.1:9093", NodeID(2): "[::1]:9094", NodeID(3): "no port"])
        h.broker.cluster.attach(describeQuorum: { done in done(.success(quorum)) })
        let v2 = try h.send(Self.metadata, version: 2)
        #expect(v2.errorCode == 0 && v2.topics.count == 1)
        let p = v2.topics[0].partitions[0]
        #expect(p.errorCode == 0 && p.leaderId == NodeID(2) && p.leaderEpoch == LeaderEpoch(9) && p.highWatermark == 40)
        #expect(p.currentVoters.map(\.replicaId) == [NodeID(1), NodeID(2)] && p.currentVoters.map(\.logEndOffset) == [38, 41])
        #expect(p.currentVoters[0].lastFetchTimestamp == 1000 && p.currentVoters[1].lastFetchTimestamp == -1)
        #expect(p.observers.map(\.replicaId) == [NodeID(5)] && p.observers[0].lastCaughtUpTimestamp == 1050)
        // Nodes (v2): each voter's controller listener; an address without a port is left out.
        #expect(v2.nodes.map(\.nodeId) == [NodeID(1), NodeID(2)])
        #expect(v2.nodes[1].listeners == [.init(name: "CONTROLLER", host: "::1", port: 9094)])
        // v0 has no times and no nodes; its voters are the same.
        let v0 = try h.send(Self.metadata, version: 0)
        #expect(v0.topics[0].partitions[0].currentVoters.map(\.logEndOffset) == [38, 41] && v0.nodes.isEmpty)
        #expect(v0.topics[0].partitions[0].currentVoters[0].lastFetchTimestamp == -1)
    }

    @Test func onlyTheMetadataPartitionIsDescribed() throws {
        let h = try BrokerHarness()
        struct Unanswered: Error {}
        h.broker.cluster.attach(describeQuorum: { done in done(.failure(Unanswered())) })
        for request in [
            DescribeQuorumRequest(topics: [.init(topicName: "__cluster_metadata", partitions: [.init(partitionIndex: 1)])]),
            DescribeQuorumRequest(topics: [.init(topicName: "orders", partitions: [.init(partitionIndex: 0)])]),
            DescribeQuorumRequest(topics: [.init(topicName: "__cluster_metadata", partitions: [.init(partitionIndex: 0), .init(partitionIndex: 0)])]),
        ] {
            let answer = try h.send(request, version: 2)
            #expect(answer.errorCode == 0)
            #expect(answer.topics.flatMap(\.partitions).allSatisfy { $0.errorCode == ErrorCode.unknownTopicOrPartition.rawValue })
        }
        // The right partition, but no leader answered: NOT_LEADER_OR_FOLLOWER, with why.
        let unanswered = try h.send(Self.metadata, version: 2).topics[0].partitions[0]
        #expect(unanswered.errorCode == ErrorCode.notLeaderOrFollower.rawValue && unanswered.errorMessage != nil)
    }

    @Test func aBrokerWithoutAQuorumSaysSo() throws {
        let h = try BrokerHarness()
        let answer = try h.send(Self.metadata, version: 2)
        #expect(answer.errorCode == ErrorCode.unsupportedVersion.rawValue && answer.errorMessage != nil, "not retriable")
    }
}
