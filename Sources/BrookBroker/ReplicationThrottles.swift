import BrookCluster
import BrookCore
import BrookProtocol
import Foundation
import Synchronization

/// The dynamic broker configs Brook takes (Kafka's names): set with AlterConfigs or
/// IncrementalAlterConfigs on a BROKER resource, for one broker (its id) or for every broker
/// (the empty name, `--entity-default`); in a cluster the controller sets them in the metadata
/// log, so they survive restarts and every broker sees them. A node without a quorum refuses
/// them. They are the replication throttle rates and the broker-wide topic defaults (`log.*`,
/// `message.max.bytes`, `compression.type`, ...), which every topic without its own value takes
/// at once. `min.insync.replicas` and `unclean.leader.election.enable` stay static (or per
/// topic): the controller's elections read them, and it reads the static ones.
public enum DynamicBrokerConfigs {
    /// Bytes per second a leader sends to its throttled followers (KIP-73).
    public static let leaderRate = "leader.replication.throttled.rate"
    /// Bytes per second a follower fetches for its throttled replicas.
    public static let followerRate = "follower.replication.throttled.rate"
    public static let rates = [leaderRate, followerRate]
    /// Broker-wide topic defaults that are not dynamic here.
    static let staticTopicDefaults: Set<String> = ["min.insync.replicas", "unclean.leader.election.enable"]
    /// The broker-wide topic defaults that change without a restart, hours and minutes first
    /// (a value in ms wins over them within one resource, as in Kafka).
    public static let topicDefaultKeys: [String] = TopicConfigs.scaledBrokerKeys.keys.sorted { a, b in
        (a.hasSuffix("hours") ? 0 : 1, a) < (b.hasSuffix("hours") ? 0 : 1, b)
    } + TopicConfigs.all.compactMap(\.brokerKey).filter { !staticTopicDefaults.contains($0) }
    public static let names = rates + topicDefaultKeys

    /// A name Kafka would take as a dynamic broker config (all a DELETE needs).
    static func checkName(_ name: String) throws(TopicError) {
        guard names.contains(name) else {
            throw TopicError(.invalidRequest, "Cannot update these configs dynamically: \(name.prefix(255)). Brook takes \(rates.joined(separator: ", ")) and the broker-wide topic defaults but \(staticTopicDefaults.sorted().joined(separator: ", ")).")
        }
    }

    /// A value Kafka would take for `name`.
    static func check(_ name: String, _ value: String?) throws(TopicError) {
        try checkName(name)
        guard let value else { throw TopicError(.invalidRequest, "Null value not supported for: \(name)") }
        if rates.contains(name) {
            guard let rate = Int64(value.trimmed), rate >= 0 else {
                throw TopicError(.invalidConfig, "Invalid value \(value) for configuration \(name): Value must be a long of at least 0")
            }
            return
        }
        guard let topicKey = TopicConfigs.topicKey(forBrokerKey: name) else { preconditionFailure("\(name) sets no topic config") }
        let topicValue: String
        do { topicValue = try TopicConfigs.brokerValue(key: name, value: value) } catch {
            throw TopicError(.invalidConfig, "Invalid value \(value) for configuration \(name): Not a number of type LONG")
        }
        if let problem = TopicConfigs.validate(topicKey, topicValue) {
            // Said of the broker's key, not the topic config it sets.
            let said = "configuration \(topicKey)"
            throw TopicError(.invalidConfig, problem.contains(said) ? problem.replacingOccurrences(of: said, with: "configuration \(name)")
                                                                   : "Invalid value \(value) for configuration \(name): \(problem)")
        }
    }

    /// The topic defaults in force on `node`: `base` (its static settings, by topic config
    /// name), then every broker's dynamic ones, then its own.
    public static func topicDefaults(base: [String: String], node: NodeID, image: MetadataImage?) -> [String: String] {
        guard let image else { return base }
        var defaults = base
        for resource in ["", "\(node.value)"] {
            guard let configs = image.configs[BrookCluster.ConfigResource(.broker, resource)] else { continue }
            for key in topicDefaultKeys {
                guard let value = configs[key], let topicKey = TopicConfigs.topicKey(forBrokerKey: key),
                      let topicValue = try? TopicConfigs.brokerValue(key: key, value: value) else { continue }
                defaults[topicKey] = topicValue
            }
        }
        return defaults
    }

