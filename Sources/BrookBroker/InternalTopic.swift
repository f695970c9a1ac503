import BrookCore
import BrookProtocol
import BrookRecords
import BrookStorage
import Logging
import NIOCore

/// A coordinator's write: the partition and the offset just past it. In a cluster the write is
/// acknowledged only once the high watermark has passed it (the ISR has it), as Kafka appends
/// coordinator state with acks=all.
struct InternalWrite: Sendable {
    let partition: Partition
    let end: Offset
    /// How long a coordinator's write may take to reach the ISR before it is given up.
    static let writeTimeoutMs: Int64 = 15_000

    /// `value` answered once every write has reached the ISR (at once when there is none: a
    /// single node, or nothing written). A write that does not make it is answered as Kafka's
    /// coordinators do: NOT_COORDINATOR when this broker stopped leading, else
    /// COORDINATOR_NOT_AVAILABLE.
    static func reply<T: Sendable, R: Sendable>(_ value: T, after written: [InternalWrite], on loop: any EventLoop,
                                                failed: @escaping @Sendable (ErrorCode) -> T,
                                                _ make: @escaping @Sendable (T) -> R) -> Reply<R> {
        guard !written.isEmpty else { return .now(make(value)) }
        return .later(settled(written, on: loop).map { bad in make(bad.map(failed) ?? value) })
    }

    /// nil once every write has reached the ISR; else the coordinator's error for the first that
    /// did not (NOT_COORDINATOR when this broker stopped leading, else COORDINATOR_NOT_AVAILABLE).
    static func settled(_ written: [InternalWrite], on loop: any EventLoop) -> EventLoopFuture<ErrorCode?> {
        let waits = written.map { $0.partition.highWatermark(reaching: $0.end, timeoutMs: writeTimeoutMs, on: loop) }
        return EventLoopFuture.whenAllSucceed(waits, on: loop).map { codes in
            codes.first { $0 != .none }.map { $0 == .notLeaderOrFollower ? .notCoordinator : .coordinatorNotAvailable }
        }
    }
}

/// A compacted internal topic a coordinator keeps its state in (`__consumer_offsets`,
/// `__transaction_state`): made on first use, each record placed by its owner's id (a group or
/// a transactional id) as Kafka places it.
struct InternalTopic: Sendable {
    let name: String
    let partitionCount: Int32
    let segmentBytes: Int64
    let topics: TopicRegistry
    /// A single node makes the topic itself on first use; in a cluster the controller makes it
    /// (FindCoordinator asks) and the replica manager hosts it.
    var createLocally = true

    /// Kafka's placement: abs(id.hashCode()) % partitions, with Java's String hash.
    static func partitionIndex(for id: String, partitions: Int) -> Int {
        var h: Int32 = 0
        for unit in id.utf16 { h = 31 &* h &+ Int32(unit) }
        return Int(h & 0x7fff_ffff) % partitions
    }

    /// Its partitions (nil: hosted by other brokers), the topic made when missing. Looked up
    /// each time: someone may have deleted the topic (Kafka allows it), and then it is made again.
    func partitions() throws(StorageError) -> [Partition?] {
        if let topic = topics.topic(name) { return topic.partitions }
        guard createLocally else { throw .invalidArgument("\(name) does not exist yet in the cluster") }
        do {
            let configs = ["cleanup.policy": "compact", "segment.bytes": String(segmentBytes), "compression.type": "producer"]
            return try topics.create(name: name, partitions: partitionCount, configs: configs).partitions
        } catch {
            if let topic = topics.topic(name) { return topic.partitions }
            throw .invalidArgument("cannot create \(name): \(error.message)")
        }
    }

    /// The index of the partition that holds `id`'s records, hosted here or not (a transaction
    /// coordinator names a group's partition that another broker may lead).
    func index(for id: String) throws(StorageError) -> Int32 {
        Int32(Self.partitionIndex(for: id, partitions: try partitions().count))
    }

    /// The partition that holds `id`'s records.
    func partition(for id: String) throws(StorageError) -> Partition {
        let all = try partitions()
        return try Self.hosted(all, Self.partitionIndex(for: id, partitions: all.count), name)
    }

    static func hosted(_ partitions: [Partition?], _ index: Int, _ name: String) throws(StorageError) -> Partition {
        guard let partition = partitions[index] else { throw .invalidArgument("\(name)-\(index) is not hosted by this broker") }
        return partition
    }

    /// Appends records (owner id, key, value: nil for a tombstone), one batch per partition, in
    /// the order given; returns where each batch ended.
    @discardableResult
    func append(_ records: [(owner: String, key: [UInt8], value: [UInt8]?)], now: Timestamp) throws(StorageError) -> [InternalWrite] {
        guard !records.isEmpty else { return [] }
        let partitions = try partitions()
        var byPartition: [Int: [SimpleRecord]] = [:]
        for r in records {
            let index = Self.partitionIndex(for: r.owner, partitions: partitions.count)
            byPartition[index, default: []].append(SimpleRecord(key: r.key, value: r.value, timestamp: now))
        }
        var written: [InternalWrite] = []
        for (index, list) in byPartition.sorted(by: { $0.key < $1.key }) {
            var buffer = ByteBuffer(bytes: RecordBatchBuilder.build(baseOffset: .zero, records: list))
            let partition = try Self.hosted(partitions, index, name)
            let result = try partition.appendInternal(&buffer, now: now.ms)
            written.append(InternalWrite(partition: partition, end: result.lastOffset + 1))
        }
        return written
    }

    /// The number of partitions the topic has here now (nil: not hosted).
    var partitionCountNow: Int? { topics.topic(name)?.partitions.count }

    /// Every batch of the topic as it stands (nothing when it does not exist), partition by
    /// partition from the log start: how a coordinator loads. `body` gets the partition's name, the
    /// header and the whole batch; no lock is held while it runs. A partition whose batches stop
    /// making progress (an unreadable one) is left there, logged.
    /// `only` limits it to one partition; `toLogEnd` reads past the high watermark (a new
    /// leader loads its whole log, which is the partition's now).
    func forEachBatch(logger: Logger, only: Int? = nil, toLogEnd: Bool = false,
                      _ body: (String, RecordBatchHeader, UnsafeRawBufferPointer) -> Void) throws(StorageError) {
        for (index, hosted) in (topics.topic(name)?.partitions ?? []).enumerated() where only == nil || only == index {
            guard let partition = hosted else { continue }
            var next = partition.offsets.logStart
            while true {
                let slice = toLogEnd ? try partition.readForFollower(from: next, maxBytes: 1 << 20).0
                                     : try partition.read(from: next, maxBytes: 1 << 20, minOneBatch: true).slice
                if slice.isEmpty { break }
                let bytes = try slice.readBytes()
                let before = next
                bytes.withUnsafeReadableBytes { raw in
                    _ = RecordBatchHeader.forEachBatch(in: raw) { header, batch in
                        next = header.nextOffset
                        body(partition.name, header, batch)
                    }
                }
                guard next > before else {
                    logger.error("\(partition.name): unreadable batch at offset \(before); the rest of it is not loaded")
                    break
                }
            }
        }
    }
}
