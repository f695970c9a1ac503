import BrookCluster
import BrookCore
import BrookProtocol

/// DescribeCluster: the cluster id, the controller (for clients: a broker, see
/// `ClusterMembership.View.controllerForClients`) and the brokers. In a cluster they come
/// from the metadata image this broker follows (fenced brokers only when asked, version 2+); on
/// a single node, this node is both.
struct DescribeClusterHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...2

    func handle(_ request: DescribeClusterRequest, version: Int16, context: RequestContext) -> Reply<DescribeClusterResponse> {
        let broker = context.broker
        let address = context.advertised
        var nodes = [DescribeClusterResponse.DescribeClusterBroker(
            brokerId: broker.config.nodeID, host: address.host, port: Int32(address.port), rack: nil, isFenced: false)]
        var controller = broker.config.nodeID
        if let view = broker.cluster.current {
            controller = view.controllerForClients(this: broker.config.nodeID)
            nodes = view.image.brokers.values.sorted { $0.id < $1.id }.compactMap { info in
                guard !info.fenced || request.includeFencedBrokers,
                      let endpoint = info.endpoints.first(where: { $0.name == address.name }) ?? info.endpoints.first else { return nil }
                return DescribeClusterResponse.DescribeClusterBroker(
                    brokerId: info.id, host: endpoint.host, port: Int32(endpoint.port), rack: info.rack, isFenced: info.fenced)
            }
        }
        var response = DescribeClusterResponse(
            throttleTimeMs: 0, errorCode: 0, errorMessage: nil, endpointType: request.endpointType,
            clusterId: broker.advertisedClusterID, controllerId: controller, brokers: nodes)
        // Asked for: what a client may do on the cluster (all of it, with no authorizer).
        if request.includeClusterAuthorizedOperations { response.clusterAuthorizedOperations = AuthorizedOperations.cluster(context.authorization) }
        return .now(response)
    }

    func refused(_ request: DescribeClusterRequest, version: Int16, code: ErrorCode, message: String) -> DescribeClusterResponse? {
        DescribeClusterResponse(errorCode: code.rawValue, errorMessage: message)
    }
}
