import NIOCore
import Testing
@testable import BrookMQTT

/// A session's subscriptions and what reaches the client (MQTT 5.0 sections 3.8.3.1, 4.3, 4.8).
@Suite struct SessionSubscriptionTests {
    static func message(_ topic: String, qos: QoS = .exactlyOnce, retain: Bool = false, publisher: String? = nil,
                        properties: MQTTProperties = MQTTProperties()) -> MQTTSession.Message {
        MQTTSession.Message(topic: topic, payload: ByteBuffer(string: "m"), qos: qos, retain: retain, publisher: publisher,
                            properties: properties)
    }

    @Test func subscribeReplacesAndIsBounded() {
        var session = MQTTSession(clientID: "c", receiveMaximum: 10, queuedMessagesMax: 10, subscriptionsMax: 2)
        let added = session.subscribe("a/#", options: SubscriptionOptions(qos: .atMostOnce), identifier: nil)
        let replaced = session.subscribe("a/#", options: SubscriptionOptions(qos: .exactlyOnce), identifier: 4)
        #expect(added == false && replaced == true)
        #expect(session.subscriptions["a/#"]?.options.qos == .exactlyOnce && session.subscriptions["a/#"]?.identifier == 4)
        let second = session.subscribe("b", options: SubscriptionOptions(qos: .atMostOnce), identifier: nil)
        let third = session.subscribe("c", options: SubscriptionOptions(qos: .atMostOnce), identifier: nil)
        let replacedAtTheLimit = session.subscribe("b", options: SubscriptionOptions(qos: .atLeastOnce), identifier: nil)
        #expect(second == false && third == nil && replacedAtTheLimit == true)
        let removed = session.unsubscribe("b"), removedAgain = session.unsubscribe("b")
        #expect(removed && !removedAgain)
        #expect(session.subscriptions.count == 1)
    }

    @Test func deliveryTakesTheHighestQoSCappedByTheMessagesAndEveryIdentifier() throws {
        var session = MQTTSession(clientID: "c", receiveMaximum: 10, queuedMessagesMax: 10, subscriptionsMax: 10)
        _ = session.subscribe("a/+", options: SubscriptionOptions(qos: .atLeastOnce), identifier: 7)
        _ = session.subscribe("a/#", options: SubscriptionOptions(qos: .exactlyOnce), identifier: 3)
        _ = session.subscribe("a/b", options: SubscriptionOptions(qos: .atMostOnce), identifier: nil)
        let delivered = try #require(session.delivery(of: Self.message("a/b")))
        #expect(delivered.qos == .exactlyOnce && delivered.topic == "a/b" && delivered.packetID == nil)
        #expect(delivered.properties.subscriptionIdentifiers == [3, 7])
        #expect(session.delivery(of: Self.message("a/b", qos: .atLeastOnce))?.qos == .atLeastOnce)
        #expect(session.delivery(of: Self.message("a/c/d"))?.properties.subscriptionIdentifiers == [3])
        #expect(session.delivery(of: Self.message("b")) == nil)
    }

    @Test func deliveryKeepsTheMessagesPropertiesButItsOwnIdentifiers() throws {
        var session = MQTTSession(clientID: "c", receiveMaximum: 10, queuedMessagesMax: 10, subscriptionsMax: 10)
        _ = session.subscribe("t", options: SubscriptionOptions(qos: .atLeastOnce), identifier: nil)
        let sent = properties {
            $0.contentType = "text/plain"
            $0.subscriptionIdentifiers = [99]
        }
        let delivered = try #require(session.delivery(of: Self.message("t", properties: sent)))
        #expect(delivered.properties.contentType == "text/plain")
        #expect(delivered.properties.subscriptionIdentifiers == [])
        #expect(delivered.payload == ByteBuffer(string: "m"))
    }

    @Test func noLocalSkipsTheClientsOwnPublishes() {
        var session = MQTTSession(clientID: "me", receiveMaximum: 10, queuedMessagesMax: 10, subscriptionsMax: 10)
        _ = session.subscribe("a/#", options: SubscriptionOptions(qos: .atLeastOnce, noLocal: true), identifier: 1)
        #expect(session.delivery(of: Self.message("a/b", publisher: "me")) == nil)
        #expect(session.delivery(of: Self.message("a/b", publisher: "you"))?.qos == .atLeastOnce)
        #expect(session.delivery(of: Self.message("a/b", publisher: nil))?.qos == .atLeastOnce)
        // Another subscription without No Local still takes it, with only its own identifier.
        _ = session.subscribe("a/+", options: SubscriptionOptions(qos: .atMostOnce), identifier: 2)
        #expect(session.delivery(of: Self.message("a/b", publisher: "me"))?.properties.subscriptionIdentifiers == [2])
        #expect(session.delivery(of: Self.message("a/b", publisher: "me"))?.qos == .atMostOnce)
    }

