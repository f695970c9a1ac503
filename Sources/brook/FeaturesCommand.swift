import ArgumentParser
import BrookClient
import BrookCore

/// `brook features describe|upgrade|downgrade`: the cluster's feature flags (KIP-584), as
/// kafka-features.sh --bootstrap-server ... shows and changes them.
struct FeaturesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "features",
        abstract: "Describe or change the cluster's feature flags (as kafka-features.sh).",
        subcommands: [Describe.self, Upgrade.self, Downgrade.self])

    /// Kafka's metadata.version levels by release (MetadataVersion), as kafka-features.sh names them.
    static let metadataReleases: [Int16: String] = [
        7: "3.3-IV3", 8: "3.4-IV0", 9: "3.5-IV0", 10: "3.5-IV1", 11: "3.5-IV2", 12: "3.6-IV0", 13: "3.6-IV1", 14: "3.6-IV2",
        15: "3.7-IV0", 16: "3.7-IV1", 17: "3.7-IV2", 18: "3.7-IV3", 19: "3.7-IV4", 20: "3.8-IV0", 21: "3.9-IV0",
        22: "4.0-IV0", 23: "4.0-IV1", 24: "4.0-IV2", 25: "4.0-IV3",
    ]

    /// A level as kafka-features.sh prints it: metadata.version by its release name.
    static func show(_ feature: String, _ level: Int16) -> String {
        feature == "metadata.version" ? metadataReleases[level] ?? "\(level)" : "\(level)"
    }

    /// The level a `--metadata` release (`4.0`, `3.7-IV2`) names: a release alone is its last
    /// level, as kafka-features.sh takes it (a bare level goes by `--feature metadata.version=N`).
    static func metadataLevel(_ text: String) -> Int16? {
        if let exact = metadataReleases.first(where: { $0.value == text }) { return exact.key }
        return metadataReleases.filter { $0.value.hasPrefix(text + "-IV") }.map(\.key).max()
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each feature's supported levels and finalized level.")

        @OptionGroup var client: ClientOptions

        func run() async throws {
            let admin = try client.admin()
            let features: FeatureMetadata
            do { features = try await admin.describeFeatures() } catch {
                await admin.close()
                throw error
            }
            await admin.close()
            // As kafka-features.sh: the supported features, each at its finalized level (0 when none).
            for f in features.features {
                guard let supported = f.supported else { continue }
                print("Feature: \(f.name)\tSupportedMinVersion: \(show(f.name, supported.lowerBound))\t"
                      + "SupportedMaxVersion: \(show(f.name, supported.upperBound))\tFinalizedVersionLevel: \(show(f.name, f.finalizedLevel ?? 0))\t"
                      + "Epoch: \(features.finalizedEpoch.map(String.init) ?? "-")")
            }
        }
    }

    /// What upgrade and downgrade share: the features named, the dry run, the request.
    struct Changes: ParsableArguments {
        @OptionGroup var client: ClientOptions
        @Option(help: "metadata.version as a release (4.0, 3.7-IV2).") var metadata: String?
        @Option(help: "NAME=LEVEL (repeatable).") var feature: [String] = []
        @Flag(name: .customLong("dry-run"), help: "Only check that the cluster would make the change.") var dryRun = false

        func updates(_ type: FeatureUpgradeType) throws -> [FeatureUpdate] {
            var updates: [FeatureUpdate] = []
            if let metadata {
                guard let level = FeaturesCommand.metadataLevel(metadata) else { throw ValidationError("unknown metadata.version '\(metadata)'") }
                updates.append(FeatureUpdate(feature: "metadata.version", level: level, type: type))
            }
            for given in feature {
                let parts = given.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty, let level = Int16(parts[1]) else {
                    throw ValidationError("--feature takes NAME=LEVEL, not '\(given)'")
                }
                updates.append(FeatureUpdate(feature: parts[0], level: level, type: type))
            }
            if updates.isEmpty { throw ValidationError("give --metadata or --feature") }
            return updates
        }

        /// Sends the updates; prints each as kafka-features.sh does, or throws with the refusal.
        func run(_ type: FeatureUpgradeType, verb: String) async throws {
            let updates = try updates(type)
            let admin = try client.admin()
            do {
                try await admin.updateFeatures(updates, validateOnly: dryRun)
            } catch {
                await admin.close()
                let named = updates.map { "\($0.feature) to \($0.level)" }.joined(separator: ", ")
                throw CommandFailure("Could not \(verb) \(named): \(error)")
            }
            await admin.close()
            for u in updates { print(dryRun ? "\(u.feature) can be \(verb)d to \(u.level)" : "\(u.feature) was \(verb)d to \(u.level).") }
        }
    }

    struct Upgrade: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Raise features' finalized levels (UpdateFeatures).")
        @OptionGroup var changes: Changes
        func run() async throws { try await changes.run(.upgrade, verb: "upgrade") }
    }

    struct Downgrade: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lower features' finalized levels (UpdateFeatures).")
        @OptionGroup var changes: Changes
        @Flag(help: "Allow a downgrade that may lose metadata.") var unsafe = false
        func run() async throws { try await changes.run(unsafe ? .unsafeDowngrade : .safeDowngrade, verb: "downgrade") }
    }
}
