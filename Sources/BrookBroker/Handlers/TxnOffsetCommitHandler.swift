import BrookCore
import BrookGroups
import BrookProtocol

/// TxnOffsetCommit: offsets committed inside a transaction (`send_offsets_to_transaction`),
/// which take effect with its commit marker and vanish with its abort. From v3 the consumer's
/// member and generation come along and are checked (KIP-447: ILLEGAL_GENERATION,
/// UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID), so a member a rebalance replaced cannot commit.
struct TxnOffsetCommitHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...5

    func handle(_ request: TxnOffsetCommitRequest, version: Int16, context: RequestContext) -> Reply<TxnOffsetCommitResponse> {
        // With an authorizer: WRITE on the transactional id, READ on the group and on every topic.
        let authorization = context.authorization
        let refusal: ErrorCode? = !authorization.allows(.write, .transactionalID, request.transactionalId) ? .transactionalIDAuthorizationFailed
            : !authorization.allows(.read, .group, request.groupId) ? .groupAuthorizationFailed
            : request.topics.contains(where: { !authorization.allows(.read, .topic, $0.name) }) ? .topicAuthorizationFailed : nil
        if let refusal {
            return .now(TxnOffsetCommitResponse(throttleTimeMs: 0, topics: request.topics.map { topic in
                let code = refusal == .topicAuthorizationFailed && authorization.allows(.read, .topic, topic.name) ? ErrorCode.operationNotAttempted : refusal
                return .init(name: topic.name, partitions: topic.partitions.map { .init(partitionIndex: $0.partitionIndex, errorCode: code.rawValue) })
            }))
        }
        let now = context.broker.clock.now()
        var offsets: [(TopicPartition, CommittedOffset)] = []
        for topic in request.topics {
            for p in topic.partitions {
                offsets.append((TopicPartition(topic.name, p.partitionIndex),
                                CommittedOffset(offset: p.committedOffset, leaderEpoch: p.committedLeaderEpoch,
                                                metadata: p.committedMetadata ?? "", commitTimestamp: now)))
            }
        }
        let (codes, written) = context.broker.transactions.commitOffsets(
            transactionalID: request.transactionalId, groupID: request.groupId, producerID: request.producerId,
            epoch: request.producerEpoch,
            member: .init(generation: request.generationId, memberID: request.memberId, instanceID: request.groupInstanceId),
            offsets: offsets)
        let topics = request.topics
        // In a cluster the answer waits for the ISR to have the offsets (as OffsetCommit).
        return InternalWrite.reply(codes, after: written, on: context.eventLoop, failed: { code in codes.mapValues { _ in code } }) { codes in
            TxnOffsetCommitResponse(throttleTimeMs: 0, topics: topics.map { topic in
                .init(name: topic.name, partitions: topic.partitions.map { p in
                    let code = codes[TopicPartition(topic.name, p.partitionIndex)] ?? .none
                    return .init(partitionIndex: p.partitionIndex, errorCode: TxnErrors.fenced(code, version: version, since: 3).rawValue)
                })
            })
        }
    }
}
