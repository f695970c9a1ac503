import BrookCluster
import BrookProtocol

/// DeleteAcls: ALTER on the cluster; each filter's matching entries (from this broker's image)
/// are removed by the controller in one metadata entry, and listed in the answer. Without an
/// authorizer: SECURITY_DISABLED.
struct DeleteAclsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 1...3
    typealias FilterResult = DeleteAclsResponse.DeleteAclsFilterResult

    func handle(_ request: DeleteAclsRequest, version: Int16, context: RequestContext) -> Reply<DeleteAclsResponse> {
        func everyone(_ code: ErrorCode, _ message: String) -> Reply<DeleteAclsResponse> {
            .now(DeleteAclsResponse(filterResults: request.filters.map { _ in FilterResult(errorCode: code.rawValue, errorMessage: message) }))
        }
        let broker = context.broker
        guard broker.config.security.authorizer != nil else { return everyone(.securityDisabled, "No Authorizer is configured.") }
        guard context.authorization.allowsCluster(.alter) else { return everyone(.clusterAuthorizationFailed, "ALTER on the cluster is needed.") }
        guard broker.cluster.isCluster, let image = broker.cluster.current?.image else {
            return everyone(.unsupportedVersion, "This node runs without a metadata quorum: it keeps no access control entries.")
        }
        var results: [FilterResult] = []
        var ids: [KafkaUUID] = []
        for f in request.filters {
            guard let filter = AclFilter(resourceType: f.resourceTypeFilter, name: f.resourceNameFilter, patternType: f.patternTypeFilter,
                                         principal: f.principalFilter, host: f.hostFilter, operation: f.operation, permission: f.permissionType) else {
                results.append(FilterResult(errorCode: ErrorCode.invalidRequest.rawValue,
                                            errorMessage: "The filter names an unknown resource type, pattern type, operation or permission type."))
                continue
            }
            let matched = image.acls.matching(filter)
            ids += matched.map(\.0)
            results.append(FilterResult(matchingAcls: matched.map { _, b in
                .init(resourceType: b.resourceType.rawValue, resourceName: b.name, patternType: b.patternType.rawValue, principal: b.principal,
                      host: b.host, operation: b.operation.rawValue, permissionType: b.permission.rawValue)
            }))
        }
        guard !ids.isEmpty else { return .now(DeleteAclsResponse(filterResults: results)) }
        let answered = results
        return .later(broker.cluster.forward(.deleteAcls(ids), on: context.eventLoop).map { result in
            switch result {
            case .success(let answers) where answers.first?.error == ErrorCode.none:
                return DeleteAclsResponse(filterResults: answered)
            case .success(let answers):
                let message = answers.first?.message ?? "The controller refused."
                return DeleteAclsResponse(filterResults: answered.map { $0.matchingAcls.isEmpty ? $0 : FilterResult(errorCode: ErrorCode.unknownServerError.rawValue, errorMessage: message) })
            case .failure(let error):
                return DeleteAclsResponse(filterResults: answered.map {
                    $0.matchingAcls.isEmpty ? $0 : FilterResult(errorCode: ErrorCode.requestTimedOut.rawValue, errorMessage: "The controller did not answer: \(error)")
                })
            }
        })
    }
}
