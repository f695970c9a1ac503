import BrookCore
import BrookProtocol

/// Settings of a ``KafkaAdmin``, by the Java admin client's names.
public struct AdminConfig: Sendable {
    public var bootstrapServers: [String]
    public var clientID = "brook-admin"
    /// How long one call may take, its retries included (`default.api.timeout.ms`).
    public var apiTimeoutMs: Int64 = 60_000
    /// How long one request's answer is awaited (`request.timeout.ms`).
    public var requestTimeoutMs: Int64 = 30_000
    /// The pause before a call is tried again after a passing failure (`retry.backoff.ms`).
    public var retryBackoffMs: Int64 = 100

    public init(bootstrapServers: [String]) {
        precondition(!bootstrapServers.isEmpty, "an admin client needs a bootstrap server")
        self.bootstrapServers = bootstrapServers
    }

    /// Settings given as the Java client's properties. Security settings
    /// (`security.protocol`, `sasl.*`, `ssl.*`) are left to whoever opens the connections;
    /// any other unknown name is an error.
    public init(properties: [String: String]) throws {
        self.init(bootstrapServers: try ClientProperty.bootstrapServers(properties))
        try ClientProperty.each(properties, of: "admin") { property in
            let (name, value) = (property.name, property.value)
            switch name {
            case "client.id": clientID = value
            case "default.api.timeout.ms": apiTimeoutMs = try property.number(1...Int64(Int32.max))
            case "request.timeout.ms": requestTimeoutMs = try property.number(1...Int64(Int32.max))
            case "retry.backoff.ms": retryBackoffMs = try property.number(0...3_600_000)
            default: return false
            }
            return true
        }
    }

    var backoffMs: Int64 { max(retryBackoffMs, 10) }
}

/// A broker as DescribeCluster gives it.
public struct BrokerDescription: Sendable, Equatable {
    public var id: NodeID
    public var host: String
    public var port: Int32
    public var rack: String?
    public var fenced: Bool
}

public struct ClusterDescription: Sendable, Equatable {
    public var clusterID: String
    /// The active controller as brokers see it (-1 when unknown).
    public var controller: NodeID
    public var brokers: [BrokerDescription]
}

/// The metadata quorum as its leader sees it (Kafka's QuorumInfo, from DescribeQuorum).
public struct QuorumInfo: Sendable, Equatable {
    public struct Replica: Sendable, Equatable {
        public var id: NodeID
        /// The last metadata log offset the leader knows it holds, or -1.
        public var logEndOffset: Int64
        /// The leader's wall clock (ms since 1970) when it last heard from it; nil when unknown.
        public var lastFetchTimestampMs: Int64?
        /// When it last held the whole log; nil when unknown.
        public var lastCaughtUpTimestampMs: Int64?
    }
    public struct Endpoint: Sendable, Equatable {
        public var listener: String
        public var host: String
        public var port: Int
    }
    public var leaderID: NodeID
    public var leaderEpoch: LeaderEpoch
    public var highWatermark: Int64
    public var voters: [Replica]
    public var observers: [Replica]
    /// Where each voter listens (DescribeQuorum version 2 and later; empty before).
    public var nodes: [NodeID: [Endpoint]]
}

/// A topic to create. Partitions and replication factor -1 take the broker's defaults
/// (`num.partitions`, `default.replication.factor`).
public struct NewTopic: Sendable, Equatable {
    public var name: String
    public var partitions: Int32
    public var replicationFactor: Int16
    public var configs: [String: String]
    /// Replicas per partition chosen by the caller (then partitions and replication factor are -1).
    public var replicaAssignment: [Int32: [NodeID]]

    public init(_ name: String, partitions: Int32 = -1, replicationFactor: Int16 = -1, configs: [String: String] = [:],
                replicaAssignment: [Int32: [NodeID]] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.configs = configs
        self.replicaAssignment = replicaAssignment
    }
}

public struct TopicListing: Sendable, Equatable {
    public var name: String
    public var id: KafkaUUID
    public var isInternal: Bool
}

public struct PartitionDescription: Sendable, Equatable {
    public var partition: Int32
    /// -1 when the partition has no leader.
    public var leader: NodeID
    public var leaderEpoch: LeaderEpoch
    public var replicas: [NodeID]
    public var isr: [NodeID]
    public var offline: [NodeID]
    /// Eligible leader replicas (KIP-966) and the last known ones, as DescribeTopicPartitions
    /// gives them (empty from a broker without it).
    public var elr: [NodeID] = []
    public var lastKnownElr: [NodeID] = []
}

public struct TopicDescription: Sendable, Equatable {
    public var name: String
    public var id: KafkaUUID
    public var isInternal: Bool
    public var partitions: [PartitionDescription]
}

