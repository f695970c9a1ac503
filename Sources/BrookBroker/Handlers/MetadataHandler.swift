import BrookCluster
import BrookCore
import BrookProtocol

/// Metadata: brokers, the controller, and topics with their partitions' leaders and replicas.
/// Asking for a missing topic creates it when `auto.create.topics.enable` and the request allow.
struct MetadataHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...13

    typealias TopicResult = MetadataResponse.MetadataResponseTopic

    func handle(_ request: MetadataRequest, version: Int16, context: RequestContext) -> Reply<MetadataResponse> {
        let topicOperations = request.includeTopicAuthorizedOperations, clusterOperations = request.includeClusterAuthorizedOperations
        guard topicOperations || clusterOperations else { return answer(request, version: version, context: context) }
        // Asked for: what a client may do (all of it, with no authorizer), for each topic found.
        let authorization = context.authorization
        return answer(request, version: version, context: context).map { response in
            var response = response
            if clusterOperations { response.clusterAuthorizedOperations = AuthorizedOperations.cluster(authorization) }
            if topicOperations {
                for i in response.topics.indices where response.topics[i].errorCode == 0 {
                    response.topics[i].topicAuthorizedOperations = AuthorizedOperations.topic(response.topics[i].name ?? "", authorization)
                }
            }
            return response
        }
    }

    func answer(_ request: MetadataRequest, version: Int16, context: RequestContext) -> Reply<MetadataResponse> {
        let broker = context.broker
        if broker.cluster.isCluster {
            // Topics to auto-create are asked of the controller at once, and the answer waits
            // until this broker applied them (a single node answered with them made, too).
            let (response, missing) = clusterMetadata(request, version: version, context: context, created: nil)
            guard !missing.isEmpty else { return .now(response) }
            let topics = missing.map {
                NewTopic(name: $0, partitions: Int(broker.config.numPartitions), replicationFactor: Int(broker.config.defaultReplicationFactor))
            }
            return .later(ClusterAdmin.forward(.createTopics(topics, validateOnly: false), names: missing, context: context).map { answers in
                clusterMetadata(request, version: version, context: context, created: answers).response
            })
        }
        let address = context.advertised
        var response = MetadataResponse(
            throttleTimeMs: 0,
            brokers: [.init(nodeId: broker.config.nodeID, host: address.host, port: Int32(address.port), rack: nil)],
            clusterId: broker.clusterID, controllerId: broker.config.nodeID)
        // v0 asks for every topic with an empty list; later versions with null.
        if request.topics == nil || (version == 0 && request.topics?.isEmpty == true) {
            response.topics = broker.topics.allTopics().map { describe($0, context) }
            return .now(response)
        }
        let autoCreate = broker.config.autoCreateTopics && (version < 4 || request.allowAutoTopicCreation)
        response.topics = (request.topics ?? []).map { wanted in
            if let name = wanted.name, !name.isEmpty {
                if let topic = broker.topics.topic(name) { return describe(topic, context) }
                if let problem = TopicRegistry.validateName(name) {
                    return TopicResult(errorCode: problem.code.rawValue, name: name, isInternal: false)
                }
                guard autoCreate else {
                    return TopicResult(errorCode: ErrorCode.unknownTopicOrPartition.rawValue, name: name)
                }
                do throws(TopicError) {
                    let topic = try broker.topics.create(name: name, partitions: broker.config.numPartitions, configs: [:])
                    return describe(topic, context)
                } catch {
                    if let topic = broker.topics.topic(name) { return describe(topic, context) }  // created meanwhile
                    // Being created (or deleted) by another request: the client retries, as it does
                    // while Kafka sets up an auto-created topic.
                    let code: ErrorCode = error.code == .topicAlreadyExists ? .leaderNotAvailable : error.code
                    return TopicResult(errorCode: code.rawValue, name: name)
                }
            }
            guard let topic = broker.topics.topic(id: wanted.topicId) else {
                return TopicResult(errorCode: ErrorCode.unknownTopicID.rawValue, name: nil, topicId: wanted.topicId)
            }
            return describe(topic, context)
        }
        return .now(response)
    }

    /// Every partition by number (`Topic.singleNodeRow`); one whose log dir failed is
    /// LEADER_NOT_AVAILABLE. Left out, clients would count fewer partitions.
    func describe(_ topic: Topic, _ context: RequestContext) -> TopicResult {
        let node = context.broker.config.nodeID
        return TopicResult(errorCode: 0, name: topic.name, topicId: topic.id, isInternal: TopicRegistry.isInternal(topic.name),
                           partitions: topic.partitions.indices.map { index in
            let row = topic.singleNodeRow(index, node: node)
            return .init(errorCode: row.online ? 0 : ErrorCode.leaderNotAvailable.rawValue, partitionIndex: row.index, leaderId: row.leader,
                         leaderEpoch: row.leaderEpoch, replicaNodes: row.replicas, isrNodes: row.isr, offlineReplicas: row.offline)
        })
    }
}

/// A partition as a node without a quorum describes it (Metadata, DescribeTopicPartitions).
struct SingleNodeRow {
    var index: Int32
    var leader: NodeID
    var leaderEpoch: LeaderEpoch
    var replicas: [NodeID]
    var isr: [NodeID]
    var offline: [NodeID]
    var online: Bool { offline.isEmpty }
}

