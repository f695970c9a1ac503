import BrookCore
import BrookGroups
import BrookProtocol

/// OffsetDelete: a group's committed offsets for topics it no longer subscribes to.
struct OffsetDeleteHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...0

    func handle(_ request: OffsetDeleteRequest, version: Int16, context: RequestContext) -> Reply<OffsetDeleteResponse> {
        // With an authorizer: DELETE on the group, READ on each topic (a refused topic is answered
        // TOPIC_AUTHORIZATION_FAILED and its offsets stay).
        let authorization = context.authorization
        guard authorization.allows(.delete, .group, request.groupId) else {
            return .now(OffsetDeleteResponse(errorCode: ErrorCode.groupAuthorizationFailed.rawValue))
        }
        let refusedTopics = Set(request.topics.map(\.name).filter { !authorization.allows(.read, .topic, $0) })
        let partitions = request.topics.filter { !refusedTopics.contains($0.name) }
            .flatMap { t in t.partitions.map { TopicPartition(t.name, $0.partitionIndex) } }
        let (code, errors) = context.broker.groups.deleteOffsets(groupID: request.groupId, partitions: partitions)
        guard code == .none else { return .now(OffsetDeleteResponse(errorCode: code.rawValue)) }
        return .now(OffsetDeleteResponse(topics: request.topics.map { t in
            OffsetDeleteResponse.OffsetDeleteResponseTopic(name: t.name, partitions: t.partitions.map { p in
                OffsetDeleteResponse.OffsetDeleteResponseTopic.OffsetDeleteResponsePartition(
                    partitionIndex: p.partitionIndex,
                    errorCode: (refusedTopics.contains(t.name) ? .topicAuthorizationFailed : errors[TopicPartition(t.name, p.partitionIndex)] ?? .none).rawValue)
            })
        }))
    }
}
