import BrookCore
import BrookProtocol

/// Kafka's ACL vocabulary, by its wire codes.
public enum AclResourceType: Int8, Sendable, CaseIterable {
    case unknown = 0, any = 1, topic = 2, group = 3, cluster = 4, transactionalID = 5, delegationToken = 6, user = 7
}

public enum AclPatternType: Int8, Sendable {
    case unknown = 0, any = 1, match = 2, literal = 3, prefixed = 4
}

public enum AclOperation: Int8, Sendable, CaseIterable {
    case unknown = 0, any = 1, all = 2, read = 3, write = 4, create = 5, delete = 6, alter = 7, describe = 8,
         clusterAction = 9, describeConfigs = 10, alterConfigs = 11, idempotentWrite = 12, createTokens = 13, describeTokens = 14
}

public enum AclPermission: Int8, Sendable {
    case unknown = 0, any = 1, deny = 2, allow = 3
}

/// One access control entry: who (principal, host) may or may not do what (operation) on which
/// resources (type, name, literal or prefixed).
public struct AclBinding: Hashable, Sendable {
    public var resourceType: AclResourceType
    public var name: String
    public var patternType: AclPatternType
    public var principal: String
    public var host: String
    public var operation: AclOperation
    public var permission: AclPermission

    /// The cluster resource's only name.
    public static let clusterName = "kafka-cluster"
    /// The literal name and the host that match every one.
    public static let wildcard = "*"

    public init(resourceType: AclResourceType, name: String, patternType: AclPatternType, principal: String, host: String,
                operation: AclOperation, permission: AclPermission) {
        self.resourceType = resourceType
        self.name = name
        self.patternType = patternType
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permission = permission
    }

    /// From the wire's codes; nil when a code is unknown.
    public init?(resourceType: Int8, name: String, patternType: Int8, principal: String, host: String, operation: Int8, permission: Int8) {
        guard let type = AclResourceType(rawValue: resourceType), let pattern = AclPatternType(rawValue: patternType),
              let op = AclOperation(rawValue: operation), let perm = AclPermission(rawValue: permission) else { return nil }
        self.init(resourceType: type, name: name, patternType: pattern, principal: principal, host: host, operation: op, permission: perm)
    }

    /// Why this entry cannot be created (nil: it can), as Kafka checks it.
    public var problem: String? {
        switch resourceType {
        case .unknown, .any: return "The resource type must be a specific one."
        default: break
        }
        guard patternType == .literal || patternType == .prefixed else { return "The pattern type must be LITERAL or PREFIXED." }
        guard operation != .unknown && operation != .any else { return "The operation must be a specific one." }
        guard permission == .allow || permission == .deny else { return "The permission type must be ALLOW or DENY." }
        guard !name.isEmpty else { return "The resource name must not be empty." }
        if resourceType == .cluster && name != Self.clusterName { return "The cluster resource is named \(Self.clusterName)." }
        guard let colon = principal.firstIndex(of: ":"), colon != principal.startIndex, principal.index(after: colon) != principal.endIndex else {
            return "The principal must be TYPE:NAME (User:alice)."
        }
        guard !host.isEmpty else { return "The host must not be empty (* for every host)." }
        for text in [name, principal, host] where text.utf8.count > ControllerAdminRequest.stringBytesMax {
            return "A name, principal or host is at most \(ControllerAdminRequest.stringBytesMax) bytes."
        }
        return nil
    }

    public func record(id: KafkaUUID) -> AccessControlEntryRecord {
        AccessControlEntryRecord(id: id, resourceType: resourceType.rawValue, resourceName: name, patternType: patternType.rawValue,
                                 principal: principal, host: host, operation: operation.rawValue, permissionType: permission.rawValue)
    }

    public init?(_ r: AccessControlEntryRecord) {
        self.init(resourceType: r.resourceType, name: r.resourceName, patternType: r.patternType, principal: r.principal,
                  host: r.host, operation: r.operation, permission: r.permissionType)
    }
}

/// Which entries DescribeAcls and DeleteAcls mean: every field given must match (ANY and null
/// match everything; MATCH finds the entries that apply to the named resource: its literal
/// name, the wildcard, and the prefixes it starts with).
public struct AclFilter: Sendable, Equatable {
    public var resourceType: AclResourceType
    public var name: String?
    public var patternType: AclPatternType
    public var principal: String?
    public var host: String?
    public var operation: AclOperation
    public var permission: AclPermission

    public init(resourceType: AclResourceType, name: String?, patternType: AclPatternType, principal: String?, host: String?,
                operation: AclOperation, permission: AclPermission) {
        self.resourceType = resourceType
        self.name = name
        self.patternType = patternType
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permission = permission
    }

    /// From the wire's codes; nil when a code is unknown (or UNKNOWN).
    public init?(resourceType: Int8, name: String?, patternType: Int8, principal: String?, host: String?, operation: Int8, permission: Int8) {
        guard let type = AclResourceType(rawValue: resourceType), type != .unknown,
              let pattern = AclPatternType(rawValue: patternType), pattern != .unknown,
              let op = AclOperation(rawValue: operation), op != .unknown,
              let perm = AclPermission(rawValue: permission), perm != .unknown else { return nil }
        self.init(resourceType: type, name: name, patternType: pattern, principal: principal, host: host, operation: op, permission: perm)
    }

