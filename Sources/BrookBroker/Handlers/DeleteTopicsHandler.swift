import BrookCluster
import BrookCore
import BrookProtocol
import NIOCore

/// DeleteTopics: removes topics (by name, or by id from v6) and their logs; the coordinators'
/// internal topics are refused.
struct DeleteTopicsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 1...6
    static let topicDeletionDisabled = ErrorCode(rawValue: 73)

    func handle(_ request: DeleteTopicsRequest, version: Int16, context: RequestContext) -> Reply<DeleteTopicsResponse> {
        if context.broker.cluster.isCluster { return .later(clusterDelete(request, version: version, context: context)) }
        // Removing the logs may take a while: off the event loop.
        return .later(context.broker.admin.run(on: context.eventLoop) { delete(request, version: version, context: context) })
    }

    /// In a cluster: names checked here, the deletion itself by the controller.
    func clusterDelete(_ request: DeleteTopicsRequest, version: Int16, context: RequestContext) -> EventLoopFuture<DeleteTopicsResponse> {
        let image = context.broker.cluster.current?.image ?? MetadataImage()
        let wanted: [(name: String?, id: KafkaUUID)] = version >= 6
            ? request.topics.map { ($0.name, $0.topicId) }
            : request.topicNames.map { ($0, KafkaUUID.zero) }
        var results: [DeleteTopicsResponse.DeletableTopicResult] = []
        var names: [String] = []
        var throttleMs: Int32 = 0
        for item in wanted {
            var result = DeleteTopicsResponse.DeletableTopicResult(name: item.name, topicId: item.id, errorCode: 0)
            let name = (item.name?.isEmpty == false ? item.name : nil) ?? image.topics[item.id]?.name
            if !context.broker.config.deleteTopicEnable {
                result.errorCode = Self.topicDeletionDisabled.rawValue
                result.errorMessage = "Topic deletion is disabled."
            } else if let name, !context.authorization.allows(.delete, .topic, name) {
                // Without DESCRIBE the name given is not confirmed either way.
                result.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                result.errorMessage = "DELETE on topic \(item.name ?? name) is needed."
                if item.name == nil || item.name?.isEmpty == true { result.name = nil }
            } else if let name {
                result.name = name
                if TopicRegistry.isInternal(name) {
                    result.errorCode = ErrorCode.invalidRequest.rawValue
                    result.errorMessage = "Topic '\(name)' is an internal topic and cannot be deleted."
                } else if let id = image.topicIDs[name],
                          let ms = context.admitMutations(image.topics[id]?.partitions.count ?? 0, strict: version >= 5) {
                    // KIP-599: the topic's partitions against controller_mutation_rate (from v5
                    // refused past it; before, only throttled).
                    throttleMs = max(throttleMs, ms)
                    result.errorCode = ErrorCode.throttlingQuotaExceeded.rawValue
                    result.errorMessage = RequestContext.mutationQuotaMessage
                } else {
                    result.topicId = image.topicIDs[name] ?? item.id
                    names.append(name)
                }
            } else {
                result.errorCode = ErrorCode.unknownTopicID.rawValue
                result.errorMessage = "Topic id \(item.id) does not exist."
            }
            results.append(result)
        }
        let asking = Set(names)
        let checked = results
        let throttled = throttleMs
        return ClusterAdmin.deleteTopics(names, context: context).map { answers in
            DeleteTopicsResponse(throttleTimeMs: throttled, responses: checked.map { result in
                guard result.errorCode == 0, let name = result.name, asking.contains(name), let answer = answers[name] else { return result }
                var done = result
                done.errorCode = answer.error.rawValue
                done.errorMessage = answer.message
                return done
            })
        }
    }

    func delete(_ request: DeleteTopicsRequest, version: Int16, context: RequestContext) -> DeleteTopicsResponse {
        let registry = context.broker.topics
        let wanted: [(name: String?, id: KafkaUUID)] = version >= 6
            ? request.topics.map { ($0.name, $0.topicId) }
            : request.topicNames.map { ($0, KafkaUUID.zero) }
        let results = wanted.map { item -> DeleteTopicsResponse.DeletableTopicResult in
            var result = DeleteTopicsResponse.DeletableTopicResult(name: item.name, topicId: item.id, errorCode: 0)
            guard context.broker.config.deleteTopicEnable else {
                result.errorCode = Self.topicDeletionDisabled.rawValue
                result.errorMessage = "Topic deletion is disabled."
                return result
            }
            let name: String
            if let given = item.name, !given.isEmpty {
                name = given
            } else if let topic = registry.topic(id: item.id) {
                name = topic.name
                result.name = name
            } else {
                result.errorCode = ErrorCode.unknownTopicID.rawValue
                result.errorMessage = "Topic id \(item.id) does not exist."
                return result
            }
            // Kafka lets a client delete them and lose every committed offset and transaction;
            // Brook refuses (docs/broker.md).
            if TopicRegistry.isInternal(name) {
                result.errorCode = ErrorCode.invalidRequest.rawValue
                result.errorMessage = "Topic '\(name)' is an internal topic and cannot be deleted."
                return result
            }
            do throws(TopicError) {
                result.topicId = try registry.delete(name: name)
            } catch {
                result.errorCode = error.code.rawValue
                result.errorMessage = error.message
            }
            return result
        }
        return DeleteTopicsResponse(throttleTimeMs: 0, responses: results)
    }
}
