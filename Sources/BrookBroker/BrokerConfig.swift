import BrookCore
import BrookSecurity
import BrookGroups
import BrookStorage
import BrookTxn

/// A listener address from `listeners` / `advertised.listeners` (`PLAINTEXT://host:port`).
public struct Listener: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var host: String
    public var port: Int

    public init(name: String, host: String, port: Int) {
        self.name = name
        self.host = host
        self.port = port
    }

    /// Parses a comma-separated listener list.
    public static func parseList(_ text: String, key: String) throws(BrokerConfigError) -> [Listener] {
        var listeners: [Listener] = []
        for item in text.split(separator: ",").map({ $0.trimmed }) where !item.isEmpty {
            let parts = item.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw .invalid(key, item, "expected NAME://host:port") }
            let name = String(parts[0])
            let address = parts[1]
            guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
                  (0...65535).contains(port) else { throw .invalid(key, item, "expected a port after the last ':'") }
            var host = String(address[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            listeners.append(Listener(name: name, host: host, port: port))
        }
        guard !listeners.isEmpty else { throw .invalid(key, text, "no listener given") }
        return listeners
    }

    public var description: String { "\(name)://\(host.contains(":") ? "[\(host)]" : host):\(port)" }
}

/// What a process runs (`process.roles`).
public enum ProcessRole: String, Sendable, Hashable {
    case broker, controller
}

public enum BrokerConfigError: Error, CustomStringConvertible, Equatable {
    case invalid(String, String, String)
    case unreadable(path: String)

    public var description: String {
        switch self {
        case .invalid(let key, let value, let reason): "invalid \(key)=\(value): \(reason)"
        case .unreadable(let path): "cannot read the properties file \(path)"
        }
    }
}

