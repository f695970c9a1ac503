import BrookCluster
import BrookCore
import BrookProtocol

/// KIP-951: an answer that says NOT_LEADER_OR_FOLLOWER (or, for a fetch, FENCED_LEADER_EPOCH)
/// names the partition's current leader and epoch, and the leaders' endpoints, as this
/// broker's metadata image has them, so that a client moves there at once rather than after a
/// metadata refresh. Only in a cluster (a single node leads everything).
struct LeaderHints {
    let image: MetadataImage
    let listener: String
    private(set) var named: Set<NodeID> = []

    init?(_ broker: Broker, listener: String?) {
        guard broker.cluster.isCluster, let view = broker.cluster.current else { return nil }
        image = view.image
        self.listener = broker.config.advertised(named: listener).name
    }

    /// The current leader of a partition, by topic id (non-zero) or name; the leader is
    /// remembered for `endpoints`.
    mutating func leader(topicID: KafkaUUID, name: String, partition: Int32) -> (id: NodeID, epoch: LeaderEpoch)? {
        guard let topic = topicID != KafkaUUID.zero ? image.topics[topicID] : image.topic(named: name),
              partition >= 0, Int(partition) < topic.partitions.count,
              let leader = topic.partitions[Int(partition)].leader else { return nil }
        named.insert(leader)
        return (leader, topic.partitions[Int(partition)].leaderEpoch)
    }

    /// The endpoints of the leaders named so far, on this broker's listener (else their first).
    var endpoints: [(id: NodeID, host: String, port: Int32, rack: String?)] {
        named.sorted().compactMap { id in
            guard let info = image.brokers[id],
                  let endpoint = info.endpoints.first(where: { $0.name == listener }) ?? info.endpoints.first else { return nil }
            return (id, endpoint.host, Int32(endpoint.port), info.rack)
        }
    }

    /// A Produce answer with the hints (v10+).
    static func add(to response: ProduceResponse, version: Int16, broker: Broker, listener: String?) -> ProduceResponse {
        // The common answer has nothing to hint: no lock taken, no image read.
        let notLeader = ErrorCode.notLeaderOrFollower.rawValue
        guard version >= 10, response.responses.contains(where: { $0.partitionResponses.contains { $0.errorCode == notLeader } }),
              var hints = LeaderHints(broker, listener: listener) else { return response }
        var out = response
        for t in out.responses.indices {
            for p in out.responses[t].partitionResponses.indices where out.responses[t].partitionResponses[p].errorCode == ErrorCode.notLeaderOrFollower.rawValue {
                let index = out.responses[t].partitionResponses[p].index
                guard let leader = hints.leader(topicID: .zero, name: out.responses[t].name, partition: index) else { continue }
                out.responses[t].partitionResponses[p].currentLeader = .init(leaderId: leader.id, leaderEpoch: leader.epoch)
            }
        }
        out.nodeEndpoints = hints.endpoints.map { .init(nodeId: $0.id, host: $0.host, port: $0.port, rack: $0.rack) }
        return out
    }

    static let movedCodes: Set<Int16> = [ErrorCode.notLeaderOrFollower.rawValue, ErrorCode.fencedLeaderEpoch.rawValue]

    /// A Fetch answer with the hints (the leader v12+, the endpoints v16+).
    static func add(to response: inout FetchResponse, version: Int16, broker: Broker, listener: String?) {
        let moved = Self.movedCodes
        guard version >= 12, response.responses.contains(where: { $0.partitions.contains { moved.contains($0.errorCode) } }),
              var hints = LeaderHints(broker, listener: listener) else { return }
        for t in response.responses.indices {
            for p in response.responses[t].partitions.indices where moved.contains(response.responses[t].partitions[p].errorCode) {
                let topic = response.responses[t]
                guard let leader = hints.leader(topicID: topic.topicId, name: topic.topic, partition: topic.partitions[p].partitionIndex) else { continue }
                response.responses[t].partitions[p].currentLeader = .init(leaderId: leader.id, leaderEpoch: leader.epoch)
            }
        }
        if version >= 16 {
            response.nodeEndpoints = hints.endpoints.map { .init(nodeId: $0.id, host: $0.host, port: $0.port, rack: $0.rack) }
        }
    }
}
