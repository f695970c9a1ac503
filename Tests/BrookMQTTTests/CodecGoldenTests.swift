import NIOCore
import Testing
@testable import BrookMQTT

/// Packets written out by hand from the MQTT 3.1.1 (OASIS 2014) and 5.0 (OASIS 2019)
/// specifications, checked both ways: the bytes decode to the packet, the packet encodes to them.
@Suite struct CodecGoldenTests {
    // MARK: CONNECT (3.1.1 section 3.1, 5.0 section 3.1)

    @Test func connect311WithWillUserNameAndPassword() throws {
        // Flags 0xEE: user name, password, will retain, will QoS 1, will, clean session.
        let golden: [UInt8] = [0x10, 0x1F, 0x00, 0x04] + ascii("MQTT") + [0x04, 0xEE, 0x00, 0x3C,
                               0x00, 0x02] + ascii("c1") + [0x00, 0x03] + ascii("w/t") + [0x00, 0x03] + ascii("bye")
            + [0x00, 0x01] + ascii("u") + [0x00, 0x02] + ascii("pw")
        let will = MQTTWill(topic: "w/t", payload: ByteBuffer(string: "bye"), qos: .atLeastOnce, retain: true)
        let connect = MQTTConnect(version: .v3_1_1, cleanStart: true, keepAliveSeconds: 60, clientID: "c1", will: will,
                                  username: "u", password: ascii("pw"))
        try expectGolden(golden, .connect(connect), .v3_1_1)
    }

    @Test func connect31IsMQIsdpLevel3() throws {
        let golden: [UInt8] = [0x10, 0x0F, 0x00, 0x06] + ascii("MQIsdp") + [0x03, 0x02, 0x00, 0x3C, 0x00, 0x01] + ascii("c")
        try expectGolden(golden, .connect(MQTTConnect(version: .v3_1, clientID: "c")), .v3_1)
    }

    @Test func connect5WithSessionExpiryReceiveMaximumAndUserProperty() throws {
        let golden: [UInt8] = [0x10, 0x1D, 0x00, 0x04] + ascii("MQTT") + [0x05, 0x02, 0x00, 0x1E,
                               0x0F,  // properties: 15 bytes
                               0x11, 0x00, 0x00, 0x0E, 0x10,  // session expiry interval 3600
                               0x21, 0x00, 0x14,  // receive maximum 20
                               0x26, 0x00, 0x01] + ascii("k") + [0x00, 0x01] + ascii("v")
            + [0x00, 0x01] + ascii("c")
        let connect = MQTTConnect(version: .v5, keepAliveSeconds: 30, properties: properties {
            $0.sessionExpiryInterval = 3600
            $0.receiveMaximum = 20
            $0.userProperties = [("k", "v")]
        }, clientID: "c")
        try expectGolden(golden, .connect(connect), .v5)
    }

    // MARK: CONNACK

    @Test func connack311CarriesReturnCodes() throws {
        try expectGolden([0x20, 0x02, 0x01, 0x00], .connack(MQTTConnAck(sessionPresent: true)), .v3_1_1)
        try expectGolden([0x20, 0x02, 0x00, 0x04], .connack(MQTTConnAck(reason: .badUserNameOrPassword)), .v3_1_1)
        try expectGolden([0x20, 0x02, 0x00, 0x01], .connack(MQTTConnAck(reason: .unsupportedProtocolVersion)), .v3_1_1)
        try expectGolden([0x20, 0x02, 0x00, 0x02], .connack(MQTTConnAck(reason: .clientIdentifierNotValid)), .v3_1_1)
        try expectGolden([0x20, 0x02, 0x00, 0x05], .connack(MQTTConnAck(reason: .notAuthorized)), .v3_1_1)
        try expectGolden([0x20, 0x02, 0x00, 0x03], .connack(MQTTConnAck(reason: .serverUnavailable)), .v3_1_1)
    }

    @Test func connack311WritesOther5ReasonsAsServerUnavailable() {
        #expect(encoded(.connack(MQTTConnAck(reason: .serverBusy)), .v3_1_1) == [0x20, 0x02, 0x00, 0x03])
        #expect(encoded(.connack(MQTTConnAck(reason: .badAuthenticationMethod)), .v3_1_1) == [0x20, 0x02, 0x00, 0x03])
    }

    @Test func connack5CarriesReasonAndProperties() throws {
        try expectGolden([0x20, 0x03, 0x00, 0x86, 0x00], .connack(MQTTConnAck(reason: .badUserNameOrPassword)), .v5)
        let golden: [UInt8] = [0x20, 0x08, 0x01, 0x00, 0x05, 0x22, 0x00, 0x0A, 0x24, 0x01]
        let ack = MQTTConnAck(sessionPresent: true, properties: properties {
            $0.topicAliasMaximum = 10
            $0.maximumQoS = 1
        })
        try expectGolden(golden, .connack(ack), .v5)
    }

