import NIOCore
import Testing
@testable import BrookMQTT

/// Every packet type encoded and decoded again, at 3.1, 3.1.1 and 5.0 (with every property the
/// packet may carry).
@Suite struct CodecRoundTripTests {
    static let payload = ByteBuffer(bytes: [0x00, 0xFF, 0x7F, 0x80])

    /// What 3.1.1 can say: no properties, CONNACK's six return codes, SUBACK's four.
    static let v311: [MQTTPacket] = [
        .connect(MQTTConnect(version: .v3_1_1, cleanStart: false, keepAliveSeconds: 0, clientID: "")),
        .connect(MQTTConnect(version: .v3_1_1, clientID: "client-1",
                             will: MQTTWill(topic: "last/will", payload: payload, qos: .exactlyOnce, retain: false),
                             username: "user", password: [])),
        .connack(MQTTConnAck(sessionPresent: true)),
        .connack(MQTTConnAck(reason: .notAuthorized)),
        .publish(MQTTPublish(topic: "a/b/c", payload: ByteBuffer())),
        .publish(MQTTPublish(topic: "a", qos: .exactlyOnce, retain: true, duplicate: true, packetID: 65_535, payload: payload)),
        .puback(MQTTAck(packetID: 1)), .pubrec(MQTTAck(packetID: 2)), .pubrel(MQTTAck(packetID: 3)), .pubcomp(MQTTAck(packetID: 4)),
        .subscribe(MQTTSubscribe(packetID: 5, filters: [("a/+", SubscriptionOptions(qos: .exactlyOnce)),
                                                         ("#", SubscriptionOptions(qos: .atMostOnce))])),
        .suback(MQTTSubAck(packetID: 5, reasons: [.grantedQoS2, .unspecifiedError])),
        .unsubscribe(MQTTUnsubscribe(packetID: 6, filters: ["a/+", "#"])),
        .unsuback(MQTTSubAck(packetID: 6, reasons: [])),
        .pingreq, .pingresp, .disconnect(MQTTReasoned()),
    ]

    static let v31: [MQTTPacket] = [
        .connect(MQTTConnect(version: .v3_1, clientID: "old", username: "u", password: ascii("p"))),
        .publish(MQTTPublish(topic: "t", qos: .atLeastOnce, packetID: 9, payload: payload)),
        .subscribe(MQTTSubscribe(packetID: 5, filters: [("t/#", SubscriptionOptions(qos: .atLeastOnce))])),
    ]

    static let user: [(name: String, value: String)] = [("k", "v"), ("k", "second"), ("ünïcödé", "")]

