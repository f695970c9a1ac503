import BrookBroker
import BrookClient
import BrookCore
import BrookProtocol
import Logging

/// How a transaction coordinator's markers reach the other brokers of a cluster: WriteTxnMarkers
/// v1 over a connection per partition leader, with a timeout. A failure closes the connection
/// and answers nil (the coordinator sends again).
public actor MarkerSender {
    let node: NodeID
    let logger: Logger
    let requests: PeerRequests
    static let requestTimeoutMs: UInt64 = 10_000

    public init(broker: Broker, node: NodeID, peers: InterBrokerClient, logger: Logger) {
        requests = PeerRequests(broker: broker, peers: peers, clientID: "brook-txn-\(node)")
        self.node = node
        self.logger = logger
    }

    public func send(to leader: NodeID, _ request: WriteTxnMarkersRequest) async -> WriteTxnMarkersResponse? {
        do {
            return try await requests.send(request, version: 1, to: leader, timeoutMs: Self.requestTimeoutMs)
        } catch {
            logger.debug("broker \(node): markers to broker \(leader) not delivered: \(error)")
            return nil
        }
    }

    public func close() async {
        await requests.close()
    }
}

extension Broker {
    /// Where another broker of the cluster listens, as the metadata image has it (its listener
    /// of this broker's `inter.broker.listener.name`, else its first).
    public func address(of other: NodeID) -> String? {
        guard let info = cluster.current?.image.brokers[other] else { return nil }
        let name = config.interBrokerListener
        guard let endpoint = info.endpoints.first(where: { $0.name == name }) ?? info.endpoints.first else { return nil }
        return "\(endpoint.host):\(endpoint.port)"
    }
}
