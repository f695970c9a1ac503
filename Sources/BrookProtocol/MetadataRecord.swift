import BrookCore
import NIOCore

/// One record of the KRaft metadata log, framed as Kafka frames the value of each record in
/// `__cluster_metadata` (its metadata record serde):
///
///     frame version   unsigned varint, always 1 (0 was KRaft's 2.8 preview, refused as Kafka does)
///     record type     unsigned varint, the body's `apiKey`
///     record version  unsigned varint
///     body            the record at that version (flexible: tagged fields at the end)
///
/// Nothing may follow the body. Brook writes every record at the highest version it defines
/// (protocol/metadata/*.def) and reads every version Kafka defines.
public enum MetadataRecord: Sendable, Equatable, CustomStringConvertible {
    case registerBroker(RegisterBrokerRecord)
    case unregisterBroker(UnregisterBrokerRecord)
    case topic(TopicRecord)
    case partition(PartitionRecord)
    case config(ConfigRecord)
    case partitionChange(PartitionChangeRecord)
    case fenceBroker(FenceBrokerRecord)
    case unfenceBroker(UnfenceBrokerRecord)
    case removeTopic(RemoveTopicRecord)
    case featureLevel(FeatureLevelRecord)
    case producerIds(ProducerIdsRecord)
    case brokerRegistrationChange(BrokerRegistrationChangeRecord)
    case noOp(NoOpRecord)
    case userScramCredential(UserScramCredentialRecord)
    case removeUserScramCredential(RemoveUserScramCredentialRecord)
    case accessControlEntry(AccessControlEntryRecord)
    case removeAccessControlEntry(RemoveAccessControlEntryRecord)
    case clientQuota(ClientQuotaRecord)

    /// The only frame version Kafka writes and reads.
    public static let frameVersion: UInt32 = 1

    /// Every record type this enum carries, one per case.
    public static let bodyTypes: [any KafkaDataMessage.Type] = [
        RegisterBrokerRecord.self, UnregisterBrokerRecord.self, TopicRecord.self, PartitionRecord.self,
        ConfigRecord.self, PartitionChangeRecord.self, FenceBrokerRecord.self, UnfenceBrokerRecord.self,
        RemoveTopicRecord.self, FeatureLevelRecord.self, ProducerIdsRecord.self,
        BrokerRegistrationChangeRecord.self, NoOpRecord.self, UserScramCredentialRecord.self,
        RemoveUserScramCredentialRecord.self, AccessControlEntryRecord.self, RemoveAccessControlEntryRecord.self,
        ClientQuotaRecord.self,
    ]

    /// The record inside, whatever its type.
    public var body: any KafkaDataMessage {
        switch self {
        case .registerBroker(let body): body
        case .unregisterBroker(let body): body
        case .topic(let body): body
        case .partition(let body): body
        case .config(let body): body
        case .partitionChange(let body): body
        case .fenceBroker(let body): body
        case .unfenceBroker(let body): body
        case .removeTopic(let body): body
        case .featureLevel(let body): body
        case .producerIds(let body): body
        case .brokerRegistrationChange(let body): body
        case .noOp(let body): body
        case .userScramCredential(let body): body
        case .removeUserScramCredential(let body): body
        case .accessControlEntry(let body): body
        case .removeAccessControlEntry(let body): body
        case .clientQuota(let body): body
        }
    }

    /// The record type (Kafka's `apiKey` of the record, not an API's key).
    public var apiKey: Int16 { type(of: body).apiKey }

    // MARK: encoding

    /// The framed record at the highest version of its type.
    public func encoded() -> [UInt8] {
        var writer = WireWriter()
        writer.writeUnsignedVarint(Self.frameVersion)
        body.writeFramed(to: &writer)
        precondition(writer.fileRecords.isEmpty, "a metadata record holds no file records")
        return Array(writer.buffer.readableBytesView)
    }

    // MARK: decoding

    /// Decodes one framed record; refuses an unknown frame version, record type or version,
    /// input that ends early, and bytes after the record. Every length and count inside is
    /// checked against the bytes left (WireReader), so what it allocates is bounded by the input.
    public init(decoding bytes: [UInt8]) throws(ProtocolError) {
        try self.init(decoding: ByteBuffer(bytes: bytes))
    }

    public init(decoding buffer: ByteBuffer) throws(ProtocolError) {
        var reader = WireReader(buffer)
        let frameVersion = try reader.readUnsignedVarint()
        guard frameVersion == Self.frameVersion else {
            throw ProtocolError("metadata record frame version \(frameVersion): only \(Self.frameVersion) is read")
        }
        let apiKey = try Self.readInt16Varint(&reader, "record type")
        let version = try Self.readInt16Varint(&reader, "record version")
        self = try Self.decodeBody(apiKey: apiKey, version: version, from: &reader)
        guard reader.remaining == 0 else {
            throw ProtocolError("\(reader.remaining) bytes left after a metadata record of type \(apiKey)")
        }
    }

