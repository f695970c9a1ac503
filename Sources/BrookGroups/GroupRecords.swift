import BrookCore
import BrookProtocol
import NIOCore

/// A classic group as `__consumer_offsets` keeps it.
public struct GroupSnapshot: Sendable, Equatable {
    public struct Member: Sendable, Equatable {
        public var memberID: String
        public var instanceID: String?
        public var clientID: String
        public var clientHost: String
        public var rebalanceTimeoutMs: Int32
        public var sessionTimeoutMs: Int32
        public var subscription: [UInt8]
        public var assignment: [UInt8]
    }
    public var groupID: String
    public var protocolType: String
    public var generation: Int32
    public var protocolName: String?
    public var leader: String?
    public var stateTimestamp: Int64
    public var members: [Member]
}

/// What the coordinator writes to `__consumer_offsets`, one record each. The bytes are Kafka's
/// (OffsetCommitKey v1 / OffsetCommitValue v3, GroupMetadataKey v2 / GroupMetadataValue v3), so
/// the topic compacts by key, and Kafka's tools could read it.
public enum GroupRecord: Sendable, Equatable {
    case offset(group: String, TopicPartition, CommittedOffset)
    case offsetTombstone(group: String, TopicPartition)
    case groupMetadata(GroupSnapshot)
    case groupTombstone(group: String)

    public var groupID: String {
        switch self {
        case .offset(let g, _, _), .offsetTombstone(let g, _), .groupTombstone(let g): return g
        case .groupMetadata(let s): return s.groupID
        }
    }

    public var key: [UInt8] {
        var w = WireWriter()
        switch self {
        case .offset(let group, let tp, _), .offsetTombstone(let group, let tp):
            w.writeInt16(1); w.str(group); w.str(tp.topic); w.writeInt32(tp.partition)
        case .groupMetadata(let snap):
            w.writeInt16(2); w.str(snap.groupID)
        case .groupTombstone(let group):
            w.writeInt16(2); w.str(group)
        }
        return Array(buffer: w.buffer)
    }

    /// nil for a tombstone.
    public var value: [UInt8]? {
        var w = WireWriter()
        switch self {
        case .offsetTombstone, .groupTombstone:
            return nil
        case .offset(_, _, let c):
            w.writeInt16(3); w.writeInt64(c.offset.value); w.writeInt32(c.leaderEpoch.value); w.str(c.metadata); w.writeInt64(c.commitTimestamp.ms)
        case .groupMetadata(let s):
            w.writeInt16(3); w.str(s.protocolType); w.writeInt32(s.generation); w.optStr(s.protocolName)
            w.optStr(s.leader); w.writeInt64(s.stateTimestamp)
            w.writeInt32(Int32(s.members.count))
            for m in s.members {
                w.str(m.memberID); w.optStr(m.instanceID); w.str(m.clientID); w.str(m.clientHost)
                w.writeInt32(m.rebalanceTimeoutMs); w.writeInt32(m.sessionTimeoutMs); w.blob(m.subscription); w.blob(m.assignment)
            }
        }
        return Array(buffer: w.buffer)
    }

    /// Reads a record back; nil for a key type the coordinator does not keep (Kafka's KIP-848
    /// and share-group records, which Brook does not write).
    public static func decode(key: [UInt8], value: [UInt8]?) throws(ProtocolError) -> GroupRecord? {
        var k = WireReader(ByteBuffer(bytes: key))
        let keyVersion = try k.readInt16()
        switch keyVersion {
        case 0, 1:
            let group = try k.str(), topic = try k.str(), partition = try k.readInt32()
            let tp = TopicPartition(topic, partition)
            guard let value else { return .offsetTombstone(group: group, tp) }
            var v = WireReader(ByteBuffer(bytes: value))
            let version = try v.readInt16()
            let offset = try v.readInt64()
            var epoch: Int32 = -1
            if version >= 3 { epoch = try v.readInt32() }
            // v4 is the flexible form (compact string, tagged fields after).
            let metadata = version >= 4 ? try v.readString(compact: true) : try v.str()
            let timestamp = try v.readInt64()
            guard version <= 4 else { throw ProtocolError("offset commit value v\(version)") }
            return .offset(group: group, tp, CommittedOffset(offset: Offset(offset), leaderEpoch: LeaderEpoch(epoch),
                                                             metadata: metadata, commitTimestamp: Timestamp(ms: timestamp)))
        case 2:
            let group = try k.str()
            guard let value else { return .groupTombstone(group: group) }
            var v = WireReader(ByteBuffer(bytes: value))
            let version = try v.readInt16()
            guard version == 3 else { throw ProtocolError("group metadata value v\(version)") }
            let type = try v.str(), generation = try v.readInt32(), proto = try v.optStr()
            let leader = try v.optStr(), since = try v.readInt64()
            let count = try v.readInt32()
            guard count >= 0, Int(count) <= value.count else { throw ProtocolError("member count \(count)") }
            var members: [GroupSnapshot.Member] = []
            for _ in 0..<count {
                members.append(GroupSnapshot.Member(memberID: try v.str(), instanceID: try v.optStr(),
                                                    clientID: try v.str(), clientHost: try v.str(),
                                                    rebalanceTimeoutMs: try v.readInt32(), sessionTimeoutMs: try v.readInt32(),
                                                    subscription: try v.blob(), assignment: try v.blob()))
            }
            return .groupMetadata(GroupSnapshot(groupID: group, protocolType: type, generation: generation,
                                                protocolName: proto, leader: leader, stateTimestamp: since, members: members))
        default:
            return nil
        }
    }
}

/// Kafka's classic (non-flexible) strings and bytes, as the `__consumer_offsets` schemas and the
/// consumer protocol's subscription and assignment use them.
extension WireWriter {
    mutating func str(_ s: String) { writeString(s, compact: false) }
    mutating func optStr(_ s: String?) { writeNullableString(s, compact: false, nullable: true) }
    mutating func blob(_ b: [UInt8]) { writeBytes(ByteBuffer(bytes: b), compact: false) }
}

extension WireReader {
    mutating func str() throws(ProtocolError) -> String { try readString(compact: false) }
    mutating func optStr() throws(ProtocolError) -> String? { try readNullableString(compact: false) }
    mutating func blob() throws(ProtocolError) -> [UInt8] { try readNullableBytes(compact: false).map { Array(buffer: $0) } ?? [] }
}
