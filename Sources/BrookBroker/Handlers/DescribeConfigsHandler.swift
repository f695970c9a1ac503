import BrookProtocol

/// DescribeConfigs: every config of a topic, of the broker or of a consumer group, with value,
/// source and type.
struct DescribeConfigsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 1...4

    func handle(_ request: DescribeConfigsRequest, version: Int16, context: RequestContext) -> Reply<DescribeConfigsResponse> {
        typealias Result = DescribeConfigsResponse.DescribeConfigsResult
        // With an authorizer: DESCRIBE_CONFIGS on the topic, the group, or the cluster for the rest.
        let authorization = context.authorization
        let results = request.resources.map { resource -> Result in
            var result = Result(errorCode: 0, resourceType: resource.resourceType, resourceName: resource.resourceName)
            if let refusal = authorization.configRefusal(.describeConfigs, resource.resourceType, resource.resourceName) {
                result.errorCode = refusal.rawValue
                result.errorMessage = "DESCRIBE_CONFIGS is needed."
                return result
            }
            let described: [ConfigResource.Described]
            switch resource.resourceType {
            case ConfigResource.topic:
                if let problem = TopicRegistry.validateName(resource.resourceName) {
                    result.errorCode = problem.code.rawValue
                    result.errorMessage = problem.message
                    return result
                }
                guard let topic = context.broker.topics.topic(resource.resourceName) else {
                    result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
                    result.errorMessage = "Topic '\(resource.resourceName)' does not exist."
                    return result
                }
                described = ConfigResource.describeTopic(topic, broker: context.broker)
            case ConfigResource.broker:
                guard resource.resourceName.isEmpty || resource.resourceName == "\(context.broker.config.nodeID)" else {
                    result.errorCode = ErrorCode.invalidRequest.rawValue
                    result.errorMessage = "Unexpected broker id, expected \(context.broker.config.nodeID) but received \(resource.resourceName)"
                    return result
                }
                described = ConfigResource.describeBroker(context.broker)
            case ConfigResource.group:
                do throws(TopicError) { try ConfigResource.checkGroupName(resource.resourceName) } catch {
                    result.errorCode = error.code.rawValue
                    result.errorMessage = error.message
                    return result
                }
                described = ConfigResource.describeGroup(resource.resourceName, broker: context.broker)
            default:
                result.errorCode = ErrorCode.invalidRequest.rawValue
                result.errorMessage = "Unsupported resource type \(resource.resourceType)"
                return result
            }
            // Null or empty: every config.
            let wanted = resource.configurationKeys.flatMap { $0.isEmpty ? nil : Set($0) }
            result.configs = described.filter { wanted?.contains($0.name) ?? true }.map { item in
                DescribeConfigsResponse.DescribeConfigsResult.DescribeConfigsResourceResult(
                    name: item.name, value: Self.isSensitive(item.name) ? nil : item.value, readOnly: item.readOnly, configSource: item.source.rawValue,
                    isSensitive: Self.isSensitive(item.name),
                    synonyms: request.includeSynonyms ? item.synonyms.map { .init(name: $0.0, value: $0.1, source: $0.2.rawValue) } : [],
                    configType: item.type.rawValue, documentation: nil)
            }
            return result
        }
        return .now(DescribeConfigsResponse(throttleTimeMs: 0, results: results))
    }

    /// Passwords, keys and JAAS configs are described without their values, as Kafka's
    /// PASSWORD-typed configs are.
    static func isSensitive(_ name: String) -> Bool {
        name.hasSuffix(".password") || name.hasSuffix("jaas.config") || name.hasSuffix("keystore.key")
    }
}