    @Test func retainIsKeptOnlyWithRetainAsPublished() {
        var session = MQTTSession(clientID: "c", receiveMaximum: 10, queuedMessagesMax: 10, subscriptionsMax: 10)
        _ = session.subscribe("a", options: SubscriptionOptions(qos: .atMostOnce), identifier: nil)
        #expect(session.delivery(of: Self.message("a", retain: true))?.retain == false)
        _ = session.subscribe("a", options: SubscriptionOptions(qos: .atMostOnce, retainAsPublished: true), identifier: nil)
        #expect(session.delivery(of: Self.message("a", retain: true))?.retain == true)
        #expect(session.delivery(of: Self.message("a", retain: false))?.retain == false)
    }
}

/// Messages to the client: the queue, the in-flight window (receive maximum), packet
/// identifiers, the QoS 1 and 2 flows, and what a reconnection resends.
@Suite struct SessionOutboundTests {
    static func publish(_ qos: QoS, _ topic: String = "t") -> MQTTPublish {
        MQTTPublish(topic: topic, qos: qos, payload: ByteBuffer(string: topic))
    }

    static func session(receiveMaximum: Int = 10, queuedMessagesMax: Int = 100) -> MQTTSession {
        MQTTSession(clientID: "c", receiveMaximum: receiveMaximum, queuedMessagesMax: queuedMessagesMax, subscriptionsMax: 10)
    }

    /// Queues one message per QoS given and takes what the session sends at once.
    static func send(_ session: inout MQTTSession, _ qoses: [QoS]) -> [MQTTPublish] {
        for (index, qos) in qoses.enumerated() { precondition(session.enqueue(publish(qos, "\(index + 1)"))) }
        var sent: [MQTTPublish] = []
        while let next = session.nextToSend() { sent.append(next) }
        return sent
    }

    @Test func theWindowHoldsAThirdMessageUntilAPuback() {
        var session = Self.session(receiveMaximum: 2)
        let sent = Self.send(&session, [.atLeastOnce, .atLeastOnce, .atLeastOnce])
        #expect(sent.map(\.packetID) == [1, 2])
        #expect(session.inflightCount == 2 && session.queuedCount == 1)
        let acknowledged = session.receivedPuback(1), again = session.receivedPuback(1)
        #expect(acknowledged && !again, "a second PUBACK finds nothing in flight")
        let third = session.nextToSend()
        #expect(third?.topic == "3" && third?.packetID == 3)
    }

    @Test func qos0IsSentWhateverTheWindow() {
        var session = Self.session(receiveMaximum: 1)
        let sent = Self.send(&session, [.atLeastOnce, .atMostOnce])
        #expect(sent.map(\.topic) == ["1", "2"])
        #expect(sent.map(\.packetID) == [1, nil])
        #expect(session.inflightCount == 1)
    }

    @Test func qos1WaitsBehindAFullWindowAndSoDoesWhatFollowsIt() {
        var session = Self.session(receiveMaximum: 1)
        let sent = Self.send(&session, [.atLeastOnce, .atLeastOnce, .atMostOnce])
        #expect(sent.map(\.topic) == ["1"])
        #expect(session.queuedCount == 2)
    }

    @Test func packetIdentifiersWrapPastZeroAndSkipThoseInUse() {
        var session = Self.session()
        session.nextPacketID = 65_534
        let wrapped = Self.send(&session, [.atLeastOnce, .atLeastOnce, .atLeastOnce])
        #expect(wrapped.map(\.packetID) == [65_534, 65_535, 1])
        _ = session.receivedPuback(65_535)
        session.nextPacketID = 65_534  // in use: skipped
        let reused = Self.send(&session, [.atLeastOnce])
        #expect(reused.map(\.packetID) == [65_535])
        let next = Self.send(&session, [.exactlyOnce])
        #expect(next.map(\.packetID) == [2], "1 is still in use")
    }

    @Test func qos2GoesPubrecPubrelPubcomp() {
        var session = Self.session()
        let sent = Self.send(&session, [.exactlyOnce])
        #expect(sent.map(\.packetID) == [1])
        let puback = session.receivedPuback(1), earlyPubcomp = session.receivedPubcomp(1)
        #expect(!puback && !earlyPubcomp, "QoS 2 ends with PUBCOMP, after PUBREC")
        let pubrel = session.receivedPubrec(1, reason: .success), repeated = session.receivedPubrec(1, reason: .success)
        #expect(pubrel == .pubrel(MQTTAck(packetID: 1)) && repeated == pubrel)
        #expect(session.inflightCount == 1)
        let completed = session.receivedPubcomp(1), again = session.receivedPubcomp(1)
        #expect(completed && !again)
        #expect(session.inflightCount == 0)
    }

