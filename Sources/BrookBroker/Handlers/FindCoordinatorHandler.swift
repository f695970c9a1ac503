import BrookCluster
import BrookCore
import BrookProtocol

/// FindCoordinator: this broker coordinates every group and every transactional id (one node).
struct FindCoordinatorHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...6

    func handle(_ request: FindCoordinatorRequest, version: Int16, context: RequestContext) -> Reply<FindCoordinatorResponse> {
        let address = context.broker.config.advertised
        let node = context.broker.config.nodeID
        let cluster = context.broker.cluster.isCluster
        func answer(_ key: String) -> FindCoordinatorResponse.Coordinator {
            func refused(_ code: ErrorCode, _ message: String) -> FindCoordinatorResponse.Coordinator {
                FindCoordinatorResponse.Coordinator(key: key, nodeId: NodeID(-1), errorCode: code.rawValue, errorMessage: message)
            }
            switch request.keyType {
            case 0 where key.isEmpty: return refused(.invalidGroupID, "The group id is empty.")
            case 1 where key.isEmpty: return refused(.invalidRequest, "The transactional id is empty.")
            case 0 where cluster: return clusterGroupCoordinator(key, context: context) ?? refused(.coordinatorNotAvailable, "The group coordinator is not available yet.")
            case 1 where cluster: return refused(.coordinatorNotAvailable, "Transactions are not available in Brook clusters yet (docs/cluster.md).")
            case 0, 1: return FindCoordinatorResponse.Coordinator(key: key, nodeId: node, host: address.host, port: Int32(address.port))
            default: return refused(.invalidRequest, "Unknown key type \(request.keyType).")
            }
        }
        if version >= 4 {
            return .now(FindCoordinatorResponse(coordinators: request.coordinatorKeys.map(answer)))
        }
        let c = answer(request.key)
        return .now(FindCoordinatorResponse(errorCode: c.errorCode, errorMessage: c.errorMessage, nodeId: c.nodeId,
                                            host: c.host, port: c.port))
    }

    /// In a cluster, a group's coordinator is the leader of its `__consumer_offsets` partition,
    /// as the metadata image says; the controller is asked to make the topic the first time.
    func clusterGroupCoordinator(_ key: String, context: RequestContext) -> FindCoordinatorResponse.Coordinator? {
        let broker = context.broker
        let image = broker.cluster.current?.image ?? MetadataImage()
        guard let topic = image.topic(named: GroupService.offsetsTopic) else {
            let configs = ["cleanup.policy": "compact", "segment.bytes": String(broker.config.offsetsTopicSegmentBytes), "compression.type": "producer"]
            let active = image.brokers.values.filter(\.isActive).count
            let factor = max(1, min(Int(broker.config.offsetsTopicReplicationFactor), active))
            let create = NewTopic(name: GroupService.offsetsTopic, partitions: Int(broker.config.offsetsTopicPartitions), replicationFactor: factor, configs: configs)
            _ = broker.cluster.forward(.createTopics([create], validateOnly: false), on: context.eventLoop)
            return nil
        }
        let index = InternalTopic.partitionIndex(for: key, partitions: topic.partitions.count)
        guard let leader = topic.partitions[index].leader, let info = image.brokers[leader], !info.fenced,
              let endpoint = info.endpoints.first(where: { $0.name == broker.config.advertised.name }) ?? info.endpoints.first else { return nil }
        return FindCoordinatorResponse.Coordinator(key: key, nodeId: leader, host: endpoint.host, port: Int32(endpoint.port))
    }
}
