import NIOCore
import Testing
@testable import BrookMQTT

/// The byte budgets of a session's queue and of the retained messages, and message expiry of
/// what waits in them.
@Suite struct BudgetTests {
    static func publish(_ topic: String, bytes: Int, qos: QoS = .atLeastOnce, expiry: UInt32? = nil) -> MQTTPublish {
        var publish = MQTTPublish(topic: topic, qos: qos, payload: ByteBuffer(repeating: 7, count: bytes))
        publish.properties.messageExpiryInterval = expiry
        return publish
    }

    @Test func theQueueDropsWhatPassesItsByteBudgetButAlwaysTakesOne() {
        var session = MQTTSession(clientID: "c", receiveMaximum: 100, queuedMessagesMax: 100, subscriptionsMax: 10, queuedBytesMax: 1000)
        // Alone, a message bigger than the budget is taken.
        let r1 = session.enqueue(Self.publish("t", bytes: 1500))
        #expect(r1)
        let r2 = session.enqueue(Self.publish("t", bytes: 10))
        #expect(!r2)
        let r3 = session.nextToSend()
        #expect(r3 != nil)
        #expect(session.queuedBytes == 0)
        for _ in 0..<9 {
            let taken = session.enqueue(Self.publish("t", bytes: 99))
            #expect(taken)
        }
        #expect(session.queuedBytes == 900)
        let r4 = session.enqueue(Self.publish("t", bytes: 100))
        #expect(!r4)
        let r5 = session.enqueue(Self.publish("t", bytes: 99))
        #expect(r5)
        #expect(session.dropped == 2)
        while session.nextToSend() != nil {}
        #expect(session.queuedBytes == 0 && session.queuedCount == 0)
    }

    @Test func queuedMessagesPastTheirExpiryAreNotSentAndTheRestCountDown() {
        var session = MQTTSession(clientID: "c", receiveMaximum: 10, queuedMessagesMax: 100, subscriptionsMax: 10)
        let r6 = session.enqueue(Self.publish("short", bytes: 1, expiry: 5), nowMs: 1_000)
        #expect(r6)
        let r7 = session.enqueue(Self.publish("long", bytes: 1, expiry: 60), nowMs: 1_000)
        #expect(r7)
        let r8 = session.enqueue(Self.publish("none", bytes: 1), nowMs: 1_000)
        #expect(r8)
        // Ten seconds later: the first expired, the second has 50 s left, the third none set.
        let first = session.nextToSend(nowMs: 11_000)
        #expect(first?.topic == "long" && first?.properties.messageExpiryInterval == 50)
        let second = session.nextToSend(nowMs: 11_000)
        #expect(second?.topic == "none" && second?.properties.messageExpiryInterval == nil)
        #expect(session.expired == 1 && session.queuedBytes == 0)
    }

    @Test func anExpiredMessageDoesNotLetAnotherPastAFullWindow() {
        var session = MQTTSession(clientID: "c", receiveMaximum: 1, queuedMessagesMax: 100, subscriptionsMax: 10)
        let r9 = session.enqueue(Self.publish("sent", bytes: 1), nowMs: 0)
        #expect(r9)
        let r10 = session.nextToSend(nowMs: 0)
        #expect(r10?.topic == "sent")
        let r11 = session.enqueue(Self.publish("gone", bytes: 1, qos: .atMostOnce, expiry: 1), nowMs: 0)
        #expect(r11)
        let r12 = session.enqueue(Self.publish("waits", bytes: 1), nowMs: 0)
        #expect(r12)
        // The window (1) is full: the expired QoS 0 message goes, the QoS 1 one waits.
        let r13 = session.nextToSend(nowMs: 5_000)
        #expect(r13 == nil)
        #expect(session.queuedCount == 1 && session.expired == 1)
    }

    static func message(_ topic: String, bytes: Int, expiry: UInt32? = nil) -> MQTTSession.Message {
        var properties = MQTTProperties()
        properties.messageExpiryInterval = expiry
        return MQTTSession.Message(topic: topic, payload: ByteBuffer(repeating: 1, count: bytes), qos: .atLeastOnce, retain: true,
                                   publisher: nil, properties: properties)
    }

    @Test func retainedMessagesKeepToTheirCountAndByteBudgets() {
        var store = MQTTRetainedStore(messagesMax: 2, bytesMax: 100)
        let r14 = store.set(Self.message("a", bytes: 39), nowMs: 0)  // 40 bytes with its topic
        #expect(r14)
        let r15 = store.set(Self.message("b", bytes: 39), nowMs: 0)
        #expect(r15)
        let r16 = store.set(Self.message("c", bytes: 1), nowMs: 0)   // a third topic
        #expect(!r16)
        let r17 = store.set(Self.message("a", bytes: 79), nowMs: 0)  // 120 bytes
        #expect(!r17)
        let r18 = store.set(Self.message("a", bytes: 59), nowMs: 0)   // replaces: 60 + 40
        #expect(r18)
        #expect(store.bytes == 100 && store.count == 2)
        // An empty payload removes a topic's retained message.
        let r19 = store.set(Self.message("a", bytes: 0), nowMs: 0)
        #expect(r19)
        #expect(store.count == 1 && store.bytes == 40)
        let r20 = store.set(Self.message("c", bytes: 1), nowMs: 0)
        #expect(r20)
        let r21 = store.matching("#", limit: 10, nowMs: 0)
        #expect(r21.map(\.topic) == ["b", "c"])
        let r22 = store.matching("#", limit: 1, nowMs: 0)
        #expect(r22.map(\.topic) == ["b"])
    }

    @Test func retainedMessagesExpire() {
        var store = MQTTRetainedStore(messagesMax: 10, bytesMax: 1000)
        let r23 = store.set(Self.message("x/short", bytes: 1, expiry: 2), nowMs: 0)
        #expect(r23)
        let r24 = store.set(Self.message("x/long", bytes: 1, expiry: 100), nowMs: 0)
        #expect(r24)
        let found = store.matching("x/+", limit: 10, nowMs: 30_000)
        #expect(found.map(\.topic) == ["x/long"])
        #expect(found.first?.properties.messageExpiryInterval == 70)
        #expect(store.count == 1)
    }
}
