import NIOCore
import Testing
@testable import BrookMQTT

/// Shared subscriptions, the snapshot a persistent session is kept as, and a connected client's
/// burst allowance.
@Suite struct SessionSharingTests {
    static func message(_ topic: String, qos: QoS = .exactlyOnce, retain: Bool = false) -> MQTTSession.Message {
        MQTTSession.Message(topic: topic, payload: ByteBuffer(string: "m"), qos: qos, retain: retain, publisher: nil,
                            properties: MQTTProperties())
    }

    @Test func aSharedSubscriptionIsNotAnOrdinaryOne() throws {
        var session = MQTTSession(clientID: "c", receiveMaximum: 10, queuedMessagesMax: 10, subscriptionsMax: 10)
        _ = session.subscribe("$share/g/a/+", options: SubscriptionOptions(qos: .atLeastOnce), identifier: 5)
        #expect(session.subscriptions["$share/g/a/+"]?.shareGroup == "g")
        #expect(session.subscriptions["$share/g/a/+"]?.filter == "a/+")
        // Only the router's choice delivers it: not the ordinary path.
        #expect(session.delivery(of: Self.message("a/b")) == nil)
        let shared = try #require(session.sharedDelivery(of: Self.message("a/b"), key: "$share/g/a/+"))
        #expect(shared.qos == .atLeastOnce && shared.properties.subscriptionIdentifiers == [5])
        #expect(session.sharedDelivery(of: Self.message("b/c"), key: "$share/g/a/+") == nil)
        #expect(session.sharedDelivery(of: Self.message("a/b"), key: "$share/h/a/+") == nil)
    }

    @Test func aSnapshotRestoresSubscriptionsAndReleasesAwaited() throws {
        var session = MQTTSession(clientID: "dev", receiveMaximum: 10, queuedMessagesMax: 10, subscriptionsMax: 10)
        _ = session.subscribe("a/#", options: SubscriptionOptions(qos: .exactlyOnce, noLocal: true, retainAsPublished: true,
                                                                  retainHandling: .doNotSend), identifier: 9)
        _ = session.subscribe("$share/g/b", options: SubscriptionOptions(qos: .atMostOnce), identifier: nil)
        _ = session.receivedExactlyOnce(42)
        let snapshot = session.snapshot(expirySeconds: 60, nowMs: 1234)
        #expect(snapshot.savedAtMs == 1234 && snapshot.expirySeconds == 60 && snapshot.awaitingRelease == [42])
        var restored = try #require(MQTTSession(restoring: snapshot, receiveMaximum: 5, queuedMessagesMax: 5, subscriptionsMax: 5))
        #expect(restored.subscriptions == session.subscriptions)
        let repeated = restored.receivedExactlyOnce(42)
        #expect(repeated == false, "42 still awaits its PUBREL")
        let released = restored.receivedPubrel(42)
        #expect(released)
    }

    @Test func aSnapshotThatDoesNotHoldTogetherIsRefused() {
        let bad = MQTTSession.Snapshot(clientID: "x", expirySeconds: 1,
                                       subscriptions: [.init(key: "a/#/b", qos: 1, noLocal: false, retainAsPublished: false,
                                                             retainHandling: 0, identifier: nil)],
                                       awaitingRelease: [], savedAtMs: 0)
        #expect(MQTTSession(restoring: bad, receiveMaximum: 1, queuedMessagesMax: 1, subscriptionsMax: 1) == nil)
        var qos3 = bad
        qos3.subscriptions = [.init(key: "a", qos: 3, noLocal: false, retainAsPublished: false, retainHandling: 0, identifier: nil)]
        #expect(MQTTSession(restoring: qos3, receiveMaximum: 1, queuedMessagesMax: 1, subscriptionsMax: 1) == nil)
    }

    @Test func aConnectedClientsAllowanceGoesPastTheQueueLimit() {
        var session = MQTTSession(clientID: "c", receiveMaximum: 1, queuedMessagesMax: 2, subscriptionsMax: 1)
        let publish = MQTTPublish(topic: "t", qos: .atLeastOnce, payload: ByteBuffer())
        let first = session.enqueue(publish), second = session.enqueue(publish)
        let third = session.enqueue(publish)
        #expect(first && second && !third && session.dropped == 1)
        let burst = session.enqueue(publish, allowance: 1), past = session.enqueue(publish, allowance: 1)
        #expect(burst && !past)
        #expect(session.queuedCount == 3 && session.dropped == 2)
    }
}
