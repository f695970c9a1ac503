import BrookCore
import BrookProtocol

/// A feature flag (KIP-584) as a broker reports it: the levels it supports and the level the
/// cluster has finalized.
public struct FeatureDescription: Sendable, Equatable {
    public var name: String
    /// The levels the broker supports; nil when it reports none for this feature.
    public var supported: ClosedRange<Int16>?
    /// The cluster's finalized level; nil when not finalized (level 0).
    public var finalizedLevel: Int16?
}

/// The feature flags of a cluster (Kafka's `FeatureMetadata`).
public struct FeatureMetadata: Sendable, Equatable {
    /// Every feature supported or finalized, by name.
    public var features: [FeatureDescription]
    /// The epoch of the finalized levels (the metadata offset they were read at); nil when unknown.
    public var finalizedEpoch: Int64?
}

/// One feature's update: the level it goes to, and how.
public struct FeatureUpdate: Sendable, Equatable {
    public var feature: String
    public var level: Int16
    public var type: FeatureUpgradeType

    public init(feature: String, level: Int16, type: FeatureUpgradeType = .upgrade) {
        self.feature = feature
        self.level = level
        self.type = type
    }
}

extension KafkaAdmin {
    // MARK: Feature flags

    /// The cluster's feature flags (Kafka's `describeFeatures`), from a broker's ApiVersions
    /// answer (version 3 and later carry them).
    public func describeFeatures() async throws -> FeatureMetadata {
        try await retrying("describe the features") {
            let answer = try await self.cluster.sendToAny(ApiVersionsRequest(clientSoftwareName: "brook", clientSoftwareVersion: Version.brook),
                                                          timeoutMs: self.config.requestTimeoutMs)
            try Self.check(answer.errorCode, nil, "describe the features")
            var byName: [String: FeatureDescription] = [:]
            for s in answer.supportedFeatures where s.minVersion <= s.maxVersion {
                byName[s.name, default: FeatureDescription(name: s.name)].supported = s.minVersion...s.maxVersion
            }
            for f in answer.finalizedFeatures where f.maxVersionLevel > 0 {
                byName[f.name, default: FeatureDescription(name: f.name)].finalizedLevel = f.maxVersionLevel
            }
            return FeatureMetadata(features: byName.values.sorted { $0.name < $1.name },
                                   finalizedEpoch: answer.finalizedFeaturesEpoch >= 0 ? answer.finalizedFeaturesEpoch : nil)
        }
    }

    /// Moves features to new levels (Kafka's `updateFeatures`, through the controller), or
    /// only checks that it could (`validateOnly`). A refusal (INVALID_UPDATE_VERSION and the
    /// reason) is thrown; none of the updates is made then.
    public func updateFeatures(_ updates: [FeatureUpdate], validateOnly: Bool = false) async throws {
        let what = validateOnly ? "check the feature updates" : "update the features"
        try await retrying(what) {
            let request = UpdateFeaturesRequest(timeoutMs: Int32(clamping: self.config.requestTimeoutMs), featureUpdates: updates.map {
                .init(feature: $0.feature, maxVersionLevel: $0.level, allowDowngrade: $0.type != .upgrade, upgradeType: $0.type.rawValue)
            }, validateOnly: validateOnly)
            // Version 0 has neither validate-only nor the upgrade types: a dry run or an unsafe
            // downgrade sent at it would be made, or made safe.
            let needsTypes = validateOnly || updates.contains { $0.type == .unsafeDowngrade }
            let answer = try await self.sendToController(request) { version in
                if needsTypes && version < 1 {
                    throw KafkaError(.unsupportedVersion, "\(what): the controller has only UpdateFeatures v0, without validate-only and unsafe downgrades")
                }
            }
            try Self.check(answer.errorCode, answer.errorMessage, what)
            for result in answer.results { try Self.check(result.errorCode, result.errorMessage, "\(what): \(result.feature)") }
        }
    }
}

extension FeatureDescription {
    init(name: String) { self.init(name: name, supported: nil, finalizedLevel: nil) }
}
