import BrookCore

/// A consumer's settings, under the Java client's names and with its defaults.
public struct ConsumerConfig: Sendable {
    /// `auto.offset.reset`: where a partition without a committed offset (or whose position
    /// fell out of the log) starts.
    public enum OffsetReset: String, Sendable {
        case earliest, latest, none
    }

    /// `bootstrap.servers`: brokers to ask for the cluster's metadata first.
    public var bootstrapServers: [String]
    /// `client.id`
    public var clientID = "brook-consumer"
    /// `group.id`: the group whose committed offsets the consumer starts from and commits to
    /// (nil: no commits).
    public var groupID: String?
    public var offsetReset = OffsetReset.latest
    /// `enable.auto.commit`: positions committed every `auto.commit.interval.ms` while polling,
    /// and at close (with a group id).
    public var autoCommit = true
    public var autoCommitIntervalMs: Int64 = 5000
    /// `fetch.min.bytes`: the broker answers once it has this much (or after `fetch.max.wait.ms`).
    public var fetchMinBytes: Int32 = 1
    /// `fetch.max.wait.ms`
    public var fetchMaxWaitMs: Int32 = 500
    /// `fetch.max.bytes`: one fetch's bytes at most (a larger first batch still comes).
    public var fetchMaxBytes: Int32 = 52_428_800
    /// `max.partition.fetch.bytes`: one partition's bytes in a fetch at most.
    public var partitionFetchMaxBytes: Int32 = 1_048_576
    /// `max.poll.records`: records one `poll` returns at most.
    public var maxPollRecords = 500
    /// `isolation.level`: read_committed leaves out aborted transactions' records and reads up
    /// to the last stable offset.
    public var readCommitted = false
    /// `check.crcs`: each fetched batch's CRC-32C is checked.
    public var checkCRCs = true
    /// `request.timeout.ms`: how long a request other than a fetch's long poll may take.
    public var requestTimeoutMs: Int64 = 30_000
    /// `retry.backoff.ms`: the pause before asking again after an error.
    public var retryBackoffMs: Int64 = 100
    /// `metadata.max.age.ms`: metadata older than this is asked again (and a pattern
    /// subscription matched again).
    public var metadataMaxAgeMs: Int64 = 300_000
    /// `group.instance.id`: a static member, whose partitions wait for it through a restart
    /// (within the group's session timeout).
    public var groupInstanceID: String?
    /// `group.remote.assignor`: the broker's assignor for this member (nil: the group's).
    public var remoteAssignor: String?
    /// `max.poll.interval.ms`: sent as the member's rebalance timeout, how long the broker
    /// waits for it to give up partitions.
    public var maxPollIntervalMs: Int32 = 300_000
    /// `client.rack`
    public var rack: String?
    /// `group.protocol`: `consumer` (KIP-848, the broker assigns; Brook's default) or `classic`
    /// (JoinGroup and SyncGroup, a member assigns; brokers before Kafka 4.0, Tansu).
    public var groupProtocol = GroupProtocol.consumer
    /// `session.timeout.ms` (classic groups): a member silent this long is taken out.
    public var sessionTimeoutMs: Int32 = 45_000
    /// `heartbeat.interval.ms` (classic groups; KIP-848 groups take the broker's).
    public var heartbeatIntervalMs: Int64 = 3000
    /// `partition.assignment.strategy` (classic groups): the assignors this member can run,
    /// preferred first (librdkafka's default, range then roundrobin). The member rebalances
    /// cooperatively when every one named is cooperative (`cooperative-sticky`), eagerly
    /// otherwise, as the Java client.
    public var assignors: [ClassicAssignor] = [.range, .roundRobin]

    public enum GroupProtocol: String, Sendable {
        case consumer, classic
    }

    public init(bootstrapServers: [String]) {
        precondition(!bootstrapServers.isEmpty, "a consumer needs a bootstrap server")
        self.bootstrapServers = bootstrapServers
    }

