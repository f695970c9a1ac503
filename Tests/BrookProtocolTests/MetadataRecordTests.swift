import BrookCore
import BrookProtocol
import Foundation
import NIOCore
import Testing

/// KRaft metadata records (protocol/metadata/*.def) and their frame (MetadataRecord): round
/// trips, golden bytes written here from Kafka's format by a small encoder of the test's own
/// (never the generated code), and refusals of bad input.
@Suite struct MetadataRecordTests {
    static let topic = KafkaUUID(high: 0x0102_0304_0506_0708, low: 0x090A_0B0C_0D0E_0F10)
    static let incarnation = KafkaUUID(high: 0x1111_2222_3333_4444, low: 0x5555_6666_7777_8888)
    static let directories = [KafkaUUID(high: 0xA1, low: 0xA2), KafkaUUID(high: 0xB1, low: 0xB2),
                              KafkaUUID(high: 0xC1, low: 0xC2)]

    static func nodes(_ ids: Int32...) -> [NodeID] { ids.map(NodeID.init) }

    /// One record of every type, every field away from its default (tagged fields included).
    static let samples: [MetadataRecord] = [
        .registerBroker(RegisterBrokerRecord(
            brokerId: NodeID(1), isMigratingZkBroker: true, incarnationId: incarnation, brokerEpoch: 10,
            endPoints: [.init(name: "PLAINTEXT", host: "broker-1", port: 9092, securityProtocol: 0),
                        .init(name: "SSL", host: "broker-1", port: 65535, securityProtocol: 1)],
            features: [.init(name: "metadata.version", minSupportedVersion: 1, maxSupportedVersion: 21)],
            rack: "rack-a", fenced: false, inControlledShutdown: true, logDirs: Array(directories[0...1]))),
        .unregisterBroker(UnregisterBrokerRecord(brokerId: NodeID(2), brokerEpoch: 11)),
        .topic(TopicRecord(name: "orders", topicId: topic)),
        .partition(PartitionRecord(
            partitionId: 3, topicId: topic, replicas: nodes(1, 2, 3), isr: nodes(1, 2), removingReplicas: nodes(3),
            addingReplicas: nodes(4), leader: NodeID(1), leaderRecoveryState: 1, leaderEpoch: LeaderEpoch(7),
            partitionEpoch: 9, directories: directories, eligibleLeaderReplicas: nodes(2), lastKnownElr: nodes(3))),
        .config(ConfigRecord(resourceType: 2, resourceName: "orders", name: "retention.ms", value: "1000")),
        .partitionChange(PartitionChangeRecord(
            partitionId: 3, topicId: topic, isr: nodes(1, 2), leader: NodeID(2), replicas: nodes(1, 2, 3),
            removingReplicas: nodes(3), addingReplicas: nodes(4), leaderRecoveryState: 0, directories: directories,
            eligibleLeaderReplicas: nodes(1), lastKnownElr: nodes(3))),
        .fenceBroker(FenceBrokerRecord(id: NodeID(3), epoch: 12)),
        .unfenceBroker(UnfenceBrokerRecord(id: NodeID(3), epoch: 13)),
        .removeTopic(RemoveTopicRecord(topicId: topic)),
        .featureLevel(FeatureLevelRecord(name: "metadata.version", featureLevel: 21)),
        .producerIds(ProducerIdsRecord(brokerId: NodeID(1), brokerEpoch: 10, nextProducerId: ProducerID(5000))),
        .brokerRegistrationChange(BrokerRegistrationChangeRecord(
            brokerId: NodeID(1), brokerEpoch: 10, fenced: -1, inControlledShutdown: 1, logDirs: [directories[2]])),
        .noOp(NoOpRecord()),
        .userScramCredential(UserScramCredentialRecord(name: "alice", mechanism: 2, salt: ByteBuffer(bytes: [1, 2, 3]),
                                                       storedKey: ByteBuffer(bytes: [4, 5, 6]), serverKey: ByteBuffer(bytes: [7, 8]), iterations: 8192)),
        .removeUserScramCredential(RemoveUserScramCredentialRecord(name: "bob", mechanism: 1)),
        .accessControlEntry(AccessControlEntryRecord(id: topic, resourceType: 2, resourceName: "orders", patternType: 4,
                                                     principal: "User:alice", host: "*", operation: 3, permissionType: 3)),
        .removeAccessControlEntry(RemoveAccessControlEntryRecord(id: topic)),
        .clientQuota(ClientQuotaRecord(entity: [.init(entityType: "user", entityName: "alice"), .init(entityType: "client-id", entityName: nil)],
                                       key: "producer_byte_rate", value: 1048576.5, remove: true)),
    ]

