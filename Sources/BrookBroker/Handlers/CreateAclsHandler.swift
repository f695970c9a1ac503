import BrookCluster
import BrookProtocol

/// CreateAcls: ALTER on the cluster; each entry checked (INVALID_REQUEST with the reason), then
/// the controller writes the new ones in one metadata entry (an entry equal to one that exists
/// is not added twice). Without an authorizer: SECURITY_DISABLED, as Kafka.
struct CreateAclsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 1...3
    typealias Result = CreateAclsResponse.AclCreationResult

    func handle(_ request: CreateAclsRequest, version: Int16, context: RequestContext) -> Reply<CreateAclsResponse> {
        func everyone(_ code: ErrorCode, _ message: String) -> Reply<CreateAclsResponse> {
            .now(CreateAclsResponse(results: request.creations.map { _ in Result(errorCode: code.rawValue, errorMessage: message) }))
        }
        let broker = context.broker
        guard broker.config.security.authorizer != nil else { return everyone(.securityDisabled, "No Authorizer is configured.") }
        guard context.authorization.allowsCluster(.alter) else { return everyone(.clusterAuthorizationFailed, "ALTER on the cluster is needed.") }
        guard broker.cluster.isCluster, broker.cluster.current != nil else {
            return everyone(.unsupportedVersion, "This node runs without a metadata quorum: it keeps no access control entries.")
        }
        guard request.creations.count <= AclTable.entriesMax else { return everyone(.invalidRequest, "Too many entries in one request.") }
        var refused: [Int: String] = [:]
        var bindings: [AclBinding] = []
        var forwarded: [Int] = []
        for (index, c) in request.creations.enumerated() {
            guard let binding = AclBinding(resourceType: c.resourceType, name: c.resourceName, patternType: version >= 1 ? c.resourcePatternType : 3,
                                           principal: c.principal, host: c.host, operation: c.operation, permission: c.permissionType) else {
                refused[index] = "Unknown resource type, pattern type, operation or permission type."
                continue
            }
            if let problem = binding.problem {
                refused[index] = problem
                continue
            }
            bindings.append(binding)
            forwarded.append(index)
        }
        let refusedHere = refused
        let indexes = forwarded
        let total = request.creations.count
        @Sendable func answer(_ answers: [TopicAnswer]) -> CreateAclsResponse {
            var results = (0..<total).map { refusedHere[$0].map { Result(errorCode: ErrorCode.invalidRequest.rawValue, errorMessage: $0) } }
            for (position, index) in indexes.enumerated() {
                let a = position < answers.count ? answers[position] : TopicAnswer(name: "", error: .unknownServerError, message: "The controller gave no answer.")
                results[index] = Result(errorCode: a.error.rawValue, errorMessage: a.error == .none ? nil : a.message)
            }
            return CreateAclsResponse(results: results.map { $0 ?? Result(errorCode: ErrorCode.unknownServerError.rawValue) })
        }
        guard !bindings.isEmpty else { return .now(answer([])) }
        let sent = forwarded
        return .later(broker.cluster.forward(.createAcls(bindings), on: context.eventLoop).map { result in
            switch result {
            case .success(let answers): return answer(answers)
            case .failure(let error):
                return answer(sent.map { _ in TopicAnswer(name: "", error: .requestTimedOut, message: "The controller did not answer: \(error)") })
            }
        })
    }
}