    /// Settings given as the Java client's properties. Security settings
    /// (`security.protocol`, `sasl.*`, `ssl.*`) are left to whoever opens the connections;
    /// any other unknown name is an error, and so are the classic protocol's settings
    /// (`session.timeout.ms`, `heartbeat.interval.ms`, `partition.assignment.strategy`) in a
    /// KIP-848 group, whose broker has them.
    public init(properties: [String: String]) throws {
        self.init(bootstrapServers: try ClientProperty.bootstrapServers(properties))
        var classicOnly: [String] = []
        try ClientProperty.each(properties, of: "consumer") { property in
            let (name, value) = (property.name, property.value)
            switch name {
            case "client.id": clientID = value
            case "group.id": groupID = value.isEmpty ? nil : value
            case "auto.offset.reset":
                // librdkafka's synonyms too.
                switch value.trimmed.lowercased() {
                case "earliest", "smallest", "beginning": offsetReset = .earliest
                case "latest", "largest", "end": offsetReset = .latest
                case "none", "error": offsetReset = .none
                default: throw ClientError("auto.offset.reset=\(value): expected earliest, latest or none")
                }
            case "enable.auto.commit": autoCommit = try property.flag()
            case "auto.commit.interval.ms": autoCommitIntervalMs = try property.number(1...Int64(Int32.max))
            case "fetch.min.bytes": fetchMinBytes = Int32(try property.number(0...100_000_000))
            case "fetch.max.wait.ms": fetchMaxWaitMs = Int32(try property.number(0...300_000))
            case "fetch.max.bytes": fetchMaxBytes = Int32(try property.number(1024...Int64(Int32.max)))
            case "max.partition.fetch.bytes": partitionFetchMaxBytes = Int32(try property.number(1...Int64(Int32.max)))
            case "max.poll.records": maxPollRecords = Int(try property.number(1...1_000_000))
            case "isolation.level":
                switch value.trimmed.lowercased() {
                case "read_committed": readCommitted = true
                case "read_uncommitted": readCommitted = false
                default: throw ClientError("isolation.level=\(value): expected read_committed or read_uncommitted")
                }
            case "check.crcs": checkCRCs = try property.flag()
            case "request.timeout.ms": requestTimeoutMs = try property.number(1...Int64(Int32.max))
            case "retry.backoff.ms": retryBackoffMs = try property.number(0...3_600_000)
            case "metadata.max.age.ms": metadataMaxAgeMs = try property.number(1...Int64(Int32.max))
            case "group.protocol":
                guard let chosen = GroupProtocol(rawValue: value.trimmed.lowercased()) else {
                    throw ClientError("group.protocol=\(value): expected consumer or classic")
                }
                groupProtocol = chosen
            case "session.timeout.ms":
                sessionTimeoutMs = Int32(try property.number(1...Int64(Int32.max)))
                classicOnly.append(name)
            case "heartbeat.interval.ms":
                heartbeatIntervalMs = try property.number(1...Int64(Int32.max))
                classicOnly.append(name)
            case "partition.assignment.strategy":
                assignors = try value.split(separator: ",").map { item in
                    // The Java client's class names too.
                    let name = item.trimmed.lowercased().split(separator: ".").last.map(String.init) ?? ""
                    switch name {
                    case "range", "rangeassignor": return .range
                    case "roundrobin", "roundrobinassignor": return .roundRobin
                    case "sticky", "stickyassignor": return .sticky
                    case "cooperative-sticky", "cooperativestickyassignor": return .cooperativeSticky
                    default: throw ClientError("partition.assignment.strategy: \(item.trimmed) is not built (range, roundrobin, sticky, cooperative-sticky)")
                    }
                }
                guard !assignors.isEmpty else { throw ClientError("partition.assignment.strategy: name an assignor") }
                classicOnly.append(name)
            case "group.instance.id": groupInstanceID = value.isEmpty ? nil : value
            case "group.remote.assignor": remoteAssignor = value.isEmpty ? nil : value
            case "max.poll.interval.ms": maxPollIntervalMs = Int32(try property.number(1...Int64(Int32.max)))
            case "client.rack": rack = value.isEmpty ? nil : value
            default: return false
            }
            return true
        }
        // As the Java client: a KIP-848 member's session and heartbeat are the broker's.
        if groupProtocol == .consumer, let name = classicOnly.first {
            throw ClientError("\(name) is a classic group setting (group.protocol=classic); a KIP-848 group's is the broker's")
        }
    }
}
