import BrookCore
import BrookProtocol
import NIOCore
import Testing

/// Brook's encoder against its own decoder, tagged fields, and hostile input.
@Suite struct CodecTests {
    // MARK: round trips

    /// Every message type in every version it defines, with every field of that version set
    /// ("full": nullable fields set, tagged fields away from their defaults) and with nullable
    /// fields null and tagged fields at their defaults ("sparse"). The values are the golden
    /// fixtures' (GoldenFixtures.swift), encoded here by Brook rather than kafka-python.
    @Test(arguments: GoldenFixtures.all)
    func roundTrip(_ fixture: GoldenFixture) {
        fixture.roundTrip()
    }

    /// A field outside the version it is encoded in is not written, and decodes as its default.
    @Test func fieldsOutsideTheirVersionsAreDropped() throws {
        let request = MetadataRequest(topics: [.init(topicId: KafkaUUID(high: 1, low: 2), name: "t")],
                                      allowAutoTopicCreation: false, includeClusterAuthorizedOperations: true,
                                      includeTopicAuthorizedOperations: true)
        let v0 = try decode(MetadataRequest.self, encode(request, version: 0), version: 0)
        #expect(v0 == MetadataRequest(topics: [.init(name: "t")]))
        let v11 = try decode(MetadataRequest.self, encode(request, version: 11), version: 11)
        #expect(v11.includeClusterAuthorizedOperations == false)  // versions 8-10 only
        #expect(v11.topics == request.topics)
        // v0: ApiVersions request has no fields at all.
        #expect(encode(ApiVersionsRequest(clientSoftwareName: "x", clientSoftwareVersion: "1"), version: 0) == [])
    }

    /// A null string or array where the version cannot say null is written as empty.
    @Test func nullWhereTheVersionHasNoNullIsWrittenEmpty() throws {
        let response = DeleteTopicsResponse(responses: [.init(name: nil, errorCode: 3)])
        let v5 = try decode(DeleteTopicsResponse.self, encode(response, version: 5), version: 5)
        #expect(v5.responses[0].name == "")
        let v6 = try decode(DeleteTopicsResponse.self, encode(response, version: 6), version: 6)
        #expect(v6.responses[0].name == nil)
    }

    // MARK: tagged fields

    /// A tagged field at its default value is not written; away from it, it is.
    @Test func taggedFieldAtDefaultIsNotWritten() throws {
        let plain = ApiVersionsResponse(errorCode: 0, apiKeys: [], throttleTimeMs: 0)
        let base = encode(plain, version: 3)
        #expect(base == [0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00])
        var explicitDefault = plain
        explicitDefault.finalizedFeaturesEpoch = -1
        explicitDefault.zkMigrationReady = false
        explicitDefault.supportedFeatures = []
        #expect(encode(explicitDefault, version: 3) == base)

        var epoch = plain
        epoch.finalizedFeaturesEpoch = 5
        let withEpoch = encode(epoch, version: 3)
        // count 1, tag 1, size 8, int64
        #expect(withEpoch == [0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 5])
        #expect(try decode(ApiVersionsResponse.self, withEpoch, version: 3) == epoch)

        var ready = epoch
        ready.zkMigrationReady = true
        let both = encode(ready, version: 3)
        #expect(both.count == withEpoch.count + 3)
        #expect(both[7] == 2)  // two tagged fields, in tag order: 1 then 3
        #expect(Array(both.suffix(3)) == [0x03, 0x01, 0x01])
        #expect(try decode(ApiVersionsResponse.self, both, version: 3) == ready)
    }

