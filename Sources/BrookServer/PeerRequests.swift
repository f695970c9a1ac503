import BrookBroker
import BrookClient
import BrookCore
import BrookProtocol
import Logging

/// Requests from this broker to the others of its cluster over their inter-broker listener
/// (with its security, as `InterBrokerClient` sets it up): a connection per broker and lane,
/// opened when first needed and kept while it works, every request with a timeout. A failure
/// closes that connection (the next request opens another) and is rethrown.
///
/// Lanes keep a long-polling request (a fetch) from holding up the others: a broker answers a
/// connection's requests in order.
public actor PeerRequests {
    public enum Lane: Hashable, Sendable {
        case requests
        case fetches
    }

    let broker: Broker
    let peers: InterBrokerClient
    let clientID: String
    var connections: [Key: BrokerConnection] = [:]
    static let connectTimeoutMs: Int64 = 2000

    struct Key: Hashable {
        let node: NodeID
        let lane: Lane
    }

    public init(broker: Broker, peers: InterBrokerClient, clientID: String) {
        self.broker = broker
        self.peers = peers
        self.clientID = clientID
    }

    public func send<R: KafkaRequest>(_ request: R, version: Int16, to node: NodeID, lane: Lane = .requests,
                                      timeoutMs: UInt64) async throws -> R.Response {
        let key = Key(node: node, lane: lane)
        do {
            let connection = try await connection(key, timeoutMs: timeoutMs)
            return try await ReplicaFetcher.withTimeout(ms: timeoutMs, onTimeout: { await connection.close() }) {
                try await connection.send(request, version: version)
            }
        } catch {
            if let broken = connections.removeValue(forKey: key) { await broken.close() }
            throw error
        }
    }

    func connection(_ key: Key, timeoutMs: UInt64) async throws -> BrokerConnection {
        if let open = connections[key] { return open }
        guard let address = broker.address(of: key.node) else { throw ClientError("broker \(key.node) has no known address") }
        let peers = self.peers
        let clientID = self.clientID
        let opened = try await ReplicaFetcher.withTimeout(ms: timeoutMs) {
            try await peers.connect(address, clientID: clientID, timeoutMs: Self.connectTimeoutMs)
        }
        if let raced = connections[key] {
            await opened.close()
            return raced
        }
        connections[key] = opened
        return opened
    }

    public func close() async {
        for connection in connections.values { await connection.close() }
        connections = [:]
    }
}
