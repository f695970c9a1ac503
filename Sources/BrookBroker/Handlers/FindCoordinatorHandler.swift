import BrookCluster
import BrookCore
import BrookProtocol
import NIOCore

/// FindCoordinator: on a single node this broker coordinates every group and every
/// transactional id; in a cluster the coordinator is the leader of the key's partition of
/// `__consumer_offsets` or `__transaction_state`.
struct FindCoordinatorHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...6

    func handle(_ request: FindCoordinatorRequest, version: Int16, context: RequestContext) -> Reply<FindCoordinatorResponse> {
        let address = context.advertised
        let node = context.broker.config.nodeID
        let cluster = context.broker.cluster.isCluster
        let authorization = context.authorization
        @Sendable func answer(_ key: String) -> FindCoordinatorResponse.Coordinator {
            func refused(_ code: ErrorCode, _ message: String) -> FindCoordinatorResponse.Coordinator {
                FindCoordinatorResponse.Coordinator(key: key, nodeId: NodeID(-1), errorCode: code.rawValue, errorMessage: message)
            }
            // With an authorizer: DESCRIBE on the group or the transactional id.
            if request.keyType == 0 && !authorization.allows(.describe, .group, key) {
                return refused(.groupAuthorizationFailed, "DESCRIBE on group \(key) is needed.")
            }
            if request.keyType == 1 && !authorization.allows(.describe, .transactionalID, key) {
                return refused(.transactionalIDAuthorizationFailed, "DESCRIBE on transactional id \(key) is needed.")
            }
            switch request.keyType {
            case 0 where key.isEmpty: return refused(.invalidGroupID, "The group id is empty.")
            case 1 where key.isEmpty: return refused(.invalidRequest, "The transactional id is empty.")
            case 0 where cluster:
                return clusterCoordinator(key, of: Self.groups(context.broker.config), context: context, standInWhileElecting: true)
                    ?? refused(.coordinatorNotAvailable, "The group coordinator is not available yet.")
            case 1 where cluster:
                return clusterCoordinator(key, of: Self.transactions(context.broker.config), context: context)
                    ?? refused(.coordinatorNotAvailable, "The transaction coordinator is not available yet.")
            case 0, 1: return FindCoordinatorResponse.Coordinator(key: key, nodeId: node, host: address.host, port: Int32(address.port))
            default: return refused(.invalidRequest, "Unknown key type \(request.keyType).")
            }
        }
        @Sendable func respond() -> FindCoordinatorResponse {
            if version >= 4 { return FindCoordinatorResponse(coordinators: request.coordinatorKeys.map(answer)) }
            let c = answer(request.key)
            return FindCoordinatorResponse(errorCode: c.errorCode, errorMessage: c.errorMessage, nodeId: c.nodeId, host: c.host, port: c.port)
        }
        // In a cluster the coordinators' topic is made on first use: the answer waits for it.
        if cluster, request.keyType == 0 || request.keyType == 1 {
            let wanted = request.keyType == 0 ? Self.groups(context.broker.config) : Self.transactions(context.broker.config)
            if let made = Self.created(wanted, context: context) { return .later(made.map { respond() }) }
        }
        return .now(respond())
    }

    /// nil when this broker hosts `wanted` already; else the controller is asked to make it and
    /// the future completes once this broker applied it (or the controller failed to).
    static func created(_ wanted: CoordinatorTopic, context: RequestContext) -> EventLoopFuture<Void>? {
        let broker = context.broker
        guard broker.cluster.isCluster, broker.topics.topic(wanted.name) == nil else { return nil }
        let image = broker.cluster.current?.image ?? MetadataImage()
        let active = image.brokers.values.filter(\.isActive).count
        let factor = max(1, min(Int(wanted.replicationFactor), active))
        var configs = ["cleanup.policy": "compact", "segment.bytes": String(wanted.segmentBytes), "compression.type": "producer"]
        if let minISR = wanted.minInSyncReplicas { configs["min.insync.replicas"] = String(min(Int(minISR), factor)) }
        let create = NewTopic(name: wanted.name, partitions: Int(wanted.partitions), replicationFactor: factor, configs: configs)
        return broker.cluster.forward(.createTopics([create], validateOnly: false), on: context.eventLoop).map { _ in }
    }

    /// A coordinators' topic as Kafka makes it: partitions, replication factor (at most the
    /// active brokers), min.insync.replicas (at most the replication factor), segment size.
    struct CoordinatorTopic {
        let name: String
        let partitions: Int32
        let replicationFactor: Int16
        let minInSyncReplicas: Int16?
        let segmentBytes: Int64
    }

    static func groups(_ config: BrokerConfig) -> CoordinatorTopic {
        CoordinatorTopic(name: GroupService.offsetsTopic, partitions: config.offsetsTopicPartitions,
                         replicationFactor: config.offsetsTopicReplicationFactor, minInSyncReplicas: nil,
                         segmentBytes: config.offsetsTopicSegmentBytes)
    }

    static func transactions(_ config: BrokerConfig) -> CoordinatorTopic {
        CoordinatorTopic(name: TxnService.stateTopic, partitions: config.transactions.stateLogPartitions,
                         replicationFactor: config.transactionStateLogReplicationFactor,
                         minInSyncReplicas: config.transactionStateLogMinISR, segmentBytes: config.transactions.stateLogSegmentBytes)
    }

    /// In a cluster, a key's coordinator is the leader of its partition of the coordinators'
    /// topic, as the metadata image says (`created` has the controller make the topic first).
    ///
    /// `standInWhileElecting` (groups): while the partition has no leader, this broker names
    /// itself, and answers the group's requests with NOT_COORDINATOR until it has one, instead
    /// of COORDINATOR_NOT_AVAILABLE here. Both tell a client to look again, but librdkafka's
    /// lookup for a TxnOffsetCommit (`rd_kafka_coord_req`) retries a COORDINATOR_NOT_AVAILABLE
    /// twice and then waits for a connection to change state, without a timeout, and its
    /// `send_offsets_to_transaction` waits with it: an election longer than those retries left
    /// a transactional copier waiting for good (seed 1555952120 of the fault campaign). A
    /// NOT_COORDINATOR from the named broker makes it look again after 500 ms, for as long as
    /// the election takes. Transactional ids keep COORDINATOR_NOT_AVAILABLE: clients look for
    /// their transaction coordinator again on a timer.
    func clusterCoordinator(_ key: String, of wanted: CoordinatorTopic, context: RequestContext,
                            standInWhileElecting: Bool = false) -> FindCoordinatorResponse.Coordinator? {
        let broker = context.broker
        let image = broker.cluster.current?.image ?? MetadataImage()
        guard let topic = image.topic(named: wanted.name) else { return nil }
        let index = InternalTopic.partitionIndex(for: key, partitions: topic.partitions.count)
        guard let leader = topic.partitions[index].leader, let info = image.brokers[leader], !info.fenced else {
            guard standInWhileElecting, let me = image.brokers[broker.config.nodeID], !me.fenced else { return nil }
            let address = context.advertised
            return FindCoordinatorResponse.Coordinator(key: key, nodeId: broker.config.nodeID, host: address.host, port: Int32(address.port))
        }
        guard let endpoint = info.endpoints.first(where: { $0.name == context.advertised.name }) ?? info.endpoints.first else { return nil }
        return FindCoordinatorResponse.Coordinator(key: key, nodeId: leader, host: endpoint.host, port: Int32(endpoint.port))
    }
}

extension Reply {
    /// `body`'s reply once this broker hosts the coordinators' topic `wanted`: in a cluster it
    /// is made on first use, so that a first request (a JoinGroup, an OffsetCommit, a
    /// transactional InitProducerId) finds its coordinator as on a single node.
    static func once(_ wanted: FindCoordinatorHandler.CoordinatorTopic, context: RequestContext,
                     _ body: @escaping @Sendable () -> Reply<Response>) -> Reply<Response> {
        guard let made = FindCoordinatorHandler.created(wanted, context: context) else { return body() }
        let loop = context.eventLoop
        return .later(made.flatMap { () -> EventLoopFuture<Response> in
            switch body() {
            case .now(let response): loop.makeSucceededFuture(response)
            case .later(let future), .offloaded(let future, _): future
            case .none, .closeConnection(_), .answerThenClose: loop.makeFailedFuture(RequestRefused(description: "no answer after the coordinators' topic was made"))
            }
        })
    }
}