    @Test func taggedStructsAndStringsAtDefaultAreNotWritten() throws {
        // Fetch request: ClusterId (tag 0, default null), ReplicaState (tag 1, v15+).
        let fetch = FetchRequest(maxWaitMs: 10, minBytes: 1)
        let base15 = encode(fetch, version: 15)
        var withCluster = fetch
        withCluster.clusterId = "c"
        #expect(encode(withCluster, version: 15).count == base15.count + 4)  // tag, size, "c" (02 63)
        var emptyCluster = fetch
        emptyCluster.clusterId = ""  // not the default (null): written
        #expect(encode(emptyCluster, version: 15).count == base15.count + 3)
        var replica = fetch
        replica.replicaState = .init(replicaId: NodeID(-1), replicaEpoch: -1)  // the default
        #expect(encode(replica, version: 15) == base15)
        replica.replicaState = .init(replicaId: NodeID(2), replicaEpoch: 7)
        let withReplica = encode(replica, version: 15)
        #expect(withReplica.count == base15.count + 2 + 4 + 8 + 1)  // tag, size, int32, int64, struct's tags
        #expect(try decode(FetchRequest.self, withReplica, version: 15) == replica)
        // v14 has ReplicaId in the body instead, and no ReplicaState.
        #expect(encode(replica, version: 14) == encode(fetch, version: 14))

        // Produce response: CurrentLeader (tag 0 of each partition, v10+).
        var partition = ProduceResponse.TopicProduceResponse.PartitionProduceResponse(index: 0, errorCode: 6, baseOffset: Offset(-1))
        let atDefault = ProduceResponse(responses: [.init(name: "t", partitionResponses: [partition])])
        let defaultBytes = encode(atDefault, version: 10)
        partition.currentLeader = .init(leaderId: NodeID(1), leaderEpoch: LeaderEpoch(4))
        let moved = ProduceResponse(responses: [.init(name: "t", partitionResponses: [partition])])
        #expect(encode(moved, version: 10).count == defaultBytes.count + 2 + 8 + 1)
        #expect(encode(moved, version: 9) == encode(atDefault, version: 9))  // not in v9

        // CreateTopics response: TopicConfigErrorCode (int16, tag 0, v5+).
        var topic = CreateTopicsResponse.CreatableTopicResult(name: "t")
        let plainTopic = encode(CreateTopicsResponse(topics: [topic]), version: 5)
        topic.topicConfigErrorCode = 40
        #expect(encode(CreateTopicsResponse(topics: [topic]), version: 5).count == plainTopic.count + 4)

        // Fetch request partition: ReplicaDirectoryId (uuid, tag 0, v17).
        var p = FetchRequest.FetchTopic.FetchPartition(partition: 0, fetchOffset: Offset(0), partitionMaxBytes: 100)
        let plainFetch = encode(FetchRequest(topics: [.init(partitions: [p])]), version: 17)
        p.replicaDirectoryId = KafkaUUID(high: 9, low: 9)
        #expect(encode(FetchRequest(topics: [.init(partitions: [p])]), version: 17).count == plainFetch.count + 18)
    }

