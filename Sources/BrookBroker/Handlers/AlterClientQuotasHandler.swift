import BrookCluster
import BrookProtocol

/// AlterClientQuotas: sets or removes quota values of entities (`user`, `client-id`; a null name
/// is the default entity). The broker checks each entry (entity types Brook serves, one
/// component per type; Kafka's keys; a set value positive and finite; a key once per entry:
/// INVALID_REQUEST for that entry) and forwards the rest to the controller, which writes them
/// as ClientQuotaRecords in one entry. `validateOnly` stops after the checks. Needs
/// ALTER_CONFIGS on the cluster with an authorizer. Enforced (ClientQuotaEnforcer):
/// producer_byte_rate, consumer_byte_rate, request_percentage, controller_mutation_rate.
struct AlterClientQuotasHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...1
    typealias Entry = AlterClientQuotasResponse.EntryData

    /// Entries one request may carry.
    static let entriesMax = 10_000

    func handle(_ request: AlterClientQuotasRequest, version: Int16, context: RequestContext) -> Reply<AlterClientQuotasResponse> {
        @Sendable func answer(_ entity: [AlterClientQuotasRequest.EntryData.EntityData], _ code: ErrorCode, _ message: String?) -> Entry {
            Entry(errorCode: code.rawValue, errorMessage: message, entity: entity.map { .init(entityType: $0.entityType, entityName: $0.entityName) })
        }
        let broker = context.broker
        guard broker.cluster.isCluster, broker.cluster.current != nil else {
            return .now(AlterClientQuotasResponse(entries: request.entries.map {
                answer($0.entity, .unsupportedVersion, "This node runs without a metadata quorum: it keeps no client quotas.")
            }))
        }
        guard request.entries.count <= Self.entriesMax else {
            return .now(AlterClientQuotasResponse(entries: request.entries.prefix(Self.entriesMax).map {
                answer($0.entity, .policyViolation, "At most \(Self.entriesMax) entries in one request.")
            }))
        }
        var results: [Entry?] = []
        var changes: [ClientQuotaRecord] = []
        for entry in request.entries {
            let entity: QuotaEntity
            switch QuotaEntity.parse(entry.entity.map { ($0.entityType, $0.entityName) }) {
            case .failure(let problem):
                results.append(answer(entry.entity, .invalidRequest, problem.message))
                continue
            case .success(let parsed): entity = parsed
            }
            var keys: Set<String> = []
            var problem: String?
            for op in entry.ops {
                if !QuotaEntity.keys.contains(op.key) { problem = "Unknown quota key '\(op.key.prefix(64))'." }
                else if !keys.insert(op.key).inserted { problem = "Duplicate quota key '\(op.key)'." }
                else if !op.remove && !(op.value.isFinite && op.value > 0) { problem = "The value of \(op.key) must be positive." }
                if problem != nil { break }
            }
            if let problem {
                results.append(answer(entry.entity, .invalidRequest, problem))
                continue
            }
            changes += entry.ops.map { ClientQuotaRecord(entity, key: $0.key, value: $0.remove ? nil : $0.value) }
            results.append(nil)
        }
        let entries = request.entries
        let checked = results
        @Sendable func respond(_ code: ErrorCode, _ message: String?) -> AlterClientQuotasResponse {
            AlterClientQuotasResponse(entries: zip(entries, checked).map { entry, result in result ?? answer(entry.entity, code, message) })
        }
        if request.validateOnly || changes.isEmpty { return .now(respond(.none, nil)) }
        return .later(broker.cluster.forward(.alterClientQuotas(changes), on: context.eventLoop).map { result in
            switch result {
            case .success(let answers): respond(answers.first?.error ?? .unknownServerError, answers.first?.message)
            case .failure(let error): respond(.requestTimedOut, "The controller did not answer: \(error)")
            }
        })
    }

    func refused(_ request: AlterClientQuotasRequest, version: Int16, code: ErrorCode, message: String) -> AlterClientQuotasResponse? {
        AlterClientQuotasResponse(entries: request.entries.map {
            Entry(errorCode: code.rawValue, errorMessage: message, entity: $0.entity.map { .init(entityType: $0.entityType, entityName: $0.entityName) })
        })
    }
}
