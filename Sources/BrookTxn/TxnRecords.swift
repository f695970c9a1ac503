import BrookCore

/// The records of `__transaction_state`, one per change of a transactional id (compacted: the
/// last one is its state; a tombstone removes it).
///
/// Key: version i16 (0), transactional id (i16-length string), as Kafka's.
/// Value: version i16 (0), producer id i64, epoch i16, timeout ms i32, status i8, partition
/// count i32 then per topic its name and partition count i32 and partitions i32, last update
/// ms i64, start ms i64 (Kafka's v0 fields), then the previous epoch i16 (ours).
public enum TxnRecords {
    /// The longest transactional id the key can hold (an int16 length): the coordinator refuses
    /// a longer one rather than fail to write its state.
    public static let transactionalIDBytesMax = Int(Int16.max)

    public static func key(_ transactionalID: String) -> [UInt8] {
        var w = ByteWriter()
        w.int16(0)
        w.string(transactionalID)
        return w.bytes
    }

    public static func value(_ m: TxnMetadata) -> [UInt8] {
        var w = ByteWriter()
        w.int16(0)
        w.int64(m.producerID.value)
        w.int16(m.epoch.value)
        w.int32(m.timeoutMs)
        w.int8(m.status.rawValue)
        let byTopic = Dictionary(grouping: m.partitions, by: \.topic)
        w.int32(Int32(byTopic.count))
        for topic in byTopic.keys.sorted() {
            w.string(topic)
            let partitions = byTopic[topic]!.map(\.partition).sorted()
            w.int32(Int32(partitions.count))
            for p in partitions { w.int32(p) }
        }
        w.int64(m.lastUpdateMs)
        w.int64(m.startMs)
        w.int16(m.previousEpoch.value)
        return w.bytes
    }

    public static func decodeKey(_ bytes: [UInt8]) throws(ProducerSnapshot.DecodeError) -> String {
        var r = ByteReader(bytes: bytes)
        guard try r.int16() == 0 else { throw .invalid("transaction key version") }
        let id = try r.string()
        guard r.atEnd else { throw .invalid("trailing key bytes") }
        return id
    }

    public static func decodeValue(_ bytes: [UInt8], transactionalID: String) throws(ProducerSnapshot.DecodeError) -> TxnMetadata {
        var r = ByteReader(bytes: bytes)
        guard try r.int16() == 0 else { throw .invalid("transaction value version") }
        let pid = ProducerID(try r.int64())
        let epoch = ProducerEpoch(try r.int16())
        let timeout = try r.int32()
        guard let status = TxnStatus(rawValue: try r.int8()) else { throw .invalid("transaction status") }
        var m = TxnMetadata(transactionalID: transactionalID, producerID: pid, epoch: epoch, timeoutMs: timeout,
                            status: status, lastUpdateMs: 0)
        let topics = try r.int32()
        guard topics >= 0, topics <= 100_000 else { throw .invalid("\(topics) topics") }
        for _ in 0..<topics {
            let topic = try r.string()
            let count = try r.int32()
            guard count >= 0, count <= 100_000 else { throw .invalid("\(count) partitions") }
            for _ in 0..<count { m.partitions.insert(TxnPartition(topic, try r.int32())) }
        }
        m.lastUpdateMs = try r.int64()
        m.startMs = try r.int64()
        m.previousEpoch = ProducerEpoch(try r.int16())
        return m
    }
}
