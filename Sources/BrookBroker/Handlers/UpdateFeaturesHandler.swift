import BrookProtocol

/// UpdateFeatures (KIP-584; kafka-features.sh upgrade / downgrade, kafka-python's
/// `update_features`): Brook's feature levels are fixed (`BrokerFeatures`), so a request is
/// granted only when it asks for the level a feature is at already, and otherwise refused with
/// the error Kafka's controller gives for that request, checked in its order, or
/// INVALID_UPDATE_VERSION saying that the level is fixed. Nothing is written, so any node
/// answers (Kafka forwards it to the controller). Needs ALTER on the cluster.
struct UpdateFeaturesHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...2

    typealias Response = UpdateFeaturesResponse

    func handle(_ request: UpdateFeaturesRequest, version: Int16, context: RequestContext) -> Reply<Response> {
        .now(Self.answer(request, version: version))
    }

    /// Refused before it ran: the error alone, no feature's result (as Kafka's error response).
    func refused(_ request: UpdateFeaturesRequest, version: Int16, code: ErrorCode, message: String) -> Response? {
        Response(throttleTimeMs: 0, errorCode: code.rawValue, errorMessage: message)
    }

    /// The answer, as Kafka's controller gives it: the first refusal is the request's error
    /// and nothing changes (no feature's result then); else each feature's success (versions
    /// 0-1; version 2 has no results). An empty list changes nothing and succeeds; a feature
    /// named twice is taken at its last update, as the controller's map of updates takes it.
    static func answer(_ request: UpdateFeaturesRequest, version: Int16) -> Response {
        var updates: [String: UpdateFeaturesRequest.FeatureUpdateKey] = [:]
        var names: [String] = []
        for update in request.featureUpdates {
            if updates.updateValue(update, forKey: update.feature) == nil { names.append(update.feature) }
        }
        for name in names {
            let update = updates[name]!
            let type = version == 0 ? (update.allowDowngrade ? FeatureUpgradeType.safeDowngrade : .upgrade) : FeatureUpgradeType(rawValue: update.upgradeType)
            if let (code, message) = verdict(name, level: update.maxVersionLevel, type: type) {
                return Response(throttleTimeMs: 0, errorCode: code.rawValue,
                                errorMessage: "The update failed for all features since the following feature had an error: " + message)
            }
        }
        var response = Response(throttleTimeMs: 0, errorCode: 0, errorMessage: nil)
        if version <= 1 { response.results = names.map { .init(feature: $0, errorCode: 0, errorMessage: nil) } }
        return response
    }

    /// Why `feature` cannot go to `level` by an update of `type` (nil: it is there already), in
    /// the order Kafka's controller checks: the upgrade type, a negative level, the feature and
    /// its supported range, the direction; then that Brook's levels are fixed.
    static func verdict(_ feature: String, level: Int16, type: FeatureUpgradeType?) -> (ErrorCode, String)? {
        let refused = ErrorCode.invalidUpdateVersion
        let prefix = "Invalid update version \(level) for feature \(feature). "
        guard let type else { return (refused, prefix + "The controller does not support the given upgrade type.") }
        guard level >= 0 else { return (refused, prefix + "A feature version cannot be less than 0.") }
        guard let supported = BrokerFeatures.supported.first(where: { $0.name == feature }) else {
            return (refused, prefix + "Brook does not support this feature.")
        }
        guard (supported.min...supported.max).contains(level) else {
            return (refused, prefix + "Brook supports versions \(supported.min)-\(supported.max).")
        }
        let current = BrokerFeatures.finalized.first { $0.name == feature }?.level ?? 0
        if level == current { return nil }
        if level < current && type == .upgrade {
            return (refused, prefix + "Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade.")
        }
        if level > current && type != .upgrade { return (refused, prefix + "Can't downgrade to a newer version.") }
        return (refused, prefix + "Brook keeps \(feature) at \(current): its feature levels are fixed.")
    }
}
