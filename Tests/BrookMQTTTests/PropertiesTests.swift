import NIOCore
import Testing
@testable import BrookMQTT

/// MQTT 5.0 properties (section 2.2.2): which packet may carry which, once or repeated, and
/// the values the specification rules out.
@Suite struct PropertiesTests {
    /// Decodes `body` with its length in front, in `context`.
    func decoded(_ body: [UInt8], in context: PropertyContext) throws(MQTTError) -> MQTTProperties {
        var buffer = ByteBuffer(bytes: [UInt8(body.count)] + body)
        let properties = try MQTTProperties.decode(from: &buffer, context: context)
        guard buffer.readableBytes == 0 else { throw MQTTError(.implementationSpecificError, "bytes left over") }
        return properties
    }

    func refusal(_ body: [UInt8], in context: PropertyContext) -> ReasonCode? {
        do {
            _ = try decoded(body, in: context)
            return nil
        } catch {
            return error.reason
        }
    }

    @Test func propertiesAreWrittenInIdentifierOrder() {
        let written = properties {
            $0.maximumPacketSize = 1024  // 0x27
            $0.sessionExpiryInterval = 1  // 0x11
            $0.userProperties = [("a", "b")]  // 0x26
        }
        var buffer = ByteBuffer()
        written.encode(to: &buffer)
        #expect(Array(buffer: buffer) == [0x11, 0x11, 0x00, 0x00, 0x00, 0x01, 0x26, 0x00, 0x01, 0x61, 0x00, 0x01, 0x62,
                                          0x27, 0x00, 0x00, 0x04, 0x00])
    }

    @Test func equalityIgnoresTheOrderOnTheWireButNotOfUserProperties() throws {
        let a = try decoded([0x21, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x09], in: .packet(.connect))
        let b = try decoded([0x11, 0x00, 0x00, 0x00, 0x09, 0x21, 0x00, 0x05], in: .packet(.connect))
        #expect(a == b)
        #expect(a.receiveMaximum == 5 && a.sessionExpiryInterval == 9)
        #expect(properties { $0.userProperties = [("a", "1"), ("b", "2")] } != properties { $0.userProperties = [("b", "2"), ("a", "1")] })
    }

    @Test func aPropertyGivenTwiceIsAProtocolError() {
        #expect(refusal([0x21, 0x00, 0x05, 0x21, 0x00, 0x06], in: .packet(.connect)) == .protocolError)
        #expect(refusal([0x1F, 0x00, 0x00, 0x1F, 0x00, 0x00], in: .packet(.puback)) == .protocolError)
        #expect(refusal([0x0B, 0x01, 0x0B, 0x02], in: .packet(.subscribe)) == .protocolError)
    }

    @Test func userPropertiesRepeatInOrder() throws {
        let body: [UInt8] = [0x26, 0x00, 0x01, 0x6B, 0x00, 0x01, 0x31, 0x26, 0x00, 0x01, 0x6B, 0x00, 0x01, 0x32]
        let decoded = try decoded(body, in: .packet(.publish))
        #expect(decoded.userProperties.map(\.name) == ["k", "k"])
        #expect(decoded.userProperties.map(\.value) == ["1", "2"])
    }

    @Test func aPropertyOutsideItsPacketIsAProtocolError() {
        #expect(refusal([0x23, 0x00, 0x01], in: .packet(.connect)) == .protocolError)  // topic alias
        #expect(refusal([0x18, 0x00, 0x00, 0x00, 0x01], in: .packet(.connect)) == .protocolError)  // will delay: the will's
        #expect(refusal([0x11, 0x00, 0x00, 0x00, 0x01], in: .will) == .protocolError)  // session expiry: CONNECT's
        #expect(refusal([0x26, 0x00, 0x00, 0x00, 0x00], in: .packet(.pingreq)) == .protocolError)
        #expect(refusal([0x1F, 0x00, 0x00], in: .packet(.unsubscribe)) == .protocolError)
        #expect(refusal([0x18, 0x00, 0x00, 0x00, 0x01], in: .will) == nil)
        #expect(refusal([0x26, 0x00, 0x00, 0x00, 0x00], in: .packet(.unsubscribe)) == nil)
    }

    @Test func unknownIdentifiersAreMalformed() {
        #expect(refusal([0x00, 0x00], in: .packet(.connect)) == .malformedPacket)
        #expect(refusal([0x04, 0x00], in: .packet(.publish)) == .malformedPacket)
        #expect(refusal([0x80, 0x01, 0x00], in: .packet(.publish)) == .malformedPacket)  // 128, two bytes
    }

    @Test func valuesTheSpecificationRulesOut() {
        #expect(refusal([0x0B, 0x00], in: .packet(.subscribe)) == .protocolError)  // subscription identifier 0
        #expect(refusal([0x21, 0x00, 0x00], in: .packet(.connect)) == .protocolError)  // receive maximum 0
        #expect(refusal([0x27, 0x00, 0x00, 0x00, 0x00], in: .packet(.connect)) == .protocolError)  // maximum packet size 0
        #expect(refusal([0x01, 0x02], in: .packet(.publish)) == .protocolError)  // payload format 2
        #expect(refusal([0x17, 0x02], in: .packet(.connect)) == .protocolError)  // request problem information 2
        #expect(refusal([0x19, 0x02], in: .packet(.connect)) == .protocolError)  // request response information 2
        #expect(refusal([0x23, 0x00, 0x00], in: .packet(.publish)) == .topicAliasInvalid)
        #expect(refusal([0x08, 0x00, 0x03] + ascii("a/+"), in: .packet(.publish)) == .protocolError)  // response topic
    }

    @Test func truncatedValuesAreMalformed() {
        #expect(refusal([0x02, 0x00, 0x00], in: .packet(.publish)) == .malformedPacket)  // a four-byte integer in two
        #expect(refusal([0x03, 0x00, 0x05, 0x61], in: .packet(.publish)) == .malformedPacket)  // a string past its end
        #expect(refusal([0x0B, 0x80], in: .packet(.subscribe)) == .malformedPacket)  // a variable integer cut short
    }

    @Test func subscriptionIdentifiersAreVariableIntegers() throws {
        #expect(try decoded([0x0B, 0xFF, 0xFF, 0xFF, 0x7F], in: .packet(.subscribe)).subscriptionIdentifiers == [268_435_455])
        var buffer = ByteBuffer()
        properties { $0.subscriptionIdentifiers = [128, 1] }.encode(to: &buffer)
        #expect(Array(buffer: buffer) == [0x05, 0x0B, 0x80, 0x01, 0x0B, 0x01])
    }

    @Test func emptyPropertiesAreOneZeroByte() {
        var buffer = ByteBuffer()
        MQTTProperties().encode(to: &buffer)
        #expect(Array(buffer: buffer) == [0x00])
        #expect(MQTTProperties().isEmpty)
        #expect(!properties { $0.userProperties = [("", "")] }.isEmpty)
    }
}