    // MARK: what is defined

    /// Every .def of protocol/metadata has a case, and each record type has its own key.
    @Test func everyDefinedRecordHasACase() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("protocol/metadata")
        let defined = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".def") }.map { String($0.dropLast(4)) }
        #expect(Set(defined) == Set(MetadataRecord.bodyTypes.map { $0.messageName }))
        let keys = MetadataRecord.bodyTypes.map { $0.apiKey }
        #expect(Set(keys).count == keys.count)
        #expect(Set(Self.samples.map(\.apiKey)) == Set(keys), "a record type has no sample")
        #expect(keys.sorted() == [0, 1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 14, 15, 17, 18, 19, 20, 22])
    }

    /// The decoder maps each record type to its own case: a default body of every type, framed
    /// by hand, decodes to that type.
    @Test func everyRecordTypeDecodesToItsType() throws {
        for type in MetadataRecord.bodyTypes {
            let body = type.init()
            var writer = WireWriter()
            body.encode(to: &writer, version: type.versions.upperBound)
            let frame = [1, UInt8(type.apiKey), UInt8(type.versions.upperBound)] + Array(writer.buffer.readableBytesView)
            let record = try MetadataRecord(decoding: frame)
            #expect(ObjectIdentifier(Swift.type(of: record.body)) == ObjectIdentifier(type))
            #expect(record.apiKey == type.apiKey)
        }
    }

    /// Records are not APIs: ApiCatalog (what ApiVersions advertises) holds none of them.
    @Test func apiCatalogHoldsNoRecords() {
        let recordNames = Set(MetadataRecord.bodyTypes.map { $0.messageName })
        #expect(ApiCatalog.entries.allSatisfy { !recordNames.contains($0.name) && !$0.name.hasSuffix("Record") })
        #expect(ApiCatalog.entry(forKey: PartitionRecord.apiKey)?.name == "Metadata")
    }

    // MARK: round trips

    @Test(arguments: samples)
    func roundTrip(_ record: MetadataRecord) throws {
        let bytes = record.encoded()
        let type = Swift.type(of: record.body)
        #expect(Array(bytes.prefix(3)) == [1, UInt8(type.apiKey), UInt8(type.versions.upperBound)])
        #expect(try MetadataRecord(decoding: bytes) == record)
        #expect(try MetadataRecord(decoding: ByteBuffer(bytes: bytes)) == record)
    }

    /// The samples set every field: none is left at its default, so the round trip covers it.
    @Test(arguments: samples)
    func samplesSetEveryField(_ record: MetadataRecord) {
        let defaults = Mirror(reflecting: Swift.type(of: record.body).init()).children
        for (field, initial) in zip(Mirror(reflecting: record.body).children, defaults) {
            #expect(String(describing: field.value) != String(describing: initial.value),
                    "\(record.description): \(field.label ?? "?") is at its default")
        }
    }

    // MARK: golden bytes

    @Test func partitionRecordGolden() throws {
        guard case .partition(let partition) = Self.samples[3] else { Issue.record("sample 3"); return }
        var bytes = KafkaBytes.frame(type: 3, version: 2)
        bytes.int32(3)
        bytes.uuid(Self.topic)
        bytes.int32Array([1, 2, 3])
        bytes.int32Array([1, 2])
        bytes.int32Array([3])
        bytes.int32Array([4])
        bytes.int32(1)  // leader
        bytes.int32(7)  // leader epoch
        bytes.int32(9)  // partition epoch
        bytes.uuidArray(Self.directories)
        bytes.taggedFields([
            (0, KafkaBytes { $0.int8(1) }),  // leader recovery state
            (1, KafkaBytes { $0.int32Array([2]) }),  // eligible leader replicas
            (2, KafkaBytes { $0.int32Array([3]) }),  // last known ELR
        ])
        try expectGolden(.partition(partition), bytes.bytes)
    }

    /// Version 0 (Kafka before 3.7): no directories, no ELR; an ELR tag there is not read.
    @Test func partitionRecordVersion0() throws {
        var bytes = KafkaBytes.frame(type: 3, version: 0)
        bytes.int32(0)
        bytes.uuid(Self.topic)
        for replicas: [Int32] in [[1], [1], [], []] { bytes.int32Array(replicas) }
        bytes.int32(1)
        bytes.int32(0)
        bytes.int32(0)
        bytes.taggedFields([(1, KafkaBytes { $0.int32Array([1]) })])
        let decoded = try MetadataRecord(decoding: bytes.bytes)
        let expected = PartitionRecord(partitionId: 0, topicId: Self.topic, replicas: Self.nodes(1), isr: Self.nodes(1),
                                       leader: NodeID(1), leaderEpoch: LeaderEpoch(0), partitionEpoch: 0)
        #expect(decoded == .partition(expected))
    }

    @Test func partitionChangeRecordGolden() throws {
        let topic: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
        // Nothing changed but the partition epoch: no tagged fields at all.
        let plain = PartitionChangeRecord(partitionId: 3, topicId: Self.topic)
        try expectGolden(.partitionChange(plain), [0x01, 0x05, 0x02, 0x00, 0x00, 0x00, 0x03] + topic + [0x00])
        // The ISR shrank to [1, 2] and 2 leads: tags 0 and 1, in tag order.
        var elected = plain
        elected.isr = Self.nodes(1, 2)
        elected.leader = NodeID(2)
        try expectGolden(.partitionChange(elected), [0x01, 0x05, 0x02, 0x00, 0x00, 0x00, 0x03] + topic + [
            0x02,
            0x00, 0x09, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,
            0x01, 0x04, 0x00, 0x00, 0x00, 0x02,
        ])
        // No leader now (-1) is a change, unlike the default -2; an empty ISR is not null.
        var leaderless = plain
        leaderless.isr = []
        leaderless.leader = NodeID(-1)
        try expectGolden(.partitionChange(leaderless), [0x01, 0x05, 0x02, 0x00, 0x00, 0x00, 0x03] + topic + [
            0x02, 0x00, 0x01, 0x01, 0x01, 0x04, 0xFF, 0xFF, 0xFF, 0xFF,
        ])
        // Every tag, written by the helper: 0-7 then directories' 8.
        guard case .partitionChange(let full) = Self.samples[5] else { Issue.record("sample 5"); return }
        var bytes = KafkaBytes.frame(type: 5, version: 2)
        bytes.int32(3)
        bytes.uuid(Self.topic)
        bytes.taggedFields([
            (0, KafkaBytes { $0.int32Array([1, 2]) }),
            (1, KafkaBytes { $0.int32(2) }),
            (2, KafkaBytes { $0.int32Array([1, 2, 3]) }),
            (3, KafkaBytes { $0.int32Array([3]) }),
            (4, KafkaBytes { $0.int32Array([4]) }),
            (5, KafkaBytes { $0.int8(0) }),
            (6, KafkaBytes { $0.int32Array([1]) }),
            (7, KafkaBytes { $0.int32Array([3]) }),
            (8, KafkaBytes { $0.uuidArray(Self.directories) }),
        ])
        try expectGolden(.partitionChange(full), bytes.bytes)
    }

    @Test func registerBrokerRecordGolden() throws {
        guard case .registerBroker(let broker) = Self.samples[0] else { Issue.record("sample 0"); return }
        var bytes = KafkaBytes.frame(type: 0, version: 3)
        bytes.int32(1)
        bytes.int8(1)  // is migrating ZK broker (v2+)
        bytes.uuid(Self.incarnation)
        bytes.int64(10)
        bytes.uvarint(3)  // two endpoints
        for (name, port, security): (String, UInt16, Int16) in [("PLAINTEXT", 9092, 0), ("SSL", 65535, 1)] {
            bytes.string(name)
            bytes.string("broker-1")
            bytes.uint16(port)
            bytes.int16(security)
            bytes.uvarint(0)  // the endpoint's tagged fields
        }
        bytes.uvarint(2)  // one feature
        bytes.string("metadata.version")
        bytes.int16(1)
        bytes.int16(21)
        bytes.uvarint(0)
        bytes.string("rack-a")
        bytes.int8(0)  // fenced
        bytes.int8(1)  // in controlled shutdown (v1+)
        bytes.taggedFields([(0, KafkaBytes { $0.uuidArray(Array(Self.directories[0...1])) })])
        try expectGolden(.registerBroker(broker), bytes.bytes)
        // Port 9092 is 0x2384, big-endian, two bytes.
        #expect(bytes.bytes.firstRange(of: [0x23, 0x84, 0x00, 0x00, 0x00]) != nil)
    }

    /// Version 0 (no ZK migration flag, no controlled shutdown, no log dirs), with a null rack.
    @Test func registerBrokerRecordVersion0() throws {
        var bytes = KafkaBytes.frame(type: 0, version: 0)
        bytes.int32(4)
        bytes.uuid(Self.incarnation)
        bytes.int64(-1)
        bytes.uvarint(1)  // no endpoints
        bytes.uvarint(1)  // no features
        bytes.uvarint(0)  // null rack
        bytes.int8(1)
        bytes.uvarint(0)
        let expected = RegisterBrokerRecord(brokerId: NodeID(4), incarnationId: Self.incarnation, brokerEpoch: -1, rack: nil)
        #expect(try MetadataRecord(decoding: bytes.bytes) == .registerBroker(expected))
    }

    @Test func smallRecordsGolden() throws {
        try expectGolden(.fenceBroker(FenceBrokerRecord(id: NodeID(3), epoch: 12)),
                         [0x01, 0x07, 0x00, 0x00, 0x00, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 0x0C, 0x00])
        try expectGolden(.noOp(NoOpRecord()), [0x01, 0x14, 0x00, 0x00])
        try expectGolden(.config(ConfigRecord(resourceType: 4, resourceName: "", name: "x", value: nil)),
                         [0x01, 0x04, 0x00, 0x04, 0x01, 0x02, 0x78, 0x00, 0x00])
        try expectGolden(.producerIds(ProducerIdsRecord(brokerId: NodeID(1), nextProducerId: ProducerID(1000))),
                         [0x01, 0x0F, 0x00, 0, 0, 0, 1] + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
                             + [0, 0, 0, 0, 0, 0, 0x03, 0xE8, 0x00])
        // BrokerRegistrationChangeRecord v2: only the changed tag.
        try expectGolden(.brokerRegistrationChange(BrokerRegistrationChangeRecord(brokerId: NodeID(1), brokerEpoch: 5, fenced: 1)),
                         [0x01, 0x11, 0x02, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0x01, 0x00, 0x01, 0x01])
    }

    func expectGolden(_ record: MetadataRecord, _ expected: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let encoded = record.encoded()
        #expect(encoded == expected, "\(record): \(firstDifference(encoded, expected))", sourceLocation: sourceLocation)
        #expect(try MetadataRecord(decoding: expected) == record, sourceLocation: sourceLocation)
    }

    // MARK: refusals

    @Test func refusesUnknownFrameVersions() {
        let valid = Self.samples[2].encoded()
        for frameVersion: UInt8 in [0, 2, 0x7F] {
            #expect(throws: ProtocolError.self) { try MetadataRecord(decoding: [frameVersion] + valid.dropFirst()) }
        }
    }

    @Test func refusesUnknownRecordTypes() {
        // 6 and 10 are Kafka's (IsrChangeRecord, gone; ClientQuotaRecord, not read here); 32768 overflows an int16.
        for type: [UInt8] in [[6], [10], [0x7F], [0x80, 0x80, 0x02]] {
            #expect(throws: ProtocolError.self) { try MetadataRecord(decoding: [1] + type + [0, 0]) }
        }
    }

    @Test func refusesUnsupportedVersions() {
        var partitionV3 = Self.samples[3].encoded()
        partitionV3[2] = 3
        var topicV1 = Self.samples[2].encoded()
        topicV1[2] = 1
        for bytes in [partitionV3, topicV1, [1, 0x14, 0x80, 0x80, 0x02, 0x00], [1, 0x14, 0x01, 0x00]] {
            #expect(throws: ProtocolError.self) { try MetadataRecord(decoding: bytes) }
        }
    }

    @Test func refusesTrailingBytes() {
        for record in Self.samples {
            #expect(throws: ProtocolError.self) { try MetadataRecord(decoding: record.encoded() + [0]) }
        }
    }

    /// Every prefix of every record, fed as a stream would cut it, throws; none traps.
    @Test func refusesEveryTruncation() {
        for record in Self.samples {
            let bytes = record.encoded()
            for length in 0..<bytes.count {
                #expect(throws: ProtocolError.self, "\(record) cut at \(length)") {
                    try MetadataRecord(decoding: Array(bytes.prefix(length)))
                }
            }
        }
    }

    /// A hostile count or length is refused before anything is reserved for it.
    @Test func refusesCountsPastTheEnd() {
        var header = KafkaBytes.frame(type: 3, version: 2)
        header.int32(0)
        header.uuid(Self.topic)
        var hugeArray = header
        hugeArray.uvarint(UInt32.max)  // 2^32 - 2 replicas
        var hugeTag = KafkaBytes.frame(type: 5, version: 2)
        hugeTag.int32(0)
        hugeTag.uuid(Self.topic)
        hugeTag.uvarint(1)
        hugeTag.uvarint(0)
        hugeTag.uvarint(1 << 30)  // a tagged field of 1 GiB
        var hugeTaggedArray = KafkaBytes.frame(type: 5, version: 2)
        hugeTaggedArray.int32(0)
        hugeTaggedArray.uuid(Self.topic)
        hugeTaggedArray.taggedFields([(0, KafkaBytes { $0.uvarint(1000) })])  // 999 ISR members in 2 bytes
        var longVarint = KafkaBytes.frame(type: 2, version: 0)
        longVarint.bytes += [0x81, 0x80, 0x80, 0x80, 0x80, 0x00]  // a 6-byte name length
        for bytes in [hugeArray.bytes, hugeTag.bytes, hugeTaggedArray.bytes, longVarint.bytes] {
            #expect(throws: ProtocolError.self) { try MetadataRecord(decoding: bytes) }
        }
    }

    /// Unknown tags are skipped (a newer Kafka may add some), and a tag is read only in the
    /// versions that define it.
    @Test func unknownTagsAreSkipped() throws {
        var bytes = KafkaBytes.frame(type: 5, version: 1)
        bytes.int32(3)
        bytes.uuid(Self.topic)
        bytes.taggedFields([(1, KafkaBytes { $0.int32(2) }), (6, KafkaBytes { $0.int32Array([1]) }),
                            (40, KafkaBytes { $0.bytes = [1, 2, 3] })])
        let decoded = try MetadataRecord(decoding: bytes.bytes)
        #expect(decoded == .partitionChange(PartitionChangeRecord(partitionId: 3, topicId: Self.topic, leader: NodeID(2))))
    }

    // MARK: logs and the fuzz seeds

    @Test func descriptionNamesTheRecordButNoConfigValue() {
        let config = MetadataRecord.config(ConfigRecord(resourceType: 4, resourceName: "1", name: "sasl.password", value: "hunter2"))
        #expect(config.description.hasPrefix("ConfigRecord("))
        #expect(!config.description.contains("hunter2"))
        #expect(MetadataRecord.noOp(NoOpRecord()).description == "NoOpRecord")
        #expect(Self.samples[6].description == "FenceBrokerRecord(broker 3 epoch 12)")
    }

    /// The committed seeds of the `metadata-record` fuzz target (written by an encoder outside
    /// Brook) are valid frames, so the fuzzer starts past the frame checks.
    @Test func fuzzSeedsDecode() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/corpus/metadata-record")
        let seeds = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix("seed-") }
        #expect(seeds.count >= 5)
        for seed in seeds {
            let bytes = Array(try Data(contentsOf: folder.appendingPathComponent(seed)))
            #expect(throws: Never.self, "\(seed)") { _ = try MetadataRecord(decoding: bytes) }
        }
    }
}

