import BrookCluster
import BrookProtocol

/// The config resources of DescribeConfigs / AlterConfigs, and the answers they share.
enum ConfigResource {
    static let topic: Int8 = 2
    static let broker: Int8 = 4

    /// Kafka's config sources (DescribeConfigs v1+).
    enum Source: Int8 {
        case topic = 1, dynamicBroker = 2, dynamicDefaultBroker = 3, staticBroker = 4, defaultConfig = 5
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

    /// A topic's every config: its own value, else the broker's default, else Kafka's.
    static func describeTopic(_ topic: Topic, broker: Broker) -> [Described] {
        TopicConfigs.all.map { definition in
            var synonyms: [(String, String?, Source)] = []
            if let own = topic.overrides[definition.name] { synonyms.append((definition.name, own, .topic)) }
            if let brokerKey = definition.brokerKey {
                if let brokerValue = broker.config.topicDefaults[definition.name] {
                    synonyms.append((brokerKey, brokerValue, .staticBroker))
                }
                synonyms.append((brokerKey, definition.defaultValue, .defaultConfig))
            } else {
                synonyms.append((definition.name, definition.defaultValue, .defaultConfig))
            }
            let effective = synonyms[0]
            return Described(name: definition.name, value: effective.1, source: effective.2, type: definition.type,
                             readOnly: false, synonyms: synonyms)
        }
    }

    /// The broker's settings that a user asks about: its static ones read-only, and in a cluster
    /// the dynamic ones (DynamicBrokerConfigs) as the metadata log has them.
    static func describeBroker(_ broker: Broker) -> [Described] {
        let config = broker.config
        var items: [(String, String, TopicConfigs.ValueType, Bool)] = [
            ("node.id", "\(config.nodeID)", .int, config.given["node.id"] != nil || config.given["broker.id"] != nil),
            ("listeners", config.listeners.map(\.description).joined(separator: ","), .list, config.given["listeners"] != nil),
            ("advertised.listeners", [config.advertised].map(\.description).joined(separator: ","), .list,
             config.given["advertised.listeners"] != nil),
            ("log.dirs", config.logDirs.joined(separator: ","), .list, config.given["log.dirs"] != nil || config.given["log.dir"] != nil),
            ("num.partitions", "\(config.numPartitions)", .int, config.given["num.partitions"] != nil),
            ("default.replication.factor", "\(config.defaultReplicationFactor)", .int, config.given["default.replication.factor"] != nil),
            ("auto.create.topics.enable", "\(config.autoCreateTopics)", .boolean, config.given["auto.create.topics.enable"] != nil),
            ("delete.topic.enable", "\(config.deleteTopicEnable)", .boolean, config.given["delete.topic.enable"] != nil),
            ("socket.request.max.bytes", "\(config.socketRequestMaxBytes)", .int, config.given["socket.request.max.bytes"] != nil),
            ("queued.max.request.bytes", "\(config.queuedMaxRequestBytes)", .long, config.given["queued.max.request.bytes"] != nil),
            ("log.retention.check.interval.ms", "\(config.retentionCheckIntervalMs)", .long,
             config.given["log.retention.check.interval.ms"] != nil),
            ("log.cleaner.enable", "\(config.logCleanerEnable)", .boolean, config.given["log.cleaner.enable"] != nil),
        ]
        for definition in TopicConfigs.all {
            guard let key = definition.brokerKey, !items.contains(where: { $0.0 == key }) else { continue }
            let value = config.topicDefaults[definition.name]
            items.append((key, value ?? definition.defaultValue, definition.type, value != nil))
        }
        var described = items.map { name, value, type, given in
            let source: Source = given ? .staticBroker : .defaultConfig
            return Described(name: name, value: value, source: source, type: type, readOnly: true, synonyms: [(name, value, source)])
        }
        if broker.cluster.isCluster {
            let image = broker.cluster.current?.image ?? .empty
            for name in DynamicBrokerConfigs.names {
                var synonyms: [(String, String?, Source)] = []
                if let own = image.config(BrookCluster.ConfigResource(.broker, "\(config.nodeID)"), name) { synonyms.append((name, own, .dynamicBroker)) }
                if let every = image.config(BrookCluster.ConfigResource(.broker, ""), name) { synonyms.append((name, every, .dynamicDefaultBroker)) }
                synonyms.append((name, "\(Int64.max)", .defaultConfig))
                described.append(Described(name: name, value: synonyms[0].1, source: synonyms[0].2, type: .long, readOnly: false, synonyms: synonyms))
            }
        }
        return described
    }


    static let brokerAlterRefused = TopicError(.invalidRequest,
        "A single node takes no dynamic broker configs: set them in server.properties or with --override (a cluster takes \(DynamicBrokerConfigs.names.joined(separator: ", ")))")
}