/// The broker's settings, under Kafka's names (`server.properties`), with Kafka's defaults but
/// for `listeners` and `log.dirs`, which default to a local single node.
public struct BrokerConfig: Sendable {
    public var nodeID = NodeID(1)
    public var listeners = [Listener(name: "PLAINTEXT", host: "127.0.0.1", port: 9092)]
    public var advertisedListeners: [Listener]? = nil
    public var logDirs = ["brook-data"]
    public var numPartitions: Int32 = 1
    public var defaultReplicationFactor: Int16 = 1
    public var autoCreateTopics = true
    public var deleteTopicEnable = true
    /// `max.request.partition.size.limit`: the most partitions one DescribeTopicPartitions
    /// answer holds (a client asking for fewer gets fewer); Kafka's default.
    public var maxRequestPartitionSizeLimit: Int32 = 2000
    /// `socket.request.max.bytes`: a bigger frame closes its connection.
    public var socketRequestMaxBytes = 104_857_600
    /// `queued.max.request.bytes`: request bytes read but not answered, over all connections;
    /// past it the broker stops reading until answers go out. Kafka's default is unbounded (-1);
    /// ours is 256 MiB so that memory stays bounded.
    public var queuedMaxRequestBytes = 256 * 1024 * 1024
    /// `num.recovery.threads.per.data.dir`: threads per log dir that open (and, after a crash,
    /// recover) the logs at a start; Kafka 4's default.
    public var recoveryThreadsPerDataDir = 2
    /// `num.network.threads`: the event loops that serve client connections (each connection
    /// stays on one). nil: one per core.
    public var networkThreads: Int?
    /// `connections.max.idle.ms`: a connection with nothing sent, received or unanswered for this
    /// long is closed (Kafka's 10 minutes).
    public var connectionsMaxIdleMs: Int64 = 600_000
    /// `http.listeners`: where `/metrics`, `/health` and `/ready` are served (`http://HOST:PORT`,
    /// comma-separated); empty for none. The default's port taken by another process is a
    /// warning, not a failed start (two brokers on one machine); a port given is bound or the
    /// start fails.
    public var httpListeners = [Listener(name: "http", host: "127.0.0.1", port: 9644)]
    /// `slow.request.log.ms`: a request answered later than this is logged, with its timings
    /// (not the APIs whose answers wait by design: Fetch, JoinGroup, SyncGroup); 0 for never.
    public var slowRequestLogMs: Int64 = 5000
    /// Tracing (Brook's own settings; Kafka has none): spans for Produce and Fetch requests sent
    /// to an OpenTelemetry collector over OTLP/HTTP. `tracing.otlp.endpoint` (`http://HOST:4318`;
    /// empty, the default: no tracing), `tracing.otlp.protocol` (`http/protobuf` or
    /// `http/json`), `tracing.sample.ratio` (the share of those requests traced, 1.0),
    /// `tracing.service.name` (`brook`). OpenTelemetry's `OTEL_*` environment variables
    /// override them, as swift-otel reads them.
    public var tracing = TracingSettings()
    /// The MQTT listener (`mqtt.*`).
    public var mqtt = MQTTSettings()
    /// `console.enable`: the web console on the HTTP listener (at `/`).
    public var consoleEnable = true
    /// `console.read.only`: the console shows but changes nothing.
    public var consoleReadOnly = false
    /// `shutdown.timeout.ms`: how long a shutdown (SIGTERM) may take before the process stops
    /// anyway, uncleanly (a controlled shutdown waits for the controller within it).
    public var shutdownTimeoutMs: Int64 = 120_000
    /// `metrics.partition.series.enable`: a series per partition (offsets, sizes) in `/metrics`;
    /// off for brokers with very many partitions (the counts stay).
    public var metricsPartitionSeries = true
    /// `metrics.consumer.lag.series.max`: at most this many group-partition lag series.
    public var metricsLagSeriesMax = 10_000
    /// `max.connections`, `max.connections.per.ip` and `max.connections.per.ip.overrides`
    /// (host:count,...): client connections beyond them are closed as they are accepted.
    /// Kafka's defaults (no limit, Int32.max).
    public var maxConnections = Int(Int32.max)
    public var maxConnectionsPerIP = Int(Int32.max)
    public var maxConnectionsPerIPOverrides: [String: Int] = [:]
    /// `socket.request.receive.timeout.ms` (Brook's own): a request frame must arrive whole within
    /// this long of its first byte, or the connection is closed; the memory reserved for it
    /// (`queued.max.request.bytes`) is not held longer by a client that stops sending.
    public var requestReceiveTimeoutMs: Int64 = 60_000
    /// `log.retention.check.interval.ms`: how often retention and compaction run.
    public var retentionCheckIntervalMs: Int64 = 300_000
    /// `log.cleaner.enable`: compaction of `cleanup.policy=compact` topics.
    public var logCleanerEnable = true
    /// Broker-wide defaults of topic configs (`log.retention.ms` and friends, by topic name).
    public var topicDefaults: [String: String] = [:]
    /// Every key given, for DescribeConfigs on the broker.
    public var given: [String: String] = [:]
    public var clusterID: String? = nil
    /// The group coordinator's settings (group.*, offset.metadata.max.bytes, offsets.retention.*).
    public var groups = GroupConfig()
    public var transactions = TxnConfig()
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets` when it is created.
    public var offsetsTopicPartitions: Int32 = 50
    /// `offsets.topic.replication.factor`: replicas of `__consumer_offsets` in a cluster (fewer
    /// when fewer brokers are active when it is made).
    public var offsetsTopicReplicationFactor: Int16 = 3
    /// `offsets.topic.segment.bytes`
    public var offsetsTopicSegmentBytes: Int64 = 104_857_600
    /// `auto.leader.rebalance.enable` (true), `leader.imbalance.check.interval.seconds` (300),
    /// `leader.imbalance.per.broker.percentage` (10): the active controller moves leaderships
    /// back to preferred replicas.
    public var autoLeaderRebalance = true
    public var leaderImbalanceCheckIntervalSeconds: Int64 = 300
    public var leaderImbalancePerBrokerPercentage = 10
    /// `transaction.state.log.replication.factor`: replicas of `__transaction_state` in a cluster
    /// (fewer when fewer brokers are active when it is made).
    public var transactionStateLogReplicationFactor: Int16 = 3
    /// `transaction.state.log.min.isr`: min.insync.replicas of `__transaction_state` (at most its
    /// replication factor).
    public var transactionStateLogMinISR: Int16 = 2

    // The cluster (KRaft names). With no `process.roles`, Brook is the single node it always
    // was, with no quorum.
    /// `process.roles`: broker, controller, or both.
    public var processRoles: Set<ProcessRole> = []
    /// `controller.quorum.voters` as given (`id@host:port,...`); parsed where the quorum starts.
    public var controllerQuorumVoters: String?
    /// `controller.listener.names`: the listeners the controllers serve, not clients.
    public var controllerListenerNames: [String] = []
    /// `broker.session.timeout.ms`: the controller fences a broker silent this long.
    public var brokerSessionTimeoutMs: Int64 = 9000
    /// `broker.heartbeat.interval.ms`
    public var brokerHeartbeatIntervalMs: Int64 = 2000
    /// `broker.rack`
    public var brokerRack: String?
    /// `replica.selector.class`: Kafka's RackAwareReplicaSelector makes a leader send consumers
    /// that name their rack (`client.rack`) to a replica in that rack (KIP-392); unset, consumers
    /// read from leaders.
    public var rackAwareReplicaSelector = false
    static let rackAwareSelectorClass = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
    /// `metadata.log.dir`: where a controller keeps the metadata log (default: the first log
    /// dir's `__cluster_metadata-0`, as Kafka).
    public var metadataLogDir: String?
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    public var replicaLagTimeMaxMs: Int64 = 30_000
    /// `controller.quorum.election.timeout.ms`
    public var controllerElectionTimeoutMs: Int64 = 1000
    /// `brook.single.node.quorum` (true): with no `process.roles`, `brook serve` runs both roles
    /// as the one voter of its own quorum, its controller on a loopback port the system picks.
    /// False runs the quorum-less single node Brook was before, kept for comparisons and to test
    /// the takeover of its data.
    public var singleNodeQuorum = true
    /// Listeners' security protocols, SASL mechanisms and users.
    public var security = SecurityConfig()
    /// `inter.broker.listener.name`, or the listener of `security.inter.broker.protocol` (Kafka's
    /// two ways, one at a time): where this broker reaches the others (replica fetches,
    /// transaction markers), with that listener's security as a client. Neither given: the first
    /// client listener, as before.
    public var interBrokerListenerName: String?
    public var interBrokerProtocol: SecurityProtocol?

    public init() {}

    /// The listeners clients use: every listener but the controllers'.
    public var clientListeners: [Listener] { listeners.filter { !controllerListenerNames.contains($0.name) } }

    /// The address clients of `listener` (by name) are told to use: the advertised listener of
    /// that name, else the first.
    public func advertised(named listener: String?) -> Listener {
        guard let listener, var found = (advertisedListeners ?? listeners).first(where: { $0.name == listener }) else { return advertised }
        if found.host.isEmpty || found.host == "0.0.0.0" || found.host == "::" { found.host = advertised.host }
        return found
    }

    /// The listener brokers use between them (checked by `checkListenerNames`).
    public var interBrokerListener: String {
        if let interBrokerListenerName { return interBrokerListenerName }
        if let interBrokerProtocol,
           let listener = clientListeners.first(where: { security.securityProtocol(of: $0.name) == interBrokerProtocol }) {
            return listener.name
        }
        return advertised.name
    }

    /// Cross-checks of listener names, once every setting is in.
    func checkListenerNames() throws(BrokerConfigError) {
        if interBrokerListenerName != nil && interBrokerProtocol != nil {
            throw .invalid("inter.broker.listener.name", interBrokerListenerName ?? "", "give it or security.inter.broker.protocol, not both")
        }
        if let name = interBrokerListenerName {
            guard clientListeners.contains(where: { $0.name == name }) else {
                throw .invalid("inter.broker.listener.name", name, "not a listener of listeners (nor a controller listener)")
            }
        }
        if let wanted = interBrokerProtocol, !clientListeners.contains(where: { security.securityProtocol(of: $0.name) == wanted }) {
            throw .invalid("security.inter.broker.protocol", wanted.rawValue, "no listener has that protocol")
        }
        for name in controllerListenerNames where security.securityProtocol(of: name).usesSASL {
            throw .invalid("listener.security.protocol.map", "\(name):\(security.securityProtocol(of: name).rawValue)",
                           "Brook's controllers speak their own protocol, over PLAINTEXT or SSL (mTLS with ssl.client.auth=required), not SASL")
        }
    }

    /// The address clients are told to use.
    public var advertised: Listener {
        let candidates = (advertisedListeners ?? listeners).filter { !controllerListenerNames.contains($0.name) }
        var listener = candidates.first ?? (advertisedListeners ?? listeners)[0]
        if listener.host.isEmpty || listener.host == "0.0.0.0" || listener.host == "::" {
            listener.host = "127.0.0.1"
        }
        return listener
    }

    /// Settings from `key=value` pairs (a properties file's, then `--override`s, later wins).
    public init(_ settings: [(String, String)]) throws(BrokerConfigError) {
        self.init()
        for (key, value) in settings { try set(key, value) }
        try checkListenerNames()
    }

    public mutating func set(_ key: String, _ value: String) throws(BrokerConfigError) {
        given[key] = value
        func int(_ range: ClosedRange<Int64>) throws(BrokerConfigError) -> Int64 {
            guard let n = Int64(value.trimmed), range.contains(n) else {
                throw .invalid(key, value, "expected an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return n
        }
        func bool() throws(BrokerConfigError) -> Bool {
            switch value.trimmed.lowercased() {
            case "true": return true
            case "false": return false
            default: throw .invalid(key, value, "expected true or false")
            }
        }
        switch key {
        case "node.id", "broker.id": nodeID = NodeID(Int32(try int(0...Int64(Int32.max))))
        case "listeners": listeners = try Listener.parseList(value, key: key)
        case "advertised.listeners": advertisedListeners = try Listener.parseList(value, key: key)
        case "log.dirs", "log.dir":
            logDirs = value.split(separator: ",").map { $0.trimmed }.filter { !$0.isEmpty }
            guard !logDirs.isEmpty else { throw .invalid(key, value, "no directory given") }
        case "num.partitions": numPartitions = Int32(try int(1...Int64(Limits.partitionsPerTopicMax)))
        case "default.replication.factor": defaultReplicationFactor = Int16(try int(1...Int64(Int16.max)))
        case "auto.create.topics.enable": autoCreateTopics = try bool()
        case "delete.topic.enable": deleteTopicEnable = try bool()
        case "max.request.partition.size.limit": maxRequestPartitionSizeLimit = Int32(try int(1...Int64(Int32.max)))
        case "socket.request.max.bytes": socketRequestMaxBytes = Int(try int(1024...Int64(Int32.max)))
        case "queued.max.request.bytes":
            let n = try int(-1...Int64(Int32.max))
            queuedMaxRequestBytes = n < 0 ? Int(Int32.max) : Int(n)
        case "connections.max.idle.ms": connectionsMaxIdleMs = try int(1...Int64(Int32.max))
        case "http.listeners":
            httpListeners = value.trimmed.isEmpty ? [] : try Listener.parseList(value, key: key)
            for listener in httpListeners where !["http", "https"].contains(listener.name.lowercased()) {
                throw .invalid(key, value, "expected http://HOST:PORT or https://HOST:PORT (\(listener.name) is not served)")
            }
            guard httpListeners.count <= 8 else { throw .invalid(key, value, "at most 8 listeners") }
        case "metrics.partition.series.enable": metricsPartitionSeries = try bool()
        case "shutdown.timeout.ms": shutdownTimeoutMs = try int(1000...86_400_000)
        case "console.enable": consoleEnable = try bool()
        case "slow.request.log.ms": slowRequestLogMs = try int(0...86_400_000)
        case "tracing.otlp.endpoint":
            let trimmed = value.trimmed
            guard trimmed.isEmpty || trimmed.hasPrefix("http://") || trimmed.hasPrefix("https://"), trimmed.utf8.count <= 2048 else {
                throw .invalid(key, value, "expected http://HOST:PORT or https://HOST:PORT (OTLP over HTTP), or empty for none")
            }
            tracing.endpoint = trimmed
        case "tracing.otlp.protocol":
            guard ["http/protobuf", "http/json"].contains(value.trimmed) else { throw .invalid(key, value, "expected http/protobuf or http/json") }
            tracing.protocolName = value.trimmed
        case "tracing.sample.ratio":
            guard let ratio = Double(value.trimmed), ratio >= 0, ratio <= 1 else { throw .invalid(key, value, "expected a number from 0 to 1") }
            tracing.sampleRatio = ratio
        case "tracing.service.name":
            guard !value.trimmed.isEmpty, value.utf8.count <= 255 else { throw .invalid(key, value, "expected a name") }
            tracing.serviceName = value.trimmed
        case "console.read.only": consoleReadOnly = try bool()
        case "metrics.consumer.lag.series.max": metricsLagSeriesMax = Int(try int(0...1_000_000))
        case "max.connections": maxConnections = Int(try int(1...Int64(Int32.max)))
        case "max.connections.per.ip": maxConnectionsPerIP = Int(try int(0...Int64(Int32.max)))
        case "max.connections.per.ip.overrides":
            var overrides: [String: Int] = [:]
            for entry in value.split(separator: ",").map({ $0.trimmed }) where !entry.isEmpty {
                guard let colon = entry.lastIndex(of: ":"), let n = Int(entry[entry.index(after: colon)...]), n >= 0 else {
                    throw .invalid(key, value, "expected host:count,...")
                }
                overrides[String(entry[..<colon])] = n
            }
            maxConnectionsPerIPOverrides = overrides
        case "num.network.threads": networkThreads = Int(try int(1...256))
        case "num.recovery.threads.per.data.dir": recoveryThreadsPerDataDir = Int(try int(1...64))
        case "socket.request.receive.timeout.ms": requestReceiveTimeoutMs = try int(1...Int64(Int32.max))
        case "log.retention.check.interval.ms": retentionCheckIntervalMs = try int(1...Int64.max)
        case "log.cleaner.enable": logCleanerEnable = try bool()
        case "brook.single.node.quorum": singleNodeQuorum = try bool()
        case "cluster.id": clusterID = value.trimmed
        case "process.roles":
            var roles: Set<ProcessRole> = []
            for word in value.split(separator: ",").map({ $0.trimmed }) where !word.isEmpty {
                guard let role = ProcessRole(rawValue: word) else { throw .invalid(key, value, "expected broker, controller, or both") }
                roles.insert(role)
            }
            guard !roles.isEmpty else { throw .invalid(key, value, "expected broker, controller, or both") }
            processRoles = roles
        case "controller.quorum.voters":
            guard !value.trimmed.isEmpty else { throw .invalid(key, value, "expected id@host:port,...") }
            controllerQuorumVoters = value.trimmed
        case "inter.broker.listener.name":
            interBrokerListenerName = value.trimmed.isEmpty ? nil : value.trimmed
        case "security.inter.broker.protocol":
            guard let wanted = SecurityProtocol(rawValue: value.trimmed.uppercased()) else {
                throw .invalid(key, value, "expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
            }
            interBrokerProtocol = wanted
        case "controller.listener.names":
            controllerListenerNames = value.split(separator: ",").map { $0.trimmed }.filter { !$0.isEmpty }
        case "broker.session.timeout.ms": brokerSessionTimeoutMs = try int(100...Int64(Int32.max))
        case "broker.heartbeat.interval.ms": brokerHeartbeatIntervalMs = try int(10...Int64(Int32.max))
        case "broker.rack": brokerRack = value.trimmed.isEmpty ? nil : value.trimmed
        case "replica.selector.class":
            switch value.trimmed {
            case "", "org.apache.kafka.common.replica.LeaderSelector": rackAwareReplicaSelector = false
            case Self.rackAwareSelectorClass: rackAwareReplicaSelector = true
            default: throw .invalid(key, value, "expected \(Self.rackAwareSelectorClass) or org.apache.kafka.common.replica.LeaderSelector")
            }
        case "metadata.log.dir": metadataLogDir = value.trimmed
        case "controller.quorum.election.timeout.ms": controllerElectionTimeoutMs = try int(10...600_000)
        case "replica.lag.time.max.ms": replicaLagTimeMaxMs = try int(100...Int64(Int32.max))
        case "transaction.max.timeout.ms": transactions.maxTimeoutMs = Int32(try int(1...Int64(Int32.max)))
        case "transactional.id.expiration.ms": transactions.transactionalIDExpirationMs = try int(1...Int64(Int32.max))
        case "producer.id.expiration.ms": transactions.producerIDExpirationMs = try int(1...Int64(Int32.max))
        case "transaction.state.log.num.partitions":
            transactions.stateLogPartitions = Int32(try int(1...Int64(Limits.partitionsPerTopicMax)))
        case "transaction.state.log.segment.bytes": transactions.stateLogSegmentBytes = try int(1024...Int64(Int32.max))
        case "transaction.abort.timed.out.transaction.cleanup.interval.ms":
            transactions.abortTimedOutIntervalMs = try int(1...Int64(Int32.max))
        case "transaction.remove.expired.transaction.cleanup.interval.ms":
            transactions.removeExpiredIntervalMs = try int(1...Int64(Int32.max))
        case "group.min.session.timeout.ms": groups.minSessionTimeoutMs = Int32(try int(1...Int64(Int32.max)))
        case "group.max.session.timeout.ms": groups.maxSessionTimeoutMs = Int32(try int(1...Int64(Int32.max)))
        case "group.initial.rebalance.delay.ms": groups.initialRebalanceDelayMs = Int32(try int(0...Int64(Int32.max)))
        case "group.max.size": groups.maxSize = Int(try int(1...Int64(Int32.max)))
        case "offset.metadata.max.bytes": groups.offsetMetadataMaxBytes = Int(try int(0...Int64(Int32.max)))
        case "offsets.retention.minutes": groups.offsetsRetentionMs = try int(1...Int64(Int32.max)) * 60_000
        case "offsets.retention.check.interval.ms": groups.offsetsRetentionCheckIntervalMs = try int(1...Int64.max)
        case "offsets.topic.num.partitions": offsetsTopicPartitions = Int32(try int(1...Int64(Limits.partitionsPerTopicMax)))
        case "offsets.topic.replication.factor": offsetsTopicReplicationFactor = Int16(try int(1...Int64(Int16.max)))
        case "auto.leader.rebalance.enable": autoLeaderRebalance = try bool()
        case "leader.imbalance.check.interval.seconds": leaderImbalanceCheckIntervalSeconds = try int(1...86_400)
        case "leader.imbalance.per.broker.percentage": leaderImbalancePerBrokerPercentage = Int(try int(0...100))
        case "transaction.state.log.replication.factor": transactionStateLogReplicationFactor = Int16(try int(1...Int64(Int16.max)))
        case "transaction.state.log.min.isr": transactionStateLogMinISR = Int16(try int(1...Int64(Int16.max)))
        case "offsets.topic.segment.bytes": offsetsTopicSegmentBytes = try int(1024...Int64(Int32.max))
        case "group.consumer.session.timeout.ms": groups.consumerSessionTimeoutMs = Int32(try int(1...Int64(Int32.max)))
        case "group.consumer.heartbeat.interval.ms": groups.consumerHeartbeatIntervalMs = Int32(try int(1...Int64(Int32.max)))
        case "group.consumer.min.session.timeout.ms": groups.consumerMinSessionTimeoutMs = Int32(try int(1...Int64(Int32.max)))
        case "group.consumer.max.session.timeout.ms": groups.consumerMaxSessionTimeoutMs = Int32(try int(1...Int64(Int32.max)))
        case "group.consumer.min.heartbeat.interval.ms": groups.consumerMinHeartbeatIntervalMs = Int32(try int(1...Int64(Int32.max)))
        case "group.consumer.max.heartbeat.interval.ms": groups.consumerMaxHeartbeatIntervalMs = Int32(try int(1...Int64(Int32.max)))
        case "group.consumer.max.size": groups.consumerMaxSize = Int(try int(1...Int64(Int32.max)))
        case "group.consumer.assignors":
            let names = value.split(separator: ",").map { $0.trimmed }.filter { !$0.isEmpty }
            // Kafka takes class names; the last dotted part names the assignor (UniformAssignor).
            let short = names.map { n in
                let last = String(n.split(separator: ".").last ?? "").lowercased()
                return last.hasSuffix("assignor") ? String(last.dropLast(8)) : last
            }
            guard !short.isEmpty, short.allSatisfy({ ServerAssignor(rawValue: $0) != nil }) else {
                throw .invalid(key, value, "expected a list of: uniform, range")
            }
            groups.consumerAssignors = short
        default:
            if key.hasPrefix("mqtt."), try mqtt.set(key, value) { return }
            if try security.set(key, value) {
                if key.contains("jaas.config") || key.hasSuffix(".password") || key.hasSuffix("keystore.key") { given[key] = "(hidden)" }
                return
            }
            if let topicKey = TopicConfigs.topicKey(forBrokerKey: key) {
                let topicValue = try TopicConfigs.brokerValue(key: key, value: value)
                do { _ = try LogConfig(topicDefaults.merging([topicKey: topicValue]) { $1 }.filter { LogConfig.names.contains($0.key) }) }
                catch { throw .invalid(key, value, "\(error)") }
                topicDefaults[topicKey] = topicValue
            }
            // Other keys (process.roles, controller settings, ...) are kept for DescribeConfigs.
        }
    }

    /// Reads `key=value` lines of a Java properties file (`#` and `!` comments, `=` or `:`).
    public static func readProperties(_ text: String) -> [(String, String)] {
        var settings: [(String, String)] = []
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmed
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("!") { continue }
            guard let separator = line.firstIndex(where: { $0 == "=" || $0 == ":" }) else { continue }
            settings.append((line[..<separator].trimmed, line[line.index(after: separator)...].trimmed))
        }
        return settings
    }
}

/// Where spans go and how many (`tracing.*`; see BrokerConfig.tracing).
public struct TracingSettings: Sendable, Equatable {
    /// The collector's OTLP/HTTP base URL; empty: no tracing.
    public var endpoint = ""
    public var protocolName = "http/protobuf"
    public var sampleRatio = 1.0
    public var serviceName = "brook"
    public var enabled: Bool { !endpoint.isEmpty }
    public init() {}
}
