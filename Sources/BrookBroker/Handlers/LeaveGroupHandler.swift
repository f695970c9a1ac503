import BrookProtocol

/// LeaveGroup: one member (v0-2) or a batch of members, static ones by instance id (v3+).
struct LeaveGroupHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...5

    func handle(_ request: LeaveGroupRequest, version: Int16, context: RequestContext) -> Reply<LeaveGroupResponse> {
        guard context.authorization.allows(.read, .group, request.groupId) else {
            return .now(LeaveGroupResponse(errorCode: ErrorCode.groupAuthorizationFailed.rawValue))
        }
        let members: [(memberID: String, instanceID: String?)] = version >= 3
            ? request.members.map { ($0.memberId, $0.groupInstanceId) }
            : [(request.memberId, nil)]
        let (groupError, codes) = context.broker.groups.leave(groupID: request.groupId, members: members)
        if version < 3 {
            return .now(LeaveGroupResponse(errorCode: (groupError != .none ? groupError : codes.first ?? .none).rawValue))
        }
        return .now(LeaveGroupResponse(errorCode: groupError.rawValue, members: zip(request.members, codes).map { m, code in
            LeaveGroupResponse.MemberResponse(memberId: m.memberId, groupInstanceId: m.groupInstanceId, errorCode: code.rawValue)
        }))
    }
}
