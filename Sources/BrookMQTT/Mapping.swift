/// Which Kafka topic an MQTT topic's messages land in: the first rule whose filter matches, else
/// the default topic (nil: unmapped topics are refused). The MQTT topic is the record's key.
public struct MQTTTopicMapping: Sendable, Equatable {
    public struct Rule: Sendable, Equatable {
        public var filter: String
        public var kafkaTopic: String
        public init(filter: String, kafkaTopic: String) {
            self.filter = filter
            self.kafkaTopic = kafkaTopic
        }
    }

    public var rules: [Rule]
    public var defaultTopic: String?

    public init(rules: [Rule] = [], defaultTopic: String?) {
        self.rules = rules
        self.defaultTopic = defaultTopic
    }

    /// Rules at most (each message is matched against them in order).
    public static let rulesMax = 1024

    /// `FILTER=TOPIC,FILTER=TOPIC` (`mqtt.topic.mappings`); a Kafka topic name holds no `=`.
    public static func parseRules(_ text: String) throws(MQTTError) -> [Rule] {
        var rules: [Rule] = []
        for item in text.split(separator: ",") {
            let entry = item.trimmingSpaces
            if entry.isEmpty { continue }
            guard let equals = entry.lastIndex(of: "=") else {
                throw MQTTError(.implementationSpecificError, "mqtt.topic.mappings: \"\(entry)\" is not FILTER=TOPIC")
            }
            let filter = String(entry[..<equals]).trimmingSpaces
            let topic = String(entry[entry.index(after: equals)...]).trimmingSpaces
            guard MQTTTopic.isValidFilter(filter), try MQTTTopic.shared(filter) == nil else {
                throw MQTTError(.implementationSpecificError, "mqtt.topic.mappings: \"\(filter)\" is not an MQTT topic filter")
            }
            guard !topic.isEmpty else { throw MQTTError(.implementationSpecificError, "mqtt.topic.mappings: \"\(entry)\" names no Kafka topic") }
            rules.append(Rule(filter: filter, kafkaTopic: topic))
        }
        guard rules.count <= rulesMax else { throw MQTTError(.implementationSpecificError, "mqtt.topic.mappings: more than \(rulesMax) rules") }
        return rules
    }

    public func kafkaTopic(for name: String) -> String? {
        rules.first { MQTTTopic.matches(filter: $0.filter, name: name) }?.kafkaTopic ?? defaultTopic
    }

    /// The Kafka topics messages a subscription to `filter` gets may come from: those of the
    /// rules whose filters overlap it, and the default topic unless a rule takes every topic the
    /// filter matches. (Records Kafka producers write are found by their key in the same topics.)
    public func kafkaTopics(subscribedBy filter: String) -> [String] {
        var seen: Set<String> = []
        var topics = rules.filter { MQTTTopic.overlaps($0.filter, filter) }.map(\.kafkaTopic)
        if let defaultTopic, !rules.contains(where: { MQTTTopic.covers($0.filter, filter) }) { topics.append(defaultTopic) }
        return topics.filter { seen.insert($0).inserted }
    }

    /// Every Kafka topic messages may land in (the ones delivered to subscribers), in order.
    public var kafkaTopics: [String] {
        var seen: Set<String> = []
        return (rules.map(\.kafkaTopic) + (defaultTopic.map { [$0] } ?? [])).filter { seen.insert($0).inserted }
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
