import BrookProtocol

/// AlterConfigs: replaces a topic's whole set of configs (what is not given returns to default).
/// In a cluster the controller sets them (ClusterAdmin.setConfigs).
struct AlterConfigsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...2

    func handle(_ request: AlterConfigsRequest, version: Int16, context: RequestContext) -> Reply<AlterConfigsResponse> {
        if context.broker.cluster.isCluster {
            var refused: [Int: (ErrorCode, String?)] = [:]
            var changes: [(index: Int, topic: String, overrides: [String: String])] = []
            for (index, resource) in request.resources.enumerated() {
                guard resource.resourceType == ConfigResource.topic else {
                    refused[index] = (ConfigResource.brokerAlterRefused.code, ConfigResource.brokerAlterRefused.message)
                    continue
                }
                var overrides: [String: String] = [:]
                for config in resource.configs { overrides[config.name] = config.value }
                changes.append((index, resource.resourceName, overrides))
            }
            let resources = request.resources
            return .later(ClusterAdmin.setConfigs(changes, refused: refused, count: resources.count, validateOnly: request.validateOnly,
                                                  context: context).map { answers in
                AlterConfigsResponse(throttleTimeMs: 0, responses: zip(resources, answers).map { resource, answer in
                    .init(errorCode: answer.0.rawValue, errorMessage: answer.1, resourceType: resource.resourceType,
                          resourceName: resource.resourceName)
                })
            })
        }
        let responses = request.resources.map { resource in
            var response = AlterConfigsResponse.AlterConfigsResourceResponse(
                errorCode: 0, errorMessage: nil, resourceType: resource.resourceType, resourceName: resource.resourceName)
            do throws(TopicError) {
                guard resource.resourceType == ConfigResource.topic else { throw ConfigResource.brokerAlterRefused }
                var overrides: [String: String] = [:]
                for config in resource.configs { overrides[config.name] = config.value }
                try context.broker.topics.setConfigs(name: resource.resourceName, overrides: overrides, validateOnly: request.validateOnly)
            } catch {
                response.errorCode = error.code.rawValue
                response.errorMessage = error.message
            }
            return response
        }
        return .now(AlterConfigsResponse(throttleTimeMs: 0, responses: responses))
    }
}