    // MARK: PUBLISH

    @Test func publishQoS0WithAndWithoutRetain() throws {
        let body: [UInt8] = [0x00, 0x03] + ascii("a/b") + ascii("hi")
        try expectGolden([0x30, 0x07] + body, .publish(MQTTPublish(topic: "a/b", payload: ByteBuffer(string: "hi"))), .v3_1_1)
        try expectGolden([0x31, 0x07] + body, .publish(MQTTPublish(topic: "a/b", retain: true, payload: ByteBuffer(string: "hi"))),
                         .v3_1_1)
    }

    @Test func publishQoS1Duplicate() throws {
        let golden: [UInt8] = [0x3A, 0x09, 0x00, 0x03] + ascii("a/b") + [0x00, 0x0A] + ascii("hi")
        let publish = MQTTPublish(topic: "a/b", qos: .atLeastOnce, duplicate: true, packetID: 10, payload: ByteBuffer(string: "hi"))
        try expectGolden(golden, .publish(publish), .v3_1_1)
    }

    @Test func publishQoS2Retained() throws {
        let golden: [UInt8] = [0x35, 0x09, 0x00, 0x03] + ascii("a/b") + [0x00, 0x0B] + ascii("hi")
        let publish = MQTTPublish(topic: "a/b", qos: .exactlyOnce, retain: true, packetID: 11, payload: ByteBuffer(string: "hi"))
        try expectGolden(golden, .publish(publish), .v3_1_1)
    }

    @Test func publish5WithMessageExpiry() throws {
        let golden: [UInt8] = [0x32, 0x0F, 0x00, 0x03] + ascii("a/b") + [0x00, 0x01, 0x05, 0x02, 0x00, 0x00, 0x00, 0x3C] + ascii("hi")
        let publish = MQTTPublish(topic: "a/b", qos: .atLeastOnce, packetID: 1, properties: properties { $0.messageExpiryInterval = 60 },
                                  payload: ByteBuffer(string: "hi"))
        try expectGolden(golden, .publish(publish), .v5)
    }

    // MARK: PUBACK, PUBREC, PUBREL, PUBCOMP

    @Test func acks311AreAPacketIdentifier() throws {
        try expectGolden([0x40, 0x02, 0x00, 0x07], .puback(MQTTAck(packetID: 7)), .v3_1_1)
        try expectGolden([0x50, 0x02, 0x00, 0x07], .pubrec(MQTTAck(packetID: 7)), .v3_1_1)
        try expectGolden([0x62, 0x02, 0x00, 0x07], .pubrel(MQTTAck(packetID: 7)), .v3_1_1)
        try expectGolden([0x70, 0x02, 0x00, 0x07], .pubcomp(MQTTAck(packetID: 7)), .v3_1_1)
    }

    @Test func puback5LeavesOutASuccessAndWritesAReason() throws {
        try expectGolden([0x40, 0x02, 0x00, 0x07], .puback(MQTTAck(packetID: 7)), .v5)
        try expectGolden([0x40, 0x03, 0x00, 0x07, 0x10], .puback(MQTTAck(packetID: 7, reason: .noMatchingSubscribers)), .v5)
        let golden: [UInt8] = [0x40, 0x08, 0x00, 0x07, 0x80, 0x04, 0x1F, 0x00, 0x01] + ascii("x")
        try expectGolden(golden, .puback(MQTTAck(packetID: 7, reason: .unspecifiedError, properties: properties { $0.reasonString = "x" })),
                         .v5)
    }

    @Test func puback5WithReasonSuccessAndNoPropertiesDecodes() throws {
        #expect(try decode([0x40, 0x03, 0x00, 0x07, 0x00], version: .v5) == .puback(MQTTAck(packetID: 7)))
        #expect(try decode([0x40, 0x04, 0x00, 0x07, 0x00, 0x00], version: .v5) == .puback(MQTTAck(packetID: 7)))
    }

    // MARK: SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK

    @Test func subscribe5WithOptionsByteAndIdentifier() throws {
        // 0x2D: retain handling 2, retain as published, no local, QoS 1; 0x10: retain handling 1, QoS 0.
        let golden: [UInt8] = [0x82, 0x0F, 0x00, 0x0A, 0x02, 0x0B, 0x05, 0x00, 0x03] + ascii("a/#") + [0x2D, 0x00, 0x01] + ascii("+")
            + [0x10]
        let subscribe = MQTTSubscribe(packetID: 10, properties: properties { $0.subscriptionIdentifiers = [5] }, filters: [
            ("a/#", SubscriptionOptions(qos: .atLeastOnce, noLocal: true, retainAsPublished: true, retainHandling: .doNotSend)),
            ("+", SubscriptionOptions(qos: .atMostOnce, retainHandling: .sendAtNewSubscribe)),
        ])
        try expectGolden(golden, .subscribe(subscribe), .v5)
    }

