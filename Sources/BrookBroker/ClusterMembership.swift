import BrookCluster
import BrookCore
import BrookProtocol
import Foundation
import NIOCore
import Synchronization

/// What this broker knows of the cluster it belongs to, when it runs with `process.roles`: the
/// metadata image it follows, the active controller, and the way to the controller for topic
/// changes. Empty on a single node without a quorum (`isCluster` false).
public final class ClusterMembership: Sendable {
    public struct View: Sendable {
        public var image: MetadataImage
        public var activeController: NodeID?
        public var fenced: Bool
        public init(image: MetadataImage, activeController: NodeID?, fenced: Bool) {
            self.image = image
            self.activeController = activeController
            self.fenced = fenced
        }

        /// The node Metadata and DescribeCluster name as the controller: a broker a client can
        /// reach, as in Kafka's KRaft mode, since clients never talk to the quorum and every
        /// broker forwards admin requests to it. The active controller when it is an unfenced
        /// broker of the image (a combined node), else this broker, else the unfenced broker
        /// of lowest id; -1 when the image has none. A controller id that is no listed broker
        /// (a dedicated controller, or a broker this image does not have yet) left librdkafka's
        /// admin client waiting for it until its request timed out.
        public func controllerForClients(this: NodeID) -> NodeID {
            let reachable = { (id: NodeID) -> Bool in
                guard let info = image.brokers[id] else { return false }
                return !info.fenced && !info.endpoints.isEmpty
            }
            if let active = activeController, reachable(active) { return active }
            if reachable(this) { return this }
            return image.brokers.keys.filter(reachable).min() ?? NodeID(-1)
        }
    }

    public typealias Forward = @Sendable (ControllerAdminRequest, @escaping @Sendable (Result<[TopicAnswer], any Error>) -> Void) -> Void
    /// Sends a leader's ISR changes (at most `AlterPartitionRequest.partitionsMax`) to the
    /// controller; `done` gets one answer per change, in order.
    public typealias AlterPartitions = @Sendable ([(TopicIDPartition, ISRProposal)],
                                                  @escaping @Sendable ([(ErrorCode, CommittedISR?)]) -> Void) -> Void

    /// Sends WriteTxnMarkers to another broker; nil when it could not be reached or answered.
    public typealias SendMarkers = @Sendable (NodeID, WriteTxnMarkersRequest) async -> WriteTxnMarkersResponse?
    /// Asks the active controller for a block of producer ids: the error, the first id, how many.
    public typealias AllocateProducerIDs = @Sendable (@escaping @Sendable (ErrorCode, ProducerID, Int64) -> Void) -> Void

    private let lock = NSLock()
    nonisolated(unsafe) private var markerSender: SendMarkers?
    nonisolated(unsafe) private var idAllocator: AllocateProducerIDs?
    nonisolated(unsafe) private var view: View?
    nonisolated(unsafe) private var forwarder: Forward?
    nonisolated(unsafe) private var alterer: AlterPartitions?
    nonisolated(unsafe) private var mover: MoveReplica?
    nonisolated(unsafe) private var quorumDescriber: DescribeQuorum?
    /// Asks the quorum's leader how the quorum stands (DescribeQuorum).
    public typealias DescribeQuorum = @Sendable (@escaping @Sendable (Result<QuorumDescription, any Error>) -> Void) -> Void
    /// Moves a replica to another log dir (topic, partition, dir, the move's ticket in
    /// TopicRegistry.moves), its swap in the replica manager's order; runs to the move's end.
    public typealias MoveReplica = @Sendable (String, Int32, String, UInt64) -> Void

    public init() {}

    /// ISR changes this broker's leaderships asked for and the controller committed (the metrics'
    /// ISR shrinks and expands).
    public let isrShrinks = Counter()
    public let isrExpands = Counter()

    public var current: View? { lock.withLock { view } }
    public var isCluster: Bool { lock.withLock { forwarder != nil } }
    /// Whether the image has any client quota: produce and fetch read this (an atomic load)
    /// before the image itself.
    public var hasClientQuotas: Bool { clientQuotas.load(ordering: .relaxed) }
    /// Whether the image has a `request_percentage` quota: every request reads this, and measures
    /// its handling time only then.
    public var hasRequestQuotas: Bool { requestQuotas.load(ordering: .relaxed) }
    private let clientQuotas = Atomic<Bool>(false)
    private let requestQuotas = Atomic<Bool>(false)