    /// The broker resource names a cluster takes: "" (every broker) or a broker id.
    static func checkResource(_ name: String) throws(TopicError) {
        guard name.isEmpty || Int32(name).map({ $0 >= 0 }) == true else {
            throw TopicError(.invalidRequest, "Invalid broker id '\(name)': a broker's id, or empty for every broker.")
        }
    }

    /// The dynamic configs of `resource` ("" or a broker id) in `image`.
    static func configs(of resource: String, in image: MetadataImage) -> [String: String] {
        (image.configs[BrookCluster.ConfigResource(.broker, resource)] ?? [:]).filter { names.contains($0.key) }
    }

    /// `name`'s value in force on `node`: its own, else every broker's, else nil (Kafka's default).
    static func value(_ name: String, node: NodeID, image: MetadataImage) -> (String, ConfigResource.Source)? {
        if let own = image.config(BrookCluster.ConfigResource(.broker, "\(node.value)"), name) { return (own, .dynamicBroker) }
        if let every = image.config(BrookCluster.ConfigResource(.broker, ""), name) { return (every, .dynamicDefaultBroker) }
        return nil
    }

    /// A rate in force on `node`, in bytes per second (Int64.max: unlimited, the default).
    public static func rate(_ name: String, node: NodeID, image: MetadataImage?) -> Int64 {
        guard let image, let text = value(name, node: node, image: image)?.0, let rate = Int64(text.trimmed) else { return Int64.max }
        return rate
    }
}

/// Replication throttles as Kafka has them (KIP-73): a topic's
/// `leader.replication.throttled.replicas` and `follower.replication.throttled.replicas` name
/// the replicas ("PARTITION:BROKER,...", or "*" for all) whose copying is throttled, and the
/// brokers' `leader.replication.throttled.rate` / `follower.replication.throttled.rate` cap the
/// bytes per second for them. Only a replica out of the ISR is held back (one catching up, as in
/// a reassignment), so a throttle never holds back the high watermark. Over the rate, a leader
/// answers a throttled follower with no records, and a follower leaves throttled partitions out
/// of its fetches, until the measured rate (`RateMeter`, over 11 s) is under the cap again.
public final class ReplicationThrottles: Sendable {
    let leader = Mutex(RateMeter())
    let follower = Mutex(RateMeter())

    public init() {}

    /// Whether a throttled-replicas list names partition `partition`'s replica on `node`.
    public static func names(_ list: String?, partition: Int32, node: NodeID) -> Bool {
        guard let list, !list.isEmpty else { return false }
        for entry in list.split(separator: ",") {
            let item = entry.trimmed
            if item == "*" { return true }
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            if parts.count == 2, Int32(parts[0].trimmed) == partition, Int32(parts[1].trimmed) == node.value { return true }
        }
        return false
    }

    /// Whether the leader is over its rate now.
    public func leaderOverRate(_ rate: Int64, nowMs: Int64) -> Bool {
        rate < Int64.max && leader.withLock { $0.exceeds(rate, nowMs: nowMs) }
    }

    /// Counts bytes a leader sent to a throttled follower.
    public func leaderSent(_ bytes: Int, nowMs: Int64) {
        leader.withLock { $0.record(bytes, nowMs: nowMs) }
    }

    /// Whether the follower on `node` is throttled for `partition` (named in the topic's list
    /// and out of the ISR).
    public static func followerThrottled(_ overrides: [String: String], partition: Int32, node: NodeID, inSync: Bool) -> Bool {
        !inSync && names(overrides["follower.replication.throttled.replicas"], partition: partition, node: node)
    }

    /// Whether the follower is over its rate now.
    public func followerOverRate(_ rate: Int64, nowMs: Int64) -> Bool {
        rate < Int64.max && follower.withLock { $0.exceeds(rate, nowMs: nowMs) }
    }

    /// Counts bytes a follower fetched for throttled replicas.
    public func followerFetched(_ bytes: Int, nowMs: Int64) {
        follower.withLock { $0.record(bytes, nowMs: nowMs) }
    }
}
