import NIOCore
import Testing
@testable import BrookMQTT

/// ASCII text as bytes, for golden packets written out by hand.
func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

func properties(_ edit: (inout MQTTProperties) -> Void) -> MQTTProperties {
    var properties = MQTTProperties()
    edit(&properties)
    return properties
}

/// Cuts one whole packet out of `bytes` with a framer and decodes it; the bytes must hold
/// exactly one packet.
func decode(_ bytes: [UInt8], version: MQTTVersion?) throws(MQTTError) -> MQTTPacket {
    var framer = MQTTFramer(packetBytesMax: 1 << 20)
    var input = ByteBuffer(bytes: bytes)
    framer.append(&input)
    guard let (first, body) = try framer.next(), framer.bufferedBytes == 0 else {
        throw MQTTError(.implementationSpecificError, "the test input is not exactly one packet")
    }
    return try MQTTPacket.decode(first: first, body: body, version: version)
}

/// The reason a packet is refused with; nil when it decodes.
func refusal(_ bytes: [UInt8], version: MQTTVersion?) -> ReasonCode? {
    do {
        _ = try decode(bytes, version: version)
        return nil
    } catch {
        return error.reason
    }
}

func encoded(_ packet: MQTTPacket, _ version: MQTTVersion) -> [UInt8] {
    Array(buffer: packet.encode(version: version))
}

/// A CONNECT is decoded before any version is known; the rest at the connection's.
func decodingVersion(of packet: MQTTPacket, _ version: MQTTVersion) -> MQTTVersion? {
    packet.type == .connect ? nil : version
}

/// Golden bytes both ways: they decode to `packet`, and `packet` encodes to them.
func expectGolden(_ golden: [UInt8], _ packet: MQTTPacket, _ version: MQTTVersion,
                  sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(encoded(packet, version) == golden, sourceLocation: sourceLocation)
    #expect(try decode(golden, version: decodingVersion(of: packet, version)) == packet, sourceLocation: sourceLocation)
}

func roundTrip(_ packet: MQTTPacket, _ version: MQTTVersion) throws -> MQTTPacket {
    try decode(encoded(packet, version), version: decodingVersion(of: packet, version))
}

/// A packet of fewer than 128 body bytes: the first byte, the one-byte remaining length, the body.
func packet(_ first: UInt8, _ body: [UInt8]) -> [UInt8] {
    precondition(body.count < 128, "a test packet of \(body.count) bytes needs a longer remaining length")
    return [first, UInt8(body.count)] + body
}

/// A CONNECT: protocol name and level, `flags`, keep alive 60, the properties (with their length,
/// when given: 5.0), then `payload` (by default the client id "c").
func connectPacket(name: String = "MQTT", level: UInt8 = 4, flags: UInt8 = 0x02, properties: [UInt8]? = nil,
                   payload: [UInt8] = [0x00, 0x01, 0x63]) -> [UInt8] {
    let header = [0x00, UInt8(name.utf8.count)] + ascii(name) + [level, flags, 0x00, 0x3C]
    return packet(0x10, header + (properties.map { [UInt8($0.count)] + $0 } ?? []) + payload)
}
