import BrookCore
import BrookGroups
import BrookProtocol

/// OffsetCommit: checked against the committer's generation (classic) or member epoch
/// (KIP-848), written to `__consumer_offsets`, then answered (in a cluster, once the ISR has
/// the write).
struct OffsetCommitHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 2...9

    func handle(_ request: OffsetCommitRequest, version: Int16, context: RequestContext) -> Reply<OffsetCommitResponse> {
        // With an authorizer: READ on the group (else every partition GROUP_AUTHORIZATION_FAILED)
        // and on each topic (else that topic's TOPIC_AUTHORIZATION_FAILED, the rest committed).
        let authorization = context.authorization
        guard authorization.allows(.read, .group, request.groupId) else {
            return .now(Self.every(request.topics, .groupAuthorizationFailed))
        }
        let refusedTopics = request.topics.filter { !authorization.allows(.read, .topic, $0.name) }
        if !refusedTopics.isEmpty {
            var allowed = request
            allowed.topics = request.topics.filter { authorization.allows(.read, .topic, $0.name) }
            let refused = Self.every(refusedTopics, .topicAuthorizationFailed).topics
            guard !allowed.topics.isEmpty else { return .now(OffsetCommitResponse(topics: refused)) }
            return handle(allowed, version: version, context: context).map { answer in
                var answer = answer
                answer.topics += refused
                return answer
            }
        }
        // In a cluster the first group request has `__consumer_offsets` made (as FindCoordinator).
        return .once(FindCoordinatorHandler.groups(context.broker.config), context: context) { answer(request, version: version, context: context) }
    }

    static func every(_ topics: [OffsetCommitRequest.OffsetCommitRequestTopic], _ code: ErrorCode) -> OffsetCommitResponse {
        OffsetCommitResponse(topics: topics.map { topic in
            .init(name: topic.name, partitions: topic.partitions.map { .init(partitionIndex: $0.partitionIndex, errorCode: code.rawValue) })
        })
    }

    func answer(_ request: OffsetCommitRequest, version: Int16, context: RequestContext) -> Reply<OffsetCommitResponse> {
        let now = context.broker.clock.now()
        var offsets: [(TopicPartition, CommittedOffset)] = []
        // A partition of no topic here is answered UNKNOWN_TOPIC_OR_PARTITION, not committed,
        // as Kafka does (and the group's errors do not replace that answer).
        var unknown: Set<TopicPartition> = []
        for topic in request.topics {
            let count = context.broker.topics.topic(topic.name)?.partitions.count
            for p in topic.partitions {
                guard let count, p.partitionIndex >= 0, Int(p.partitionIndex) < count else {
                    unknown.insert(TopicPartition(topic.name, p.partitionIndex))
                    continue
                }
                offsets.append((TopicPartition(topic.name, p.partitionIndex),
                                CommittedOffset(offset: p.committedOffset, leaderEpoch: p.committedLeaderEpoch,
                                                metadata: p.committedMetadata ?? "", commitTimestamp: now)))
            }
        }
        if offsets.isEmpty && !unknown.isEmpty {
            return .now(OffsetCommitResponse(topics: request.topics.map { topic in
                .init(name: topic.name, partitions: topic.partitions.map {
                    .init(partitionIndex: $0.partitionIndex, errorCode: ErrorCode.unknownTopicOrPartition.rawValue)
                })
            }))
        }
        let (check, written) = context.broker.groups.commit(groupID: request.groupId, generation: request.generationIdOrMemberEpoch,
                                                            memberID: request.memberId, instanceID: request.groupInstanceId,
                                                            offsets: offsets)
        let topics = request.topics
        let missing = unknown
        return InternalWrite.reply(check, after: written, on: context.eventLoop,
                                   failed: { GroupCoordinator.CommitCheck(groupError: $0) }) { check in
            OffsetCommitResponse(topics: topics.map { topic in
                OffsetCommitResponse.OffsetCommitResponseTopic(name: topic.name, partitions: topic.partitions.map { p in
                    let key = TopicPartition(topic.name, p.partitionIndex)
                    let code = missing.contains(key) ? .unknownTopicOrPartition
                        : check.groupError != .none ? check.groupError : check.partitionErrors[key] ?? .none
                    return OffsetCommitResponse.OffsetCommitResponseTopic.OffsetCommitResponsePartition(
                        partitionIndex: p.partitionIndex, errorCode: code.rawValue)
                })
            })
        }
    }
}
