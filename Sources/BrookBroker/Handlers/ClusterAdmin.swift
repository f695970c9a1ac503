import BrookCluster
import BrookCore
import BrookProtocol
import NIOCore

/// The admin handlers' cluster side: a broker checks what it can, forwards the rest to the
/// active controller (which places replicas and checks the replication factor against the
/// active brokers), and answers once the controller's entries are committed.
enum ClusterAdmin {
    static let manualGrowthUnsupported = "Replica assignments for new partitions are not supported in Brook clusters yet; omit them."

    /// Forwards `request`; the answers by topic name, or every name failed with `code`.
    static func forward(_ request: ControllerAdminRequest, names: [String], context: RequestContext) -> EventLoopFuture<[String: TopicAnswer]> {
        context.broker.cluster.forward(request, on: context.eventLoop).map { result in
            switch result {
            case .success(let answers):
                return Dictionary(answers.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            case .failure(let error):
                return Dictionary(names.map { ($0, TopicAnswer(name: $0, error: .requestTimedOut, message: "The controller did not answer: \(error)")) },
                                  uniquingKeysWith: { first, _ in first })
            }
        }
    }

    /// One resource's configs to set: a topic's overrides, a broker's dynamic configs ("" for
    /// every broker) or a group's configs, whole, as they are to be after the change.
    struct ConfigChange {
        enum Target { case topic(String), broker(String), group(String) }
        var index: Int
        var target: Target
        var configs: [String: String]
    }

    /// Configs in a cluster: checked here (names and values, as on a single node), then set by
    /// the controller; every broker takes them from the image. The answers by resource, in
    /// order: those already refused (`refused`) and the controller's for the rest.
    static func setConfigs(_ changes: [ConfigChange], refused: [Int: (ErrorCode, String?)],
                           count: Int, validateOnly: Bool, context: RequestContext) -> EventLoopFuture<[(ErrorCode, String?)]> {
        var answers = (0..<count).map { refused[$0] ?? (ErrorCode.none, nil) }
        var waits: [EventLoopFuture<(Int, ErrorCode, String?)>] = []
        for change in changes {
            let request: ControllerAdminRequest
            let name: String
            do throws(TopicError) {
                try checkForwardable(change.configs)
                switch change.target {
                case .topic(let topic):
                    try context.broker.topics.setConfigs(name: topic, overrides: change.configs, validateOnly: true)
                    (request, name) = (.setTopicConfigs(topic: topic, configs: change.configs), topic)
                case .broker(let broker):
                    (request, name) = (.setBrokerConfigs(broker: broker, configs: change.configs), broker)
                case .group(let group):
                    (request, name) = (.setGroupConfigs(group: group, configs: change.configs), group)
                }
            } catch {
                answers[change.index] = (error.code, error.message)
                continue
            }
            guard !validateOnly else { continue }
            waits.append(forward(request, names: [name], context: context)
                .map { (change.index, $0[name]?.error ?? .unknownServerError, $0[name]?.message) })
        }
        let settled = answers
        return EventLoopFuture.whenAllSucceed(waits, on: context.eventLoop).map { results in
            var out = settled
            for (index, code, message) in results { out[index] = (code, message) }
            return out
        }
    }

    /// Config names and values the controller can be sent whole (a longer one would be cut).
    static func checkForwardable(_ configs: [String: String]) throws(TopicError) {
        let limit = ControllerAdminRequest.stringBytesMax
        for (name, value) in configs where name.utf8.count > limit || value.utf8.count > limit {
            throw TopicError(.invalidConfig, "Config \(name.prefix(64)) is longer than \(limit) bytes, the most a Brook cluster carries.")
        }
    }

    /// CreateTopics in a cluster.
    static func createTopics(_ request: CreateTopicsRequest, context: RequestContext) -> EventLoopFuture<CreateTopicsResponse> {
        typealias Result = CreateTopicsResponse.CreatableTopicResult
        var refused: [Int: Result] = [:]
        var forwarded: [NewTopic] = []
        for (i, topic) in request.topics.enumerated() {
            do throws(TopicError) { forwarded.append(try newTopic(topic, context: context)) } catch {
                refused[i] = Result(name: topic.name, errorCode: error.code.rawValue, errorMessage: error.message)
            }
        }
        let asked = forward(.createTopics(forwarded, validateOnly: request.validateOnly), names: forwarded.map(\.name), context: context)
        let refusedHere = refused
        return asked.map { answers in
            CreateTopicsResponse(throttleTimeMs: 0, topics: request.topics.enumerated().map { i, topic in
                if let result = refusedHere[i] { return result }
                guard let answer = answers[topic.name] else { return Result(name: topic.name, errorCode: ErrorCode.unknownServerError.rawValue) }
                var result = Result(name: topic.name, topicId: answer.topicID, errorCode: answer.error.rawValue, errorMessage: answer.message)
                if answer.error == .none {
                    result.numPartitions = Int32(answer.partitions)
                    result.replicationFactor = Int16(answer.replicationFactor)
                }
                return result
            })
        }
    }

    static func newTopic(_ topic: CreateTopicsRequest.CreatableTopic, context: RequestContext) throws(TopicError) -> NewTopic {
        if let problem = TopicRegistry.validateName(topic.name) { throw problem }
        let configs = try CreateTopicsHandler.configs(topic)
        if let problem = TopicRegistry.validateConfigs(configs) { throw problem }
        try checkForwardable(configs)
        if !topic.assignments.isEmpty {
            return NewTopic(name: topic.name, assignments: try CreateTopicsHandler.assignments(topic).map(\.brokerIds), configs: configs)
        }
        guard topic.numPartitions == -1 || topic.numPartitions >= 1 else { throw TopicError(.invalidPartitions, "Number of partitions must be larger than 0.") }
        let factor = topic.replicationFactor == -1 ? context.broker.config.defaultReplicationFactor : topic.replicationFactor
        guard factor >= 1 else { throw TopicError(.invalidReplicationFactor, "Replication factor must be larger than 0.") }
        let partitions = topic.numPartitions == -1 ? context.broker.config.numPartitions : topic.numPartitions
        return NewTopic(name: topic.name, partitions: Int(partitions), replicationFactor: Int(factor), configs: configs)
    }

    /// DeleteTopics in a cluster (`names` resolved; nil entries were refused already).
    static func deleteTopics(_ names: [String], context: RequestContext) -> EventLoopFuture<[String: TopicAnswer]> {
        names.isEmpty ? context.eventLoop.makeSucceededFuture([:]) : forward(.deleteTopics(names), names: names, context: context)
    }

    /// CreatePartitions in a cluster, one topic after another.
    static func createPartitions(_ request: CreatePartitionsRequest, context: RequestContext) -> EventLoopFuture<CreatePartitionsResponse> {
        typealias Result = CreatePartitionsResponse.CreatePartitionsTopicResult
        let image = context.broker.cluster.current?.image ?? MetadataImage()
        var results: [EventLoopFuture<Result>] = []
        for topic in request.topics {
            if topic.assignments != nil {
                results.append(context.eventLoop.makeSucceededFuture(Result(name: topic.name, errorCode: ErrorCode.invalidReplicaAssignment.rawValue, errorMessage: manualGrowthUnsupported)))
                continue
            }
            if request.validateOnly {
                let current = image.topic(named: topic.name)?.partitions.count
                let code: ErrorCode = current == nil ? .unknownTopicOrPartition : Int(topic.count) > current! ? .none : .invalidPartitions
                results.append(context.eventLoop.makeSucceededFuture(Result(name: topic.name, errorCode: code.rawValue)))
                continue
            }
            results.append(forward(.createPartitions(topic: topic.name, total: Int(topic.count)), names: [topic.name], context: context).map { answers in
                let answer = answers[topic.name]
                return Result(name: topic.name, errorCode: answer?.error.rawValue ?? ErrorCode.unknownServerError.rawValue,
                              errorMessage: answer?.message ?? (answer?.error == .invalidPartitions ? "The partition count must grow." : nil))
            })
        }
        return EventLoopFuture.whenAllSucceed(results, on: context.eventLoop).map { CreatePartitionsResponse(throttleTimeMs: 0, results: $0) }
    }
}
