import NIOCore
import Testing
@testable import BrookMQTT

/// Packets the server refuses, each with the reason code it answers (MQTT 5.0 section 4.13:
/// 0x81 malformed, 0x82 protocol error, and the specific ones).
@Suite struct CodecRejectionTests {
    @Test func fixedHeaderFlagsOtherThanTheSpecsAreMalformed() {
        #expect(refusal(packet(0x80, [0x00, 0x01, 0x00, 0x01, 0x61, 0x00]), version: .v3_1_1) == .malformedPacket)  // SUBSCRIBE
        #expect(refusal(packet(0xA0, [0x00, 0x01, 0x00, 0x01, 0x61]), version: .v3_1_1) == .malformedPacket)  // UNSUBSCRIBE
        #expect(refusal(packet(0x60, [0x00, 0x01]), version: .v3_1_1) == .malformedPacket)  // PUBREL
        #expect(refusal(packet(0x41, [0x00, 0x01]), version: .v3_1_1) == .malformedPacket)  // PUBACK
        #expect(refusal(packet(0xC8, []), version: .v3_1_1) == .malformedPacket)  // PINGREQ
        #expect(refusal(packet(0x00, []), version: .v3_1_1) == .malformedPacket)  // type 0
    }

    @Test func publishWithQoS3OrAQoS0DuplicateIsMalformed() {
        #expect(refusal(packet(0x36, [0x00, 0x01, 0x61, 0x00, 0x01]), version: .v3_1_1) == .malformedPacket)
        #expect(refusal(packet(0x38, [0x00, 0x01, 0x61]), version: .v3_1_1) == .malformedPacket)
    }

    @Test func packetIdentifierZeroIsAProtocolError() {
        #expect(refusal(packet(0x32, [0x00, 0x01, 0x61, 0x00, 0x00]), version: .v3_1_1) == .protocolError)  // PUBLISH QoS 1
        #expect(refusal(packet(0x40, [0x00, 0x00]), version: .v3_1_1) == .protocolError)  // PUBACK
        #expect(refusal(packet(0x62, [0x00, 0x00]), version: .v5) == .protocolError)  // PUBREL
        #expect(refusal(packet(0x82, [0x00, 0x00, 0x00, 0x01, 0x61, 0x00]), version: .v3_1_1) == .protocolError)  // SUBSCRIBE
        #expect(refusal(packet(0xA2, [0x00, 0x00, 0x00, 0x01, 0x61]), version: .v3_1_1) == .protocolError)  // UNSUBSCRIBE
    }

