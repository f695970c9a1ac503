import BrookGroups
import BrookProtocol
import NIOCore

/// JoinGroup: held until the group's join phase completes (BrookGroups' ClassicGroup).
struct JoinGroupHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 2...9

    func handle(_ request: JoinGroupRequest, version: Int16, context: RequestContext) -> Reply<JoinGroupResponse> {
        guard context.authorization.allows(.read, .group, request.groupId) else {
            return .now(JoinGroupResponse(errorCode: ErrorCode.groupAuthorizationFailed.rawValue, memberId: request.memberId))
        }
        // In a cluster the first group request has `__consumer_offsets` made (as FindCoordinator).
        return .once(FindCoordinatorHandler.groups(context.broker.config), context: context) { answer(request, version: version, context: context) }
    }

    func answer(_ request: JoinGroupRequest, version: Int16, context: RequestContext) -> Reply<JoinGroupResponse> {
        let join = JoinRequest(
            groupID: request.groupId, memberID: request.memberId, instanceID: request.groupInstanceId,
            protocolType: request.protocolType,
            protocols: request.protocols.map { GroupProtocol(name: $0.name, metadata: Array(buffer: $0.metadata)) },
            // v0 had no rebalance timeout: the session timeout stood for both.
            sessionTimeoutMs: request.sessionTimeoutMs,
            rebalanceTimeoutMs: request.rebalanceTimeoutMs < 0 ? request.sessionTimeoutMs : request.rebalanceTimeoutMs,
            requireKnownMemberID: version >= 4, supportsSkipAssignment: version >= 9,
            clientID: context.header.clientID ?? "", clientHost: context.clientHost)
        let future = context.broker.groups.join(join, on: context.eventLoop, connection: context.connection).map { r in
            JoinGroupResponse(
                errorCode: r.error.rawValue, generationId: r.generation, protocolType: r.protocolType,
                // Before v7 the protocol name is not nullable.
                protocolName: r.protocolName ?? (version >= 7 ? nil : ""), leader: r.leader,
                skipAssignment: r.skipAssignment, memberId: r.memberID,
                members: r.members.map { m in
                    JoinGroupResponse.JoinGroupResponseMember(memberId: m.memberID, groupInstanceId: m.instanceID,
                                                              metadata: ByteBuffer(bytes: m.metadata))
                })
        }
        return .later(future)
    }
}
