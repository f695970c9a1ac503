import BrookProtocol

/// DeleteGroups: only empty groups (NON_EMPTY_GROUP otherwise); their offsets go with them.
struct DeleteGroupsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...2

    func handle(_ request: DeleteGroupsRequest, version: Int16, context: RequestContext) -> Reply<DeleteGroupsResponse> {
        .now(DeleteGroupsResponse(results: request.groupsNames.map { id in
            DeleteGroupsResponse.DeletableGroupResult(groupId: id, errorCode: context.broker.groups.deleteGroup(id).rawValue)
        }))
    }
}
