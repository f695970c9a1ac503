import BrookCore
import BrookRecords
import BrookProtocol
import NIOCore
import Synchronization

/// A client of a whole cluster over the Kafka protocol: a connection per broker (opened when
/// first needed, again after a failure), the brokers' addresses from Metadata, requests for a
/// partition sent to its leader and a group's to its coordinator. Every answer is awaited
/// `requestTimeoutMs` at most unless the call gives its own bound (then the connection is
/// closed: a broker that stopped answering); a request that fails on a connection drops it (the
/// next use opens another).
public actor ClusterClient {
    public typealias Connect = @Sendable (_ address: String) async throws -> BrokerConnection

    let bootstrap: [String]
    let connect: Connect
    var byAddress: [String: BrokerConnection] = [:] { didSet { publishConnections() } }
    var addresses: [NodeID: String] = [:] { didSet { publishConnections() } }
    /// The open connection of each node whose address is known, readable off the actor (a
    /// producer starts a request per batch without a hop onto it): kept in step with
    /// `byAddress` and `addresses` as they change.
    let connectionsByNode = Mutex<[NodeID: BrokerConnection]>([:])
    /// Topic ids by name, from the last metadata that named them.
    var topicIDs: [String: KafkaUUID] = [:]
    /// How long an answer is awaited by the calls that do not give their own bound
    /// (`request.timeout.ms`).
    let requestTimeoutMs: Int64
    /// At most this many brokers' connections are kept.
    static let connectionsMax = 64

    public init(bootstrap: [String], requestTimeoutMs: Int64 = 30_000, connect: @escaping Connect) {
        precondition(!bootstrap.isEmpty, "a cluster client needs a bootstrap address")
        precondition(requestTimeoutMs > 0, "a request timeout of at least 1 ms")
        self.bootstrap = bootstrap
        self.requestTimeoutMs = requestTimeoutMs
        self.connect = connect
    }

    private func publishConnections() {
        let current = Dictionary(uniqueKeysWithValues: addresses.compactMap { node, address in byAddress[address].map { (node, $0) } })
        connectionsByNode.withLock { $0 = current }
    }

    /// A connection to `address`, opened when there is none.
    func connection(to address: String) async throws -> BrokerConnection {
        if let open = byAddress[address] { return open }
        let opened = try await connect(address)
        if let raced = byAddress[address] {
            await opened.close()
            return raced
        }
        if byAddress.count >= Self.connectionsMax, let (oldest, dropped) = byAddress.first {
            byAddress[oldest] = nil
            await dropped.close()
        }
        byAddress[address] = opened
        return opened
    }

    func drop(_ address: String) async {
        if let open = byAddress.removeValue(forKey: address) { await open.close() }
    }

    /// Sends `request` over the connection to `address`; a failure drops the connection and is
    /// rethrown.
    public func send<R: KafkaRequest>(_ request: R, to address: String) async throws -> R.Response {
        try await using(address) { [requestTimeoutMs] in try await $0.send(request, timeoutMs: requestTimeoutMs) }
    }

    /// Runs `body` on the connection to `address`; a failure drops the connection (unless it is
    /// the broker's answer, a KafkaError) and is rethrown.
    func using<T: Sendable>(_ address: String, _ body: (BrokerConnection) async throws -> T) async throws -> T {
        let connection = try await connection(to: address)
        do { return try await body(connection) } catch {
            if !(error is KafkaError) { await drop(address) }
            throw error
        }
    }

    /// Sends `request` to some broker (the bootstrap brokers in turn, then any known one).
    public func sendToAny<R: KafkaRequest>(_ request: R) async throws -> R.Response {
        try await sendToAny(request, timeoutMs: requestTimeoutMs)
    }

    /// As `sendToAny`, each answer awaited `timeoutMs` at most.
    public func sendToAny<R: KafkaRequest>(_ request: R, timeoutMs: Int64) async throws -> R.Response {
        try await usingAny(R.apiName) { try await $0.send(request, timeoutMs: timeoutMs) }
    }

    /// Runs `body` on the connection to some broker (the bootstrap brokers in turn, then any
    /// known one) until one succeeds.
    func usingAny<T: Sendable>(_ what: String, _ body: (BrokerConnection) async throws -> T) async throws -> T {
        var last: (any Error)?
        for address in bootstrap + addresses.values.sorted() where !address.isEmpty {
            do { return try await using(address, body) } catch { last = error }
        }
        throw last ?? ClientError("no broker to send \(what) to")
    }

    /// Whether `node` (nil: some broker) serves a version of `R` this client speaks.
    public func supports<R: KafkaRequest>(_: R.Type, node: NodeID? = nil) async throws -> Bool {
        let body: (BrokerConnection) async throws -> Bool = { (try? $0.version(for: R.self)) != nil }
        if let node { return try await using(try await address(of: node), body) }
        return try await usingAny(R.apiName, body)
    }

    public func send<R: KafkaRequest>(_ request: R, toNode node: NodeID) async throws -> R.Response {
        try await send(request, to: try await address(of: node))
    }

    /// As `send(_:toNode:)`, the answer awaited `timeoutMs` at most (then the connection is
    /// closed, which fails what else waits on it: a broker that stopped answering).
    public func send<R: KafkaRequest>(_ request: R, toNode node: NodeID, timeoutMs: Int64) async throws -> R.Response {
        try await using(try await address(of: node)) { try await $0.send(request, timeoutMs: timeoutMs) }
    }

    /// Writes `request` to `node` now, behind every request started before on its connection
    /// (see `BrokerConnection.start`), and returns the wait for its answer; `answer(_:)` awaits
    /// it.
    public nonisolated func start<R: KafkaRequest>(_ request: R, toNode node: NodeID, timeoutMs: Int64) async throws -> PendingAnswer<R.Response> {
        // The node's open connection, if there is one, without a hop onto the actor.
        if let open = openConnection(to: node) {
            do { return try open.start(request, timeoutMs: timeoutMs) } catch {
                if !(error is KafkaError) { await drop(open) }
                throw error
            }
        }
        return try await startOpening(request, toNode: node, timeoutMs: timeoutMs)
    }

    /// `node`'s open connection, if it has one (without a hop onto the actor).
    public nonisolated func openConnection(to node: NodeID) -> BrokerConnection? {
        connectionsByNode.withLock { $0[node] }
    }

    func startOpening<R: KafkaRequest>(_ request: R, toNode node: NodeID, timeoutMs: Int64) async throws -> PendingAnswer<R.Response> {
        try await using(try await address(of: node)) { try $0.start(request, timeoutMs: timeoutMs) }
    }

    /// Awaits a started request's answer; a failure drops its connection (unless another has
    /// replaced it already, or it is the broker's answer, a KafkaError) and is rethrown.
    public nonisolated func answer<T: KafkaMessage>(_ pending: PendingAnswer<T>) async throws -> T {
        let body: Result<ByteBuffer?, any Error>
        do { body = .success(try await pending.future.get()) } catch { body = .failure(error) }
        return try await answer(pending, body)
    }

    /// As `answer`, with the answer's body (or the connection's failure) already at hand.
    nonisolated func answer<T: KafkaMessage>(_ pending: PendingAnswer<T>, _ body: Result<ByteBuffer?, any Error>) async throws -> T {
        do { return try pending.decode(body.get()) } catch {
            if !(error is KafkaError) { await drop(pending.connection) }
            throw error
        }
    }

    /// Drops `connection` if it is still the one kept for its address.
    func drop(_ connection: BrokerConnection) async {
        if byAddress[connection.address] === connection { await drop(connection.address) }
    }

    /// Sends a request that gets no answer (produce with acks=0) to `node`.
    public func sendWithoutResponse<R: KafkaRequest>(_ request: R, toNode node: NodeID) async throws {
        try await using(try await address(of: node)) { try await $0.sendWithoutResponse(request) }
    }

    func address(of node: NodeID) async throws -> String {
        if addresses[node] == nil { _ = try await metadata(topics: []) }
        guard let address = addresses[node] else { throw ClientError("broker \(node) is not in the cluster's metadata") }
        return address
    }

    /// `node` listens at `address` (KIP-951: a produce or fetch answer names a new leader's).
    public func learn(_ node: NodeID, at address: String) {
        addresses[node] = address
    }

    /// Metadata for `topics` (nil: every topic); the brokers' addresses are taken from it.
    public func metadata(topics: [String]?, allowAutoTopicCreation: Bool = false) async throws -> MetadataResponse {
        let request = MetadataRequest(topics: topics.map { $0.map { MetadataRequest.MetadataRequestTopic(name: $0) } },
                                      allowAutoTopicCreation: allowAutoTopicCreation)
        let answer = try await sendToAny(request)
        addresses = Dictionary(answer.brokers.map { ($0.nodeId, Self.address($0.host, Int($0.port))) }) { a, _ in a }
        for topic in answer.topics where topic.errorCode == 0 && topic.topicId != .zero {
            if let name = topic.name { topicIDs[name] = topic.topicId }
        }
        return answer
    }

    static func address(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The coordinator of `group` (FindCoordinator), as a node id.
    public func coordinator(ofGroup group: String) async throws -> NodeID {
        try await coordinator(of: group, keyType: 0)
    }

    /// The coordinator of the transactional id `id`.
    public func coordinator(ofTransaction id: String) async throws -> NodeID {
        try await coordinator(of: id, keyType: 1)
    }

    func coordinator(of group: String, keyType: Int8) async throws -> NodeID {
        let answer = try await sendToAny(FindCoordinatorRequest(key: group, keyType: keyType, coordinatorKeys: [group]))
        if let found = answer.coordinators.first {
            guard found.errorCode == 0 else {
                throw KafkaError(ErrorCode(rawValue: found.errorCode), "no coordinator for \(group)\(found.errorMessage.map { ": \($0)" } ?? "")")
            }
            addresses[found.nodeId] = Self.address(found.host, Int(found.port))
            return found.nodeId
        }
        guard answer.errorCode == 0 else { throw KafkaError(ErrorCode(rawValue: answer.errorCode), "no coordinator for \(group)") }
        addresses[answer.nodeId] = Self.address(answer.host, Int(answer.port))
        return answer.nodeId
    }

    /// ListOffsets for `partitions` of `topic` (-2 earliest, -1 latest, else a time in ms), each
    /// asked of its leader in `leaders`; partitions without a leader, or whose leader fails to
    /// answer, are left out.
    /// With `readCommitted`, "latest" is the last stable offset (an open transaction's records
    /// are not skipped).
    public func listOffsets(topic: String, leaders: [Int32: NodeID], timestamp: Int64, readCommitted: Bool = false) async throws -> [Int32: Offset] {
        var byLeader: [NodeID: [Int32]] = [:]
        for (partition, leader) in leaders { byLeader[leader, default: []].append(partition) }
        var offsets: [Int32: Offset] = [:]
        for (leader, partitions) in byLeader.sorted(by: { $0.key < $1.key }) {
            let request = ListOffsetsRequest(replicaId: NodeID(-1), isolationLevel: readCommitted ? 1 : 0, topics: [.init(name: topic, partitions: partitions.sorted().map {
                .init(partitionIndex: $0, timestamp: timestamp)
            })])
            guard let answer = try? await send(request, toNode: leader) else { continue }
            for t in answer.topics {
                for p in t.partitions where p.errorCode == 0 { offsets[p.partitionIndex] = p.offset }
            }
        }
        return offsets
    }

    /// Records of `topic`'s `partition` from `offset`, from its leader (at most about
    /// `maxBytes`).
    public func fetch(topic: String, partition: Int32, leader: NodeID, from offset: Offset, maxBytes: Int32) async throws -> [ConsumedRecord] {
        if topicIDs[topic] == nil { _ = try await metadata(topics: [topic]) }
        // By name and by id: the version negotiated uses one (ids from v13).
        let request = FetchRequest(replicaId: NodeID(-1), maxWaitMs: 0, minBytes: 0, maxBytes: 52_428_800, isolationLevel: 0, topics: [
            .init(topic: topic, topicId: topicIDs[topic] ?? .zero, partitions: [.init(partition: partition, fetchOffset: offset, partitionMaxBytes: maxBytes)]),
        ])
        let answer = try await send(request, toNode: leader)
        guard answer.errorCode == 0 else { throw ClientError("fetch: \(ErrorCode(rawValue: answer.errorCode))") }
        var records: [ConsumedRecord] = []
        for p in answer.responses.flatMap(\.partitions) where p.partitionIndex == partition {
            guard p.errorCode == 0 else { throw ClientError("fetch \(topic)-\(partition): \(ErrorCode(rawValue: p.errorCode))") }
            if case .bytes(let bytes)? = p.records { records += try RecordDecoding.records(in: bytes, topic: topic, partition: partition, from: offset) }
        }
        return records
    }

    public func close() async {
        for connection in byAddress.values { await connection.close() }
        byAddress.removeAll()
    }
}
