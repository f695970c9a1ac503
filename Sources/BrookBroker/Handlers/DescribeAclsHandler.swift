import BrookCluster
import BrookProtocol

/// DescribeAcls: DESCRIBE on the cluster; the entries the filter matches, grouped by resource,
/// from this broker's metadata image. Without an authorizer: SECURITY_DISABLED.
struct DescribeAclsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 1...3

    func handle(_ request: DescribeAclsRequest, version: Int16, context: RequestContext) -> Reply<DescribeAclsResponse> {
        func refuse(_ code: ErrorCode, _ message: String) -> Reply<DescribeAclsResponse> {
            .now(DescribeAclsResponse(errorCode: code.rawValue, errorMessage: message))
        }
        guard context.broker.config.security.authorizer != nil else { return refuse(.securityDisabled, "No Authorizer is configured.") }
        guard context.authorization.allowsCluster(.describe) else { return refuse(.clusterAuthorizationFailed, "DESCRIBE on the cluster is needed.") }
        guard let filter = AclFilter(resourceType: request.resourceTypeFilter, name: request.resourceNameFilter, patternType: request.patternTypeFilter,
                                     principal: request.principalFilter, host: request.hostFilter, operation: request.operation,
                                     permission: request.permissionType) else {
            return refuse(.invalidRequest, "The filter names an unknown resource type, pattern type, operation or permission type.")
        }
        let acls = context.broker.cluster.current?.image.acls ?? AclTable()
        return .now(DescribeAclsResponse(resources: Self.grouped(acls.matching(filter).map(\.1))))
    }

    static func grouped(_ bindings: [AclBinding]) -> [DescribeAclsResponse.DescribeAclsResource] {
        struct Resource: Hashable { var type: Int8; var name: String; var pattern: Int8 }
        var byResource: [Resource: [DescribeAclsResponse.DescribeAclsResource.AclDescription]] = [:]
        for b in bindings {
            byResource[Resource(type: b.resourceType.rawValue, name: b.name, pattern: b.patternType.rawValue), default: []]
                .append(.init(principal: b.principal, host: b.host, operation: b.operation.rawValue, permissionType: b.permission.rawValue))
        }
        return byResource.sorted { ($0.key.type, $0.key.name, $0.key.pattern) < ($1.key.type, $1.key.name, $1.key.pattern) }.map {
            .init(resourceType: $0.key.type, resourceName: $0.key.name, patternType: $0.key.pattern, acls: $0.value)
        }
    }
}