/// What configs belong to.
public enum ConfigResource: Sendable, Hashable, CustomStringConvertible {
    case topic(String)
    case broker(NodeID)
    /// Every broker's dynamic defaults (the empty broker name).
    case brokerDefaults
    /// A consumer group's settings (Kafka 4.0's GROUP resource).
    case group(String)

    var wire: (type: Int8, name: String) {
        switch self {
        case .topic(let name): (2, name)
        case .broker(let id): (4, "\(id)")
        case .brokerDefaults: (4, "")
        case .group(let name): (32, name)
        }
    }

    public var description: String {
        switch self {
        case .topic(let name): "topic \(name)"
        case .broker(let id): "broker \(id)"
        case .brokerDefaults: "every broker's defaults"
        case .group(let name): "group \(name)"
        }
    }
}

/// Where a config's value comes from (DescribeConfigs' `config_source`).
public enum ConfigSource: Int8, Sendable, CustomStringConvertible {
    case unknown = 0
    case topic = 1
    case dynamicBroker = 2
    case dynamicDefaultBroker = 3
    case staticBroker = 4
    case `default` = 5
    case dynamicBrokerLogger = 6
    case clientMetrics = 7
    case group = 8

    public var description: String {
        switch self {
        case .unknown: "unknown"
        case .topic: "topic"
        case .dynamicBroker: "dynamic broker config"
        case .dynamicDefaultBroker: "dynamic default broker config"
        case .staticBroker: "static broker config"
        case .default: "default"
        case .dynamicBrokerLogger: "dynamic broker logger config"
        case .clientMetrics: "client metrics config"
        case .group: "group config"
        }
    }
}

public struct ConfigEntry: Sendable, Equatable {
    public var name: String
    /// nil for a sensitive value (a password) or one that is not set.
    public var value: String?
    public var source: ConfigSource
    public var isReadOnly: Bool
    public var isSensitive: Bool
}

/// Which offset `listOffsets` looks up (a seek takes ``OffsetSpec``).
public enum OffsetQuery: Sendable, Equatable {
    case earliest
    case latest
    /// The first record whose timestamp is at or after the time (ms since the epoch).
    case timestamp(Int64)
    /// The record with the largest timestamp (KIP-734).
    case maxTimestamp

    var wire: Int64 {
        switch self {
        case .earliest: -2
        case .latest: -1
        case .maxTimestamp: -3
        case .timestamp(let ms): ms
        }
    }
}

public struct ListedOffset: Sendable, Equatable {
    /// -1 when no record matches (a time after the last record's).
    public var offset: Offset
    public var timestamp: Int64
    public var leaderEpoch: LeaderEpoch
}

public struct GroupListing: Sendable, Equatable {
    public var id: String
    /// "classic" or "consumer" (KIP-848).
    public var type: String
    public var state: String
    public var protocolType: String
}

public struct GroupMemberDescription: Sendable, Equatable {
    public var memberID: String
    public var instanceID: String?
    public var clientID: String
    public var host: String
    public var assignment: [TopicPartition]
}

public struct GroupDescription: Sendable, Equatable {
    public var id: String
    /// "classic" or "consumer" (KIP-848).
    public var type: String
    /// Kafka's names: Stable, Empty, PreparingRebalance, CompletingRebalance, Assigning,
    /// Reconciling, Dead.
    public var state: String
    public var protocolType: String
    /// The classic group's assignor, or the KIP-848 group's server-side assignor.
    public var assignor: String?
    public var members: [GroupMemberDescription]

    /// Each assigned partition's owner.
    public var owners: [TopicPartition: GroupMemberDescription] {
        var out: [TopicPartition: GroupMemberDescription] = [:]
        for member in members { for tp in member.assignment { out[tp] = member } }
        return out
    }
}

/// Where `resetGroupOffsets` moves a group's offsets (kafka-consumer-groups' `--to-*`).
public enum OffsetReset: Sendable, Equatable {
    case earliest
    case latest
    /// This offset, held within each partition's earliest and latest.
    case offset(Offset)
    /// The first record at or after the time (ms since the epoch); the end where there is none.
    case timestamp(Int64)
    /// Each committed offset moved by this many (a partition without one from its earliest).
    case shift(Int64)
}

public enum AclResourceType: Int8, Sendable, CaseIterable {
    case any = 1, topic = 2, group = 3, cluster = 4, transactionalID = 5, delegationToken = 6, user = 7
}

public enum AclPatternType: Int8, Sendable, CaseIterable {
    case any = 1, match = 2, literal = 3, prefixed = 4
}

public enum AclOperation: Int8, Sendable, CaseIterable {
    case any = 1, all = 2, read = 3, write = 4, create = 5, delete = 6, alter = 7, describe = 8, clusterAction = 9,
         describeConfigs = 10, alterConfigs = 11, idempotentWrite = 12, createTokens = 13, describeTokens = 14
}

