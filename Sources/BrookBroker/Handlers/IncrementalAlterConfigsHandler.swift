import BrookCluster
import BrookGroups
import BrookProtocol

/// IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on single topic configs, and in a
/// cluster SET and DELETE on a broker's dynamic configs (DynamicBrokerConfigs) and on a consumer
/// group's (GroupConfigs). In a cluster the controller sets the result (ClusterAdmin.setConfigs).
struct IncrementalAlterConfigsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...1

    enum Operation: Int8 { case set = 0, delete = 1, append = 2, subtract = 3 }

    func handle(_ request: IncrementalAlterConfigsRequest, version: Int16, context: RequestContext) -> Reply<IncrementalAlterConfigsResponse> {
        if context.broker.cluster.isCluster {
            var refused: [Int: (ErrorCode, String?)] = [:]
            var changes: [ClusterAdmin.ConfigChange] = []
            // With an authorizer: ALTER_CONFIGS on the topic, the group, or the cluster for the rest.
            let authorization = context.authorization
            for (index, resource) in request.resources.enumerated() {
                do throws(TopicError) {
                    try authorization.checkAlterConfigs(resource.resourceType, resource.resourceName)
                    switch resource.resourceType {
                    case ConfigResource.topic:
                        var overrides = try context.broker.topics.existing(resource.resourceName).overrides
                        for config in resource.configs { try apply(config, to: &overrides) }
                        changes.append(.init(index: index, target: .topic(resource.resourceName), configs: overrides))
                    case ConfigResource.broker:
                        try DynamicBrokerConfigs.checkResource(resource.resourceName)
                        var configs = DynamicBrokerConfigs.configs(of: resource.resourceName, in: context.broker.cluster.current?.image ?? .empty)
                        for config in resource.configs { try applyDynamic(config, to: &configs) }
                        changes.append(.init(index: index, target: .broker(resource.resourceName), configs: configs))
                    case ConfigResource.group:
                        try ConfigResource.checkGroupName(resource.resourceName)
                        var configs = ConfigResource.groupConfigs(of: resource.resourceName, broker: context.broker)
                        for config in resource.configs { try applyGroup(config, to: &configs) }
                        try ConfigResource.checkGroupConfigs(configs, broker: context.broker)
                        changes.append(.init(index: index, target: .group(resource.resourceName), configs: configs))
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
                IncrementalAlterConfigsResponse(throttleTimeMs: 0, responses: zip(resources, answers).map { resource, answer in
                    .init(errorCode: answer.0.rawValue, errorMessage: answer.1, resourceType: resource.resourceType,
                          resourceName: resource.resourceName)
                })
            })
        }
        let responses = request.resources.map { resource in
            var response = IncrementalAlterConfigsResponse.AlterConfigsResourceResponse(
                errorCode: 0, errorMessage: nil, resourceType: resource.resourceType, resourceName: resource.resourceName)
            do throws(TopicError) {
                guard resource.resourceType != ConfigResource.group else { throw ConfigResource.groupAlterRefused }
                guard resource.resourceType == ConfigResource.topic else { throw ConfigResource.brokerAlterRefused }
                var overrides = try context.broker.topics.existing(resource.resourceName).overrides
                for config in resource.configs {
                    try apply(config, to: &overrides)
                }
                try context.broker.topics.setConfigs(name: resource.resourceName, overrides: overrides, validateOnly: request.validateOnly)
            } catch {
                response.errorCode = error.code.rawValue
                response.errorMessage = error.message
            }
            return response
        }
        return .now(IncrementalAlterConfigsResponse(throttleTimeMs: 0, responses: responses))
    }

    /// One operation on a broker's dynamic configs (SET and DELETE only).
    func applyDynamic(_ config: IncrementalAlterConfigsRequest.AlterConfigsResource.AlterableConfig,
                      to configs: inout [String: String]) throws(TopicError) {
        try setOrDelete(config, in: &configs, checkName: DynamicBrokerConfigs.checkName, checkValue: DynamicBrokerConfigs.check)
    }

    /// One operation on a group's configs (SET and DELETE only; the whole set is checked after).
    func applyGroup(_ config: IncrementalAlterConfigsRequest.AlterConfigsResource.AlterableConfig,
                    to configs: inout [String: String]) throws(TopicError) {
        try setOrDelete(config, in: &configs, checkName: { name throws(TopicError) in
            guard GroupConfigs.names.contains(name) else { throw TopicError(.invalidConfig, "Unknown group config name: \(name)") }
        }, checkValue: { name, value throws(TopicError) in
            guard value != nil else { throw TopicError(.invalidRequest, "Null value not supported for: \(name)") }
        })
    }

    /// SET (the value checked) or DELETE (the name checked) of a config that is not a list.
    func setOrDelete(_ config: IncrementalAlterConfigsRequest.AlterConfigsResource.AlterableConfig, in configs: inout [String: String],
                     checkName: (String) throws(TopicError) -> Void, checkValue: (String, String?) throws(TopicError) -> Void) throws(TopicError) {
        switch Operation(rawValue: config.configOperation) {
        case .set:
            try checkName(config.name)
            try checkValue(config.name, config.value)
            configs[config.name] = config.value?.trimmed
        case .delete:
            try checkName(config.name)
            configs[config.name] = nil
        case .append, .subtract:
            throw TopicError(.invalidConfig, "Config value append/subtract is not allowed for config key \(config.name)")
        case nil:
            throw TopicError(.invalidRequest, "Unknown config operation \(config.configOperation)")
        }
    }

    func apply(_ config: IncrementalAlterConfigsRequest.AlterConfigsResource.AlterableConfig,
               to overrides: inout [String: String]) throws(TopicError) {
        guard let operation = Operation(rawValue: config.configOperation) else {
            throw TopicError(.invalidRequest, "Unknown config operation \(config.configOperation)")
        }
        guard let definition = TopicConfigs.definition(config.name) else {
            throw TopicError(.invalidConfig, "Unknown topic config name: \(config.name)")
        }
        switch operation {
        case .set:
            guard let value = config.value else { throw TopicError(.invalidRequest, "Null value not supported for: \(config.name)") }
            overrides[config.name] = value
        case .delete:
            overrides[config.name] = nil
        case .append, .subtract:
            guard definition.type == .list else {
                throw TopicError(.invalidConfig, "Config value append/subtract is not allowed for config key \(config.name)")
            }
            let current = (overrides[config.name] ?? definition.defaultValue).split(separator: ",").map { $0.trimmed }.filter { !$0.isEmpty }
            let given = (config.value ?? "").split(separator: ",").map { $0.trimmed }.filter { !$0.isEmpty }
            let result = operation == .append ? current + given.filter { !current.contains($0) } : current.filter { !given.contains($0) }
            overrides[config.name] = result.joined(separator: ",")
        }
    }
}
