import Testing
@testable import BrookMQTT

/// `mqtt.topic.mappings`: MQTT topics to Kafka topics, first matching rule first.
@Suite struct MappingTests {
    @Test func rulesAreParsedInOrderAndTrimmed() throws {
        let rules = try MQTTTopicMapping.parseRules("sensors/+/temperature=sensor-temperature, devices/#=devices")
        #expect(rules == [.init(filter: "sensors/+/temperature", kafkaTopic: "sensor-temperature"),
                          .init(filter: "devices/#", kafkaTopic: "devices")])
        #expect(try MQTTTopicMapping.parseRules("  a = x ,, b=y,") == [.init(filter: "a", kafkaTopic: "x"), .init(filter: "b", kafkaTopic: "y")])
        #expect(try MQTTTopicMapping.parseRules("").isEmpty)
    }

    @Test func theFirstMatchingRuleWins() throws {
        let mapping = MQTTTopicMapping(rules: try MQTTTopicMapping.parseRules("devices/lamp/+=lamps, devices/#=devices"),
                                       defaultTopic: "mqtt")
        #expect(mapping.kafkaTopic(for: "devices/lamp/1") == "lamps")
        #expect(mapping.kafkaTopic(for: "devices/fan/1") == "devices")
        #expect(mapping.kafkaTopic(for: "devices") == "devices")
        #expect(mapping.kafkaTopic(for: "weather") == "mqtt")
    }

    @Test func withoutADefaultAnUnmappedTopicHasNone() {
        let mapping = MQTTTopicMapping(rules: [.init(filter: "a/#", kafkaTopic: "a")], defaultTopic: nil)
        #expect(mapping.kafkaTopic(for: "a/b") == "a")
        #expect(mapping.kafkaTopic(for: "b") == nil)
        #expect(MQTTTopicMapping(defaultTopic: nil).kafkaTopic(for: "a") == nil)
    }

    @Test func badRulesAreRefused() {
        for bad in ["a/#/b=x", "sport+=x", "no-equals-sign", "a=", "=x", "$share/g/a=x", "a=x,b"] {
            #expect(throws: MQTTError.self, "\(bad)") { try MQTTTopicMapping.parseRules(bad) }
        }
    }

    @Test func kafkaTopicsAreDistinctInOrder() {
        let mapping = MQTTTopicMapping(rules: [.init(filter: "a", kafkaTopic: "x"), .init(filter: "b", kafkaTopic: "y"),
                                               .init(filter: "c", kafkaTopic: "x")], defaultTopic: "y")
        #expect(mapping.kafkaTopics == ["x", "y"])
        #expect(MQTTTopicMapping(rules: [.init(filter: "a", kafkaTopic: "x")], defaultTopic: "z").kafkaTopics == ["x", "z"])
        #expect(MQTTTopicMapping(defaultTopic: nil).kafkaTopics.isEmpty)
    }
}
