import BrookStorage

/// Every topic config Kafka 4.0 has, with its default, its broker-wide synonym and its type,
/// so that DescribeConfigs lists them all (tools read-modify-write the whole set). The log
/// settings are enforced by the storage engine; the rest are validated, kept and reported.
public enum TopicConfigs {
    /// Kafka's config types, as DescribeConfigs v3+ reports them.
    public enum ValueType: Int8, Sendable {
        case boolean = 1, string = 2, int = 3, short = 4, long = 5, double = 6, list = 7
    }

    public struct Definition: Sendable {
        public let name: String
        public let defaultValue: String
        public let brokerKey: String?
        public let type: ValueType
        public let choices: [String]?
    }

    static func def(_ name: String, _ value: String, _ brokerKey: String?, _ type: ValueType, _ choices: [String]? = nil) -> Definition {
        Definition(name: name, defaultValue: value, brokerKey: brokerKey, type: type, choices: choices)
    }

    static let longMax = String(Int64.max)

    public static let all: [Definition] = [
        def("cleanup.policy", "delete", "log.cleanup.policy", .list),
        def("compression.type", "producer", "compression.type", .string,
            ["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        def("compression.gzip.level", "-1", "compression.gzip.level", .int),
        def("compression.lz4.level", "9", "compression.lz4.level", .int),
        def("compression.zstd.level", "3", "compression.zstd.level", .int),
        def("delete.retention.ms", "86400000", "log.cleaner.delete.retention.ms", .long),
        def("file.delete.delay.ms", "60000", "log.segment.delete.delay.ms", .long),
        def("flush.messages", longMax, "log.flush.interval.messages", .long),
        def("flush.ms", longMax, "log.flush.interval.ms", .long),
        def("follower.replication.throttled.replicas", "", nil, .list),
        def("index.interval.bytes", "4096", "log.index.interval.bytes", .int),
        def("leader.replication.throttled.replicas", "", nil, .list),
        def("local.retention.bytes", "-2", "log.local.retention.bytes", .long),
        def("local.retention.ms", "-2", "log.local.retention.ms", .long),
        def("max.compaction.lag.ms", longMax, "log.cleaner.max.compaction.lag.ms", .long),
        def("max.message.bytes", "1048588", "message.max.bytes", .int),
        def("message.timestamp.after.max.ms", "3600000", "log.message.timestamp.after.max.ms", .long),
        def("message.timestamp.before.max.ms", longMax, "log.message.timestamp.before.max.ms", .long),
        def("message.timestamp.type", "CreateTime", "log.message.timestamp.type", .string, ["CreateTime", "LogAppendTime"]),
        def("min.cleanable.dirty.ratio", "0.5", "log.cleaner.min.cleanable.ratio", .double),
        def("min.compaction.lag.ms", "0", "log.cleaner.min.compaction.lag.ms", .long),
        def("min.insync.replicas", "1", "min.insync.replicas", .int),
        def("preallocate", "false", "log.preallocate", .boolean),
        def("remote.storage.enable", "false", nil, .boolean),
        def("retention.bytes", "-1", "log.retention.bytes", .long),
        def("retention.ms", "604800000", "log.retention.ms", .long),
        def("segment.bytes", "1073741824", "log.segment.bytes", .int),
        def("segment.index.bytes", "10485760", "log.index.size.max.bytes", .int),
        def("segment.jitter.ms", "0", "log.roll.jitter.ms", .long),
        def("segment.ms", "604800000", "log.roll.ms", .long),
        def("unclean.leader.election.enable", "false", "unclean.leader.election.enable", .boolean),
        // Brook's own: the link of an offset-preserving mirror that alone writes the topic
        // (empty: a topic like any other). `brook mirror promote` removes it.
        def(mirrorLink, "", nil, .string),
    ]

    /// `brook.mirror.link`.
    public static let mirrorLink = "brook.mirror.link"

    static let byName: [String: Definition] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    public static func definition(_ name: String) -> Definition? { byName[name] }

    /// Broker keys in hours or minutes that set a topic config in milliseconds.
    static let scaledBrokerKeys: [String: (topic: String, factor: Int64)] = [
        "log.retention.hours": ("retention.ms", 3_600_000),
        "log.retention.minutes": ("retention.ms", 60_000),
        "log.roll.hours": ("segment.ms", 3_600_000),
    ]

    static let topicKeyByBrokerKey: [String: String] = Dictionary(
        uniqueKeysWithValues: all.compactMap { d in d.brokerKey.map { ($0, d.name) } })

    /// The topic config a broker-wide key sets by default (`log.retention.ms` -> `retention.ms`).
    public static func topicKey(forBrokerKey key: String) -> String? {
        scaledBrokerKeys[key]?.topic ?? topicKeyByBrokerKey[key]
    }

    /// The topic-level value of a broker-wide setting (hours and minutes become milliseconds).
    public static func brokerValue(key: String, value: String) throws(BrokerConfigError) -> String {
        guard let scaled = scaledBrokerKeys[key] else { return value.trimmed }
        guard let n = Int64(value.trimmed), n >= -1 else { throw .invalid(key, value, "expected an integer") }
        return n < 0 ? "-1" : String(n * scaled.factor)
    }

    /// Kafka's lower bounds (LogConfig's `atLeast` validators) for the numeric configs the storage
    /// engine does not read itself; its own are checked by `LogConfig`.
    static let lowerBounds: [String: Int64] = [
        "file.delete.delay.ms": 0, "local.retention.bytes": -2, "local.retention.ms": -2,
        "max.compaction.lag.ms": 1, "min.insync.replicas": 1, "segment.jitter.ms": 0,
    ]

    /// The longest config value accepted (what a non-flexible DescribeConfigs can carry).
    public static let valueBytesMax = Int(Int16.max)

    /// Checks one topic config; the message says what is wrong in Kafka's words.
    public static func validate(_ name: String, _ value: String) -> String? {
        guard let d = byName[name] else { return "Unknown topic config name: \(name.prefix(255))" }
        guard value.utf8.count <= valueBytesMax else { return "Invalid value for configuration \(name): longer than \(valueBytesMax) bytes" }
        let v = value.trimmed
        switch d.type {
        case .boolean: if v != "true" && v != "false" { return "Invalid value \(value) for configuration \(name): Expected value to be either true or false" }
        case .int, .short: if Int32(v) == nil { return "Invalid value \(value) for configuration \(name): Not a number of type INT" }
        case .long: if Int64(v) == nil { return "Invalid value \(value) for configuration \(name): Not a number of type LONG" }
        case .double: if Double(v) == nil { return "Invalid value \(value) for configuration \(name): Not a number of type DOUBLE" }
        case .string, .list: break
        }
        if let least = lowerBounds[name], let n = Int64(v), n < least {
            return "Invalid value \(value) for configuration \(name): Value must be at least \(least)"
        }
        if name == "min.cleanable.dirty.ratio", let ratio = Double(v), !(0...1).contains(ratio) {
            return "Invalid value \(value) for configuration \(name): Value must be no more than 1 and at least 0"
        }
        if let choices = d.choices, !choices.contains(v) {
            return "Invalid value \(value) for configuration \(name): String must be one of: \(choices.joined(separator: ", "))"
        }
        if LogConfig.names.contains(name) {
            do { _ = try LogConfig([name: v]) } catch { return "\(error)" }
        }
        return nil
    }

    /// The storage settings of a topic: Kafka's defaults, then the broker's, then the topic's.
    public static func logConfig(brokerDefaults: [String: String], overrides: [String: String]) throws(StorageError) -> LogConfig {
        let merged = brokerDefaults.merging(overrides) { $1 }
        return try LogConfig(merged.filter { LogConfig.names.contains($0.key) })
    }
}
