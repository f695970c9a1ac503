import BrookCore

/// The coordinator's settings, under Kafka's names (see BrokerConfig for where they come from).
public struct GroupConfig: Sendable {
    /// group.min.session.timeout.ms / group.max.session.timeout.ms: the session timeouts a
    /// classic member may ask for.
    public var minSessionTimeoutMs: Int32 = 6_000
    public var maxSessionTimeoutMs: Int32 = 1_800_000
    /// group.initial.rebalance.delay.ms: how long a new group waits for more members before its
    /// first rebalance completes.
    public var initialRebalanceDelayMs: Int32 = 3_000
    /// group.max.size: members per group (classic and consumer).
    public var maxSize: Int = 1_000
    /// offset.metadata.max.bytes: the metadata string of a committed offset.
    public var offsetMetadataMaxBytes: Int = 4_096
    /// offsets.retention.minutes, in ms: how long the offsets of a group stay once it is empty.
    public var offsetsRetentionMs: Int64 = 7 * 24 * 3_600_000
    /// offsets.retention.check.interval.ms
    public var offsetsRetentionCheckIntervalMs: Int64 = 600_000
    /// group.consumer.session.timeout.ms / group.consumer.heartbeat.interval.ms (KIP-848).
    public var consumerSessionTimeoutMs: Int32 = 45_000
    public var consumerHeartbeatIntervalMs: Int32 = 5_000
    /// The interval given instead to a KIP-848 member waiting for partitions to be released.
    public static let reconcilingHeartbeatIntervalMs: Int32 = 200
    /// group.consumer.assignors: the server-side assignors, the first being the default.
    public var consumerAssignors: [String] = ["uniform", "range"]
    /// group.consumer.max.size
    public var consumerMaxSize: Int = 1_000

    public init() {}
}

/// Limits on what one request may put into the coordinator's memory.
public enum GroupLimits {
    /// Group ids, member ids, instance ids, client ids and protocol names.
    public static let idBytesMax = 1_024
    /// Protocols one classic member may offer.
    public static let protocolsPerMemberMax = 64
    /// A member's subscription or assignment bytes.
    public static let memberMetadataBytesMax = 1 << 20
    /// Topics one KIP-848 member may subscribe to.
    public static let subscribedTopicsMax = 10_000
    /// Groups in one coordinator.
    public static let groupsMax = 100_000
    /// Committed partitions per group.
    public static let offsetsPerGroupMax = 1_000_000
}
