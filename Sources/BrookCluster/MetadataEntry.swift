import BrookCore
import BrookProtocol

/// What one entry of the metadata log (a Raft entry's data) holds: a batch of metadata records,
/// applied all or none, or an opaque entry (`brook quorum append`'s test entries, and any entry
/// written before the metadata image existed), which the image skips.
///
///     0x01, record count (UInt32), then per record its length (UInt32) and its KRaft frame
///     anything else: opaque
///
/// Snapshots hold the image as the records that rebuild it (`MetadataImage.snapshotRecords`),
/// in the same encoding.
public enum MetadataEntry: Equatable, Sendable {
    case records([MetadataRecord])
    case opaque([UInt8])

    public static let recordsTag: UInt8 = 0x01
    /// An entry decoded from the log holds at most this many records (the controller writes at
    /// most ControllerConfig.recordsPerEntryMax); a snapshot may hold many more.
    public static let entryRecordsMax = 100_000
    public static let snapshotRecordsMax = 50_000_000

    public var encoded: [UInt8] {
        switch self {
        case .opaque(let bytes):
            precondition(bytes.first != Self.recordsTag, "an opaque entry may not start with the records tag")
            return bytes
        case .records(let records):
            var out: [UInt8] = [Self.recordsTag]
            Self.append(UInt32(records.count), to: &out)
            for record in records {
                let frame = record.encoded()
                Self.append(UInt32(frame.count), to: &out)
                out.append(contentsOf: frame)
            }
            return out
        }
    }

    public init(decoding bytes: [UInt8], recordsMax: Int = MetadataEntry.entryRecordsMax) throws(MetadataError) {
        guard bytes.first == Self.recordsTag else {
            self = .opaque(bytes)
            return
        }
        var at = 1
        func uint32() throws(MetadataError) -> Int {
            guard bytes.count - at >= 4 else { throw MetadataError("metadata entry cut short at byte \(at)") }
            defer { at += 4 }
            return Int(bytes[at..<(at + 4)].reduce(UInt32(0)) { ($0 << 8) | UInt32($1) })
        }
        let count = try uint32()
        // Each record takes at least 4 bytes of length and 3 of frame header.
        guard count <= recordsMax, count <= (bytes.count - at) / 7 else { throw MetadataError("metadata entry claims \(count) records in \(bytes.count) bytes") }
        var records: [MetadataRecord] = []
        records.reserveCapacity(count)
        for _ in 0..<count {
            let length = try uint32()
            guard length <= bytes.count - at else { throw MetadataError("metadata record of \(length) bytes past the entry's end") }
            do { records.append(try MetadataRecord(decoding: Array(bytes[at..<(at + length)]))) } catch {
                throw MetadataError("undecodable metadata record at byte \(at): \(error)")
            }
            at += length
        }
        guard at == bytes.count else { throw MetadataError("\(bytes.count - at) bytes after the metadata entry's records") }
        self = .records(records)
    }

    static func append(_ value: UInt32, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { out.append(contentsOf: $0) }
    }
}

extension MetadataImage {
    /// The records that rebuild this image from nothing, applied as one batch: brokers (by
    /// epoch), topics with their partitions, configs, producer ids, feature levels.
    public func snapshotRecords() -> [MetadataRecord] {
        var records: [MetadataRecord] = []
        for broker in brokers.values.sorted(by: { $0.epoch < $1.epoch }) {
            var r = RegisterBrokerRecord()
            r.brokerId = broker.id
            r.incarnationId = broker.incarnation
            r.brokerEpoch = broker.epoch.value
            r.endPoints = broker.endpoints.map {
                RegisterBrokerRecord.BrokerEndpoint(name: $0.name, host: $0.host, port: UInt16(clamping: $0.port), securityProtocol: $0.securityProtocol)
            }
            r.rack = broker.rack
            r.fenced = broker.fenced
            r.inControlledShutdown = broker.inControlledShutdown
            records.append(.registerBroker(r))
        }
        for topic in topics.values.sorted(by: { $0.name < $1.name }) {
            records.append(.topic(TopicRecord(name: topic.name, topicId: topic.id)))
            for (index, p) in topic.partitions.enumerated() {
                var r = PartitionRecord()
                r.topicId = topic.id
                r.partitionId = Int32(index)
                r.replicas = p.replicas
                r.isr = p.isr
                r.leader = p.leader ?? NodeID(-1)
                r.leaderEpoch = p.leaderEpoch
                r.partitionEpoch = p.partitionEpoch.value
                r.addingReplicas = p.adding
                r.removingReplicas = p.removing
                if !p.elr.isEmpty { r.eligibleLeaderReplicas = p.elr }
                records.append(.partition(r))
            }
        }
        for (resource, values) in configs.sorted(by: { ($0.key.kind.rawValue, $0.key.name) < ($1.key.kind.rawValue, $1.key.name) }) {
            for (name, value) in values.sorted(by: { $0.key < $1.key }) {
                records.append(.config(ConfigRecord(resourceType: resource.kind.rawValue, resourceName: resource.name, name: name, value: value)))
            }
        }
        if nextProducerID.value > 0 {
            records.append(.producerIds(ProducerIdsRecord(brokerId: NodeID(-1), brokerEpoch: -1, nextProducerId: nextProducerID)))
        }
        for (name, level) in features.sorted(by: { $0.key < $1.key }) {
            records.append(.featureLevel(FeatureLevelRecord(name: name, featureLevel: level)))
        }
        for (_, credentials) in scramCredentials.sorted(by: { $0.key < $1.key }) {
            for (_, credential) in credentials.sorted(by: { $0.key < $1.key }) { records.append(.userScramCredential(credential)) }
        }
        for (id, binding) in acls.byID.sorted(by: { ($0.key.high, $0.key.low) < ($1.key.high, $1.key.low) }) {
            records.append(.accessControlEntry(binding.record(id: id)))
        }
        for (entity, values) in clientQuotas.sorted(by: { $0.key.description < $1.key.description }) {
            for (key, value) in values.sorted(by: { $0.key < $1.key }) { records.append(.clientQuota(ClientQuotaRecord(entity, key: key, value: value))) }
        }
        return records
    }

    /// The image a snapshot taken at `offset` holds.
    public init(snapshot records: [MetadataRecord], at offset: MetadataOffset) throws(MetadataError) {
        self.init()
        guard offset > .zero else {
            guard records.isEmpty else { throw MetadataError("a snapshot at offset 0 holds records") }
            return
        }
        try apply(records, at: offset)
    }
}
