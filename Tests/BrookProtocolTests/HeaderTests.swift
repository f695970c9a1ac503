import BrookProtocol
import NIOCore
import Testing

/// Request header v1 / v2 and response header v0 / v1, against kafka-python's framing and the rules.
@Suite struct HeaderTests {
    /// kafka-python's request headers decode to what it was given, leave the reader at the body,
    /// and Brook writes the same header bytes.
    @Test(arguments: GoldenFixtures.requestHeaders)
    func requestHeaderFromKafkaPython(_ fixture: HeaderFixture) throws {
        let wire = bytes(hex: fixture.hex)
        var reader = WireReader(ByteBuffer(bytes: wire))
        let header = try RequestHeader(from: &reader)
        #expect(header == RequestHeader(apiKey: fixture.apiKey, apiVersion: fixture.version,
                                        correlationID: fixture.correlationID, clientID: fixture.clientID))
        #expect(reader.remaining == fixture.bodyBytes)
        var writer = WireWriter()
        header.encode(to: &writer)
        #expect(writer.buffer.bytes == Array(wire.prefix(wire.count - fixture.bodyBytes)))
    }

    @Test(arguments: GoldenFixtures.responseHeaders)
    func responseHeaderFromKafkaPython(_ fixture: HeaderFixture) throws {
        let wire = bytes(hex: fixture.hex)
        var reader = WireReader(ByteBuffer(bytes: wire))
        let correlation = try ResponseHeader.decode(apiKey: fixture.apiKey, apiVersion: fixture.version, from: &reader)
        #expect(correlation == fixture.correlationID)
        #expect(reader.remaining == fixture.bodyBytes)
        var writer = WireWriter()
        ResponseHeader.encode(correlationID: fixture.correlationID, apiKey: fixture.apiKey, apiVersion: fixture.version, to: &writer)
        #expect(writer.buffer.bytes == Array(wire.prefix(wire.count - fixture.bodyBytes)))
    }

    @Test func requestHeaderV1Layout() throws {
        let header = RequestHeader(apiKey: 3, apiVersion: 8, correlationID: 0x01020304, clientID: "ab")
        var writer = WireWriter()
        header.encode(to: &writer)
        #expect(writer.buffer.bytes == [0x00, 0x03, 0x00, 0x08, 0x01, 0x02, 0x03, 0x04, 0x00, 0x02, 0x61, 0x62])
        var nullClient = WireWriter()
        RequestHeader(apiKey: 3, apiVersion: 8, correlationID: 1, clientID: nil).encode(to: &nullClient)
        #expect(nullClient.buffer.bytes == [0x00, 0x03, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0xFF, 0xFF])
    }

    /// v2: the client id stays a classic (int16-length) nullable string; tagged fields follow.
    @Test func requestHeaderV2Layout() throws {
        let header = RequestHeader(apiKey: 3, apiVersion: 9, correlationID: 7, clientID: "ab")
        var writer = WireWriter()
        header.encode(to: &writer)
        #expect(writer.buffer.bytes == [0x00, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x07, 0x00, 0x02, 0x61, 0x62, 0x00])
        // Unknown tagged fields in the header are skipped.
        let tagged: [UInt8] = [0x00, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x07, 0x00, 0x02, 0x61, 0x62,
                               0x02, 0x00, 0x01, 0x7A, 0x05, 0x00, 0xEE]
        var reader = WireReader(ByteBuffer(bytes: tagged))
        #expect(try RequestHeader(from: &reader) == header)
        #expect(reader.remaining == 1)
        // A truncated header throws.
        for length in 0..<tagged.count - 1 {
            var short = WireReader(ByteBuffer(bytes: tagged[..<length]))
            #expect(throws: ProtocolError.self) { try RequestHeader(from: &short) }
        }
    }

    @Test func whichRequestsUseHeaderV2() {
        #expect(!RequestHeader.isFlexible(apiKey: 18, apiVersion: 2))
        #expect(RequestHeader.isFlexible(apiKey: 18, apiVersion: 3))
        // ApiVersions newer than Brook knows: still v2, so that the request can be answered.
        #expect(RequestHeader.isFlexible(apiKey: 18, apiVersion: 99))
        #expect(!RequestHeader.isFlexible(apiKey: 0, apiVersion: 8))
        #expect(RequestHeader.isFlexible(apiKey: 0, apiVersion: 9))
        #expect(!RequestHeader.isFlexible(apiKey: 1, apiVersion: 11))
        #expect(RequestHeader.isFlexible(apiKey: 1, apiVersion: 12))
        #expect(RequestHeader.isFlexible(apiKey: 60, apiVersion: 0))  // DescribeCluster: flexible from v0
        #expect(!RequestHeader.isFlexible(apiKey: 33, apiVersion: 1))
        #expect(RequestHeader.isFlexible(apiKey: 33, apiVersion: 2))
        #expect(!RequestHeader.isFlexible(apiKey: 999, apiVersion: 5))  // unknown API: v1
        for entry in ApiCatalog.entries {
            for version in entry.versions {
                #expect(RequestHeader.isFlexible(apiKey: entry.key, apiVersion: version) == (entry.flexibleFrom.map { version >= $0 } ?? false))
            }
        }
    }

    /// ApiVersions answers use the v0 header in every version; other flexible versions use v1.
    @Test func responseHeaderVersions() throws {
        for version: Int16 in [0, 3, 4, 7] {
            #expect(!ResponseHeader.usesV1(apiKey: 18, apiVersion: version))
            var writer = WireWriter()
            ResponseHeader.encode(correlationID: 9, apiKey: 18, apiVersion: version, to: &writer)
            #expect(writer.buffer.bytes == [0, 0, 0, 9])
        }
        #expect(!ResponseHeader.usesV1(apiKey: 3, apiVersion: 8))
        #expect(ResponseHeader.usesV1(apiKey: 3, apiVersion: 9))
        #expect(ResponseHeader.usesV1(apiKey: 60, apiVersion: 0))
        var writer = WireWriter()
        ResponseHeader.encode(correlationID: -2, apiKey: 1, apiVersion: 12, to: &writer)
        #expect(writer.buffer.bytes == [0xFF, 0xFF, 0xFF, 0xFE, 0x00])

        // v1 with a tagged field: skipped by the decoder.
        var reader = WireReader(ByteBuffer(bytes: [0, 0, 0, 5, 0x01, 0x03, 0x02, 0xAA, 0xBB, 0x42]))
        #expect(try ResponseHeader.decode(apiKey: 1, apiVersion: 12, from: &reader) == 5)
        #expect(reader.remaining == 1)
        // v0 leaves the rest alone.
        reader = WireReader(ByteBuffer(bytes: [0, 0, 0, 5, 0x01]))
        #expect(try ResponseHeader.decode(apiKey: 1, apiVersion: 11, from: &reader) == 5)
        #expect(reader.remaining == 1)
        reader = WireReader(ByteBuffer(bytes: [0, 0, 0]))
        #expect(throws: ProtocolError.self) { try ResponseHeader.decode(apiKey: 1, apiVersion: 11, from: &reader) }
    }
}

/// Error numbers are the protocol's: a wrong one makes a client act on the wrong error.
@Suite struct ErrorCodeTests {
    @Test func numbersMatchKafka() {
        let kafka: [(ErrorCode, Int16)] = [
            (.outOfOrderSequenceNumber, 45), (.duplicateSequenceNumber, 46), (.invalidProducerEpoch, 47),
            (.invalidTxnState, 48), (.invalidProducerIDMapping, 49), (.invalidTransactionTimeout, 50),
            (.concurrentTransactions, 51), (.transactionCoordinatorFenced, 52), (.unknownProducerID, 59),
            (.unknownLeaderEpoch, 75), (.fencedLeaderEpoch, 74), (.unstableOffsetCommit, 88), (.producerFenced, 90),
            (.transactionalIDNotFound, 105), (.transactionAbortable, 120),
        ]
        for (code, number) in kafka { #expect(code.rawValue == number, "\(code)") }
        #expect(ErrorCode.unknownLeaderEpoch.description == "UNKNOWN_LEADER_EPOCH (75)")
        #expect(ErrorCode.unknownProducerID.description == "UNKNOWN_PRODUCER_ID (59)")
    }
}
