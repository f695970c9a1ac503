import BrookProtocol

/// DeleteGroups: only empty groups (NON_EMPTY_GROUP otherwise); their offsets go with them.
struct DeleteGroupsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...2

    func handle(_ request: DeleteGroupsRequest, version: Int16, context: RequestContext) -> Reply<DeleteGroupsResponse> {
        // With an authorizer: DELETE on each group.
        let authorization = context.authorization
        return .now(DeleteGroupsResponse(results: request.groupsNames.map { id in
            guard authorization.allows(.delete, .group, id) else {
                return DeleteGroupsResponse.DeletableGroupResult(groupId: id, errorCode: ErrorCode.groupAuthorizationFailed.rawValue)
            }
            return DeleteGroupsResponse.DeletableGroupResult(groupId: id, errorCode: context.broker.groups.deleteGroup(id).rawValue)
        }))
    }
}
