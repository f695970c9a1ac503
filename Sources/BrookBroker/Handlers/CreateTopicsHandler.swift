import BrookCore
import BrookProtocol

/// CreateTopics: new topics with their partition counts and configs (one replica: one node).
/// The topics are made on the admin executor, off the event loop; a request adding more than
/// `Limits.partitionsPerRequestMax` partitions in all is refused whole (as Kafka 4 does).
struct CreateTopicsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 2...7

    typealias Result = CreateTopicsResponse.CreatableTopicResult

    func handle(_ request: CreateTopicsRequest, version: Int16, context: RequestContext) -> Reply<CreateTopicsResponse> {
        let asked = request.topics.reduce(0) { $0 + Self.partitions(of: $1, context: context) }
        if asked > Limits.partitionsPerRequestMax {
            return .now(CreateTopicsResponse(throttleTimeMs: 0, topics: request.topics.map {
                Result(name: $0.name, errorCode: ErrorCode.policyViolation.rawValue,
                       errorMessage: "Excessively large number of partitions per request (\(asked), at most \(Limits.partitionsPerRequestMax)).")
            }))
        }
        // With an authorizer: CREATE on the cluster, or on each topic.
        let authorization = context.authorization
        if authorization.enabled && !authorization.allowsCluster(.create) {
            let refused = request.topics.filter { !authorization.allows(.create, .topic, $0.name) }
            if !refused.isEmpty {
                var allowed = request
                allowed.topics = request.topics.filter { authorization.allows(.create, .topic, $0.name) }
                let answers = refused.map { Result(name: $0.name, errorCode: ErrorCode.topicAuthorizationFailed.rawValue, errorMessage: "CREATE on topic \($0.name) is needed.") }
                guard !allowed.topics.isEmpty else { return .now(CreateTopicsResponse(throttleTimeMs: 0, topics: answers)) }
                return handle(allowed, version: version, context: context).map { response in
                    var response = response
                    response.topics += answers
                    return response
                }
            }
        }
        if context.broker.cluster.isCluster {
            // KIP-599: each topic's partitions against the client's controller_mutation_rate,
            // in order; from v6 a topic past it is refused (before, only throttled).
            let (taken, refused, throttleMs) = context.admitEach(request.topics, strict: version >= 6, validateOnly: request.validateOnly) {
                Self.partitions(of: $0, context: context)
            }
            let throttled = refused.map {
                Result(name: $0.name, errorCode: ErrorCode.throttlingQuotaExceeded.rawValue, errorMessage: RequestContext.mutationQuotaMessage)
            }
            if taken.isEmpty { return .now(CreateTopicsResponse(throttleTimeMs: throttleMs, topics: throttled)) }
            var admitted = request
            admitted.topics = taken
            return .later(ClusterAdmin.createTopics(admitted, context: context).map { response in
                var response = response
                response.topics += throttled
                response.throttleTimeMs = max(response.throttleTimeMs, throttleMs)
                return response
            })
        }
        return .later(context.broker.admin.run(on: context.eventLoop) { create(request, context: context) })
    }

    /// The partitions a topic of the request asks for.
    static func partitions(of topic: CreateTopicsRequest.CreatableTopic, context: RequestContext) -> Int {
        !topic.assignments.isEmpty ? topic.assignments.count
            : topic.numPartitions == -1 ? Int(context.broker.config.numPartitions) : max(0, Int(topic.numPartitions))
    }

    func create(_ request: CreateTopicsRequest, context: RequestContext) -> CreateTopicsResponse {
        var seen: [String: Int] = [:]
        for topic in request.topics { seen[topic.name, default: 0] += 1 }
        let results = request.topics.map { topic -> Result in
            var result = Result(name: topic.name, errorCode: 0)
            if seen[topic.name, default: 0] > 1 {
                result.errorCode = ErrorCode.invalidRequest.rawValue
                result.errorMessage = "Create topics request from client contains multiple entries for the topic \(topic.name)"
                return result
            }
            do throws(TopicError) {
                let (partitions, configs) = try check(topic, context: context)
                let broker = context.broker
                if request.validateOnly {
                    if let problem = broker.topics.checkCreate(name: topic.name, partitions: partitions, configs: configs) { throw problem }
                    result.numPartitions = partitions
                    result.replicationFactor = 1
                    return result
                }
                let created = try broker.topics.create(name: topic.name, partitions: partitions, configs: configs)
                result.topicId = created.id
                result.numPartitions = partitions
                result.replicationFactor = 1
                result.configs = ConfigResource.describeTopic(created, broker: broker).map {
                    .init(name: $0.name, value: $0.value, readOnly: $0.readOnly, configSource: $0.source.rawValue, isSensitive: false)
                }
            } catch {
                result.errorCode = error.code.rawValue
                result.errorMessage = error.message
            }
            return result
        }
        return CreateTopicsResponse(throttleTimeMs: 0, topics: results)
    }

    /// The partition count and configs asked for, checked against what one node can host.
    func check(_ topic: CreateTopicsRequest.CreatableTopic, context: RequestContext) throws(TopicError) -> (Int32, [String: String]) {
        let node = context.broker.config.nodeID
        var partitions = topic.numPartitions == -1 ? context.broker.config.numPartitions : topic.numPartitions
        if !topic.assignments.isEmpty {
            let sorted = try Self.assignments(topic)
            for assignment in sorted where assignment.brokerIds != [node] {
                throw TopicError(.invalidReplicaAssignment, "Replica assignment \(assignment.brokerIds) names brokers other than the one node \(node)")
            }
            partitions = Int32(sorted.count)
        }
        let factor = topic.replicationFactor == -1 ? context.broker.config.defaultReplicationFactor : topic.replicationFactor
        guard factor >= 1 else { throw TopicError(.invalidReplicationFactor, "Replication factor must be larger than 0.") }
        guard factor == 1 else {
            throw TopicError(.invalidReplicationFactor, "Unable to replicate the partition \(factor) time(s): The target replication factor of \(factor) cannot be reached because only 1 broker(s) are registered.")
        }
        guard partitions >= 1 else { throw TopicError(.invalidPartitions, "Number of partitions must be larger than 0.") }
        return (partitions, try Self.configs(topic))
    }

    /// The explicit replica assignments, by partition: only without a partition count or
    /// replication factor, and numbered 0, 1, 2, ... (Kafka's checks, shared with a cluster).
    static func assignments(_ topic: CreateTopicsRequest.CreatableTopic) throws(TopicError) -> [CreateTopicsRequest.CreatableTopic.CreatableReplicaAssignment] {
        guard topic.numPartitions == -1, topic.replicationFactor == -1 else {
            throw TopicError(.invalidRequest, "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.")
        }
        let sorted = topic.assignments.sorted { $0.partitionIndex < $1.partitionIndex }
        guard sorted.map(\.partitionIndex) == Array(0..<Int32(sorted.count)) else {
            throw TopicError(.invalidReplicaAssignment, "Partitions should be a consecutive 0-based integer sequence")
        }
        return sorted
    }

    /// The configs asked for; a null value is refused, as Kafka does.
    static func configs(_ topic: CreateTopicsRequest.CreatableTopic) throws(TopicError) -> [String: String] {
        var configs: [String: String] = [:]
        for config in topic.configs {
            guard let value = config.value else { throw TopicError(.invalidConfig, "Null value not supported for topic configs: \(config.name)") }
            configs[config.name] = value
        }
        return configs
    }
}
