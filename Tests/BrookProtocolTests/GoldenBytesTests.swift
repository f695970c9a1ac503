import BrookCore
import BrookProtocol
import NIOCore
import Testing

/// One message body encoded by kafka-python (see golden/make_golden.py), with the value it holds.
/// Type-erased so that every API's fixtures run as one parameterized test.
struct GoldenFixture: Sendable, CustomTestStringConvertible {
    let apiName: String
    let kind: String
    let version: Int16
    let variant: String
    let bytes: [UInt8]
    /// What Brook writes for the same value, when it differs from kafka-python's bytes (a tagged
    /// field written at its default value: valid, but Brook leaves it out).
    let reencodedBytes: [UInt8]?
    let flexible: Bool
    /// Decodes `bytes`, checks the value and the re-encoding; records issues with #expect.
    let check: @Sendable (GoldenFixture) -> Void
    /// Encodes the expected value with Brook's encoder, decodes it back, checks equality.
    let roundTrip: @Sendable () -> Void
    /// Decodes `bytes` with their last byte (the top-level tagged-field count) replaced by
    /// `tagged`; checks that the value is unchanged. Only for flexible versions.
    let decodeWithTrailer: @Sendable ([UInt8]) throws(ProtocolError) -> Bool
    /// Decodes a prefix of the bytes (must throw).
    let decodePrefix: @Sendable (Int) throws(ProtocolError) -> Void

    var testDescription: String { "\(apiName)\(kind) v\(version) \(variant)" }

    init<M: KafkaMessage>(_ type: M.Type, version: Int16, variant: String, hex: String, reencodedHex: String? = nil,
                          expected: M) {
        let name = "\(M.self)"
        apiName = M.apiName
        kind = name.hasSuffix("Request") ? "Request" : "Response"
        self.version = version
        self.variant = variant
        let bytes = BrookProtocolTests.bytes(hex: hex)
        self.bytes = bytes
        reencodedBytes = reencodedHex.map { BrookProtocolTests.bytes(hex: $0) }
        flexible = M.isFlexible(version)
        check = { fixture in
            let decoded: M
            do {
                decoded = try M(decoding: ByteBuffer(bytes: fixture.bytes), version: version)
            } catch {
                Issue.record("\(fixture.testDescription): kafka-python's bytes do not decode: \(error)")
                return
            }
            #expect(decoded == expected, "\(fixture.testDescription): decoded value differs from kafka-python's")
            let again = decoded.encoded(version: version).bytes
            let wanted = fixture.reencodedBytes ?? fixture.bytes
            #expect(again == wanted, "\(fixture.testDescription): re-encoding differs: \(firstDifference(again, wanted))")
        }
        roundTrip = {
            let encoded = expected.encoded(version: version)
            #expect(throws: Never.self) {
                let back = try M(decoding: encoded, version: version)
                #expect(back == expected, "\(name) v\(version) \(variant): round trip changed the value")
            }
        }
        decodeWithTrailer = { trailer throws(ProtocolError) in
            let changed = Array(bytes.dropLast()) + trailer
            return try M(decoding: ByteBuffer(bytes: changed), version: version) == expected
        }
        decodePrefix = { length throws(ProtocolError) in
            _ = try M(decoding: ByteBuffer(bytes: bytes[..<length]), version: version)
        }
    }
}

/// A request or response with its header, as kafka-python frames it (without the size).
struct HeaderFixture: Sendable, CustomTestStringConvertible {
    let apiKey: Int16
    let version: Int16
    let correlationID: Int32
    let clientID: String?
    let hex: String
    /// How many of the bytes are the body (the rest, at the front, is the header).
    let bodyBytes: Int
    var testDescription: String { "api \(apiKey) v\(version)" }
}

@Suite struct GoldenBytesTests {
    /// Every API and version Brook defines has fixtures (kafka-python knows them all).
    @Test func everyDefinedVersionHasFixtures() {
        let fixtures = GoldenFixtures.all
        for entry in ApiCatalog.entries {
            for version in entry.versions {
                for kind in ["Request", "Response"] {
                    let found = fixtures.filter { $0.apiName == entry.name && $0.kind == kind && $0.version == version }
                    #expect(found.count >= 2, "\(entry.name)\(kind) v\(version): no full and sparse fixtures")
                }
            }
        }
        #expect(fixtures.count >= 2 * 2 * ApiCatalog.entries.reduce(0) { $0 + $1.versions.count })
    }

