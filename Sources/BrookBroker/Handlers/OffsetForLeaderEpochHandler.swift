import BrookCore
import BrookProtocol

/// OffsetForLeaderEpoch: where a leader epoch ends, so that a consumer (or follower) can detect
/// log truncation: from the leader-epoch cache in a cluster; a single node has one epoch, so
/// every epoch up to it ends at the log end.
struct OffsetForLeaderEpochHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 2...4

    func handle(_ request: OffsetForLeaderEpochRequest, version: Int16, context: RequestContext) -> Reply<OffsetForLeaderEpochResponse> {
        // With an authorizer: DESCRIBE on the topic for consumers, CLUSTER_ACTION for replicas.
        let authorization = context.authorization
        let replicaAllowed = request.replicaId.value < 0 || authorization.allowsCluster(.clusterAction)
        let topics = request.topics.map { topic in
            let allowed = replicaAllowed && (request.replicaId.value >= 0 || authorization.mayDescribeTopic(topic.topic))
            return OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult(topic: topic.topic, partitions: topic.partitions.map { p in
                var result = OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult.EpochEndOffset(
                    errorCode: 0, partition: p.partition, leaderEpoch: LeaderEpoch(-1), endOffset: Offset(-1))
                guard allowed else {
                    result.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                    return result
                }
                let found = context.broker.topics.lookup(topic.topic, p.partition)
                guard case .hosted(let partition) = found else {
                    result.errorCode = found.absentCode.rawValue
                    return result
                }
                // The leadership and the current epoch are checked with the answer, in one step.
                let (code, end) = partition.lastOffset(forEpoch: p.leaderEpoch, current: p.currentLeaderEpoch)
                result.errorCode = code.rawValue
                if let end {
                    result.leaderEpoch = end.epoch
                    result.endOffset = end.endOffset
                }
                return result
            })
        }
        return .now(OffsetForLeaderEpochResponse(throttleTimeMs: 0, topics: topics))
    }
}
