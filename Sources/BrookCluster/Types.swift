import BrookCore
import BrookProtocol

/// A broker's registration epoch, handed out by the controller at each registration: requests
/// from an older incarnation of the broker carry an older epoch and are refused.
public struct BrokerEpoch: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Int64
    @inlinable public init(_ value: Int64) { self.value = value }
    public static let none = BrokerEpoch(-1)
    @inlinable public static func < (a: BrokerEpoch, b: BrokerEpoch) -> Bool { a.value < b.value }
    public var description: String { String(value) }
}

/// A partition's metadata version: bumped by every change of its replicas, ISR or leader, so an
/// AlterPartition made against an older state is refused (INVALID_UPDATE_VERSION).
public struct PartitionEpoch: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Int32
    @inlinable public init(_ value: Int32) { self.value = value }
    public static let zero = PartitionEpoch(0)
    @inlinable public static func < (a: PartitionEpoch, b: PartitionEpoch) -> Bool { a.value < b.value }
    @inlinable public var next: PartitionEpoch { PartitionEpoch(value + 1) }
    public var description: String { String(value) }
}

/// A partition named by its topic's id: names can be reused after a delete, ids never.
public struct TopicIDPartition: Hashable, Sendable, CustomStringConvertible {
    public var topicID: KafkaUUID
    public var partition: Int32
    public init(_ topicID: KafkaUUID, _ partition: Int32) {
        self.topicID = topicID
        self.partition = partition
    }
    public var description: String { "\(topicID)-\(partition)" }
}

/// The metadata log's position: the Raft index of the last entry applied to an image. Brokers
/// report it in heartbeats; a broker is unfenced once it reached its own registration.
public struct MetadataOffset: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Int64
    @inlinable public init(_ value: Int64) { self.value = value }
    public static let zero = MetadataOffset(0)
    @inlinable public static func < (a: MetadataOffset, b: MetadataOffset) -> Bool { a.value < b.value }
    public var description: String { String(value) }
}