    /// kafka-python's bytes decode to the expected value, and Brook re-encodes them exactly.
    @Test(arguments: GoldenFixtures.all)
    func decodesAndReencodes(_ fixture: GoldenFixture) {
        fixture.check(fixture)
    }

    /// kafka-python writes a tagged struct whose fields are all at their defaults (Java Kafka and
    /// Brook leave it out). Brook must read it, and writes the shorter form.
    @Test func taggedStructsAtDefaultAreReadAndDropped() {
        let fixtures = GoldenFixtures.all.filter { $0.reencodedBytes != nil }
        #expect(fixtures.count >= 3)
        #expect(fixtures.contains { $0.apiName == "Produce" && $0.version == 10 })
        #expect(fixtures.contains { $0.apiName == "Fetch" && $0.kind == "Request" && $0.version == 15 })
        for fixture in fixtures {
            #expect(fixture.reencodedBytes!.count < fixture.bytes.count)
            fixture.check(fixture)
        }
    }

    // Some fixed layouts checked byte by byte against the protocol guide, so that the fixtures
    // above are not the only evidence.

    /// ApiVersions v0 response from the protocol guide's layout, written by hand:
    /// error_code INT16, [api_key INT16 min_version INT16 max_version INT16].
    @Test func handWrittenApiVersionsV0Response() throws {
        let wire: [UInt8] = [
            0x00, 0x23,              // error_code 35 (UNSUPPORTED_VERSION)
            0x00, 0x00, 0x00, 0x02,  // 2 api keys
            0x00, 0x00, 0x00, 0x00, 0x00, 0x0C,  // Produce 0-12
            0x00, 0x12, 0x00, 0x00, 0x00, 0x04,  // ApiVersions 0-4
        ]
        let response = try decode(ApiVersionsResponse.self, wire, version: 0)
        #expect(response.errorCode == 35)
        #expect(response.apiKeys == [.init(apiKey: 0, minVersion: 0, maxVersion: 12), .init(apiKey: 18, minVersion: 0, maxVersion: 4)])
        #expect(encode(response, version: 0) == wire)
    }

    /// DescribeCluster v0 request (flexible from v0): include_cluster_authorized_operations BOOL,
    /// then an empty tagged-field section.
    @Test func handWrittenDescribeClusterV0Request() throws {
        let wire: [UInt8] = [0x01, 0x00]
        let request = try decode(DescribeClusterRequest.self, wire, version: 0)
        #expect(request.includeClusterAuthorizedOperations)
        #expect(request.endpointType == 1)  // v1+ only: stays at its default
        #expect(encode(request, version: 0) == wire)
    }

    /// Metadata v9 request (flexible): topics COMPACT_NULLABLE_ARRAY of (name COMPACT_STRING,
    /// tagged fields), allow_auto_topic_creation BOOL, include_cluster_authorized_operations BOOL,
    /// include_topic_authorized_operations BOOL, tagged fields.
    @Test func handWrittenMetadataV9Request() throws {
        let wire: [UInt8] = [
            0x02,                   // one topic (count + 1)
            0x02, 0x61, 0x00,       // name "a", no tagged fields
            0x00,                   // allow_auto_topic_creation false
            0x00,                   // include_cluster_authorized_operations false
            0x01,                   // include_topic_authorized_operations true
            0x00,                   // no tagged fields
        ]
        let request = try decode(MetadataRequest.self, wire, version: 9)
        #expect(request.topics == [.init(name: "a")])
        #expect(!request.allowAutoTopicCreation)
        #expect(request.includeTopicAuthorizedOperations)
        #expect(encode(request, version: 9) == wire)
        // null topics: compact length 0
        let all = MetadataRequest(topics: nil, allowAutoTopicCreation: true)
        #expect(encode(all, version: 9) == [0x00, 0x01, 0x00, 0x00, 0x00])
        // v0 cannot say null: an empty array (every topic) is written instead.
        #expect(encode(all, version: 0) == [0x00, 0x00, 0x00, 0x00])
        #expect(encode(all, version: 1) == [0xFF, 0xFF, 0xFF, 0xFF])
    }
}
