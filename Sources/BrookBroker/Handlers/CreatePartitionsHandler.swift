import BrookProtocol

import BrookCore

/// CreatePartitions: raises a topic's partition count, on the admin executor (off the event
/// loop); a request adding more than `Limits.partitionsPerRequestMax` in all is refused whole.
struct CreatePartitionsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...3

    func handle(_ request: CreatePartitionsRequest, version: Int16, context: RequestContext) -> Reply<CreatePartitionsResponse> {
        let registry = context.broker.topics
        let adding = request.topics.reduce(0) { sum, topic in
            sum + max(0, Int(topic.count) - (registry.topic(topic.name)?.partitions.count ?? Int(topic.count)))
        }
        if adding > Limits.partitionsPerRequestMax {
            return .now(CreatePartitionsResponse(throttleTimeMs: 0, results: request.topics.map {
                .init(name: $0.name, errorCode: ErrorCode.policyViolation.rawValue,
                      errorMessage: "Excessively large number of partitions per request (\(adding), at most \(Limits.partitionsPerRequestMax)).")
            }))
        }
        // With an authorizer: ALTER on each topic.
        let authorization = context.authorization
        let refused = request.topics.filter { !authorization.allows(.alter, .topic, $0.name) }
        if !refused.isEmpty {
            var allowed = request
            allowed.topics = request.topics.filter { authorization.allows(.alter, .topic, $0.name) }
            let answers = refused.map { CreatePartitionsResponse.CreatePartitionsTopicResult(name: $0.name, errorCode: ErrorCode.topicAuthorizationFailed.rawValue) }
            guard !allowed.topics.isEmpty else { return .now(CreatePartitionsResponse(throttleTimeMs: 0, results: answers)) }
            return handle(allowed, version: version, context: context).map { response in
                var response = response
                response.results += answers
                return response
            }
        }
        if context.broker.cluster.isCluster {
            // KIP-599: the partitions each topic adds against controller_mutation_rate; from v3
            // a topic past it is refused (before, only throttled).
            let (taken, refused, throttleMs) = context.admitEach(request.topics, strict: version >= 3, validateOnly: request.validateOnly) {
                max(0, Int($0.count) - (registry.topic($0.name)?.partitions.count ?? Int($0.count)))
            }
            let throttled = refused.map {
                CreatePartitionsResponse.CreatePartitionsTopicResult(name: $0.name, errorCode: ErrorCode.throttlingQuotaExceeded.rawValue,
                                                                     errorMessage: RequestContext.mutationQuotaMessage)
            }
            if taken.isEmpty { return .now(CreatePartitionsResponse(throttleTimeMs: throttleMs, results: throttled)) }
            var admitted = request
            admitted.topics = taken
            return .later(ClusterAdmin.createPartitions(admitted, context: context).map { response in
                var response = response
                response.results += throttled
                response.throttleTimeMs = max(response.throttleTimeMs, throttleMs)
                return response
            })
        }
        return .later(context.broker.admin.run(on: context.eventLoop) { grow(request, context: context) })
    }

    func grow(_ request: CreatePartitionsRequest, context: RequestContext) -> CreatePartitionsResponse {
        let node = context.broker.config.nodeID
        let results = request.topics.map { topic in
            var result = CreatePartitionsResponse.CreatePartitionsTopicResult(name: topic.name, errorCode: 0)
            do throws(TopicError) {
                if let assignments = topic.assignments {
                    // Widened: the requested count is any Int32, and Int32.min minus a count traps.
                    let current = context.broker.topics.topic(topic.name)?.partitions.count ?? 0
                    let added = Int(topic.count) - current
                    if added > 0 && assignments.count != added {
                        throw TopicError(.invalidReplicaAssignment, "Attempted to add \(added) additional partition(s), but only \(assignments.count) assignment(s) were specified.")
                    }
                    if assignments.contains(where: { $0.brokerIds != [node] }) {
                        throw TopicError(.invalidReplicaAssignment, "Replica assignments may only name the one node \(node)")
                    }
                }
                try context.broker.topics.addPartitions(name: topic.name, totalCount: topic.count, validateOnly: request.validateOnly)
            } catch {
                result.errorCode = error.code.rawValue
                result.errorMessage = error.message
            }
            return result
        }
        return CreatePartitionsResponse(throttleTimeMs: 0, results: results)
    }
}