extension Topic {
    /// Partition `index` on a node without a quorum: led here, or, when its log dir failed,
    /// without a leader, this node still its replica and its ISR (as a controller keeps the
    /// last member, and as a node on its quorum lists it from the image) and its offline
    /// replica.
    func singleNodeRow(_ index: Int, node: NodeID) -> SingleNodeRow {
        guard let p = partitions[index] else {
            return SingleNodeRow(index: Int32(index), leader: NodeID(-1), leaderEpoch: LeaderEpoch(-1), replicas: [node], isr: [node], offline: [node])
        }
        return SingleNodeRow(index: p.index, leader: node, leaderEpoch: p.leaderEpoch, replicas: [node], isr: [node], offline: [])
    }
}

/// In a cluster: everything from the metadata image this broker follows.
extension MetadataHandler {
    /// The answer from the image, and the topics to auto-create (nil `created`: none asked yet;
    /// else the controller's answers, whose errors are given for topics still missing).
    func clusterMetadata(_ request: MetadataRequest, version: Int16, context: RequestContext,
                         created: [String: TopicAnswer]?) -> (response: MetadataResponse, missing: [String]) {
        let broker = context.broker
        let view = broker.cluster.current
        let image = view?.image ?? MetadataImage()
        let listener = context.advertised
        // Every registered broker, fenced ones too (Kafka lists only unfenced ones). No leader
        // or coordinator is ever a fenced broker, so clients connect to one only by choice; but
        // librdkafka (2.16 here) drops the handle of a broker missing from Metadata, and a
        // coordinator lookup that cached that handle then waits forever: a transactional
        // producer whose group coordinator died hung in send_offsets_to_transaction.
        var brokers: [MetadataResponse.MetadataResponseBroker] = image.brokers.values.sorted { $0.id < $1.id }.compactMap { info in
            guard let endpoint = info.endpoints.first(where: { $0.name == listener.name }) ?? info.endpoints.first else { return nil }
            return .init(nodeId: info.id, host: endpoint.host, port: Int32(endpoint.port), rack: info.rack)
        }
        if brokers.isEmpty {
            brokers = [.init(nodeId: broker.config.nodeID, host: listener.host, port: Int32(listener.port), rack: broker.config.brokerRack)]
        }
        var response = MetadataResponse(throttleTimeMs: 0, brokers: brokers, clusterId: broker.advertisedClusterID,
                                        controllerId: view?.controllerForClients(this: broker.config.nodeID) ?? NodeID(-1))
        // With an authorizer, a topic the client may not describe is left out of a full list
        // and answered TOPIC_AUTHORIZATION_FAILED when named, whether it exists or not.
        let authorization = context.authorization
        let refused = ErrorCode.topicAuthorizationFailed.rawValue
        if request.topics == nil || (version == 0 && request.topics?.isEmpty == true) {
            response.topics = image.topics.values.filter { authorization.mayDescribeTopic($0.name) }.sorted { $0.name < $1.name }.map { describe($0, image) }
            return (response, [])
        }
        var missing: [String] = []
        let autoCreate = broker.config.autoCreateTopics && (version < 4 || request.allowAutoTopicCreation)
        response.topics = (request.topics ?? []).map { wanted in
            if let name = wanted.name, !name.isEmpty {
                guard authorization.mayDescribeTopic(name) else { return TopicResult(errorCode: refused, name: name) }
                if let topic = image.topic(named: name) { return describe(topic, image) }
                if let problem = TopicRegistry.validateName(name) {
                    return TopicResult(errorCode: problem.code.rawValue, name: name, isInternal: false)
                }
                guard autoCreate else { return TopicResult(errorCode: ErrorCode.unknownTopicOrPartition.rawValue, name: name) }
                guard authorization.allowsCluster(.create) || authorization.allows(.create, .topic, name) else {
                    return TopicResult(errorCode: refused, name: name)
                }
                guard let created else {
                    if !missing.contains(name) { missing.append(name) }
                    return TopicResult(errorCode: ErrorCode.leaderNotAvailable.rawValue, name: name)
                }
                // Made by the controller but not here yet, or being deleted: the client asks
                // again, as while Kafka sets one up; a refusal is given as it is.
                let code = created[name].map(\.error).flatMap { $0 == .none || $0 == .topicAlreadyExists ? nil : $0 } ?? .leaderNotAvailable
                return TopicResult(errorCode: code.rawValue, name: name)
            }
            guard let topic = image.topics[wanted.topicId], authorization.mayDescribeTopic(topic.name) else {
                let code = image.topics[wanted.topicId] == nil ? ErrorCode.unknownTopicID.rawValue : refused
                return TopicResult(errorCode: code, name: nil, topicId: wanted.topicId)
            }
            return describe(topic, image)
        }
        return (response, missing)
    }

    func describe(_ topic: TopicInfo, _ image: MetadataImage) -> TopicResult {
        let internalTopic = TopicRegistry.isInternal(topic.name)
        return TopicResult(errorCode: 0, name: topic.name, topicId: topic.id, isInternal: internalTopic,
                           partitions: topic.partitions.enumerated().map { index, p in
            let offline = image.offlineReplicas(p)
            return .init(errorCode: p.leader == nil ? ErrorCode.leaderNotAvailable.rawValue : 0, partitionIndex: Int32(index),
                         leaderId: p.leader ?? NodeID(-1), leaderEpoch: p.leaderEpoch,
                         replicaNodes: p.replicas, isrNodes: p.isr, offlineReplicas: offline)
        })
    }
}
