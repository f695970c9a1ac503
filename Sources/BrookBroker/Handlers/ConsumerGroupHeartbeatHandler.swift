import BrookCore
import BrookGroups
import BrookProtocol

/// ConsumerGroupHeartbeat (KIP-848): join, stay, leave, and receive the assignment the broker
/// computed, one heartbeat at a time.
struct ConsumerGroupHeartbeatHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...1

    func handle(_ request: ConsumerGroupHeartbeatRequest, version: Int16, context: RequestContext) -> Reply<ConsumerGroupHeartbeatResponse> {
        // With an authorizer: READ on the group, DESCRIBE on the topics it subscribes to.
        let authorization = context.authorization
        if !authorization.allows(.read, .group, request.groupId) {
            return .now(ConsumerGroupHeartbeatResponse(errorCode: ErrorCode.groupAuthorizationFailed.rawValue))
        }
        if let topics = request.subscribedTopicNames, topics.contains(where: { !authorization.mayDescribeTopic($0) }) {
            return .now(ConsumerGroupHeartbeatResponse(errorCode: ErrorCode.topicAuthorizationFailed.rawValue,
                                                       errorMessage: "DESCRIBE on every subscribed topic is needed."))
        }
        // In a cluster the first group request has `__consumer_offsets` made (as FindCoordinator).
        return .once(FindCoordinatorHandler.groups(context.broker.config), context: context) { answer(request, version: version, context: context) }
    }

    func answer(_ request: ConsumerGroupHeartbeatRequest, version: Int16, context: RequestContext) -> Reply<ConsumerGroupHeartbeatResponse> {
        if version >= 1 && request.memberId.isEmpty {
            // From v1 the client makes its member id (KIP-1082).
            return .now(ConsumerGroupHeartbeatResponse(errorCode: ErrorCode.invalidRequest.rawValue,
                                                       errorMessage: "MemberId can't be empty."))
        }
        if let regex = request.subscribedTopicRegex, !regex.isEmpty {
            return .now(ConsumerGroupHeartbeatResponse(errorCode: ErrorCode.invalidRequest.rawValue,
                                                       errorMessage: "Regular expression subscriptions are not supported yet."))
        }
        var owned: BrookGroups.Assignment?
        if let list = request.topicPartitions {
            var a: BrookGroups.Assignment = [:]
            for t in list { a[t.topicId, default: []].formUnion(t.partitions) }
            owned = a
        }
        let beat = BrookGroups.ConsumerHeartbeatRequest(
            groupID: request.groupId, memberID: request.memberId, memberEpoch: request.memberEpoch,
            instanceID: request.instanceId, rackID: request.rackId, rebalanceTimeoutMs: request.rebalanceTimeoutMs,
            subscribedTopicNames: request.subscribedTopicNames, serverAssignor: request.serverAssignor,
            ownedPartitions: owned, clientID: context.header.clientID ?? "", clientHost: context.clientHost)
        let r = context.broker.groups.consumerHeartbeat(beat, overrides: ConfigResource.groupOverrides(of: request.groupId, broker: context.broker))
        var response = ConsumerGroupHeartbeatResponse(errorCode: r.error.rawValue, errorMessage: r.message,
                                                      memberId: r.error == .none ? r.memberID : nil,
                                                      memberEpoch: r.memberEpoch, heartbeatIntervalMs: r.heartbeatIntervalMs)
        if let assignment = r.assignment {
            response.assignment = ConsumerGroupHeartbeatResponse.Assignment(topicPartitions: assignment.sorted { $0.key.description < $1.key.description }.map {
                ConsumerGroupHeartbeatResponse.TopicPartitions(topicId: $0.key, partitions: $0.value.sorted())
            })
        }
        return .now(response)
    }
}
