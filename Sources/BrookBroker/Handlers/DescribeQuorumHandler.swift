import BrookCluster
import BrookCore
import BrookProtocol

/// DescribeQuorum: the metadata quorum (the `__cluster_metadata` log's partition 0) as its leader
/// sees it, asked of the leader through this broker's controller connection, as Kafka's broker
/// forwards it: the leader and its term (the leader epoch), the committed end of the log (the
/// high watermark), each voter's log end and when it last answered and last held the whole log,
/// and the brokers as observers (the metadata offset each applied, as its last heartbeat said).
/// The metadata log's offsets here are its entries' Raft indexes.
struct DescribeQuorumHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...2

    static let metadataTopic = "__cluster_metadata"

    func handle(_ request: DescribeQuorumRequest, version: Int16, context: RequestContext) -> Reply<DescribeQuorumResponse> {
        // Kafka answers only a request for exactly the metadata partition; anything else gets
        // UNKNOWN_TOPIC_OR_PARTITION on every partition it names.
        guard request.topics.count == 1, request.topics[0].topicName == Self.metadataTopic,
              request.topics[0].partitions.map(\.partitionIndex) == [0] else {
            return .now(Self.everyPartition(request, .unknownTopicOrPartition, message: "the metadata quorum is \(Self.metadataTopic) partition 0"))
        }
        let listener = context.broker.config.controllerListenerNames.first ?? "CONTROLLER"
        return .later(context.broker.cluster.describeQuorum(on: context.eventLoop).map { result in
            switch result {
            case .success(let quorum): return Self.response(quorum, listener: listener)
            case .failure(let error) where error is ClusterMembership.NotInCluster:
                // A broker without a metadata quorum (brook.single.node.quorum=false): nothing to
                // ask, and nothing to wait for either.
                return DescribeQuorumResponse(errorCode: ErrorCode.unsupportedVersion.rawValue,
                                              errorMessage: "this broker runs without a metadata quorum")
            case .failure(let error):
                return Self.everyPartition(request, .notLeaderOrFollower, message: "the quorum's leader did not answer: \(error)")
            }
        })
    }

    static func response(_ quorum: QuorumDescription, listener: String) -> DescribeQuorumResponse {
        func state(_ r: QuorumDescription.Replica) -> DescribeQuorumResponse.ReplicaState {
            DescribeQuorumResponse.ReplicaState(replicaId: r.id, replicaDirectoryId: .zero, logEndOffset: r.logEnd,
                                                lastFetchTimestamp: r.lastFetchMs, lastCaughtUpTimestamp: r.lastCaughtUpMs)
        }
        let partition = DescribeQuorumResponse.TopicData.PartitionData(
            partitionIndex: 0, errorCode: ErrorCode.none.rawValue, errorMessage: nil, leaderId: quorum.leader,
            leaderEpoch: LeaderEpoch(Int32(clamping: quorum.term)), highWatermark: quorum.highWatermark,
            currentVoters: quorum.voters.map(state), observers: quorum.observers.map(state))
        let nodes = quorum.endpoints.sorted { $0.key < $1.key }.compactMap { id, address -> DescribeQuorumResponse.Node? in
            guard let (host, port) = hostAndPort(address) else { return nil }
            return DescribeQuorumResponse.Node(nodeId: id, listeners: [.init(name: listener, host: host, port: port)])
        }
        return DescribeQuorumResponse(errorCode: 0, topics: [.init(topicName: metadataTopic, partitions: [partition])], nodes: nodes)
    }

    /// `host:port` or `[v6 address]:port`.
    static func hostAndPort(_ address: String) -> (String, UInt16)? {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else { return nil }
        var host = address[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return host.isEmpty ? nil : (String(host), port)
    }

    static func everyPartition(_ request: DescribeQuorumRequest, _ code: ErrorCode, message: String) -> DescribeQuorumResponse {
        let topics = request.topics.map { topic in
            DescribeQuorumResponse.TopicData(topicName: topic.topicName, partitions: topic.partitions.map {
                .init(partitionIndex: $0.partitionIndex, errorCode: code.rawValue, errorMessage: message)
            })
        }
        return DescribeQuorumResponse(errorCode: 0, topics: topics)
    }

    func refused(_ request: DescribeQuorumRequest, version: Int16, code: ErrorCode, message: String) -> DescribeQuorumResponse? {
        DescribeQuorumResponse(errorCode: code.rawValue, errorMessage: message)
    }
}
