import BrookCore
import BrookProtocol

/// Client quotas (KIP-546): `producer_byte_rate`, `consumer_byte_rate`, `request_percentage`,
/// `controller_mutation_rate` for users, client ids, their defaults and combinations.
extension KafkaAdmin {
    /// The quotas of the entities `filter` matches (empty: every entity; `strict`: only
    /// entities of exactly the filter's types), each entity's parts in Kafka's order.
    public func describeClientQuotas(_ filter: [QuotaFilterPart] = [], strict: Bool = false) async throws -> [[QuotaEntityPart]: [String: Double]] {
        let request = DescribeClientQuotasRequest(components: filter.map { part in
            switch part.match {
            case .exactly(let name): .init(entityType: part.type, matchType: 0, match: name)
            case .defaultEntity: .init(entityType: part.type, matchType: 1, match: nil)
            case .any: .init(entityType: part.type, matchType: 2, match: nil)
            }
        }, strict: strict)
        let answer = try await retrying("describe client quotas") { try await self.cluster.sendToAny(request, timeoutMs: self.config.requestTimeoutMs) }
        try Self.check(answer.errorCode, answer.errorMessage, "describe client quotas")
        var out: [[QuotaEntityPart]: [String: Double]] = [:]
        for entry in answer.entries ?? [] {
            let entity = entry.entity.map { QuotaEntityPart($0.entityType, $0.entityName) }
            out[entity] = Dictionary(entry.values.map { ($0.key, $0.value) }) { _, last in last }
        }
        return out
    }

    /// Sets (`set`) and removes (`remove`) quota values of `entity`.
    public func alterClientQuotas(_ entity: [QuotaEntityPart], set: [String: Double] = [:], remove: [String] = [],
                                  validateOnly: Bool = false) async throws {
        guard !entity.isEmpty, !set.isEmpty || !remove.isEmpty else { return }
        let ops = set.sorted { $0.key < $1.key }.map { AlterClientQuotasRequest.EntryData.OpData(key: $0.key, value: $0.value, remove: false) }
            + remove.map { .init(key: $0, value: 0, remove: true) }
        let request = AlterClientQuotasRequest(entries: [.init(entity: entity.map { .init(entityType: $0.type, entityName: $0.name) }, ops: ops)],
                                               validateOnly: validateOnly)
        let what = "alter the quotas of \(entity.map(\.description).joined(separator: ","))"
        let answer = try await retrying(what) { try await self.cluster.sendToAny(request, timeoutMs: self.config.requestTimeoutMs) }
        for result in answer.entries { try Self.check(result.errorCode, result.errorMessage, what) }
    }
}
