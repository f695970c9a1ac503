import BrookProtocol

/// AlterConfigs: replaces a topic's whole set of configs (what is not given returns to default).
struct AlterConfigsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...2

    func handle(_ request: AlterConfigsRequest, version: Int16, context: RequestContext) -> Reply<AlterConfigsResponse> {
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
