import BrookCore
import BrookProtocol

/// A request the driver is holding open (a JoinGroup or SyncGroup waiting for the rebalance);
/// the coordinator answers it by this number through `Effects`.
public struct PendingID: Hashable, Sendable, CustomStringConvertible {
    public var value: UInt64
    public init(_ value: UInt64) { self.value = value }
    public var description: String { "#\(value)" }
}

/// A committed offset as OffsetCommit stores it.
public struct CommittedOffset: Hashable, Sendable {
    public var offset: Offset
    public var leaderEpoch: LeaderEpoch
    public var metadata: String
    public var commitTimestamp: Timestamp
    public init(offset: Offset, leaderEpoch: LeaderEpoch, metadata: String, commitTimestamp: Timestamp) {
        self.offset = offset
        self.leaderEpoch = leaderEpoch
        self.metadata = metadata
        self.commitTimestamp = commitTimestamp
    }
}

/// One protocol a classic member offers (for consumers: an assignor and its subscription).
public struct GroupProtocol: Hashable, Sendable {
    public var name: String
    public var metadata: [UInt8]
    public init(name: String, metadata: [UInt8]) { self.name = name; self.metadata = metadata }
}

/// What the driver must do after a call into the coordinator: write `records` to
/// `__consumer_offsets` (before anything else), then send the answers.
public struct Effects: Sendable {
    public var records: [GroupRecord] = []
    public var joins: [(PendingID, JoinResult)] = []
    public var syncs: [(PendingID, SyncResult)] = []
    public init() {}
    public var isEmpty: Bool { records.isEmpty && joins.isEmpty && syncs.isEmpty }
}

/// What the coordinator knows about the topics (the broker's registry, or a test's table).
public protocol TopicsView: Sendable {
    /// The topic's id and partition count, or nil when there is no such topic.
    func describe(_ topic: String) -> (id: KafkaUUID, partitions: Int32)?
    /// The name of a topic id.
    func name(of id: KafkaUUID) -> String?
}

/// A fixed table of topics, for tests and simulations.
public struct StaticTopics: TopicsView {
    public var topics: [String: (id: KafkaUUID, partitions: Int32)]
    public init(_ topics: [String: (id: KafkaUUID, partitions: Int32)]) { self.topics = topics }
    public func describe(_ topic: String) -> (id: KafkaUUID, partitions: Int32)? { topics[topic] }
    public func name(of id: KafkaUUID) -> String? { topics.first { $0.value.id == id }?.key }
}
