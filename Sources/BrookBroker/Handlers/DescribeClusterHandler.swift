import BrookProtocol

/// DescribeCluster: the cluster id, the controller and the brokers (this one node).
struct DescribeClusterHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...2

    func handle(_ request: DescribeClusterRequest, version: Int16, context: RequestContext) -> Reply<DescribeClusterResponse> {
        let broker = context.broker
        let address = broker.config.advertised
        let node = DescribeClusterResponse.DescribeClusterBroker(
            brokerId: broker.config.nodeID, host: address.host, port: Int32(address.port), rack: nil, isFenced: false)
        return .now(DescribeClusterResponse(
            throttleTimeMs: 0, errorCode: 0, errorMessage: nil, endpointType: request.endpointType,
            clusterId: broker.clusterID, controllerId: broker.config.nodeID, brokers: [node]))
    }
}
