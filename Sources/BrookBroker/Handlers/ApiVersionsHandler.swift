import BrookProtocol

/// ApiVersions: the APIs this broker serves and their versions, read off the handler table;
/// from version 3 also the feature flags (KIP-584) Kafka 4.0 answers with, as far as Brook has
/// them (`BrokerFeatures`).
struct ApiVersionsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...4

    func handle(_ request: ApiVersionsRequest, version: Int16, context: RequestContext) -> Reply<ApiVersionsResponse> {
        var response = Self.answer(context.broker.handlers, error: .none)
        if version >= 3 {
            // Tagged fields: older versions have no place for them.
            response.supportedFeatures = BrokerFeatures.supported.map { .init(name: $0.name, minVersion: $0.min, maxVersion: $0.max) }
            response.finalizedFeatures = BrokerFeatures.finalized.map { .init(name: $0.name, maxVersionLevel: $0.level, minVersionLevel: $0.level) }
            response.finalizedFeaturesEpoch = context.broker.cluster.current?.image.offset.value ?? -1
        }
        return .now(response)
    }

    static func answer(_ table: HandlerTable, error: ErrorCode) -> ApiVersionsResponse {
        ApiVersionsResponse(errorCode: error.rawValue, apiKeys: table.sorted.map {
            ApiVersionsResponse.ApiVersion(apiKey: $0.apiKey, minVersion: $0.advertised.lowerBound, maxVersion: $0.advertised.upperBound)
        }, throttleTimeMs: 0)
    }
}

/// The feature flags (KIP-584) a Brook broker reports, under Kafka's names and levels. Brook
/// speaks Kafka 4.0's protocol, so `metadata.version` is 4.0-IV3 (level 25; Kafka 4.0 supports
/// 3.3-IV3, level 7, and up); `group.version` 1 says the KIP-848 consumer protocol is served.
/// Left at level 0, so not reported as finalized: `transaction.version` (Brook does not serve
/// transaction version 2's implicit partition adds, and Java producers use it when it is
/// finalized at 2) and `kraft.version` (Brook's quorum is its own, not KIP-853's). The levels
/// are fixed: Brook's metadata log holds no FeatureLevelRecord, and UpdateFeatures grants only
/// the levels here (UpdateFeaturesHandler).
enum BrokerFeatures {
    static let supported: [(name: String, min: Int16, max: Int16)] = [
        ("group.version", 0, 1),
        ("metadata.version", 7, 25),
    ]
    static let finalized: [(name: String, level: Int16)] = [
        ("group.version", 1),
        ("metadata.version", 25),
    ]
}