    @Test func aPubrecWithAnErrorEndsTheExchangeWithoutPubrel() {
        var session = Self.session()
        _ = Self.send(&session, [.exactlyOnce])
        let answer = session.receivedPubrec(1, reason: .quotaExceeded)
        #expect(answer == nil)
        #expect(session.inflightCount == 0)
    }

    @Test func aPubrecForNoQoS2MessageIsAnsweredPacketIdentifierNotFound() {
        var session = Self.session()
        let unknown = session.receivedPubrec(9, reason: .success)
        #expect(unknown == .pubrel(MQTTAck(packetID: 9, reason: .packetIdentifierNotFound)))
        _ = Self.send(&session, [.atLeastOnce])
        let qos1 = session.receivedPubrec(1, reason: .success)
        #expect(qos1 == .pubrel(MQTTAck(packetID: 1, reason: .packetIdentifierNotFound)))
        let puback = session.receivedPuback(1)
        #expect(puback, "the QoS 1 message still awaits its PUBACK")
    }

    @Test func resendGivesDuplicatesAndPubrelsInTheOrderFirstSent() {
        var session = Self.session()
        _ = Self.send(&session, [.atLeastOnce, .exactlyOnce, .exactlyOnce, .atLeastOnce])
        _ = session.receivedPubrec(2, reason: .success)
        _ = session.receivedPuback(4)
        var first = Self.publish(.atLeastOnce, "1"), third = Self.publish(.exactlyOnce, "3")
        (first.packetID, first.duplicate) = (1, true)
        (third.packetID, third.duplicate) = (3, true)
        #expect(session.resend() == [.publish(first), .pubrel(MQTTAck(packetID: 2)), .publish(third)])
    }

    @Test func reattachingDropsQueuedQoS0AndTakesTheNewWindow() {
        var session = Self.session(receiveMaximum: 1)
        for (index, qos) in [QoS.atLeastOnce, .atMostOnce, .atLeastOnce, .atMostOnce, .exactlyOnce].enumerated() {
            _ = session.enqueue(Self.publish(qos, "\(index + 1)"))
        }
        _ = session.nextToSend()  // "1" in flight, the rest queued
        session.reattached(receiveMaximum: 5)
        #expect(session.receiveMaximum == 5)
        #expect(session.queuedCount == 2)
        var sent: [String] = []
        while let next = session.nextToSend() { sent.append(next.topic) }
        #expect(sent == ["3", "5"])
        #expect(session.resend().count == 3, "the one in flight is resent")
    }

    @Test func aFullQueueDropsAndCounts() {
        var session = Self.session(queuedMessagesMax: 2)
        let taken = [QoS.atMostOnce, .atLeastOnce, .exactlyOnce, .atMostOnce].map { session.enqueue(Self.publish($0)) }
        #expect(taken == [true, true, false, false])
        #expect(session.dropped == 2 && session.queuedCount == 2)
        _ = session.nextToSend()
        let afterOneLeft = session.enqueue(Self.publish(.atMostOnce))
        #expect(afterOneLeft && session.dropped == 2)
    }
}

/// QoS 2 from the client: each packet id written once until its PUBREL (MQTT 5.0 section 4.3.3).
@Suite struct SessionInboundTests {
    @Test func aQoS2PublishIsNewOnceUntilItsPubrel() {
        var session = MQTTSession(clientID: "c", receiveMaximum: 10, queuedMessagesMax: 10, subscriptionsMax: 10)
        let new = session.receivedExactlyOnce(5), resent = session.receivedExactlyOnce(5)
        #expect(new && !resent, "a resent PUBLISH is not written twice")
        #expect(session.awaitingRelease == [5])
        let released = session.receivedPubrel(5), releasedAgain = session.receivedPubrel(5)
        #expect(released && !releasedAgain, "a second PUBREL: packet identifier not found")
        let reused = session.receivedExactlyOnce(5)
        #expect(reused, "the id is free again")
    }

    @Test func forgettingAFailedWriteMakesTheRetryNew() {
        var session = MQTTSession(clientID: "c", receiveMaximum: 10, queuedMessagesMax: 10, subscriptionsMax: 10)
        _ = session.receivedExactlyOnce(6)
        session.forgetExactlyOnce(6)
        #expect(session.awaitingRelease.isEmpty)
        let retry = session.receivedExactlyOnce(6)
        #expect(retry)
    }
}
