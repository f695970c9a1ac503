import BrookCore
import BrookProtocol

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
    /// group.consumer.min/max.session.timeout.ms and group.consumer.min/max.heartbeat.interval.ms:
    /// the bounds of a group's own values (GroupConfigs).
    public var consumerMinSessionTimeoutMs: Int32 = 45_000
    public var consumerMaxSessionTimeoutMs: Int32 = 60_000
    public var consumerMinHeartbeatIntervalMs: Int32 = 5_000
    public var consumerMaxHeartbeatIntervalMs: Int32 = 15_000
    /// The interval given instead to a KIP-848 member waiting for partitions to be released.
    public static let reconcilingHeartbeatIntervalMs: Int32 = 200
    /// group.consumer.assignors: the server-side assignors, the first being the default.
    public var consumerAssignors: [String] = ["uniform", "range"]
    /// group.consumer.max.size
    public var consumerMaxSize: Int = 1_000

    public init() {}
}

/// A consumer group's own configs (Kafka 4.0's GROUP config resource): each replaces the
/// broker's group.consumer.* default for that group alone; nil keeps the default.
public struct GroupOverrides: Sendable, Equatable {
    public var consumerSessionTimeoutMs: Int32?
    public var consumerHeartbeatIntervalMs: Int32?
    public init(consumerSessionTimeoutMs: Int32? = nil, consumerHeartbeatIntervalMs: Int32? = nil) {
        self.consumerSessionTimeoutMs = consumerSessionTimeoutMs
        self.consumerHeartbeatIntervalMs = consumerHeartbeatIntervalMs
    }
}

extension GroupConfig {
    /// The settings a group with `overrides` runs under.
    public func applying(_ overrides: GroupOverrides?) -> GroupConfig {
        guard let overrides else { return self }
        var config = self
        if let v = overrides.consumerSessionTimeoutMs { config.consumerSessionTimeoutMs = v }
        if let v = overrides.consumerHeartbeatIntervalMs { config.consumerHeartbeatIntervalMs = v }
        return config
    }
}

/// The GROUP config resource's names, and the checks Kafka makes of a group's values.
public enum GroupConfigs {
    public static let sessionTimeout = "consumer.session.timeout.ms"
    public static let heartbeatInterval = "consumer.heartbeat.interval.ms"
    public static let names = [sessionTimeout, heartbeatInterval]
    /// The broker setting each one overrides.
    public static func brokerKey(_ name: String) -> String { "group." + name }

    /// A group's configs refused, with Kafka's error (INVALID_CONFIG) and message.
    public struct Refusal: Error, Equatable, Sendable {
        public var code: ErrorCode
        public var message: String
    }

    /// Parses a group's whole set of configs, checked against the broker's bounds as Kafka does
    /// (each value within its min and max, the session longer than the heartbeat interval).
    public static func parse(_ configs: [String: String], broker: GroupConfig) throws(Refusal) -> GroupOverrides {
        var overrides = GroupOverrides()
        for (name, value) in configs {
            guard names.contains(name) else { throw Refusal(code: .invalidConfig, message: "Unknown group config name: \(name)") }
            let words = value.split(separator: " ")
            guard words.count == 1, let number = Int32(words[0]), number >= 1 else {
                throw Refusal(code: .invalidConfig, message: "Invalid value \(value) for configuration \(name): Value must be at least 1")
            }
            if name == sessionTimeout { overrides.consumerSessionTimeoutMs = number } else { overrides.consumerHeartbeatIntervalMs = number }
        }
        let effective = broker.applying(overrides)
        func refuse(_ what: String) -> Refusal { Refusal(code: .invalidConfig, message: what) }
        if effective.consumerHeartbeatIntervalMs < broker.consumerMinHeartbeatIntervalMs {
            throw refuse("\(heartbeatInterval) must be greater than or equal to group.consumer.min.heartbeat.interval.ms")
        }
        if effective.consumerHeartbeatIntervalMs > broker.consumerMaxHeartbeatIntervalMs {
            throw refuse("\(heartbeatInterval) must be less than or equal to group.consumer.max.heartbeat.interval.ms")
        }
        if effective.consumerSessionTimeoutMs < broker.consumerMinSessionTimeoutMs {
            throw refuse("\(sessionTimeout) must be greater than or equal to group.consumer.min.session.timeout.ms")
        }
        if effective.consumerSessionTimeoutMs > broker.consumerMaxSessionTimeoutMs {
            throw refuse("\(sessionTimeout) must be less than or equal to group.consumer.max.session.timeout.ms")
        }
        if effective.consumerSessionTimeoutMs <= effective.consumerHeartbeatIntervalMs {
            throw refuse("\(sessionTimeout) must be greater than \(heartbeatInterval)")
        }
        return overrides
    }
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
