import NIOCore
import Testing
@testable import BrookMQTT

/// `MQTTFramer` cuts a byte stream into packets, however the stream arrives, and refuses a
/// remaining length it cannot take as soon as it has read it; `MQTTWire`'s variable byte integer
/// (section 1.5.5) is the remaining length's encoding.
@Suite struct FramerTests {
    static let stream: [MQTTPacket] = [
        .connect(MQTTConnect(version: .v5, clientID: "c")),
        .publish(MQTTPublish(topic: "a/b", qos: .atLeastOnce, packetID: 1, payload: ByteBuffer(repeating: 0x61, count: 300))),
        .pingreq,
        .subscribe(MQTTSubscribe(packetID: 2, filters: [("a/#", SubscriptionOptions(qos: .exactlyOnce))])),
        .disconnect(MQTTReasoned()),
    ]

    static func bytes() -> [UInt8] { stream.flatMap { encoded($0, .v5) } }

    /// Feeds `bytes` in pieces of `pieceBytes`, taking every whole packet after each piece.
    static func packets(_ bytes: [UInt8], pieceBytes: Int) throws -> [MQTTPacket] {
        var framer = MQTTFramer(packetBytesMax: 1024)
        var packets: [MQTTPacket] = []
        for start in stride(from: 0, to: bytes.count, by: pieceBytes) {
            var piece = ByteBuffer(bytes: bytes[start..<min(start + pieceBytes, bytes.count)])
            framer.append(&piece)
            while let (first, body) = try framer.next() {
                packets.append(try MQTTPacket.decode(first: first, body: body, version: packets.isEmpty ? nil : .v5))
            }
        }
        #expect(framer.bufferedBytes == 0)
        return packets
    }

    @Test func aStreamFedOneByteAtATimeGivesTheSamePackets() throws {
        #expect(try Self.packets(Self.bytes(), pieceBytes: 1) == Self.stream)
        #expect(try Self.packets(Self.bytes(), pieceBytes: 7) == Self.stream)
        #expect(try Self.packets(Self.bytes(), pieceBytes: Self.bytes().count) == Self.stream)
    }

    @Test func aPartialPacketWaitsAndIsKept() throws {
        var framer = MQTTFramer(packetBytesMax: 1024)
        var partial = ByteBuffer(bytes: [0x30, 0x05, 0x00, 0x01])
        framer.append(&partial)
        #expect(try framer.next() == nil)
        #expect(framer.bufferedBytes == 4)
        var rest = ByteBuffer(bytes: [0x61, 0x68, 0x69, 0xC0])
        framer.append(&rest)
        let (first, body) = try #require(try framer.next())
        #expect(first == 0x30 && Array(buffer: body) == [0x00, 0x01, 0x61, 0x68, 0x69])
        #expect(try framer.next() == nil)
        #expect(framer.bufferedBytes == 1)
    }

    @Test func aRemainingLengthOfFiveBytesIsMalformed() {
        var framer = MQTTFramer(packetBytesMax: 1024)
        var bytes = ByteBuffer(bytes: [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        framer.append(&bytes)
        #expect(Self.reason(&framer) == .malformedPacket)
    }

    @Test func aFourthContinuationByteIsMalformedBeforeTheFifthArrives() {
        var framer = MQTTFramer(packetBytesMax: 1024)
        var bytes = ByteBuffer(bytes: [0x30, 0x80, 0x80, 0x80, 0x80])
        framer.append(&bytes)
        #expect(Self.reason(&framer) == .malformedPacket)
    }

    @Test func aPacketOverTheLimitIsRefusedAsSoonAsItsLengthIsKnown() {
        // Two header bytes and a body of 100: one byte over.
        var framer = MQTTFramer(packetBytesMax: 101)
        var header = ByteBuffer(bytes: [0x30, 0x64])
        framer.append(&header)
        #expect(Self.reason(&framer) == .packetTooLarge)
        #expect(framer.bufferedBytes == 2, "refused before any of the body came")
    }

    @Test func aPacketAtTheLimitIsTaken() throws {
        var framer = MQTTFramer(packetBytesMax: 102)
        var bytes = ByteBuffer(bytes: [0x30, 0x64] + [0x00, 0x01, 0x61] + Array(repeating: 0x62, count: 97))
        framer.append(&bytes)
        let (_, body) = try #require(try framer.next())
        #expect(body.readableBytes == 100)
    }

    @Test func theLargestRemainingLengthIsFourBytes() throws {
        var framer = MQTTFramer(packetBytesMax: MQTTWire.variableIntMax + 5)
        var header = ByteBuffer(bytes: [0x30, 0xFF, 0xFF, 0xFF, 0x7F])
        framer.append(&header)
        #expect(try framer.next() == nil, "268,435,455 bytes are awaited")
        var small = MQTTFramer(packetBytesMax: MQTTWire.variableIntMax + 4)
        var again = ByteBuffer(bytes: [0x30, 0xFF, 0xFF, 0xFF, 0x7F])
        small.append(&again)
        #expect(Self.reason(&small) == .packetTooLarge)
    }

    static func reason(_ framer: inout MQTTFramer) -> ReasonCode? {
        do {
            _ = try framer.next()
            return nil
        } catch {
            return error.reason
        }
    }

    // MARK: the variable byte integer

    static let boundaries: [(Int, [UInt8])] = [
        (0, [0x00]), (127, [0x7F]), (128, [0x80, 0x01]), (16_383, [0xFF, 0x7F]), (16_384, [0x80, 0x80, 0x01]),
        (2_097_151, [0xFF, 0xFF, 0x7F]), (2_097_152, [0x80, 0x80, 0x80, 0x01]), (268_435_455, [0xFF, 0xFF, 0xFF, 0x7F]),
    ]

    @Test func variableIntegersAtTheSpecsBoundaries() throws {
        for (value, bytes) in Self.boundaries {
            var written = ByteBuffer()
            MQTTWire.writeVariableInt(value, to: &written)
            #expect(Array(buffer: written) == bytes, "\(value)")
            #expect(MQTTWire.variableIntBytes(value) == bytes.count, "\(value)")
            var read = ByteBuffer(bytes: bytes)
            #expect(try MQTTWire.readVariableInt(&read) == value)
            #expect(read.readableBytes == 0)
        }
    }

    @Test func aFiveByteVariableIntegerIsMalformed() {
        var bytes = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        #expect(throws: MQTTError.malformed("a variable byte integer longer than four bytes")) { try MQTTWire.readVariableInt(&bytes) }
    }
}
