import BrookProtocol

/// Heartbeat: keeps a classic member's session; tells it when a rebalance has begun.
struct HeartbeatHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...4

    func handle(_ request: HeartbeatRequest, version: Int16, context: RequestContext) -> Reply<HeartbeatResponse> {
        guard context.authorization.allows(.read, .group, request.groupId) else {
            return .now(HeartbeatResponse(errorCode: ErrorCode.groupAuthorizationFailed.rawValue))
        }
        let code = context.broker.groups.heartbeat(groupID: request.groupId, memberID: request.memberId,
                                                   instanceID: request.groupInstanceId, generation: request.generationId)
        return .now(HeartbeatResponse(errorCode: code.rawValue))
    }
}
