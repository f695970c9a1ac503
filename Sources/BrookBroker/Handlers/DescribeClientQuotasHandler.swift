import BrookCluster
import BrookProtocol

/// DescribeClientQuotas: the quota values of the entities the filter matches, from the metadata
/// image. Each component names an entity type (`user`, `client-id`) and matches a name (0), the
/// default entity (1) or any (2); an entity matches when it has every component's type and
/// match, and with `strict` no other type. A type or match Brook does not know is
/// INVALID_REQUEST. Needs DESCRIBE_CONFIGS on the cluster with an authorizer.
struct DescribeClientQuotasHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...1
    typealias Entry = DescribeClientQuotasResponse.EntryData

    func handle(_ request: DescribeClientQuotasRequest, version: Int16, context: RequestContext) -> Reply<DescribeClientQuotasResponse> {
        func refuse(_ message: String) -> Reply<DescribeClientQuotasResponse> {
            .now(DescribeClientQuotasResponse(errorCode: ErrorCode.invalidRequest.rawValue, errorMessage: message, entries: nil))
        }
        var filters: [(type: String, match: QuotaEntity.Name?)] = []
        for component in request.components.prefix(8) {
            guard component.entityType == QuotaEntity.userType || component.entityType == QuotaEntity.clientIDType else {
                return refuse("Unsupported entity type '\(component.entityType.prefix(64))' (Brook serves user and client-id).")
            }
            guard !filters.contains(where: { $0.type == component.entityType }) else { return refuse("Duplicate filter for \(component.entityType).") }
            switch component.matchType {
            case 0:
                guard let name = component.match else { return refuse("An exact match needs a name.") }
                filters.append((component.entityType, .named(name)))
            case 1: filters.append((component.entityType, .defaultEntity))
            case 2: filters.append((component.entityType, nil))
            default: return refuse("Unsupported match type \(component.matchType).")
            }
        }
        guard let image = context.broker.cluster.current?.image else {
            return .now(DescribeClientQuotasResponse(entries: []))
        }
        let entries = image.clientQuotas.filter { entity, _ in
            for (type, match) in filters {
                let name = type == QuotaEntity.userType ? entity.user : entity.clientID
                guard let name else { return false }
                if let match, match != name { return false }
            }
            return !request.strict || entity.components.count == filters.count
        }
        return .now(DescribeClientQuotasResponse(entries: entries.sorted { $0.key.description < $1.key.description }.map { entity, values in
            Entry(entity: entity.components.map { .init(entityType: $0.type, entityName: $0.name) },
                  values: values.sorted { $0.key < $1.key }.map { .init(key: $0.key, value: $0.value) })
        }))
    }

    func refused(_ request: DescribeClientQuotasRequest, version: Int16, code: ErrorCode, message: String) -> DescribeClientQuotasResponse? {
        DescribeClientQuotasResponse(errorCode: code.rawValue, errorMessage: message, entries: nil)
    }
}
