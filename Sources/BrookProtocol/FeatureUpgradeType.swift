/// How an UpdateFeatures request (version 1 and later) may move a feature's level: Kafka's
/// `FeatureUpdate.UpgradeType`. Version 0's AllowDowngrade is a safe downgrade.
public enum FeatureUpgradeType: Int8, Sendable {
    /// To a higher level only.
    case upgrade = 1
    /// To a lower level whose metadata is the same (lossless).
    case safeDowngrade = 2
    /// To a lower level, metadata may be lost.
    case unsafeDowngrade = 3
}
