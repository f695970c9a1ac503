import Testing
@testable import BrookMQTT

/// `overlaps` and `covers` (which Kafka topics a subscription may read, for its ACL check),
/// checked against `matches` over every small filter and every name they could tell apart.
@Suite struct TopicOverlapTests {
    /// Filters of one to three levels: `a`, `b`, `+`, a final `#`, a leading `$x`.
    static let filters: [String] = {
        var out: [[String]] = [[]]
        var all: [String] = []
        for depth in 1...3 {
            out = out.flatMap { prefix in
                (["a", "b", "+", "#"] + (prefix.isEmpty ? ["$x"] : [])).map { prefix + [$0] }
            }.filter { levels in !levels.dropLast().contains("#") }
            all += out.filter { $0.count == depth }.map { $0.joined(separator: "/") }
        }
        return all
    }()

    /// Names of one to four levels: `a`, `b`, `c` (in no filter), an empty level, a leading `$x`.
    static let names: [String] = {
        var out: [[String]] = [[]]
        var all: [String] = []
        for _ in 1...4 {
            out = out.flatMap { prefix in (["a", "b", "c", ""] + (prefix.isEmpty ? ["$x"] : [])).map { prefix + [$0] } }
            all += out.map { $0.joined(separator: "/") }
        }
        return all.filter { !$0.isEmpty }
    }()

    @Test func overlapsIsSomeNameMatchingBoth() {
        for a in Self.filters {
            let matchingA = Self.names.filter { MQTTTopic.matches(filter: a, name: $0) }
            for b in Self.filters {
                let both = matchingA.contains { MQTTTopic.matches(filter: b, name: $0) }
                #expect(MQTTTopic.overlaps(a, b) == both, "\(a) and \(b)")
            }
        }
    }

    @Test func coversIsEveryNameOfTheFilterMatched() {
        for filter in Self.filters {
            let matching = Self.names.filter { MQTTTopic.matches(filter: filter, name: $0) }
            for cover in Self.filters {
                let all = matching.allSatisfy { MQTTTopic.matches(filter: cover, name: $0) }
                #expect(MQTTTopic.covers(cover, filter) == all, "\(cover) covering \(filter)")
            }
        }
    }

    @Test func aSubscriptionReadsTheTopicsItsMessagesMayComeFrom() {
        let mapping = MQTTTopicMapping(rules: [.init(filter: "sensors/+/temperature", kafkaTopic: "temperature"),
                                               .init(filter: "sensors/#", kafkaTopic: "sensors")],
                                       defaultTopic: "mqtt-messages")
        #expect(mapping.kafkaTopics(subscribedBy: "sensors/+/temperature") == ["temperature", "sensors"])
        #expect(mapping.kafkaTopics(subscribedBy: "sensors/kitchen/humidity") == ["sensors"])
        #expect(mapping.kafkaTopics(subscribedBy: "lights/#") == ["mqtt-messages"])
        #expect(mapping.kafkaTopics(subscribedBy: "#") == ["temperature", "sensors", "mqtt-messages"])
        #expect(MQTTTopicMapping(rules: [], defaultTopic: nil).kafkaTopics(subscribedBy: "#").isEmpty)
    }
}