    static let v5: [MQTTPacket] = [
        .connect(MQTTConnect(version: .v5, cleanStart: false, keepAliveSeconds: 65_535, properties: properties {
            $0.sessionExpiryInterval = 0xFFFF_FFFF
            $0.authenticationMethod = "SCRAM-SHA-256"
            $0.authenticationData = [1, 2, 3]
            $0.requestProblemInformation = 0
            $0.requestResponseInformation = 1
            $0.receiveMaximum = 100
            $0.topicAliasMaximum = 10
            $0.maximumPacketSize = 1 << 20
            $0.userProperties = user
        }, clientID: "client-5", will: MQTTWill(topic: "will", payload: payload, qos: .atLeastOnce, retain: true, properties: properties {
            $0.payloadFormatIndicator = 1
            $0.messageExpiryInterval = 10
            $0.contentType = "text/plain"
            $0.responseTopic = "reply/here"
            $0.correlationData = [9, 9]
            $0.willDelayInterval = 5
            $0.userProperties = user
        }), username: nil, password: ascii("password without user name"))),
        .connack(MQTTConnAck(sessionPresent: true, reason: .success, properties: properties {
            $0.sessionExpiryInterval = 60
            $0.assignedClientIdentifier = "auto-1"
            $0.serverKeepAlive = 30
            $0.authenticationMethod = "SCRAM-SHA-256"
            $0.authenticationData = [4]
            $0.responseInformation = "info"
            $0.serverReference = "other:1883"
            $0.reasonString = "welcome"
            $0.receiveMaximum = 65_535
            $0.topicAliasMaximum = 0
            $0.maximumQoS = 1
            $0.retainAvailable = 0
            $0.maximumPacketSize = 268_435_460
            $0.wildcardSubscriptionAvailable = 1
            $0.subscriptionIdentifierAvailable = 1
            $0.sharedSubscriptionAvailable = 0
            $0.userProperties = user
        })),
        .connack(MQTTConnAck(reason: .serverBusy)),
        .publish(MQTTPublish(topic: "a/b", qos: .exactlyOnce, retain: true, packetID: 300, properties: properties {
            $0.payloadFormatIndicator = 0
            $0.messageExpiryInterval = 3600
            $0.contentType = "application/json"
            $0.responseTopic = "replies/1"
            $0.correlationData = [0, 1, 2]
            $0.topicAlias = 7
            $0.userProperties = user
        }, payload: payload)),
        .publish(MQTTPublish(topic: "", properties: properties { $0.topicAlias = 7 }, payload: payload)),
        .puback(MQTTAck(packetID: 1, reason: .noMatchingSubscribers, properties: properties {
            $0.reasonString = "nobody"
            $0.userProperties = user
        })),
        .puback(MQTTAck(packetID: 1, reason: .success, properties: properties { $0.userProperties = user })),
        .pubrec(MQTTAck(packetID: 2, reason: .quotaExceeded)),
        .pubrel(MQTTAck(packetID: 3, reason: .packetIdentifierNotFound, properties: properties { $0.reasonString = "gone" })),
        .pubcomp(MQTTAck(packetID: 4)),
        .subscribe(MQTTSubscribe(packetID: 5, properties: properties {
            $0.subscriptionIdentifiers = [268_435_455]
            $0.userProperties = user
        }, filters: [("$share/group/a/+", SubscriptionOptions(qos: .exactlyOnce, retainHandling: .doNotSend)),
                     ("a/#", SubscriptionOptions(qos: .atMostOnce, noLocal: true, retainAsPublished: true))])),
        .suback(MQTTSubAck(packetID: 5, properties: properties { $0.reasonString = "partly" },
                           reasons: [.grantedQoS2, .sharedSubscriptionsNotSupported])),
        .unsubscribe(MQTTUnsubscribe(packetID: 6, properties: properties { $0.userProperties = user }, filters: ["a/+"])),
        .unsuback(MQTTSubAck(packetID: 6, properties: properties { $0.reasonString = "r" }, reasons: [.noSubscriptionExisted])),
        .pingreq, .pingresp,
        .disconnect(MQTTReasoned(reason: .disconnectWithWill, properties: properties {
            $0.sessionExpiryInterval = 0
            $0.serverReference = "elsewhere"
            $0.reasonString = "bye"
            $0.userProperties = user
        })),
        .auth(MQTTReasoned()),
        .auth(MQTTReasoned(reason: .reauthenticate, properties: properties {
            $0.authenticationMethod = "SCRAM-SHA-512"
            $0.authenticationData = Array(repeating: 0xAB, count: 300)
            $0.reasonString = "again"
        })),
    ]

    @Test(arguments: v311) func roundTrip311(_ packet: MQTTPacket) throws {
        #expect(try roundTrip(packet, .v3_1_1) == packet)
    }

    @Test(arguments: v31) func roundTrip31(_ packet: MQTTPacket) throws {
        #expect(try roundTrip(packet, .v3_1) == packet)
    }

    @Test(arguments: v5) func roundTrip5(_ packet: MQTTPacket) throws {
        #expect(try roundTrip(packet, .v5) == packet)
    }

    @Test func everyPacketTypeIsCovered() {
        #expect(Set(Self.v311.map(\.type.rawValue)) == Set(MQTTPacketType.allCases.map(\.rawValue)).subtracting([MQTTPacketType.auth.rawValue]))
        #expect(Set(Self.v5.map(\.type.rawValue)) == Set(MQTTPacketType.allCases.map(\.rawValue)))
    }

    @Test func aPacketOverOneHundredTwentySevenBytesHasATwoByteRemainingLength() throws {
        let publish = MQTTPacket.publish(MQTTPublish(topic: "t", payload: ByteBuffer(repeating: 0x61, count: 200)))
        #expect(Array(encoded(publish, .v3_1_1).prefix(3)) == [0x30, 0xCB, 0x01])  // 3 + 200 = 203
        #expect(try roundTrip(publish, .v3_1_1) == publish)
    }

    @Test func v311DropsWhatItCannotSay() throws {
        let ack = MQTTPacket.puback(MQTTAck(packetID: 1, reason: .quotaExceeded, properties: properties { $0.reasonString = "x" }))
        #expect(try roundTrip(ack, .v3_1_1) == .puback(MQTTAck(packetID: 1)))
        let publish = MQTTPacket.publish(MQTTPublish(topic: "t", properties: properties { $0.contentType = "c" }, payload: ByteBuffer()))
        #expect(try roundTrip(publish, .v3_1_1) == .publish(MQTTPublish(topic: "t", payload: ByteBuffer())))
        #expect(try roundTrip(.connack(MQTTConnAck(reason: .serverBusy)), .v3_1_1) == .connack(MQTTConnAck(reason: .serverUnavailable)))
    }
}
