import BrookCluster
import BrookCore
import BrookProtocol
import NIOCore

/// AlterPartitionReassignments (KIP-455): partitions move to new replicas, or a move is
/// cancelled (null replicas). The controller decides (ClusterController.reassign); the answer
/// comes once the start is committed, the move itself completes when the new replicas have
/// caught up (ListPartitionReassignments shows it running until then). A single node has no
/// other broker: INVALID_REPLICA_ASSIGNMENT unless the target is this node alone.
struct AlterPartitionReassignmentsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...1

    typealias TopicResponse = AlterPartitionReassignmentsResponse.ReassignableTopicResponse

    func handle(_ request: AlterPartitionReassignmentsRequest, version: Int16, context: RequestContext) -> Reply<AlterPartitionReassignmentsResponse> {
        let broker = context.broker
        let asked = request.topics.flatMap { t in t.partitions.map { ReassignmentRequest(topic: t.name, partition: $0.partitionIndex, replicas: $0.replicas) } }
        let allow = version >= 1 ? request.allowReplicationFactorChange : true
        guard broker.cluster.isCluster else {
            let node = broker.config.nodeID
            return .now(Self.response(asked.map { r in
                guard let topic = broker.topics.topic(r.topic), r.partition >= 0, Int(r.partition) < topic.partitions.count else {
                    return (r.topic, r.partition, .unknownTopicOrPartition, "The partition does not exist.")
                }
                guard let replicas = r.replicas else { return (r.topic, r.partition, .noReassignmentInProgress, nil) }
                return replicas == [node] ? (r.topic, r.partition, .none, nil)
                    : (r.topic, r.partition, .invalidReplicaAssignment, "A single node has only broker \(node).")
            }, allow: allow))
        }
        guard !asked.isEmpty else { return .now(Self.response([], allow: allow)) }
        // More replicas than a partition may have: refused here, before the quorum's wire.
        if asked.contains(where: { ($0.replicas?.count ?? 0) > ClusterController.replicasMax }) {
            return .now(Self.response(asked.map { r in
                (r.replicas?.count ?? 0) > ClusterController.replicasMax
                    ? (r.topic, r.partition, .invalidReplicaAssignment, "At most \(ClusterController.replicasMax) replicas.")
                    : (r.topic, r.partition, .requestTimedOut, "Not sent: another partition of the request was refused.")
            }, allow: allow))
        }
        return .later(broker.cluster.forward(.reassign(asked, allowReplicationFactorChange: allow), on: context.eventLoop).map { result in
            switch result {
            case .success(let answers):
                return Self.response(answers.map { ($0.name, Int32($0.partitions), $0.error, $0.message) }, allow: allow)
            case .failure(let error):
                return Self.response(asked.map { ($0.topic, $0.partition, .requestTimedOut, "The controller did not answer: \(error)") }, allow: allow)
            }
        })
    }

    static func response(_ answers: [(String, Int32, ErrorCode, String?)], allow: Bool) -> AlterPartitionReassignmentsResponse {
        var order: [String] = []
        var byTopic: [String: [TopicResponse.ReassignablePartitionResponse]] = [:]
        for (topic, partition, code, message) in answers {
            if byTopic[topic] == nil { order.append(topic) }
            byTopic[topic, default: []].append(.init(partitionIndex: partition, errorCode: code.rawValue, errorMessage: message))
        }
        return AlterPartitionReassignmentsResponse(throttleTimeMs: 0, allowReplicationFactorChange: allow, errorCode: 0,
                                                   responses: order.map { TopicResponse(name: $0, partitions: byTopic[$0]!) })
    }

    func refused(_ request: AlterPartitionReassignmentsRequest, version: Int16, code: ErrorCode, message: String) -> AlterPartitionReassignmentsResponse? {
        AlterPartitionReassignmentsResponse(errorCode: code.rawValue, errorMessage: message)
    }
}
