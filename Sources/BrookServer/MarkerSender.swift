import BrookBroker
import BrookClient
import BrookCore
import BrookProtocol
import Logging

/// How a transaction coordinator's markers reach the other brokers of a cluster: one
/// connection per partition leader, kept while it works, WriteTxnMarkers v1 over it, with a
/// timeout. A failure closes the connection and answers nil (the coordinator sends again).
public actor MarkerSender {
    let broker: Broker
    let node: NodeID
    let logger: Logger
    let peers: InterBrokerClient
    var connections: [NodeID: BrokerConnection] = [:]
    static let connectTimeoutMs: Int64 = 2000
    static let requestTimeoutMs: UInt64 = 10_000

    public init(broker: Broker, node: NodeID, peers: InterBrokerClient, logger: Logger) {
        self.broker = broker
        self.peers = peers
        self.node = node
        self.logger = logger
    }

    public func send(to leader: NodeID, _ request: WriteTxnMarkersRequest) async -> WriteTxnMarkersResponse? {
        do {
            let connection = try await connection(to: leader)
            return try await ReplicaFetcher.withTimeout(ms: Self.requestTimeoutMs, onTimeout: { await connection.close() }) {
                try await connection.send(request, version: 1)
            }
        } catch {
            logger.debug("broker \(node): markers to broker \(leader) not delivered: \(error)")
            if let broken = connections.removeValue(forKey: leader) { await broken.close() }
            return nil
        }
    }

    func connection(to leader: NodeID) async throws -> BrokerConnection {
        if let open = connections[leader] { return open }
        guard let address = broker.address(of: leader) else { throw ClientError("broker \(leader) has no known address") }
        let node = self.node
        let peers = self.peers
        let opened = try await ReplicaFetcher.withTimeout(ms: Self.requestTimeoutMs) {
            try await peers.connect(address, clientID: "brook-txn-\(node)", timeoutMs: Self.connectTimeoutMs)
        }
        connections[leader] = opened
        return opened
    }

    public func close() async {
        for connection in connections.values { await connection.close() }
        connections = [:]
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
