import BrookGroups
import BrookProtocol
import NIOCore

/// SyncGroup: the leader hands in the assignment; everyone's answer waits for it.
struct SyncGroupHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...5

    func handle(_ request: SyncGroupRequest, version: Int16, context: RequestContext) -> Reply<SyncGroupResponse> {
        guard context.authorization.allows(.read, .group, request.groupId) else {
            return .now(SyncGroupResponse(errorCode: ErrorCode.groupAuthorizationFailed.rawValue))
        }
        var assignments: [String: [UInt8]] = [:]
        for a in request.assignments { assignments[a.memberId] = Array(buffer: a.assignment) }
        let sync = SyncRequest(groupID: request.groupId, generation: request.generationId, memberID: request.memberId,
                               instanceID: request.groupInstanceId, protocolType: request.protocolType,
                               protocolName: request.protocolName, assignments: assignments)
        let future = context.broker.groups.sync(sync, on: context.eventLoop, connection: context.connection).map { r in
            SyncGroupResponse(errorCode: r.error.rawValue, protocolType: r.protocolType, protocolName: r.protocolName,
                              assignment: ByteBuffer(bytes: r.assignment))
        }
        return .later(future)
    }
}
