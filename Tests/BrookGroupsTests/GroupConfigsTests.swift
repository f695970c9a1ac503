@testable import BrookGroups
import BrookProtocol
import Testing

/// A consumer group's own configs (Kafka 4.0's GROUP config resource): checked as Kafka checks
/// them, and the group's heartbeats run under them.
@Suite struct GroupConfigsTests {
    let broker = GroupConfig()

    func refusal(_ configs: [String: String]) -> GroupConfigs.Refusal? {
        do { _ = try GroupConfigs.parse(configs, broker: broker); return nil } catch { return error }
    }

    @Test func valuesWithinTheBrokersBoundsAreTaken() throws {
        #expect(try GroupConfigs.parse([:], broker: broker) == GroupOverrides())
        #expect(try GroupConfigs.parse(["consumer.session.timeout.ms": "50000", "consumer.heartbeat.interval.ms": " 6000 "], broker: broker)
                == GroupOverrides(consumerSessionTimeoutMs: 50_000, consumerHeartbeatIntervalMs: 6_000))
        #expect(try GroupConfigs.parse(["consumer.heartbeat.interval.ms": "15000"], broker: broker).consumerHeartbeatIntervalMs == 15_000)
    }

    @Test func kafkasChecksRefuseTheRestWithInvalidConfig() {
        #expect(refusal(["consumer.rebalance.timeout.ms": "1"]) == .init(code: .invalidConfig, message: "Unknown group config name: consumer.rebalance.timeout.ms"))
        #expect(refusal(["consumer.session.timeout.ms": "soon"])?.code == .invalidConfig)
        #expect(refusal(["consumer.session.timeout.ms": "0"])?.message == "Invalid value 0 for configuration consumer.session.timeout.ms: Value must be at least 1")
        #expect(refusal(["consumer.heartbeat.interval.ms": "4999"])?.message
                == "consumer.heartbeat.interval.ms must be greater than or equal to group.consumer.min.heartbeat.interval.ms")
        #expect(refusal(["consumer.heartbeat.interval.ms": "15001"])?.message
                == "consumer.heartbeat.interval.ms must be less than or equal to group.consumer.max.heartbeat.interval.ms")
        #expect(refusal(["consumer.session.timeout.ms": "44999"])?.message
                == "consumer.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms")
        #expect(refusal(["consumer.session.timeout.ms": "60001"])?.message
                == "consumer.session.timeout.ms must be less than or equal to group.consumer.max.session.timeout.ms")
        // Both within bounds, but the session no longer than the interval.
        var wide = GroupConfig()
        wide.consumerMaxHeartbeatIntervalMs = 50_000
        #expect(throws: GroupConfigs.Refusal(code: .invalidConfig, message: "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms")) {
            try GroupConfigs.parse(["consumer.session.timeout.ms": "45000", "consumer.heartbeat.interval.ms": "45000"], broker: wide)
        }
    }

    @Test func aGroupsHeartbeatsRunUnderItsOwnConfigs() {
        var h = ConsumerHarness()
        h.overrides = GroupOverrides(consumerSessionTimeoutMs: 50_000, consumerHeartbeatIntervalMs: 7_000)
        let joined = h.heartbeat("m1", epoch: 0, subscribe: ["orders"])
        #expect(joined.error == .none && joined.heartbeatIntervalMs == 7_000)
        #expect(h.member("m1")?.sessionDeadline == h.now + 50_000)
        // Its session ends 50 s after its last heartbeat, not at the broker's default.
        let start = h.now
        _ = h.tick(at: start + Int64(h.gc.config.consumerSessionTimeoutMs) + 1)
        #expect(h.member("m1") != nil)
        _ = h.tick(at: start + 50_000)
        #expect(h.member("m1") == nil)
        // Without configs of its own, a group runs under the broker's.
        h.overrides = nil
        let again = h.heartbeat("m2", epoch: 0, subscribe: ["orders"])
        #expect(again.heartbeatIntervalMs == h.gc.config.consumerHeartbeatIntervalMs)
    }
}