    /// Kafka's record type and version are unsigned varints that must fit an int16.
    private static func readInt16Varint(_ reader: inout WireReader, _ what: String) throws(ProtocolError) -> Int16 {
        let value = try reader.readUnsignedVarint()
        guard value <= UInt32(Int16.max) else { throw ProtocolError("metadata \(what) \(value) is too large") }
        return Int16(value)
    }

    private static func decodeBody(apiKey: Int16, version: Int16, from reader: inout WireReader) throws(ProtocolError) -> Self {
        switch apiKey {
        case RegisterBrokerRecord.apiKey: .registerBroker(try body(version, &reader))
        case UnregisterBrokerRecord.apiKey: .unregisterBroker(try body(version, &reader))
        case TopicRecord.apiKey: .topic(try body(version, &reader))
        case PartitionRecord.apiKey: .partition(try body(version, &reader))
        case ConfigRecord.apiKey: .config(try body(version, &reader))
        case PartitionChangeRecord.apiKey: .partitionChange(try body(version, &reader))
        case FenceBrokerRecord.apiKey: .fenceBroker(try body(version, &reader))
        case UnfenceBrokerRecord.apiKey: .unfenceBroker(try body(version, &reader))
        case RemoveTopicRecord.apiKey: .removeTopic(try body(version, &reader))
        case FeatureLevelRecord.apiKey: .featureLevel(try body(version, &reader))
        case ProducerIdsRecord.apiKey: .producerIds(try body(version, &reader))
        case BrokerRegistrationChangeRecord.apiKey: .brokerRegistrationChange(try body(version, &reader))
        case NoOpRecord.apiKey: .noOp(try body(version, &reader))
        case UserScramCredentialRecord.apiKey: .userScramCredential(try body(version, &reader))
        case RemoveUserScramCredentialRecord.apiKey: .removeUserScramCredential(try body(version, &reader))
        case AccessControlEntryRecord.apiKey: .accessControlEntry(try body(version, &reader))
        case RemoveAccessControlEntryRecord.apiKey: .removeAccessControlEntry(try body(version, &reader))
        case ClientQuotaRecord.apiKey: .clientQuota(try body(version, &reader))
        default: throw ProtocolError("unknown metadata record type \(apiKey)")
        }
    }

    private static func body<Body: KafkaDataMessage>(_ version: Int16, _ reader: inout WireReader) throws(ProtocolError) -> Body {
        guard Body.versions.contains(version) else {
            throw ProtocolError("\(Body.messageName) v\(version): versions \(Body.versions.lowerBound)-\(Body.versions.upperBound) are read")
        }
        return try Body(from: &reader, version: version)
    }

    // MARK: logs

    /// The record's type and what it is about, in one line (never a config value: it may be a secret).
    public var description: String {
        let about: String
        switch self {
        case .registerBroker(let r): about = "broker \(r.brokerId) epoch \(r.brokerEpoch)\(r.fenced ? " fenced" : "")"
        case .unregisterBroker(let r): about = "broker \(r.brokerId) epoch \(r.brokerEpoch)"
        case .topic(let r): about = "\(r.name) \(r.topicId)"
        case .partition(let r): about = "\(r.topicId)-\(r.partitionId) leader \(r.leader) epoch \(r.leaderEpoch)"
        case .config(let r): about = "\(r.resourceName) \(r.name)\(r.value == nil ? " deleted" : "")"
        case .partitionChange(let r): about = "\(r.topicId)-\(r.partitionId)"
        case .fenceBroker(let r): about = "broker \(r.id) epoch \(r.epoch)"
        case .unfenceBroker(let r): about = "broker \(r.id) epoch \(r.epoch)"
        case .removeTopic(let r): about = "\(r.topicId)"
        case .featureLevel(let r): about = "\(r.name)=\(r.featureLevel)"
        case .producerIds(let r): about = "broker \(r.brokerId) next \(r.nextProducerId)"
        case .brokerRegistrationChange(let r): about = "broker \(r.brokerId) epoch \(r.brokerEpoch)"
        case .noOp: return type(of: body).messageName
        case .userScramCredential(let r): about = "\(r.name) mechanism \(r.mechanism) iterations \(r.iterations)"
        case .removeUserScramCredential(let r): about = "\(r.name) mechanism \(r.mechanism)"
        case .accessControlEntry(let r): about = "\(r.id) \(r.principal) \(r.permissionType) \(r.operation) on \(r.resourceType):\(r.resourceName)"
        case .removeAccessControlEntry(let r): about = "\(r.id)"
        case .clientQuota(let r):
            about = r.entity.map { "\($0.entityType)=\($0.entityName ?? "<default>")" }.joined(separator: ",") + " \(r.key)" + (r.remove ? " removed" : "=\(r.value)")
        }
        return "\(type(of: body).messageName)(\(about))"
    }
}

extension KafkaDataMessage {
    /// Record type, version (the highest), body: the frame after its frame version.
    fileprivate func writeFramed(to writer: inout WireWriter) {
        let version = Self.versions.upperBound
        writer.writeUnsignedVarint(UInt32(Self.apiKey))
        writer.writeUnsignedVarint(UInt32(version))
        encode(to: &writer, version: version)
    }
}