    public func update(_ new: View) {
        let quotas = new.image.clientQuotas
        let measured = quotas.values.contains { $0[ClientQuotaEnforcer.Kind.request.key] != nil }
        lock.withLock { view = new }
        clientQuotas.store(!quotas.isEmpty, ordering: .relaxed)
        requestQuotas.store(measured, ordering: .relaxed)
    }

    /// Called once at start by a broker that is part of a cluster.
    public func attach(forward: @escaping Forward, alterPartitions: @escaping AlterPartitions) {
        lock.withLock {
            forwarder = forward
            alterer = alterPartitions
        }
    }

    /// Called once at start by a broker of a cluster: how transaction markers reach other
    /// brokers, and how producer ids are had from the controller.
    public func attach(sendMarkers: @escaping SendMarkers, allocateProducerIDs: @escaping AllocateProducerIDs) {
        lock.withLock {
            markerSender = sendMarkers
            idAllocator = allocateProducerIDs
        }
    }

    /// Called once at start by a broker of a cluster: how replicas move between log dirs.
    public func attach(moveReplica: @escaping MoveReplica) {
        lock.withLock { mover = moveReplica }
    }

    /// Called once at start by a broker: how the quorum's leader is asked for its state.
    public func attach(describeQuorum: @escaping DescribeQuorum) {
        lock.withLock { quorumDescriber = describeQuorum }
    }

    /// The quorum as its leader sees it; the future completes on `loop` (an error when this
    /// broker has no quorum or its leader did not answer).
    public func describeQuorum(on loop: any EventLoop) -> EventLoopFuture<Result<QuorumDescription, any Error>> {
        let promise = loop.makePromise(of: Result<QuorumDescription, any Error>.self)
        guard let describer = lock.withLock({ quorumDescriber }) else {
            promise.succeed(.failure(NotInCluster()))
            return promise.futureResult
        }
        describer { promise.succeed($0) }
        return promise.futureResult
    }

    /// Whether replica moves go through a replica manager (a broker of a cluster).
    public var canMoveReplicas: Bool { lock.withLock { mover != nil } }

    /// Hands a replica's move to the replica manager (a broker of a cluster; nothing otherwise).
    public func moveReplica(_ topic: String, _ index: Int32, to dir: String, ticket: UInt64) {
        guard let mover = lock.withLock({ mover }) else { return }
        mover(topic, index, dir, ticket)
    }

    /// A block of producer ids from the controller (AllocateProducerIds).
    public func allocateProducerIDs(done: @escaping @Sendable (ErrorCode, ProducerID, Int64) -> Void) {
        guard let allocator = lock.withLock({ idAllocator }) else { return done(.notController, .none, 0) }
        allocator(done)
    }

    /// Transaction markers to `node` (a partition leader); nil when not delivered.
    public func sendMarkers(to node: NodeID, _ request: WriteTxnMarkersRequest) async -> WriteTxnMarkersResponse? {
        guard let sender = lock.withLock({ markerSender }) else { return nil }
        return await sender(node, request)
    }

    /// Sends a leader's ISR changes to the controller, at most
    /// `AlterPartitionRequest.partitionsMax`; `done` gets one answer per change, in order.
    public func alterPartitions(_ changes: [(TopicIDPartition, ISRProposal)], done: @escaping @Sendable ([(ErrorCode, CommittedISR?)]) -> Void) {
        precondition(changes.count <= AlterPartitionRequest.partitionsMax, "\(changes.count) ISR changes in one request")
        guard let alterer = lock.withLock({ alterer }) else { return done(changes.map { _ in (.notController, nil) }) }
        alterer(changes, done)
    }

    /// Sends a topic change to the active controller; the future completes on `loop` with its
    /// answers once committed, or the error.
    public func forward(_ request: ControllerAdminRequest, on loop: any EventLoop) -> EventLoopFuture<Result<[TopicAnswer], any Error>> {
        let promise = loop.makePromise(of: Result<[TopicAnswer], any Error>.self)
        guard let forwarder = lock.withLock({ forwarder }) else {
            promise.succeed(.failure(NotInCluster()))
            return promise.futureResult
        }
        forwarder(request) { promise.succeed($0) }
        return promise.futureResult
    }

    struct NotInCluster: Error {}
}

extension Broker {
    /// The cluster id clients see: the one the cluster's metadata log agreed on, or this node's.
    public var advertisedClusterID: String { cluster.current?.image.clusterID ?? clusterID }
}
