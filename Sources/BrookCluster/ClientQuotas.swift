import BrookProtocol

/// A client quota entity (Kafka's `user` and `client-id` entity types; a component with a nil
/// name is that type's default entity): what AlterClientQuotas sets values on and the
/// ClientQuotaRecord carries.
public struct QuotaEntity: Hashable, Sendable, CustomStringConvertible {
    public enum Name: Hashable, Sendable {
        case named(String)
        case defaultEntity

        public var name: String? {
            switch self {
            case .named(let n): n
            case .defaultEntity: nil
            }
        }

        init(_ name: String?) { self = name.map(Name.named) ?? .defaultEntity }
    }

    public var user: Name?
    public var clientID: Name?

    public init(user: Name? = nil, clientID: Name? = nil) {
        self.user = user
        self.clientID = clientID
    }

    public static let userType = "user"
    public static let clientIDType = "client-id"
    /// The quota keys Brook takes (Kafka's).
    public static let keys: Set<String> = ["producer_byte_rate", "consumer_byte_rate", "request_percentage", "controller_mutation_rate"]

    /// The entity of wire components; nil (with the reason) for a type Brook does not serve
    /// (`ip`), a type named twice, an empty name or no component.
    public static func parse(_ components: [(type: String, name: String?)]) -> Result<QuotaEntity, QuotaProblem> {
        var entity = QuotaEntity()
        guard !components.isEmpty else { return .failure(QuotaProblem("An entity needs a user or a client-id.")) }
        for (type, name) in components {
            if let name, name.isEmpty || name.utf8.count > 1024 { return .failure(QuotaProblem("An entity name must hold 1 to 1024 bytes.")) }
            switch type {
            case userType:
                guard entity.user == nil else { return .failure(QuotaProblem("Duplicate user component.")) }
                entity.user = Name(name)
            case clientIDType:
                guard entity.clientID == nil else { return .failure(QuotaProblem("Duplicate client-id component.")) }
                entity.clientID = Name(name)
            default:
                return .failure(QuotaProblem("Unsupported quota entity type '\(type.prefix(64))' (Brook serves user and client-id)."))
            }
        }
        return .success(entity)
    }

    /// The components, user first.
    public var components: [(type: String, name: String?)] {
        var out: [(type: String, name: String?)] = []
        if let user { out.append((Self.userType, user.name)) }
        if let clientID { out.append((Self.clientIDType, clientID.name)) }
        return out
    }

    public var description: String {
        components.map { "\($0.type)=\($0.name ?? "<default>")" }.joined(separator: ",")
    }

    /// The entities that may define a quota for a connection of `user` and `clientID`, in
    /// Kafka's order of precedence: the first that has the key decides.
    public static func candidates(user: String, clientID: String) -> [QuotaEntity] {
        [
            QuotaEntity(user: .named(user), clientID: .named(clientID)),
            QuotaEntity(user: .named(user), clientID: .defaultEntity),
            QuotaEntity(user: .named(user)),
            QuotaEntity(user: .defaultEntity, clientID: .named(clientID)),
            QuotaEntity(user: .defaultEntity, clientID: .defaultEntity),
            QuotaEntity(user: .defaultEntity),
            QuotaEntity(clientID: .named(clientID)),
            QuotaEntity(clientID: .defaultEntity),
        ]
    }
}

public struct QuotaProblem: Error, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
}

extension ClientQuotaRecord {
    public init(_ entity: QuotaEntity, key: String, value: Double?) {
        self.init(entity: entity.components.map { .init(entityType: $0.type, entityName: $0.name) }, key: key, value: value ?? 0, remove: value == nil)
    }

    public var quotaEntity: QuotaEntity? {
        try? QuotaEntity.parse(entity.map { ($0.entityType, $0.entityName) }).get()
    }
}
