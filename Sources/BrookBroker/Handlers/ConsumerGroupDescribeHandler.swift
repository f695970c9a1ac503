import BrookCore
import BrookGroups
import BrookProtocol

/// ConsumerGroupDescribe (KIP-848 groups): members, their epochs, current and target assignments.
struct ConsumerGroupDescribeHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...1

    typealias Described = ConsumerGroupDescribeResponse.DescribedGroup

    func handle(_ request: ConsumerGroupDescribeRequest, version: Int16, context: RequestContext) -> Reply<ConsumerGroupDescribeResponse> {
        let topics = context.broker.topics
        func assignment(_ a: BrookGroups.Assignment) -> ConsumerGroupDescribeResponse.Assignment {
            ConsumerGroupDescribeResponse.Assignment(topicPartitions: a.compactMap { id, parts in
                guard let name = topics.topic(id: id)?.name else { return nil }
                return ConsumerGroupDescribeResponse.TopicPartitions(topicId: id, topicName: name, partitions: parts.sorted())
            }.sorted { $0.topicName < $1.topicName })
        }
        let config = context.broker.groups.config
        let service = context.broker.groups
        let elsewhere = Dictionary(request.groupIds.compactMap { id in service.notCoordinating(id).map { (id, $0) } }) { a, _ in a }
        let groups = service.read { c in
            request.groupIds.map { id -> Described in
                if let code = elsewhere[id] { return Described(errorCode: code.rawValue, groupId: id) }
                guard case .consumer(let g)? = c.group(id)?.kind else {
                    return Described(errorCode: ErrorCode.groupIDNotFound.rawValue,
                                     errorMessage: c.group(id) == nil ? "Group \(id) not found." : "Group \(id) is not a consumer group.",
                                     groupId: id)
                }
                return Described(
                    groupId: id, groupState: g.state.lowercased(), groupEpoch: g.groupEpoch, assignmentEpoch: g.assignmentEpoch,
                    assignorName: g.assignorName(config: config),
                    members: g.members.values.sorted { $0.memberID < $1.memberID }.map { m in
                        Described.Member(memberId: m.memberID, instanceId: m.instanceID, rackId: m.rackID, memberEpoch: m.memberEpoch,
                                         clientId: m.clientID, clientHost: m.clientHost, subscribedTopicNames: m.subscribedTopics,
                                         assignment: assignment(m.assigned), targetAssignment: assignment(g.target[m.memberID] ?? [:]),
                                         memberType: 1)
                    })
            }
        }
        // With an authorizer: DESCRIBE on each group, else it is answered GROUP_AUTHORIZATION_FAILED.
        let authorization = context.authorization
        let allowed = groups.map { group in
            authorization.allows(.describe, .group, group.groupId) ? group
                : Described(errorCode: ErrorCode.groupAuthorizationFailed.rawValue, groupId: group.groupId)
        }
        // Asked for: what a client may do on each group found (all of it, with no authorizer).
        guard request.includeAuthorizedOperations else { return .now(ConsumerGroupDescribeResponse(groups: allowed)) }
        return .now(ConsumerGroupDescribeResponse(groups: allowed.map { group in
            var group = group
            if group.errorCode == 0 { group.authorizedOperations = AuthorizedOperations.group(group.groupId, authorization) }
            return group
        }))
    }
}