    public func matches(_ b: AclBinding) -> Bool {
        guard resourceType == .any || resourceType == b.resourceType else { return false }
        switch patternType {
        case .any: if let name, name != b.name { return false }
        case .match:
            if let name {
                switch b.patternType {
                case .literal: guard b.name == name || b.name == AclBinding.wildcard else { return false }
                case .prefixed: guard name.hasPrefix(b.name) else { return false }
                default: return false
                }
            }
        case .literal, .prefixed:
            guard b.patternType == patternType else { return false }
            if let name, name != b.name { return false }
        case .unknown: return false
        }
        if let principal, principal != b.principal { return false }
        if let host, host != b.host { return false }
        guard operation == .any || operation == b.operation else { return false }
        return permission == .any || permission == b.permission
    }
}

/// The cluster's access control entries by id, indexed by resource for the authorizer.
public struct AclTable: Equatable, Sendable {
    public private(set) var byID: [KafkaUUID: AclBinding] = [:]
    struct Key: Hashable { var type: AclResourceType; var name: String }
    private var literal: [Key: Set<KafkaUUID>] = [:]
    private var prefixed: [AclResourceType: [String: Set<KafkaUUID>]] = [:]

    /// Entries one image holds at most.
    public static let entriesMax = 100_000

    public init() {}

    public var count: Int { byID.count }

    mutating func add(_ id: KafkaUUID, _ binding: AclBinding) {
        precondition(byID[id] == nil, "ACL \(id) added twice")
        byID[id] = binding
        if binding.patternType == .prefixed {
            prefixed[binding.resourceType, default: [:]][binding.name, default: []].insert(id)
        } else {
            literal[Key(type: binding.resourceType, name: binding.name), default: []].insert(id)
        }
    }

    mutating func remove(_ id: KafkaUUID) -> AclBinding? {
        guard let binding = byID.removeValue(forKey: id) else { return nil }
        if binding.patternType == .prefixed {
            prefixed[binding.resourceType]?[binding.name]?.remove(id)
            if prefixed[binding.resourceType]?[binding.name]?.isEmpty == true { prefixed[binding.resourceType]![binding.name] = nil }
        } else {
            let key = Key(type: binding.resourceType, name: binding.name)
            literal[key]?.remove(id)
            if literal[key]?.isEmpty == true { literal[key] = nil }
        }
        return binding
    }

    /// The id of an entry equal to `binding`, if there is one.
    public func id(of binding: AclBinding) -> KafkaUUID? {
        let ids = binding.patternType == .prefixed ? prefixed[binding.resourceType]?[binding.name] : literal[Key(type: binding.resourceType, name: binding.name)]
        return ids?.first { byID[$0] == binding }
    }

    /// The entries that apply to the resource `type`/`name`: its literal name, the wildcard,
    /// and every prefix of the name.
    public func applying(to type: AclResourceType, _ name: String) -> [AclBinding] {
        var ids = literal[Key(type: type, name: name)] ?? []
        if name != AclBinding.wildcard, let wild = literal[Key(type: type, name: AclBinding.wildcard)] { ids.formUnion(wild) }
        for (prefix, some) in prefixed[type] ?? [:] where name.hasPrefix(prefix) { ids.formUnion(some) }
        return ids.compactMap { byID[$0] }
    }

    /// Entries a filter matches, with their ids, in a stable order.
    public func matching(_ filter: AclFilter) -> [(KafkaUUID, AclBinding)] {
        byID.filter { filter.matches($0.value) }.sorted { ($0.key.high, $0.key.low) < ($1.key.high, $1.key.low) }
    }
}

/// Kafka's StandardAuthorizer's decision: a super user may do everything; a DENY that applies
/// refuses; an ALLOW that applies (the operation itself, ALL, or one that implies it: READ,
/// WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS) permits; a
/// resource no entry applies to is `allow.everyone.if.no.acl.found`.
public struct Authorizer: Sendable, Equatable {
    public var superUsers: Set<String>
    public var allowEveryoneIfNoAclFound: Bool

    public init(superUsers: Set<String>, allowEveryoneIfNoAclFound: Bool) {
        self.superUsers = superUsers
        self.allowEveryoneIfNoAclFound = allowEveryoneIfNoAclFound
    }

    public func authorize(_ principal: String, host: String, _ operation: AclOperation, _ type: AclResourceType, _ name: String,
                          acls: AclTable) -> Bool {
        if superUsers.contains(principal) { return true }
        let entries = acls.applying(to: type, name)
        if entries.isEmpty { return allowEveryoneIfNoAclFound }
        func applies(_ b: AclBinding) -> Bool {
            (b.principal == principal || b.principal == "User:*") && (b.host == AclBinding.wildcard || b.host == host)
        }
        if entries.contains(where: { $0.permission == .deny && applies($0) && ($0.operation == operation || $0.operation == .all) }) {
            return false
        }
        let granting: Set<AclOperation> = switch operation {
        case .describe: [.describe, .all, .read, .write, .delete, .alter]
        case .describeConfigs: [.describeConfigs, .all, .alterConfigs]
        default: [operation, .all]
        }
        return entries.contains { $0.permission == .allow && applies($0) && granting.contains($0.operation) }
    }
}