    @Test func subscribe311HasOnlyTheQoS() throws {
        let golden: [UInt8] = [0x82, 0x08, 0x00, 0x0A, 0x00, 0x03] + ascii("a/#") + [0x01]
        try expectGolden(golden, .subscribe(MQTTSubscribe(packetID: 10, filters: [("a/#", SubscriptionOptions(qos: .atLeastOnce))])),
                         .v3_1_1)
    }

    @Test func suback311And5() throws {
        try expectGolden([0x90, 0x05, 0x00, 0x0A, 0x00, 0x01, 0x80],
                         .suback(MQTTSubAck(packetID: 10, reasons: [.granted(.atMostOnce), .grantedQoS1, .unspecifiedError])), .v3_1_1)
        try expectGolden([0x90, 0x06, 0x00, 0x0A, 0x00, 0x01, 0x02, 0x8F],
                         .suback(MQTTSubAck(packetID: 10, reasons: [.grantedQoS1, .grantedQoS2, .topicFilterInvalid])), .v5)
    }

    /// 3.1.1's SUBACK has 0, 1, 2 and 0x80 (failure): any other reason is a failure.
    @Test func suback311WritesEveryOtherReasonAs0x80() throws {
        let ack = MQTTPacket.suback(MQTTSubAck(packetID: 10, reasons: [.notAuthorized, .grantedQoS2, .noSubscriptionExisted]))
        #expect(encoded(ack, .v3_1_1) == [0x90, 0x05, 0x00, 0x0A, 0x80, 0x02, 0x80])
        #expect(try roundTrip(ack, .v3_1_1) == .suback(MQTTSubAck(packetID: 10, reasons: [.unspecifiedError, .grantedQoS2, .unspecifiedError])))
    }

    @Test func unsubscribe311() throws {
        try expectGolden([0xA2, 0x07, 0x00, 0x0B, 0x00, 0x03] + ascii("a/b"), .unsubscribe(MQTTUnsubscribe(packetID: 11, filters: ["a/b"])),
                         .v3_1_1)
    }

    @Test func unsuback311HasNoPayload() throws {
        try expectGolden([0xB0, 0x02, 0x00, 0x0B], .unsuback(MQTTSubAck(packetID: 11, reasons: [])), .v3_1_1)
        #expect(encoded(.unsuback(MQTTSubAck(packetID: 11, reasons: [.success, .noSubscriptionExisted])), .v3_1_1)
                == [0xB0, 0x02, 0x00, 0x0B])
    }

    @Test func unsuback5HasAReasonPerFilter() throws {
        try expectGolden([0xB0, 0x05, 0x00, 0x0B, 0x00, 0x00, 0x11],
                         .unsuback(MQTTSubAck(packetID: 11, reasons: [.success, .noSubscriptionExisted])), .v5)
    }

    // MARK: PINGREQ, PINGRESP, DISCONNECT, AUTH

    @Test func pings() throws {
        try expectGolden([0xC0, 0x00], .pingreq, .v3_1_1)
        try expectGolden([0xD0, 0x00], .pingresp, .v3_1_1)
        try expectGolden([0xC0, 0x00], .pingreq, .v5)
    }

    @Test func disconnect311IsEmpty() throws {
        try expectGolden([0xE0, 0x00], .disconnect(MQTTReasoned()), .v3_1_1)
        #expect(encoded(.disconnect(MQTTReasoned(reason: .disconnectWithWill)), .v3_1_1) == [0xE0, 0x00])
    }

    @Test func disconnect5WithReason() throws {
        try expectGolden([0xE0, 0x00], .disconnect(MQTTReasoned()), .v5)
        try expectGolden([0xE0, 0x01, 0x04], .disconnect(MQTTReasoned(reason: .disconnectWithWill)), .v5)
        try expectGolden([0xE0, 0x06, 0x8E, 0x04, 0x1F, 0x00, 0x01] + ascii("x"),
                         .disconnect(MQTTReasoned(reason: .sessionTakenOver, properties: properties { $0.reasonString = "x" })), .v5)
    }

    @Test func auth5WithMethod() throws {
        let golden: [UInt8] = [0xF0, 0x0A, 0x18, 0x08, 0x15, 0x00, 0x05] + ascii("SCRAM")
        try expectGolden(golden, .auth(MQTTReasoned(reason: .continueAuthentication, properties: properties { $0.authenticationMethod = "SCRAM" })),
                         .v5)
    }
}
