@testable import BrookBroker
import BrookCluster
import BrookProtocol
import Testing

@Suite struct ClientQuotaTests {
    @Test func theFirstEntityInKafkasOrderDecidesAndTheThrottleIsKafkas() {
        let enforcer = ClientQuotaEnforcer()
        let quotas: [QuotaEntity: [String: Double]] = [
            QuotaEntity(clientID: .named("app")): ["producer_byte_rate": 1000],
            QuotaEntity(user: .named("alice"), clientID: .named("app")): ["producer_byte_rate": 100_000],
            QuotaEntity(user: .defaultEntity): ["consumer_byte_rate": 500],
        ]
        // alice/app: her own entity's 100 kB/s, over a window of at least 10 s: 1 MB passes.
        #expect(enforcer.record(.produce, amount: 1_000_000, principal: "User:alice", clientID: "app", nowMs: 0, quotas: quotas) == 0)
        // 1.1 MB in the window: 110 kB/s, 10% over: throttled 10% of the 10 s window.
        #expect(enforcer.record(.produce, amount: 100_000, principal: "User:alice", clientID: "app", nowMs: 0, quotas: quotas) == 1000)
        // bob/app falls to client-id=app's 1 kB/s.
        #expect(enforcer.record(.produce, amount: 20_000, principal: "User:bob", clientID: "app", nowMs: 0, quotas: quotas) == 10_000)
        // The default user's fetch quota applies to each user on its own.
        #expect(enforcer.record(.fetch, amount: 5000, principal: "User:carol", clientID: nil, nowMs: 0, quotas: quotas) == 0)
        #expect(enforcer.record(.fetch, amount: 5000, principal: "User:dave", clientID: nil, nowMs: 0, quotas: quotas) == 0)
        #expect(enforcer.record(.fetch, amount: 5000, principal: "User:carol", clientID: nil, nowMs: 0, quotas: quotas) > 0)
        // No quota for the key: never throttled.
        #expect(enforcer.record(.fetch, amount: 10_000_000, principal: "User:x", clientID: "app", nowMs: 0, quotas: [:]) == 0)
    }

    @Test func theWindowSlides() {
        let enforcer = ClientQuotaEnforcer()
        let quotas: [QuotaEntity: [String: Double]] = [QuotaEntity(clientID: .defaultEntity): ["producer_byte_rate": 1000]]
        #expect(enforcer.record(.produce, amount: 10_000, principal: "User:a", clientID: "c", nowMs: 0, quotas: quotas) == 0)
        #expect(enforcer.record(.produce, amount: 1000, principal: "User:a", clientID: "c", nowMs: 500, quotas: quotas) > 0)
        // 12 s later the early samples have left the window.
        #expect(enforcer.record(.produce, amount: 1000, principal: "User:a", clientID: "c", nowMs: 12_500, quotas: quotas) == 0)
    }

    @Test func entitiesAreParsedAsKafkaNamesThem() throws {
        #expect(try QuotaEntity.parse([("user", "alice"), ("client-id", nil)]).get() == QuotaEntity(user: .named("alice"), clientID: .defaultEntity))
        for bad: [(type: String, name: String?)] in [[], [("ip", "1.2.3.4")], [("user", "a"), ("user", "b")], [("user", "")]] {
            guard case .failure = QuotaEntity.parse(bad) else { Issue.record("\(bad) was taken"); continue }
        }
    }

    /// request_percentage: handling time recorded as percent-seconds; 2 s of handling in the
    /// 10 s minimum window is 20% of a thread, twice a 10% quota: throttled for the window.
    @Test func requestTimeIsAPercentageOfOneThread() {
        let enforcer = ClientQuotaEnforcer()
        let quotas: [QuotaEntity: [String: Double]] = [QuotaEntity(user: .named("busy")): ["request_percentage": 10]]
        #expect(enforcer.record(.request, amount: 50, principal: "User:busy", clientID: "c", nowMs: 0, quotas: quotas) == 0)
        #expect(enforcer.record(.request, amount: 150, principal: "User:busy", clientID: "c", nowMs: 0, quotas: quotas) == 10_000)
        // Byte quotas and other users are apart.
        #expect(enforcer.record(.request, amount: 500, principal: "User:idle", clientID: "c", nowMs: 0, quotas: quotas) == 0)
        #expect(enforcer.record(.produce, amount: 1e9, principal: "User:busy", clientID: "c", nowMs: 0, quotas: quotas) == 0)
    }

    /// The throttle time goes into responses that have the field, the larger of two kept.
    @Test func aRequestThrottleGoesIntoResponsesThatHaveTheField() {
        var metadata = MetadataResponse()
        metadata.throttleTimeMs = 5
        #expect(throttled(metadata, atLeast: 100).throttleTimeMs == 100)
        metadata.throttleTimeMs = 300
        #expect(throttled(metadata, atLeast: 100).throttleTimeMs == 300)
        #expect(throttled(ApiVersionsResponse(), atLeast: 7).throttleTimeMs == 7)
        let handshake = SaslHandshakeResponse(errorCode: 0, mechanisms: ["PLAIN"])
        #expect(throttled(handshake, atLeast: 7) == handshake)
        #expect(!(SaslHandshakeResponse() is any ThrottledResponse))
    }

    /// KIP-599: a request is taken while the rate is not past the quota (and may take it past),
    /// the next is refused with the time until it is back under, and taken once the window slid.
    @Test func controllerMutationsAreAdmittedWhileTheRateIsUnderTheQuota() {
        let enforcer = ClientQuotaEnforcer()
        let quotas: [QuotaEntity: [String: Double]] = [QuotaEntity(clientID: .named("admin")): ["controller_mutation_rate": 1]]
        #expect(enforcer.admit(mutations: 20, principal: "User:a", clientID: "admin", nowMs: 0, quotas: quotas) == nil)
        #expect(enforcer.admit(mutations: 1, principal: "User:a", clientID: "admin", nowMs: 0, quotas: quotas) == 10_000)
        #expect(enforcer.admit(mutations: 1, principal: "User:a", clientID: "other", nowMs: 0, quotas: quotas) == nil)
        #expect(enforcer.admit(mutations: 1, principal: "User:a", clientID: "admin", nowMs: 12_000, quotas: quotas) == nil)
    }
}
