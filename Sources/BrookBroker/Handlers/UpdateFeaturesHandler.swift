import BrookProtocol

/// UpdateFeatures (KIP-584; kafka-features.sh upgrade / downgrade, kafka-python's
/// `update_features`): Brook's feature levels are fixed (`BrokerFeatures`), so a request is
/// granted only when it asks for the level a feature is at already, and otherwise refused with
/// the error Kafka's controller gives for that request, or INVALID_UPDATE_VERSION saying that
/// the level is fixed. Nothing is written, so any node answers (Kafka forwards it to the
/// controller). Needs ALTER on the cluster.
struct UpdateFeaturesHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...2

    typealias Response = UpdateFeaturesResponse

    /// Kafka's upgrade types (version 1+; version 0's AllowDowngrade is a safe downgrade).
    enum UpgradeType: Int8 { case upgrade = 1, safeDowngrade = 2, unsafeDowngrade = 3 }

    func handle(_ request: UpdateFeaturesRequest, version: Int16, context: RequestContext) -> Reply<Response> {
        .now(Self.answer(request, version: version))
    }

    func refused(_ request: UpdateFeaturesRequest, version: Int16, code: ErrorCode, message: String) -> Response? {
        Self.response(version: version, features: request.featureUpdates.map(\.feature), error: (code, message))
    }

    /// The answer: each update's verdict; the first refusal is the request's error (no update
    /// happens unless all could, as in Kafka). Version 2 answers with that error alone.
    static func answer(_ request: UpdateFeaturesRequest, version: Int16) -> Response {
        let names = request.featureUpdates.map(\.feature)
        guard !names.isEmpty else {
            return response(version: version, features: [], error: (.invalidRequest, "Feature updates can not be null or empty."))
        }
        guard Set(names).count == names.count else {
            return response(version: version, features: names, error: (.invalidRequest, "A feature may be updated only once in a request."))
        }
        let verdicts = request.featureUpdates.map { update -> (ErrorCode, String)? in
            let type = version == 0 ? (update.allowDowngrade ? UpgradeType.safeDowngrade : .upgrade) : UpgradeType(rawValue: update.upgradeType)
            return verdict(update.feature, level: update.maxVersionLevel, type: type)
        }
        let first = verdicts.compactMap { $0 }.first
        var answer = response(version: version, features: [], error: first)
        if version <= 1 {
            answer.results = zip(names, verdicts).map { name, verdict in
                .init(feature: name, errorCode: verdict?.0.rawValue ?? 0, errorMessage: verdict?.1)
            }
        }
        return answer
    }

    static func response(version: Int16, features: [String], error: (ErrorCode, String)?) -> Response {
        var response = Response(throttleTimeMs: 0, errorCode: error?.0.rawValue ?? 0, errorMessage: error?.1)
        if version <= 1 {
            response.results = features.map { .init(feature: $0, errorCode: error?.0.rawValue ?? 0, errorMessage: error?.1) }
        }
        return response
    }

    /// Why `feature` cannot go to `level` by an update of `type` (nil: it is there already).
    static func verdict(_ feature: String, level: Int16, type: UpgradeType?) -> (ErrorCode, String)? {
        let refused = ErrorCode.invalidUpdateVersion
        guard let type else { return (refused, "Invalid update of \(feature): unknown upgrade type.") }
        guard let supported = BrokerFeatures.supported.first(where: { $0.name == feature }) else {
            return (refused, "Invalid update version \(level) for feature \(feature). Brook does not support this feature.")
        }
        let current = BrokerFeatures.finalized.first { $0.name == feature }?.level ?? 0
        if level == current { return nil }
        if level < current && type == .upgrade {
            return (refused, "Invalid update version \(level) for feature \(feature). Can't downgrade the version of this feature "
                    + "without setting the upgrade type to either safe or unsafe downgrade.")
        }
        if level > current && type != .upgrade {
            return (refused, "Invalid update version \(level) for feature \(feature). Can't downgrade to a newer version.")
        }
        if level > 0 && !(supported.min...supported.max).contains(level) {
            return (refused, "Invalid update version \(level) for feature \(feature). Brook supports versions \(supported.min)-\(supported.max).")
        }
        return (refused, "Invalid update version \(level) for feature \(feature). Brook keeps \(feature) at \(current): its feature levels are fixed.")
    }
}
