import BrookGroups
import BrookProtocol

/// AlterConfigs: replaces a topic's whole set of configs (what is not given returns to default),
/// or in a cluster a broker's dynamic configs or a consumer group's. In a cluster the controller sets them
/// (ClusterAdmin.setConfigs).
struct AlterConfigsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...2

    func handle(_ request: AlterConfigsRequest, version: Int16, context: RequestContext) -> Reply<AlterConfigsResponse> {
        if context.broker.cluster.isCluster {
            var refused: [Int: (ErrorCode, String?)] = [:]
            var changes: [ClusterAdmin.ConfigChange] = []
            // With an authorizer: ALTER_CONFIGS on the topic, the group, or the cluster for the rest.
            let authorization = context.authorization
            for (index, resource) in request.resources.enumerated() {
                do throws(TopicError) {
                    try authorization.checkAlterConfigs(resource.resourceType, resource.resourceName)
                    var overrides: [String: String] = [:]
                    switch resource.resourceType {
                    case ConfigResource.topic:
                        for config in resource.configs { overrides[config.name] = config.value }
                        changes.append(.init(index: index, target: .topic(resource.resourceName), configs: overrides))
                    case ConfigResource.broker:
                        // The broker's whole set of dynamic configs.
                        try DynamicBrokerConfigs.checkResource(resource.resourceName)
                        for config in resource.configs {
                            try DynamicBrokerConfigs.check(config.name, config.value)
                            overrides[config.name] = config.value?.trimmed
                        }
                        changes.append(.init(index: index, target: .broker(resource.resourceName), configs: overrides))
                    case ConfigResource.group:
                        // The group's whole set of configs.
                        try ConfigResource.checkGroupName(resource.resourceName)
                        for config in resource.configs {
                            guard GroupConfigs.names.contains(config.name) else {
                                throw TopicError(.invalidConfig, "Unknown group config name: \(config.name)")
                            }
                            guard let value = config.value else { throw TopicError(.invalidRequest, "Null value not supported for: \(config.name)") }
                            overrides[config.name] = value.trimmed
                        }
                        try ConfigResource.checkGroupConfigs(overrides, broker: context.broker)
                        changes.append(.init(index: index, target: .group(resource.resourceName), configs: overrides))
                    default:
                        throw TopicError(.invalidRequest, "Unsupported resource type \(resource.resourceType)")
                    }
                } catch {
                    refused[index] = (error.code, error.message)
                }
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
                guard resource.resourceType != ConfigResource.group else { throw ConfigResource.groupAlterRefused }
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