public enum AclPermission: Int8, Sendable, CaseIterable {
    case any = 1, deny = 2, allow = 3
}

/// The names of Kafka's ACL enums as its Java admin client writes them (`TOPIC`,
/// `TRANSACTIONAL_ID`, `LITERAL`, `CLUSTER_ACTION`, `ALLOW`, ...); read back ignoring case,
/// `_` and `-`.
public protocol AclName: CaseIterable, RawRepresentable where RawValue == Int8 {
    var name: String { get }
}

extension AclName {
    public init?(name: String) {
        let folded = Self.fold(name)
        guard let found = Self.allCases.first(where: { Self.fold($0.name) == folded }) else { return nil }
        self = found
    }

    static func fold(_ text: String) -> String { text.uppercased().filter { $0 != "_" && $0 != "-" } }
}

extension AclResourceType: AclName {
    public var name: String {
        switch self {
        case .any: "ANY"
        case .topic: "TOPIC"
        case .group: "GROUP"
        case .cluster: "CLUSTER"
        case .transactionalID: "TRANSACTIONAL_ID"
        case .delegationToken: "DELEGATION_TOKEN"
        case .user: "USER"
        }
    }
}

extension AclPatternType: AclName {
    public var name: String {
        switch self {
        case .any: "ANY"
        case .match: "MATCH"
        case .literal: "LITERAL"
        case .prefixed: "PREFIXED"
        }
    }
}

extension AclOperation: AclName {
    public var name: String {
        switch self {
        case .any: "ANY"
        case .all: "ALL"
        case .read: "READ"
        case .write: "WRITE"
        case .create: "CREATE"
        case .delete: "DELETE"
        case .alter: "ALTER"
        case .describe: "DESCRIBE"
        case .clusterAction: "CLUSTER_ACTION"
        case .describeConfigs: "DESCRIBE_CONFIGS"
        case .alterConfigs: "ALTER_CONFIGS"
        case .idempotentWrite: "IDEMPOTENT_WRITE"
        case .createTokens: "CREATE_TOKENS"
        case .describeTokens: "DESCRIBE_TOKENS"
        }
    }
}

extension AclPermission: AclName {
    public var name: String {
        switch self {
        case .any: "ANY"
        case .deny: "DENY"
        case .allow: "ALLOW"
        }
    }
}

/// One access control entry on a resource pattern.
public struct AclBinding: Sendable, Hashable {
    public var resourceType: AclResourceType
    public var resourceName: String
    public var patternType: AclPatternType
    /// `User:NAME` (or `User:*`).
    public var principal: String
    public var host: String
    public var operation: AclOperation
    public var permission: AclPermission

    public init(_ resourceType: AclResourceType, _ resourceName: String, patternType: AclPatternType = .literal,
                principal: String, host: String = "*", operation: AclOperation, permission: AclPermission = .allow) {
        self.resourceType = resourceType
        self.resourceName = resourceName
        self.patternType = patternType
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permission = permission
    }
}

/// Which entries `describeAcls` and `deleteAcls` match: nil fields and `.any` match all.
public struct AclFilter: Sendable, Equatable {
    public var resourceType: AclResourceType = .any
    public var resourceName: String?
    public var patternType: AclPatternType = .any
    public var principal: String?
    public var host: String?
    public var operation: AclOperation = .any
    public var permission: AclPermission = .any

    public init(resourceType: AclResourceType = .any, resourceName: String? = nil, patternType: AclPatternType = .any,
                principal: String? = nil, host: String? = nil, operation: AclOperation = .any, permission: AclPermission = .any) {
        self.resourceType = resourceType
        self.resourceName = resourceName
        self.patternType = patternType
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permission = permission
    }

    public static let all = AclFilter()
}

public struct ScramCredentialInfo: Sendable, Equatable {
    public var mechanism: ScramMechanism
    public var iterations: Int32
}

/// One part of a client quota's entity: a type (`user`, `client-id`, `ip`) and a name, nil for
/// the type's default entity.
public struct QuotaEntityPart: Sendable, Hashable, CustomStringConvertible {
    public var type: String
    public var name: String?

    public init(_ type: String, _ name: String?) {
        self.type = type
        self.name = name
    }

    public var description: String { "\(type)=\(name ?? "<default>")" }
}

/// Which entities `describeClientQuotas` lists, per entity type.
public struct QuotaFilterPart: Sendable, Hashable {
    public enum Match: Sendable, Hashable {
        case exactly(String)
        case defaultEntity
        case any
    }

    public var type: String
    public var match: Match

    public init(_ type: String, _ match: Match) {
        self.type = type
        self.match = match
    }
}
