@testable import BrookBroker
import BrookCore
import BrookProtocol
import Testing

/// UpdateFeatures (API 57) against Brook's fixed feature levels, and ListConfigResources (API
/// 74, KIP-1142); tests/interop/test_conformance.py checks both with kafka-python.
@Suite struct UpdateFeaturesAndListConfigResourcesTests {
    typealias Update = UpdateFeaturesRequest.FeatureUpdateKey
    let refused = ErrorCode.invalidUpdateVersion.rawValue

    func update(_ updates: [Update], version: Int16 = 1, validateOnly: Bool = false) -> UpdateFeaturesResponse {
        UpdateFeaturesHandler.answer(UpdateFeaturesRequest(featureUpdates: updates, validateOnly: validateOnly), version: version)
    }

    @Test func theLevelAFeatureIsAtIsGrantedAndNoOtherIs() {
        // Validate-only answers the same: nothing is ever written.
        for validateOnly in [false, true] {
            let same = update([.init(feature: "metadata.version", maxVersionLevel: 25), .init(feature: "group.version", maxVersionLevel: 1, upgradeType: 2)],
                              validateOnly: validateOnly)
            #expect(same.errorCode == 0 && same.errorMessage == nil)
            #expect(same.results.map(\.feature) == ["metadata.version", "group.version"] && same.results.allSatisfy { $0.errorCode == 0 })
        }
        // Each refusal with the reason Kafka's controller gives, in its order, or that the level is fixed.
        let cases: [(Update, String)] = [
            (.init(feature: "metadata.version", maxVersionLevel: 26), "supports versions 7-25"),
            (.init(feature: "metadata.version", maxVersionLevel: 21), "without setting the upgrade type"),
            (.init(feature: "metadata.version", maxVersionLevel: 21, upgradeType: 2), "levels are fixed"),
            (.init(feature: "metadata.version", maxVersionLevel: 3, upgradeType: 3), "supports versions 7-25"),
            (.init(feature: "group.version", maxVersionLevel: 0, upgradeType: 3), "levels are fixed"),
            (.init(feature: "group.version", maxVersionLevel: 0), "without setting the upgrade type"),
            (.init(feature: "group.version", maxVersionLevel: 2, upgradeType: 2), "supports versions 0-1"),
            (.init(feature: "group.version", maxVersionLevel: -1, upgradeType: 3), "cannot be less than 0"),
            (.init(feature: "transaction.version", maxVersionLevel: 2), "does not support this feature"),
            (.init(feature: "metadata.version", maxVersionLevel: 25, upgradeType: 7), "does not support the given upgrade type"),
        ]
        for (asked, reason) in cases {
            let answer = update([asked])
            #expect(answer.errorCode == refused && answer.errorMessage?.contains(reason) == true, "\(asked): \(answer)")
            #expect(answer.results.isEmpty, "no feature's result on a refusal, as Kafka")
        }
        #expect(UpdateFeaturesHandler.verdict("group.version", level: 1, type: .unsafeDowngrade) == nil)
        #expect(UpdateFeaturesHandler.verdict("group.version", level: 2, type: .upgrade)?.1 == "Invalid update version 2 for feature group.version. Brook supports versions 0-1.")
    }

    @Test func oneRefusalRefusesTheRequestInEveryVersion() {
        let updates: [Update] = [.init(feature: "metadata.version", maxVersionLevel: 25), .init(feature: "group.version", maxVersionLevel: 0, upgradeType: 2)]
        for version: Int16 in [1, 2] {
            let answer = update(updates, version: version)
            #expect(answer.errorCode == refused && answer.results.isEmpty)
            #expect(answer.errorMessage?.hasPrefix("The update failed for all features since the following feature had an error: "
                                                   + "Invalid update version 0 for feature group.version.") == true)
        }
        #expect(update([.init(feature: "metadata.version", maxVersionLevel: 25)], version: 2).results.isEmpty, "version 2 has no results")
        // Version 0: AllowDowngrade is a safe downgrade.
        let v0 = update([.init(feature: "group.version", maxVersionLevel: 0, allowDowngrade: true)], version: 0)
        #expect(v0.errorMessage?.contains("levels are fixed") == true)
        // None: nothing to do. One feature twice: its last update counts, as in Kafka's controller.
        let none = update([])
        #expect(none.errorCode == 0 && none.results.isEmpty)
        let twice = update([.init(feature: "group.version", maxVersionLevel: 0, upgradeType: 2), .init(feature: "group.version", maxVersionLevel: 1)])
        #expect(twice.errorCode == 0 && twice.results.map(\.feature) == ["group.version"])
        #expect(update([.init(feature: "group.version", maxVersionLevel: 1), .init(feature: "group.version", maxVersionLevel: 0, upgradeType: 2)]).errorCode == refused)
        // A principal without ALTER on the cluster: the error alone.
        let handler = UpdateFeaturesHandler()
        let denied = handler.refused(UpdateFeaturesRequest(featureUpdates: updates), version: 1, code: .clusterAuthorizationFailed, message: "no")
        #expect(denied?.errorCode == ErrorCode.clusterAuthorizationFailed.rawValue && denied?.results.isEmpty == true)
        #expect(Authorization.check(57) == .cluster(.alter) && Authorization.check(74) == .cluster(.describeConfigs))
    }

    @Test func configResourcesAreListedByTypeAndAnUnservedTypeIsRefused() {
        let names: [Int8: [String]] = [2: ["b", "a"], 4: ["1"], 32: ["g"]]
        let answer = { (types: [Int8]) in ListConfigResourcesHandler.answer(types) { names[$0] ?? [] } }
        let all = answer([])
        #expect(all.errorCode == 0)
        #expect(all.configResources.map { "\($0.resourceType):\($0.resourceName)" } == ["2:a", "2:b", "4:1", "32:g"])
        #expect(answer([32, 2]).configResources.map(\.resourceName) == ["a", "b", "g"])
        #expect(answer([16]).configResources.isEmpty && answer([16]).errorCode == 0)
        for unserved: Int8 in [8, 0, 1, 64, -1] {
            let refusedType = answer([2, unserved])
            #expect(refusedType.errorCode == ErrorCode.unsupportedVersion.rawValue && refusedType.configResources.isEmpty)
        }
    }

    @Test func aBrokerListsItsTopicsAndItselfAndVersionZeroOnlyClientMetrics() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("second")
        try h.createTopic("first", partitions: 2)
        let listed = try h.send(ListConfigResourcesRequest(resourceTypes: []), version: 1)
        #expect(listed.errorCode == 0)
        #expect(listed.configResources.filter { $0.resourceType == 2 }.map(\.resourceName) == ["first", "second"])
        #expect(listed.configResources.filter { $0.resourceType == 4 }.map(\.resourceName) == ["\(h.broker.config.nodeID.value)"])
        let v0 = try h.send(ListConfigResourcesRequest(), version: 0)
        #expect(v0.errorCode == 0 && v0.configResources.isEmpty)
        let features = try h.send(UpdateFeaturesRequest(featureUpdates: [.init(feature: "metadata.version", maxVersionLevel: 25)]), version: 2)
        #expect(features.errorCode == 0)
    }
}
