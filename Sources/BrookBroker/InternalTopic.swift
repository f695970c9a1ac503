import BrookCore
import BrookRecords
import BrookStorage
import NIOCore

/// A compacted internal topic a coordinator keeps its state in (`__consumer_offsets`,
/// `__transaction_state`): made on first use, each record placed by its owner's id (a group or
/// a transactional id) as Kafka places it.
struct InternalTopic: Sendable {
    let name: String
    let partitionCount: Int32
    let segmentBytes: Int64
    let topics: TopicRegistry

    /// Kafka's placement: abs(id.hashCode()) % partitions, with Java's String hash.
    static func partitionIndex(for id: String, partitions: Int) -> Int {
        var h: Int32 = 0
        for unit in id.utf16 { h = 31 &* h &+ Int32(unit) }
        return Int(h & 0x7fff_ffff) % partitions
    }

    /// Its partitions, the topic made when missing. Looked up each time: someone may have
    /// deleted the topic (Kafka allows it), and then it is made again.
    func partitions() throws(StorageError) -> [Partition] {
        if let topic = topics.topic(name) { return topic.partitions }
        do {
            let configs = ["cleanup.policy": "compact", "segment.bytes": String(segmentBytes), "compression.type": "producer"]
            return try topics.create(name: name, partitions: partitionCount, configs: configs).partitions
        } catch {
            if let topic = topics.topic(name) { return topic.partitions }
            throw .invalidArgument("cannot create \(name): \(error.message)")
        }
    }

    /// The partition that holds `id`'s records.
    func partition(for id: String) throws(StorageError) -> Partition {
        let all = try partitions()
        return all[Self.partitionIndex(for: id, partitions: all.count)]
    }

    /// Appends records (owner id, key, value: nil for a tombstone), one batch per partition, in
    /// the order given.
    func append(_ records: [(owner: String, key: [UInt8], value: [UInt8]?)], now: Timestamp) throws(StorageError) {
        guard !records.isEmpty else { return }
        let partitions = try partitions()
        var byPartition: [Int: [SimpleRecord]] = [:]
        for r in records {
            let index = Self.partitionIndex(for: r.owner, partitions: partitions.count)
            byPartition[index, default: []].append(SimpleRecord(key: r.key, value: r.value, timestamp: now))
        }
        for (index, list) in byPartition.sorted(by: { $0.key < $1.key }) {
            var buffer = ByteBuffer(bytes: RecordBatchBuilder.build(baseOffset: .zero, records: list))
            _ = try partitions[index].appendInternal(&buffer, now: now.ms)
        }
    }
}