/// Kafka's wire primitives written by hand, for golden bytes that do not come from the
/// generated code: big-endian integers, unsigned varints, compact strings and arrays (length
/// plus one), tagged fields (count, then tag, size, bytes for each, in tag order).
struct KafkaBytes {
    var bytes: [UInt8] = []

    init() {}
    init(_ build: (inout KafkaBytes) -> Void) { build(&self) }

    /// A metadata record's frame: frame version 1, record type, record version.
    static func frame(type: UInt32, version: UInt32) -> KafkaBytes {
        KafkaBytes { $0.uvarint(1); $0.uvarint(type); $0.uvarint(version) }
    }

    mutating func uvarint(_ value: UInt32) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    mutating func bigEndian<T: FixedWidthInteger>(_ value: T) {
        for shift in stride(from: T.bitWidth - 8, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> shift)) }
    }

    mutating func int8(_ value: Int8) { bigEndian(value) }
    mutating func int16(_ value: Int16) { bigEndian(value) }
    mutating func uint16(_ value: UInt16) { bigEndian(value) }
    mutating func int32(_ value: Int32) { bigEndian(value) }
    mutating func int64(_ value: Int64) { bigEndian(value) }
    mutating func uuid(_ id: KafkaUUID) { bigEndian(id.high); bigEndian(id.low) }

    mutating func string(_ value: String) {
        uvarint(UInt32(value.utf8.count + 1))
        bytes += Array(value.utf8)
    }

    mutating func int32Array(_ values: [Int32]) {
        uvarint(UInt32(values.count + 1))
        values.forEach { int32($0) }
    }

    mutating func uuidArray(_ values: [KafkaUUID]) {
        uvarint(UInt32(values.count + 1))
        values.forEach { uuid($0) }
    }

    mutating func taggedFields(_ fields: [(tag: UInt32, field: KafkaBytes)]) {
        uvarint(UInt32(fields.count))
        for (tag, field) in fields {
            uvarint(tag)
            uvarint(UInt32(field.bytes.count))
            bytes += field.bytes
        }
    }
}
