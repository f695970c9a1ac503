import BrookClient
import BrookCore
import BrookProtocol

/// An access control entry as the console's API reads and writes it, under Kafka's names
/// (`TOPIC`, `LITERAL`, `READ`, `ALLOW`, ...).
struct AclView: Codable, Hashable {
    var resourceType: String
    var resourceName: String
    var patternType: String
    var principal: String
    var host: String
    var operation: String
    var permission: String
}

struct AclsView: Encodable {
    /// False when the cluster has no authorizer (`authorizer.class.name`): there are no ACLs.
    var authorizer: Bool
    var acls: [AclView]
}

struct QuotaEntityView: Codable, Hashable {
    var type: String
    /// nil: the type's default entity.
    var name: String?
}

struct QuotaView: Encodable {
    var entity: [QuotaEntityView]
    var values: [String: Double]
}

struct QuotasView: Encodable {
    var quotas: [QuotaView]
}

struct QuotaChange: Decodable {
    var entity: [QuotaEntityView]
    var set: [String: Double]?
    var remove: [String]?
}

extension Console {
    /// At most this many entries are listed.
    static let aclListMax = 10_000

    func aclList(_ client: ClusterClient) async throws -> AclsView {
        // (Not closed: the admin rides on the console's client.)
        let admin = admin(client)
        do {
            let bindings = try await admin.describeAcls(.all)
            let views = bindings.prefix(Self.aclListMax).map(Self.view)
            return AclsView(authorizer: true, acls: views.sorted { ($0.resourceType, $0.resourceName, $0.principal, $0.operation) < ($1.resourceType, $1.resourceName, $1.principal, $1.operation) })
        } catch let error as KafkaError where error.code == .securityDisabled {
            return AclsView(authorizer: false, acls: [])
        }
    }

    func createAcl(_ client: ClusterClient, _ given: AclView) async throws {
        let binding = try Self.binding(given)
        // (Not closed: the admin rides on the console's client.)
        let admin = admin(client)
        try await admin.createAcls([binding])
    }

    /// Removes exactly the entry given; 404 when there is none.
    func deleteAcl(_ client: ClusterClient, _ given: AclView) async throws {
        let binding = try Self.binding(given)
        // (Not closed: the admin rides on the console's client.)
        let admin = admin(client)
        let filter = AclFilter(resourceType: binding.resourceType, resourceName: binding.resourceName, patternType: binding.patternType,
                               principal: binding.principal, host: binding.host, operation: binding.operation, permission: binding.permission)
        let removed = try await admin.deleteAcls([filter])
        if removed.isEmpty { throw ConsoleError(404, "no such entry") }
    }

    static func view(_ b: AclBinding) -> AclView {
        AclView(resourceType: b.resourceType.name, resourceName: b.resourceName, patternType: b.patternType.name, principal: b.principal,
                host: b.host, operation: b.operation.name, permission: b.permission.name)
    }

    /// The entry named, refused (400) when a name is not Kafka's or is a filter's (ANY, MATCH).
    static func binding(_ v: AclView) throws -> AclBinding {
        func named<T: AclName>(_ type: T.Type, _ text: String, _ what: String) throws -> T {
            guard let found = T(name: text), found.name != "ANY", found.name != "MATCH" else {
                let names = T.allCases.map(\.name).filter { $0 != "ANY" && $0 != "MATCH" }
                throw ConsoleError(400, "\(what) \(text) is not one of \(names.joined(separator: ", "))")
            }
            return found
        }
        let resourceType = try named(AclResourceType.self, v.resourceType, "resource type")
        guard !v.resourceName.isEmpty else { throw ConsoleError(400, "name the resource") }
        guard v.principal.hasPrefix("User:"), v.principal.count > 5 else { throw ConsoleError(400, "a principal is User:NAME (or User:*)") }
        return AclBinding(resourceType, resourceType == .cluster ? "kafka-cluster" : v.resourceName,
                          patternType: try named(AclPatternType.self, v.patternType, "pattern type"), principal: v.principal,
                          host: v.host.isEmpty ? "*" : v.host, operation: try named(AclOperation.self, v.operation, "operation"),
                          permission: try named(AclPermission.self, v.permission, "permission"))
    }

    /// Every client quota set (users, client ids, their defaults and pairs).
    func quotaList(_ client: ClusterClient) async throws -> QuotasView {
        // (Not closed: the admin rides on the console's client.)
        let admin = admin(client)
        let all = try await admin.describeClientQuotas()
        let views = all.map { entity, values in
            QuotaView(entity: entity.map { QuotaEntityView(type: $0.type, name: $0.name) }, values: values)
        }
        return QuotasView(quotas: views.sorted { Self.label($0.entity) < Self.label($1.entity) })
    }

    func alterQuota(_ client: ClusterClient, _ change: QuotaChange) async throws {
        guard !change.entity.isEmpty, change.entity.count <= 2 else { throw ConsoleError(400, "an entity is a user, a client id, or both") }
        for part in change.entity where !["user", "client-id", "ip"].contains(part.type) {
            throw ConsoleError(400, "entity type \(part.type) is not one of user, client-id, ip")
        }
        let set = change.set ?? [:], remove = change.remove ?? []
        guard !set.isEmpty || !remove.isEmpty else { throw ConsoleError(400, "set or remove a quota") }
        for (key, value) in set where !(value >= 0) || !value.isFinite { throw ConsoleError(400, "\(key): a quota is a number at least 0") }
        // (Not closed: the admin rides on the console's client.)
        let admin = admin(client)
        try await admin.alterClientQuotas(change.entity.map { QuotaEntityPart($0.type, $0.name) }, set: set, remove: remove)
    }

    static func label(_ entity: [QuotaEntityView]) -> String {
        entity.map { "\($0.type)=\($0.name ?? "<default>")" }.sorted().joined(separator: ",")
    }
}
