// Distinct types for distinct numbers: an epoch never gets passed as an offset.

/// A position in a partition's log: the offset of one record.
public struct Offset: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Int64
    @inlinable public init(_ value: Int64) { self.value = value }
    public static let zero = Offset(0)
    @inlinable public static func < (a: Offset, b: Offset) -> Bool { a.value < b.value }
    @inlinable public static func + (a: Offset, b: Int64) -> Offset { Offset(a.value + b) }
    @inlinable public static func - (a: Offset, b: Int64) -> Offset { Offset(a.value - b) }
    /// The number of offsets from `b` up to `a`.
    @inlinable public static func - (a: Offset, b: Offset) -> Int64 { a.value - b.value }
    public var description: String { String(value) }
}

/// A byte position inside one segment file.
public struct FilePosition: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Int64
    @inlinable public init(_ value: Int64) { self.value = value }
    @inlinable public init(_ value: Int) { self.value = Int64(value) }
    public static let zero = FilePosition(Int64(0))
    @inlinable public static func < (a: FilePosition, b: FilePosition) -> Bool { a.value < b.value }
    @inlinable public static func + (a: FilePosition, b: Int) -> FilePosition { FilePosition(a.value + Int64(b)) }
    /// The number of bytes from `b` up to `a`.
    @inlinable public static func - (a: FilePosition, b: FilePosition) -> Int { Int(a.value - b.value) }
    public var description: String { String(value) }
}

/// Milliseconds since the Unix epoch, as Kafka's record timestamps.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var ms: Int64
    @inlinable public init(ms: Int64) { self.ms = ms }
    /// Kafka's "no timestamp" value.
    public static let none = Timestamp(ms: -1)
    @inlinable public static func < (a: Timestamp, b: Timestamp) -> Bool { a.ms < b.ms }
    public var description: String { String(ms) }
}

/// The epoch of a partition's leader (stamped into every batch it appends).
public struct LeaderEpoch: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Int32
    @inlinable public init(_ value: Int32) { self.value = value }
    public static let none = LeaderEpoch(-1)
    @inlinable public static func < (a: LeaderEpoch, b: LeaderEpoch) -> Bool { a.value < b.value }
    public var description: String { String(value) }
}

/// A broker or controller node's id (`node.id`).
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Int32
    @inlinable public init(_ value: Int32) { self.value = value }
    @inlinable public static func < (a: NodeID, b: NodeID) -> Bool { a.value < b.value }
    public var description: String { String(value) }
}

/// An idempotent or transactional producer's id.
public struct ProducerID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Int64
    @inlinable public init(_ value: Int64) { self.value = value }
    public static let none = ProducerID(-1)
    @inlinable public static func < (a: ProducerID, b: ProducerID) -> Bool { a.value < b.value }
    public var description: String { String(value) }
}

/// The epoch of a producer id; bumped to fence older instances.
public struct ProducerEpoch: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Int16
    @inlinable public init(_ value: Int16) { self.value = value }
    public static let none = ProducerEpoch(-1)
    @inlinable public static func < (a: ProducerEpoch, b: ProducerEpoch) -> Bool { a.value < b.value }
    public var description: String { String(value) }
}

/// A topic partition by name, the key of committed offsets and of a producer's batches.
public struct TopicPartition: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(_ topic: String, _ partition: Int32) { self.topic = topic; self.partition = partition }
    public static func < (a: TopicPartition, b: TopicPartition) -> Bool {
        a.topic != b.topic ? a.topic < b.topic : a.partition < b.partition
    }
    public var description: String { "\(topic)-\(partition)" }
}
