import BrookGroups
import BrookProtocol
import NIOCore

/// DescribeGroups (classic groups). An unknown group is "Dead" (GROUP_ID_NOT_FOUND from v6);
/// a KIP-848 group is described by ConsumerGroupDescribe instead.
struct DescribeGroupsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...6

    func handle(_ request: DescribeGroupsRequest, version: Int16, context: RequestContext) -> Reply<DescribeGroupsResponse> {
        let service = context.broker.groups
        let elsewhere = Dictionary(request.groups.compactMap { id in service.notCoordinating(id).map { (id, $0) } }) { a, _ in a }
        let described = service.read { c in
            request.groups.map { id -> DescribeGroupsResponse.DescribedGroup in
                var out = DescribeGroupsResponse.DescribedGroup(groupId: id, groupState: ClassicState.dead.rawValue)
                if let code = elsewhere[id] {
                    out.errorCode = code.rawValue
                    out.groupState = ""
                    return out
                }
                switch c.group(id)?.kind {
                case nil:
                    if version >= 6 {
                        out.errorCode = ErrorCode.groupIDNotFound.rawValue
                        out.errorMessage = "Group \(id) not found."
                    }
                case .consumer?:
                    out.errorCode = ErrorCode.groupIDNotFound.rawValue
                    out.errorMessage = "Group \(id) is not a classic group."
                case .classic(let g)?:
                    out.groupState = g.state.rawValue
                    out.protocolType = g.protocolType ?? ""
                    out.protocolData = g.state == .stable || g.state == .completingRebalance ? g.protocolName ?? "" : ""
                    out.members = g.members.map { m in
                        DescribeGroupsResponse.DescribedGroup.DescribedGroupMember(
                            memberId: m.memberID, groupInstanceId: m.instanceID, clientId: m.clientID, clientHost: m.clientHost,
                            memberMetadata: ByteBuffer(bytes: g.state == .stable ? m.protocols.first { $0.name == g.protocolName }?.metadata ?? [] : []),
                            memberAssignment: ByteBuffer(bytes: g.state == .stable ? m.assignment : []))
                    }
                }
                return out
            }
        }
        // With an authorizer: DESCRIBE on each group, else it is answered GROUP_AUTHORIZATION_FAILED.
        let authorization = context.authorization
        let allowed = described.map { group in
            authorization.allows(.describe, .group, group.groupId) ? group
                : DescribeGroupsResponse.DescribedGroup(errorCode: ErrorCode.groupAuthorizationFailed.rawValue, groupId: group.groupId)
        }
        // Asked for (v3+): what a client may do on each group found (all of it, with no authorizer).
        guard request.includeAuthorizedOperations else { return .now(DescribeGroupsResponse(groups: allowed)) }
        return .now(DescribeGroupsResponse(groups: allowed.map { group in
            var group = group
            if group.errorCode == 0 { group.authorizedOperations = AuthorizedOperations.group(group.groupId, authorization) }
            return group
        }))
    }
}
