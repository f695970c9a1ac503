import BrookCluster
import BrookGroups
import BrookProtocol

/// The config resources of DescribeConfigs / AlterConfigs, and the answers they share.
enum ConfigResource {
    static let topic: Int8 = 2
    static let broker: Int8 = 4
    /// A consumer group (Kafka 4.0): its consumer.session.timeout.ms and
    /// consumer.heartbeat.interval.ms (GroupConfigs).
    static let group: Int8 = 32
    /// A KIP-714 client metrics subscription (Brook has none; ListConfigResources lists them).
    static let clientMetrics: Int8 = 16

    /// Kafka's config sources (DescribeConfigs v1+).
    enum Source: Int8 {
        case topic = 1, dynamicBroker = 2, dynamicDefaultBroker = 3, staticBroker = 4, defaultConfig = 5, group = 8
    }

    struct Described {
        var name: String
        var value: String?
        var source: Source
        var type: TopicConfigs.ValueType
        var readOnly: Bool
        /// Synonyms, most specific first: (name, value, source).
        var synonyms: [(String, String?, Source)]
    }

    /// A topic's every config: its own value, else the broker's dynamic default (its own, then
    /// every broker's), else its static one, else Kafka's.
    static func describeTopic(_ topic: Topic, broker: Broker) -> [Described] {
        TopicConfigs.all.map { definition in
            var synonyms: [(String, String?, Source)] = []
            if let own = topic.overrides[definition.name] { synonyms.append((definition.name, own, .topic)) }
            if let brokerKey = definition.brokerKey {
                synonyms += brokerSynonyms(brokerKey, topicDefault: definition.name, broker: broker).map { ($0.0, $0.1, $0.2) }
                synonyms.append((brokerKey, definition.defaultValue, .defaultConfig))
            } else {
                synonyms.append((definition.name, definition.defaultValue, .defaultConfig))
            }
            let effective = synonyms[0]
            return Described(name: definition.name, value: effective.1, source: effective.2, type: definition.type,
                             readOnly: false, synonyms: synonyms)
        }
    }

    /// The values a broker-wide key has, most specific first: this broker's dynamic one, every
    /// broker's, the static one. For a topic default (`topicDefault`, its topic config) each
    /// level's value may come from any key that sets it (log.retention.ms, .minutes, .hours: the
    /// finest first), given in the topic config's unit.
    static func brokerSynonyms(_ key: String, topicDefault: String?, broker: Broker) -> [(String, String, Source)] {
        var keys = [key]
        if let topicDefault {
            keys += TopicConfigs.scaledBrokerKeys.filter { $0.value.topic == topicDefault }.sorted { $0.value.factor < $1.value.factor }.map(\.key)
        }
        var synonyms: [(String, String, Source)] = []
        if let image = broker.cluster.current?.image {
            for (resource, source) in [("\(broker.config.nodeID)", Source.dynamicBroker), ("", .dynamicDefaultBroker)] {
                for name in keys where DynamicBrokerConfigs.names.contains(name) {
                    guard let value = image.config(BrookCluster.ConfigResource(.broker, resource), name) else { continue }
                    synonyms.append((name, topicDefault == nil ? value : (try? TopicConfigs.brokerValue(key: name, value: value)) ?? value, source))
                    break
                }
            }
        }
        if let topicDefault, let value = broker.config.topicDefaults[topicDefault] { synonyms.append((key, value, .staticBroker)) }
        return synonyms
    }