    /// Unknown tags in the top-level tagged section are skipped, for every flexible fixture whose
    /// top-level section is empty (its last byte).
    @Test func unknownTopLevelTagsAreSkipped() throws {
        let fixtures = GoldenFixtures.all.filter { $0.flexible && $0.variant == "sparse" }
        #expect(fixtures.count > 50)
        // two fields: tag 48 with 3 bytes, tag 10000 (varint 90 4e) with none
        let trailer: [UInt8] = [0x02, 0x30, 0x03, 0xAA, 0xBB, 0xCC, 0x90, 0x4E, 0x00]
        for fixture in fixtures {
            #expect(fixture.bytes.last == 0, "\(fixture.testDescription)")
            #expect(try fixture.decodeWithTrailer(trailer), "\(fixture.testDescription): unknown tags changed the value")
            // A tagged field that runs past the end is refused.
            #expect(throws: ProtocolError.self, "\(fixture.testDescription)") {
                _ = try fixture.decodeWithTrailer([0x01, 0x30, 0x05, 0xAA])
            }
        }
    }

    /// Unknown tags inside a nested struct, and a known tag in a version that lacks its field.
    @Test func nestedUnknownTagsAndOutOfVersionTagsAreSkipped() throws {
        let wire: [UInt8] = [
            0x02,                                 // one topic
            0x02, 0x61,                           // name "a"
            0x01, 0x05, 0x02, 0x11, 0x22,         // the topic struct's tags: tag 5, 2 bytes
            0x01, 0x00, 0x00,                     // three bools
            0x00,                                 // top-level tags
        ]
        let request = try decode(MetadataRequest.self, wire, version: 9)
        #expect(request == MetadataRequest(topics: [.init(name: "a")], allowAutoTopicCreation: true))

        // Fetch v12: tag 1 (ReplicaState) exists only from v15; in v12 it is an unknown tag.
        var fetch = encode(FetchRequest(maxWaitMs: 5), version: 12)
        #expect(fetch.last == 0)
        fetch.removeLast()
        fetch += [0x01, 0x01, 0x0D, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7, 0x00]
        let decoded = try decode(FetchRequest.self, fetch, version: 12)
        #expect(decoded == FetchRequest(maxWaitMs: 5))
        #expect(decoded.replicaState == .init())
    }

    // MARK: hostile input

    /// Every strict prefix of every fixture is refused with a ProtocolError, and no length
    /// crashes the decoder.
    @Test(arguments: GoldenFixtures.all)
    func truncatedInputThrows(_ fixture: GoldenFixture) {
        var accepted: [Int] = []
        for length in 0..<fixture.bytes.count {
            do {
                try fixture.decodePrefix(length)
                accepted.append(length)
            } catch {
                // ProtocolError (typed throws)
            }
        }
        #expect(accepted.isEmpty, "\(fixture.testDescription): prefixes of \(accepted) bytes decoded")
    }

    @Test func trailingBytesAreRefused() {
        var wire = encode(MetadataRequest(topics: nil), version: 9)
        wire.append(0)
        #expect(throws: ProtocolError.self) { try decode(MetadataRequest.self, wire, version: 9) }
    }

    @Test func hugeArrayCountsAreRefused() {
        // Produce v3: transactional id null, acks, timeout, then 2^31-1 topics in 4 bytes.
        let classic: [UInt8] = [0xFF, 0xFF, 0x00, 0x01, 0x00, 0x00, 0x03, 0xE8, 0x7F, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00]
        #expect(throws: ProtocolError.self) { try decode(ProduceRequest.self, classic, version: 3) }
        // The count may not exceed the bytes left even when they look plentiful.
        let tight: [UInt8] = [0xFF, 0xFF, 0x00, 0x01, 0x00, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00]
        #expect(throws: ProtocolError.self) { try decode(ProduceRequest.self, tight, version: 3) }
        // Produce v9: compact count 0xFFFFFFFF - 1 (five-byte varint).
        let compact: [UInt8] = [0x00, 0x00, 0x01, 0x00, 0x00, 0x03, 0xE8, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00]
        #expect(throws: ProtocolError.self) { try decode(ProduceRequest.self, compact, version: 9) }
        // A negative count other than -1.
        let negative: [UInt8] = [0xFF, 0xFF, 0x00, 0x01, 0x00, 0x00, 0x03, 0xE8, 0xFF, 0xFF, 0xFF, 0xFE]
        #expect(throws: ProtocolError.self) { try decode(ProduceRequest.self, negative, version: 3) }
        // A nullable array's count past the end (Metadata v1 topics).
        #expect(throws: ProtocolError.self) { try decode(MetadataRequest.self, [0x00, 0x10, 0x00, 0x00], version: 1) }
        // Primitive arrays too: DescribeLogDirs v1 partitions [int32].
        let partitions: [UInt8] = [0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x61, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]
        #expect(throws: ProtocolError.self) { try decode(DescribeLogDirsRequest.self, partitions, version: 1) }
    }

    @Test func hugeStringAndBytesLengthsAreRefused() {
        // Produce v3 transactional id of 32767 bytes, 3 present.
        let string: [UInt8] = [0x7F, 0xFF, 0x61, 0x62, 0x63]
        #expect(throws: ProtocolError.self) { try decode(ProduceRequest.self, string, version: 3) }
        // Negative string length other than -1.
        #expect(throws: ProtocolError.self) { try decode(ProduceRequest.self, [0xFF, 0xFE, 0x00, 0x00], version: 3) }
        // Compact string length 2^31 (varint 80 80 80 80 08).
        let compact: [UInt8] = [0x80, 0x80, 0x80, 0x80, 0x08, 0x61]
        #expect(throws: ProtocolError.self) { try decode(ProduceRequest.self, compact, version: 9) }
        // Records of 2^31-1 bytes in a one-partition Produce v3.
        var records: [UInt8] = [0xFF, 0xFF, 0x00, 0x01, 0x00, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x74,
                                0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]
        records += [0x7F, 0xFF, 0xFF, 0xFF, 0x01, 0x02]
        #expect(throws: ProtocolError.self) { try decode(ProduceRequest.self, records, version: 3) }
        // A varint longer than five bytes.
        #expect(throws: ProtocolError.self) {
            try decode(ProduceRequest.self, [0x80, 0x80, 0x80, 0x80, 0x80, 0x01], version: 9)
        }
        // Null where a string is never nullable (Produce v3 topic name).
        let nullName: [UInt8] = [0xFF, 0xFF, 0x00, 0x01, 0x00, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x00, 0x01, 0xFF, 0xFF,
                                 0x00, 0x00, 0x00, 0x00]
        #expect(throws: ProtocolError.self) { try decode(ProduceRequest.self, nullName, version: 3) }
    }

    /// Kafka refuses null (-1) for an array or bytes field that is never nullable
    /// ("non-nullable field topicData was serialized as null"), and so does Brook.
    @Test func nullForANonNullableArrayIsRefused() {
        // Produce v3: transactional id null, acks 1, timeout 1000, topic_data -1.
        let wire: [UInt8] = [0xFF, 0xFF, 0x00, 0x01, 0x00, 0x00, 0x03, 0xE8, 0xFF, 0xFF, 0xFF, 0xFF]
        #expect(throws: ProtocolError.self) { try decode(ProduceRequest.self, wire, version: 3) }
    }

    /// A field nullable only from some version (`nullable=A+`) must refuse null in the versions
    /// before, as Kafka does ("non-nullable field ... was serialized as null").
    @Test func nullBeforeAFieldBecomesNullableIsRefused() throws {
        // Metadata v9: topic name, nullable only from v10.
        #expect(throws: ProtocolError.self) {
            try decode(MetadataRequest.self, [0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00], version: 9)
        }
        // Metadata v0: topics array, nullable only from v1.
        #expect(throws: ProtocolError.self) {
            try decode(MetadataRequest.self, [0xFF, 0xFF, 0xFF, 0xFF], version: 0)
        }
        // From the version where null is allowed, it is read as null.
        #expect(try decode(MetadataRequest.self, [0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00], version: 10)
                .topics?.first?.name == nil)
        #expect(try decode(MetadataRequest.self, [0xFF, 0xFF, 0xFF, 0xFF], version: 1).topics == nil)
    }

    @Test func hugeTaggedFieldCountsAndSizesAreRefused() {
        let body: [UInt8] = [0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]  // ApiVersions v3 response before its tags
        #expect(throws: ProtocolError.self) { try decode(ApiVersionsResponse.self, body + [0xFF, 0xFF, 0xFF, 0xFF, 0x0F], version: 3) }
        #expect(throws: ProtocolError.self) { try decode(ApiVersionsResponse.self, body + [0x01, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F], version: 3) }
        // A known tag whose content is shorter than its type needs.
        #expect(throws: ProtocolError.self) { try decode(ApiVersionsResponse.self, body + [0x01, 0x01, 0x02, 0x00, 0x01], version: 3) }
    }

    /// WireReader's own checks, below the generated code.
    @Test func wireReaderPrimitives() throws {
        var reader = WireReader(ByteBuffer(bytes: [0xAC, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]))
        #expect(try reader.readUnsignedVarint() == 300)
        #expect(try reader.readUnsignedVarint() == UInt32.max)
        #expect(throws: ProtocolError.self) { try reader.readInt8() }

        reader = WireReader(ByteBuffer(bytes: [0x00, 0x00, 0x00, 0x03, 0x01, 0x02]))
        #expect(throws: ProtocolError.self) { try reader.readArrayCount(compact: false) }
        reader = WireReader(ByteBuffer(bytes: [0x00]))
        #expect(try reader.readNullableArrayCount(compact: true) == nil)
        reader = WireReader(ByteBuffer(bytes: [0xFF, 0xFF]))
        #expect(try reader.readNullableString(compact: false) == nil)
        reader = WireReader(ByteBuffer(bytes: [0x00, 0x02, 0xC3, 0xA9]))
        #expect(try reader.readString(compact: false) == "é")
        reader = WireReader(ByteBuffer(bytes: [0x03, 0xC3, 0xA9]))
        #expect(try reader.readString(compact: true) == "é")
        reader = WireReader(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF]))
        #expect(try reader.readNullableBytes(compact: false) == nil)
        reader = WireReader(ByteBuffer(bytes: [0x01]))
        #expect(try reader.readBytes(compact: true) == ByteBuffer())

        var writer = WireWriter()
        writer.writeUnsignedVarint(300)
        writer.writeUnsignedVarint(0)
        writer.writeUnsignedVarint(UInt32.max)
        writer.writeString("é", compact: true)
        writer.writeNullableString(nil, compact: true, nullable: true)
        writer.writeNullableString(nil, compact: false, nullable: false)
        writer.writeUInt16(0xF001)
        #expect(writer.buffer.bytes == [0xAC, 0x02, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x03, 0xC3, 0xA9, 0x00, 0x00, 0x00, 0xF0, 0x01])
    }

    @Test func uuidText() {
        let id = KafkaUUID(high: 0x0123_4567_89AB_CDEF, low: 0xFEDC_BA98_7654_3210)
        #expect(KafkaUUID(id.description) == id)
        #expect(KafkaUUID.zero.description == "AAAAAAAAAAAAAAAAAAAAAA")
        #expect(KafkaUUID("not-a-uuid") == nil)
        var generator = SeededRandom(seed: 3)
        for _ in 0..<20 {
            let random = KafkaUUID.random(using: &generator)
            #expect(random != .zero)
            #expect(KafkaUUID(random.description) == random)
            #expect(random.description.count == 22)
        }
    }

    /// Kafka's Uuid.randomUuid() never makes an id whose text starts with "-" (command-line tools
    /// would take it for an option); 1 in 64 random ids does.
    @Test func randomUUIDsNeverStartWithADash() {
        var generator = SeededRandom(seed: 11)
        let ids = (0..<1000).map { _ in KafkaUUID.random(using: &generator).description }
        #expect(!ids.contains { $0.hasPrefix("-") })
    }
}