    @Test func connectFlagsThatContradictEachOtherAreMalformed() {
        #expect(refusal(connectPacket(flags: 0x03), version: nil) == .malformedPacket)  // reserved bit
        #expect(refusal(connectPacket(flags: 0x0A), version: nil) == .malformedPacket)  // will QoS 1, no will
        #expect(refusal(connectPacket(flags: 0x22), version: nil) == .malformedPacket)  // will retain, no will
        #expect(refusal(connectPacket(flags: 0x1E), version: nil) == .malformedPacket)  // will QoS 3
        // 3.1.1 has no password without a user name; 5.0 has.
        #expect(refusal(connectPacket(flags: 0x42, payload: [0x00, 0x01, 0x63, 0x00, 0x01, 0x70]), version: nil) == .malformedPacket)
        #expect(refusal(connectPacket(level: 5, flags: 0x42, properties: [], payload: [0x00, 0x01, 0x63, 0x00, 0x01, 0x70]),
                        version: nil) == nil)
    }

    @Test func unknownProtocolLevelsAreUnsupported() {
        #expect(refusal(connectPacket(level: 6), version: nil) == .unsupportedProtocolVersion)
        #expect(refusal(connectPacket(level: 3), version: nil) == .unsupportedProtocolVersion)  // "MQTT" is 3.1.1 and 5.0
        #expect(refusal(connectPacket(name: "MQIsdp", level: 4), version: nil) == .unsupportedProtocolVersion)
        #expect(refusal(connectPacket(name: "MQIsdp", level: 3), version: nil) == nil)
        #expect(refusal(connectPacket(name: "MQTX"), version: nil) == .protocolError)
    }

    @Test func stringsWithUPlus0000OrBadUTF8AreMalformed() {
        #expect(refusal(connectPacket(payload: [0x00, 0x03, 0x61, 0x00, 0x62]), version: nil) == .malformedPacket)
        #expect(refusal(connectPacket(payload: [0x00, 0x02, 0xC3, 0x28]), version: nil) == .malformedPacket)
        #expect(refusal(connectPacket(payload: [0x00, 0x03, 0xED, 0xA0, 0x80]), version: nil) == .malformedPacket)  // a surrogate
        #expect(refusal(connectPacket(payload: [0x00, 0x02, 0xC0, 0x80]), version: nil) == .malformedPacket)  // overlong U+0000
        #expect(refusal(packet(0x30, [0x00, 0x01, 0xFF]), version: .v3_1_1) == .malformedPacket)
        #expect(refusal(connectPacket(payload: [0x00, 0x02, 0xC3, 0xA9]), version: nil) == nil)  // "é"
    }

    @Test func propertyRulesHoldInWholePackets() {
        let twice: [UInt8] = [0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2]
        #expect(refusal(connectPacket(level: 5, properties: twice), version: nil) == .protocolError)
        #expect(refusal(connectPacket(level: 5, properties: [0x23, 0x00, 0x01]), version: nil) == .protocolError)  // topic alias
        let identifierZero: [UInt8] = [0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, 0x61, 0x00]
        #expect(refusal(packet(0x82, identifierZero), version: .v5) == .protocolError)
        // A client's PUBLISH carries no subscription identifier.
        #expect(refusal(packet(0x30, [0x00, 0x01, 0x61, 0x02, 0x0B, 0x01]), version: .v5) == .protocolError)
    }

    @Test func publishTopicNamesHoldNoWildcard() {
        #expect(refusal(packet(0x30, [0x00, 0x03] + ascii("a/+")), version: .v3_1_1) == .topicNameInvalid)
        #expect(refusal(packet(0x30, [0x00, 0x03] + ascii("a/#") + [0x00]), version: .v5) == .topicNameInvalid)
        #expect(refusal(packet(0x30, [0x00, 0x00]), version: .v3_1_1) == .topicNameInvalid)  // empty
        #expect(refusal(packet(0x30, [0x00, 0x00, 0x00]), version: .v5) == .topicNameInvalid)  // empty, no alias
        // A will topic too (flags: will, clean).
        #expect(refusal(connectPacket(flags: 0x06, payload: [0x00, 0x01, 0x63, 0x00, 0x01, 0x2B, 0x00, 0x00]), version: nil)
                == .topicNameInvalid)
    }

    @Test func bytesAfterThePacketAreMalformed() {
        #expect(refusal(packet(0xC0, [0x00]), version: .v3_1_1) == .malformedPacket)
        #expect(refusal(packet(0x40, [0x00, 0x01, 0x00]), version: .v3_1_1) == .malformedPacket)
        #expect(refusal(packet(0x20, [0x00, 0x00, 0x00]), version: .v3_1_1) == .malformedPacket)
        #expect(refusal(packet(0xE0, [0x00]), version: .v3_1_1) == .malformedPacket)
        #expect(refusal(connectPacket(payload: [0x00, 0x01, 0x63, 0xFF]), version: nil) == .malformedPacket)
    }

    @Test func truncatedBodiesAreMalformed() {
        #expect(refusal(packet(0x32, [0x00, 0x01, 0x61]), version: .v3_1_1) == .malformedPacket)  // no packet id
        #expect(refusal(packet(0x30, [0x00, 0x05, 0x61]), version: .v3_1_1) == .malformedPacket)  // topic past the end
        #expect(refusal(packet(0x30, [0x00, 0x01, 0x61, 0x05, 0x01]), version: .v5) == .malformedPacket)  // properties past the end
        #expect(refusal(connectPacket(flags: 0x82), version: nil) == .malformedPacket)  // user name flag, no user name
    }

    @Test func anythingButConnectBeforeConnectIsAProtocolError() {
        #expect(refusal(packet(0x30, [0x00, 0x01, 0x61]), version: nil) == .protocolError)
        #expect(refusal(packet(0xC0, []), version: nil) == .protocolError)
        #expect(refusal(packet(0xE0, []), version: nil) == .protocolError)
    }

    @Test func authIs5Only() {
        #expect(refusal(packet(0xF0, []), version: .v3_1_1) == .protocolError)
        #expect(refusal(packet(0xF0, []), version: .v3_1) == .protocolError)
        #expect(refusal(packet(0xF0, []), version: .v5) == nil)
    }

    @Test func subscribeAndUnsubscribeNeedAFilter() {
        #expect(refusal(packet(0x82, [0x00, 0x01]), version: .v3_1_1) == .protocolError)
        #expect(refusal(packet(0x82, [0x00, 0x01, 0x00]), version: .v5) == .protocolError)
        #expect(refusal(packet(0xA2, [0x00, 0x01]), version: .v3_1_1) == .protocolError)
    }

    @Test func subscriptionOptionsOutsideTheVersionsBitsAreRefused() {
        let filter: [UInt8] = [0x00, 0x01, 0x00, 0x01, 0x61]
        #expect(refusal(packet(0x82, filter + [0x04]), version: .v3_1_1) == .malformedPacket)  // no local is 5.0's
        #expect(refusal(packet(0x82, filter + [0x03]), version: .v3_1_1) == .malformedPacket)  // QoS 3
        let filter5: [UInt8] = [0x00, 0x01, 0x00, 0x00, 0x01, 0x61]
        #expect(refusal(packet(0x82, filter5 + [0x40]), version: .v5) == .malformedPacket)  // reserved bits
        #expect(refusal(packet(0x82, filter5 + [0x30]), version: .v5) == .protocolError)  // retain handling 3
        #expect(refusal(packet(0x82, filter5 + [0x2E]), version: .v5) == nil)
    }

    @Test func connackFlagsOtherThanSessionPresentAreMalformed() {
        #expect(refusal(packet(0x20, [0x02, 0x00]), version: .v3_1_1) == .malformedPacket)
    }

    /// 3.1.1's UNSUBACK is a packet identifier alone, and its SUBACK's return codes are 0, 1, 2
    /// and 0x80: anything else would not survive being written again.
    @Test func v311AcknowledgementsHoldOnlyWhat311Has() {
        #expect(refusal(packet(0xB0, [0x00, 0x01, 0x00]), version: .v3_1_1) == .malformedPacket)
        #expect(refusal(packet(0x90, [0x00, 0x01, 0x87]), version: .v3_1_1) == .malformedPacket)
        #expect(refusal(packet(0x90, [0x00, 0x01, 0x03]), version: .v3_1_1) == .malformedPacket)
        #expect(refusal(packet(0x90, [0x00, 0x01, 0x00, 0x01, 0x02, 0x80]), version: .v3_1_1) == nil)
        #expect(refusal(packet(0x90, [0x00, 0x01, 0x00, 0x87]), version: .v5) == nil)
    }
}