    /// The broker's settings that a user asks about: its static ones read-only, and in a cluster
    /// the dynamic ones (DynamicBrokerConfigs) as the metadata log has them.
    static func describeBroker(_ broker: Broker) -> [Described] {
        let config = broker.config
        let items: [(String, String, TopicConfigs.ValueType, Bool)] = [
            ("node.id", "\(config.nodeID)", .int, config.given["node.id"] != nil || config.given["broker.id"] != nil),
            ("listeners", config.listeners.map(\.description).joined(separator: ","), .list, config.given["listeners"] != nil),
            ("advertised.listeners", [config.advertised].map(\.description).joined(separator: ","), .list,
             config.given["advertised.listeners"] != nil),
            ("log.dirs", config.logDirs.joined(separator: ","), .list, config.given["log.dirs"] != nil || config.given["log.dir"] != nil),
            ("num.partitions", "\(config.numPartitions)", .int, config.given["num.partitions"] != nil),
            ("default.replication.factor", "\(config.defaultReplicationFactor)", .int, config.given["default.replication.factor"] != nil),
            ("auto.create.topics.enable", "\(config.autoCreateTopics)", .boolean, config.given["auto.create.topics.enable"] != nil),
            ("delete.topic.enable", "\(config.deleteTopicEnable)", .boolean, config.given["delete.topic.enable"] != nil),
            ("max.request.partition.size.limit", "\(config.maxRequestPartitionSizeLimit)", .int,
             config.given["max.request.partition.size.limit"] != nil),
            ("socket.request.max.bytes", "\(config.socketRequestMaxBytes)", .int, config.given["socket.request.max.bytes"] != nil),
            ("queued.max.request.bytes", "\(config.queuedMaxRequestBytes)", .long, config.given["queued.max.request.bytes"] != nil),
            ("log.retention.check.interval.ms", "\(config.retentionCheckIntervalMs)", .long,
             config.given["log.retention.check.interval.ms"] != nil),
            ("log.cleaner.enable", "\(config.logCleanerEnable)", .boolean, config.given["log.cleaner.enable"] != nil),
        ]
        var described = items.map { name, value, type, given in
            let source: Source = given ? .staticBroker : .defaultConfig
            return Described(name: name, value: value, source: source, type: type, readOnly: true, synonyms: [(name, value, source)])
        }
        // The topic defaults: dynamic in a cluster (DynamicBrokerConfigs), static otherwise.
        let dynamic = broker.cluster.isCluster
        for definition in TopicConfigs.all {
            guard let key = definition.brokerKey, !items.contains(where: { $0.0 == key }) else { continue }
            var synonyms: [(String, String?, Source)] = brokerSynonyms(key, topicDefault: definition.name, broker: broker).map { ($0.0, $0.1, $0.2) }
            synonyms.append((key, definition.defaultValue, .defaultConfig))
            described.append(Described(name: key, value: synonyms[0].1, source: synonyms[0].2, type: definition.type,
                                       readOnly: !(dynamic && DynamicBrokerConfigs.names.contains(key)), synonyms: synonyms))
        }
        if dynamic {
            for name in DynamicBrokerConfigs.rates {
                var synonyms: [(String, String?, Source)] = brokerSynonyms(name, topicDefault: nil, broker: broker).map { ($0.0, $0.1, $0.2) }
                synonyms.append((name, "\(Int64.max)", .defaultConfig))
                described.append(Described(name: name, value: synonyms[0].1, source: synonyms[0].2, type: .long, readOnly: false, synonyms: synonyms))
            }
        }
        return described
    }


    /// A group's configs: its own value, else the broker's group.consumer.* setting.
    static func describeGroup(_ group: String, broker: Broker) -> [Described] {
        let own = groupConfigs(of: group, broker: broker)
        let defaults = broker.config.groups
        return GroupConfigs.names.map { name in
            let brokerKey = GroupConfigs.brokerKey(name)
            let brokerValue = name == GroupConfigs.sessionTimeout ? defaults.consumerSessionTimeoutMs : defaults.consumerHeartbeatIntervalMs
            var synonyms: [(String, String?, Source)] = []
            if let value = own[name] { synonyms.append((name, value, .group)) }
            synonyms.append((brokerKey, "\(brokerValue)", broker.config.given[brokerKey] != nil ? .staticBroker : .defaultConfig))
            return Described(name: name, value: synonyms[0].1, source: synonyms[0].2, type: .int, readOnly: false, synonyms: synonyms)
        }
    }

    /// The configs group `group` has of its own (in the cluster's metadata; none without one).
    static func groupConfigs(of group: String, broker: Broker) -> [String: String] {
        broker.cluster.current?.image.configs[BrookCluster.ConfigResource(.group, group)] ?? [:]
    }

    /// What a group's heartbeats run under: nil when it has no configs of its own.
    static func groupOverrides(of group: String, broker: Broker) -> GroupOverrides? {
        let own = groupConfigs(of: group, broker: broker)
        guard !own.isEmpty else { return nil }
        // Checked when set; a value the broker's bounds no longer take is still the group's.
        return GroupOverrides(consumerSessionTimeoutMs: own[GroupConfigs.sessionTimeout].flatMap { Int32($0) },
                              consumerHeartbeatIntervalMs: own[GroupConfigs.heartbeatInterval].flatMap { Int32($0) })
    }

    /// A group name Kafka takes as a GROUP config resource.
    static func checkGroupName(_ name: String) throws(TopicError) {
        guard !name.isEmpty, name.utf8.count <= ControllerAdminRequest.stringBytesMax else {
            throw TopicError(.invalidRequest, name.isEmpty ? "Group name must not be empty" : "Group name is longer than \(ControllerAdminRequest.stringBytesMax) bytes.")
        }
    }

    /// A group's whole set of configs, checked as Kafka checks them.
    static func checkGroupConfigs(_ configs: [String: String], broker: Broker) throws(TopicError) {
        do { _ = try GroupConfigs.parse(configs, broker: broker.config.groups) } catch { throw TopicError(error.code, error.message) }
    }

    static let groupAlterRefused = TopicError(.invalidRequest,
        "Group configs are kept in the cluster's metadata, and this node runs without a quorum (brook.single.node.quorum=false).")

    static let brokerAlterRefused = TopicError(.invalidRequest,
        "A node without a quorum (brook.single.node.quorum=false) takes no dynamic broker configs: set them in server.properties or with --override.")
}
