import BrookProtocol

/// ListGroups, filtered by state (v4+, case-insensitive as Kafka) and type (v5+).
struct ListGroupsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...5

    func handle(_ request: ListGroupsRequest, version: Int16, context: RequestContext) -> Reply<ListGroupsResponse> {
        let states = Set(request.statesFilter.map { $0.lowercased() })
        let types = Set(request.typesFilter.map { $0.lowercased() })
        let listed = context.broker.groups.read { c in
            c.groups.keys.sorted().compactMap { id -> ListGroupsResponse.ListedGroup? in
                let g = c.groups[id]!
                if !states.isEmpty && !states.contains(g.stateName.lowercased()) { return nil }
                if !types.isEmpty && !types.contains(g.typeName) { return nil }
                return ListGroupsResponse.ListedGroup(groupId: id, protocolType: g.protocolType, groupState: g.stateName,
                                                      groupType: g.typeName)
            }
        }
        // With an authorizer: every group with DESCRIBE on the cluster, else those it may describe.
        let authorization = context.authorization
        guard authorization.enabled, !authorization.allowsCluster(.describe) else { return .now(ListGroupsResponse(groups: listed)) }
        return .now(ListGroupsResponse(groups: listed.filter { authorization.allows(.describe, .group, $0.groupId) }))
    }
}
