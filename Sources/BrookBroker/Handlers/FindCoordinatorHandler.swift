import BrookCore
import BrookProtocol

/// FindCoordinator: this broker coordinates every group and every transactional id (one node).
struct FindCoordinatorHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...6

    func handle(_ request: FindCoordinatorRequest, version: Int16, context: RequestContext) -> Reply<FindCoordinatorResponse> {
        let address = context.broker.config.advertised
        let node = context.broker.config.nodeID
        func answer(_ key: String) -> FindCoordinatorResponse.Coordinator {
            func refused(_ code: ErrorCode, _ message: String) -> FindCoordinatorResponse.Coordinator {
                FindCoordinatorResponse.Coordinator(key: key, nodeId: NodeID(-1), errorCode: code.rawValue, errorMessage: message)
            }
            switch request.keyType {
            case 0 where key.isEmpty: return refused(.invalidGroupID, "The group id is empty.")
            case 1 where key.isEmpty: return refused(.invalidRequest, "The transactional id is empty.")
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
}
