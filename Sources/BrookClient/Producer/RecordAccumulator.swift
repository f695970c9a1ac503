import BrookCore
import BrookRecords

/// The producer's core, free of I/O and clocks (times come in as milliseconds): records gathered
/// into a batch per partition (`batch.size`, `linger.ms`), the memory they hold bounded by
/// `buffer.memory`, batches handed out for sending at most one per partition at a time (so a
/// partition's batches are written in the order they were made, and an idempotent producer's
/// sequences never have a gap), batches that failed for a passing reason handed out again after
/// `retry.backoff.ms`, and batches that waited longer than `delivery.timeout.ms` failed.
///
/// `Token` is whatever the caller needs to tell each record's sender how it went.
public struct RecordAccumulator<Token: Sendable>: Sendable {
    public struct Settings: Sendable {
        public var lingerMs: Int64
        public var batchBytes: Int
        public var bufferBytes: Int
        public var deliveryTimeoutMs: Int64
        public var retryBackoffMs: Int64
        /// Batches carry the producer's id, epoch and a sequence per partition.
        public var idempotent: Bool

        public init(lingerMs: Int64 = 5, batchBytes: Int = 16_384, bufferBytes: Int = 33_554_432,
                    deliveryTimeoutMs: Int64 = 120_000, retryBackoffMs: Int64 = 100, idempotent: Bool = true) {
            precondition(lingerMs >= 0 && batchBytes > 0 && bufferBytes > 0 && deliveryTimeoutMs > 0 && retryBackoffMs >= 0)
            self.lingerMs = lingerMs
            self.batchBytes = batchBytes
            self.bufferBytes = bufferBytes
            self.deliveryTimeoutMs = deliveryTimeoutMs
            self.retryBackoffMs = retryBackoffMs
            self.idempotent = idempotent
        }
    }

    /// Records of one partition sent together as one record batch.
    public struct Batch: Sendable {
        public let id: UInt64
        public let partition: TopicPartition
        public internal(set) var records: [SimpleRecord] = []
        public internal(set) var tokens: [Token] = []
        /// The bytes the batch counts against `buffer.memory` (an estimate of its size).
        public internal(set) var bytes = Self.overheadBytes
        public let createdMs: Int64
        /// Id, epoch and first sequence (`.none` until an idempotent batch is first handed out;
        /// kept when it is sent again, so the partition knows a repeat).
        public internal(set) var producer = RecordBatchBuilder.Producer.none
        public internal(set) var attempts = 0
        var retryAtMs: Int64 = 0

        /// A record batch's header.
        public static var overheadBytes: Int { 61 }
    }

    /// What `append` did.
    public enum Appended: Equatable, Sendable {
        /// `buffer.memory` has no room for the record now: wait for batches to complete.
        case noRoom
        /// Added; `wake` when a batch became ready to send or got its first record (the
        /// sender's next deadline changed).
        case added(wake: Bool)
    }

    struct Lane: Sendable {
        var open: Batch?
        /// Closed batches, oldest first (a batch sent again goes back to the front).
        var queued: [Batch] = []
        var inFlight: UInt64?
        /// The sequence the partition expects next from the current producer (kept while the
        /// lane is empty: starting again at 0 would be a gap, or worse, a "duplicate").
        var nextSequence: Int32 = 0
    }

    public let settings: Settings
    var lanes: [TopicPartition: Lane] = [:]
    var nextBatchID: UInt64 = 1
    /// Bytes held by batches not yet completed.
    public private(set) var usedBytes = 0
    /// The producer id and epoch idempotent batches are stamped with (nil: none yet, or the
    /// last one's sequences became unknown; see `needsProducer`).
    public private(set) var producer: (id: ProducerID, epoch: ProducerEpoch)?
    /// While true every open batch is ready (a flush or close is waiting for them).
    public var flushing = false

    public init(_ settings: Settings) { self.settings = settings }

    /// The estimated bytes a record adds to a batch (its fields, and the varints around them).
    public static func bytes(of record: SimpleRecord) -> Int {
        var total = 21 + (record.key?.count ?? 0) + (record.value?.count ?? 0)
        for header in record.headers { total += 10 + header.key.count + (header.value?.count ?? 0) }
        return total
    }

    /// An idempotent producer needs an id before anything more is handed out.
    public var needsProducer: Bool { settings.idempotent && producer == nil }

    /// No record is waiting, queued or in flight.
    public var isEmpty: Bool { usedBytes == 0 }

    /// Partitions with records waiting to be handed out.
    public var waitingPartitions: [TopicPartition] {
        lanes.filter { $0.value.open != nil || !$0.value.queued.isEmpty }.map(\.key).sorted()
    }

    /// Adds `record` to `partition`'s open batch (a new one when it has none or it is full).
    public mutating func append(_ record: SimpleRecord, token: Token, to partition: TopicPartition, nowMs: Int64) -> Appended {
        let size = Self.bytes(of: record)
        // A record alone larger than the whole buffer never fits: the caller refuses it first.
        precondition(size + Batch.overheadBytes <= settings.bufferBytes, "a record larger than buffer.memory")
        var lane = lanes[partition] ?? Lane()
        let fresh = lane.open == nil || lane.open!.bytes + size > settings.batchBytes
        let cost = size + (fresh ? Batch.overheadBytes : 0)
        guard usedBytes + cost <= settings.bufferBytes else { return .noRoom }
        var wake = fresh
        if fresh {
            if let full = lane.open { lane.queued.append(full) }
            lane.open = Batch(id: nextBatchID, partition: partition, createdMs: nowMs)
            nextBatchID += 1
        }
        lane.open!.records.append(record)
        lane.open!.tokens.append(token)
        lane.open!.bytes += size
        usedBytes += cost
        if lane.open!.bytes >= settings.batchBytes || settings.lingerMs == 0 {
            lane.queued.append(lane.open!)
            lane.open = nil
            wake = true
        }
        lanes[partition] = lane
        return .added(wake: wake)
    }

    /// The producer id and epoch that batches handed out from now on carry.
    public mutating func useProducer(_ id: ProducerID, _ epoch: ProducerEpoch) {
        producer = (id, epoch)
    }

    /// Forgets the producer (a batch of its failed for good, so the partitions' idea of its next
    /// sequence is unknown): batches not in flight lose their sequences and are numbered again,
    /// from 0, under the next producer.
    mutating func forgetProducer() {
        guard settings.idempotent else { return }
        producer = nil
        for (key, var lane) in lanes {
            lane.nextSequence = 0
            for i in lane.queued.indices { lane.queued[i].producer = .none }
            lanes[key] = lane
        }
    }

    /// The batches to send now, by the leader `leader` names (partitions without one wait):
    /// per partition with none in flight, its oldest closed batch, or its open one once it
    /// lingered `linger.ms` (at once while `flushing`), unless it waits out a retry backoff.
    public mutating func drain(nowMs: Int64, leader: (TopicPartition) -> NodeID?) -> [NodeID: [Batch]] {
        guard !needsProducer else { return [:] }
        var out: [NodeID: [Batch]] = [:]
        for key in lanes.keys.sorted() {
            var lane = lanes[key]!
            guard lane.inFlight == nil, let node = leader(key) else { continue }
            var batch: Batch
            if let first = lane.queued.first {
                guard first.retryAtMs <= nowMs else { continue }
                batch = lane.queued.removeFirst()
            } else if let open = lane.open, flushing || nowMs - open.createdMs >= settings.lingerMs {
                batch = open
                lane.open = nil
            } else {
                continue
            }
            if settings.idempotent && batch.producer.baseSequence < 0, let (id, epoch) = producer {
                batch.producer = RecordBatchBuilder.Producer(id: id, epoch: epoch, baseSequence: lane.nextSequence)
                lane.nextSequence = Self.sequence(lane.nextSequence, plus: batch.records.count)
            }
            batch.attempts += 1
            lane.inFlight = batch.id
            lanes[key] = lane
            out[node, default: []].append(batch)
        }
        return out
    }

    /// Sequences wrap from Int32.max to 0, as Kafka's do.
    static func sequence(_ sequence: Int32, plus count: Int) -> Int32 {
        Int32((Int64(sequence) + Int64(count)) % (Int64(Int32.max) + 1))
    }

    /// `batch` was written: it is done and its memory free.
    public mutating func succeeded(_ batch: Batch) {
        finish(batch)
    }

    /// `batch` failed. A retriable failure within `delivery.timeout.ms` puts it back at the
    /// front of its partition (returns false); otherwise it is done (returns true: fail its
    /// records) and an idempotent producer starts again with a new id.
    public mutating func failed(_ batch: Batch, retriable: Bool, nowMs: Int64) -> Bool {
        guard var lane = lanes[batch.partition], lane.inFlight == batch.id else {
            preconditionFailure("a batch completed that was not in flight")
        }
        if retriable && nowMs - batch.createdMs < settings.deliveryTimeoutMs {
            var again = batch
            again.retryAtMs = nowMs + settings.retryBackoffMs
            // Sent by a producer since forgotten: numbered again under the next one.
            if let producer, again.producer.id != producer.id || again.producer.epoch != producer.epoch { again.producer = .none }
            if producer == nil { again.producer = .none }
            lane.inFlight = nil
            lane.queued.insert(again, at: 0)
            lanes[batch.partition] = lane
            return false
        }
        finish(batch)
        if settings.idempotent && batch.producer.baseSequence >= 0 { forgetProducer() }
        return true
    }

    private mutating func finish(_ batch: Batch) {
        guard var lane = lanes[batch.partition], lane.inFlight == batch.id else {
            preconditionFailure("a batch completed that was not in flight")
        }
        lane.inFlight = nil
        usedBytes -= batch.bytes
        precondition(usedBytes >= 0, "more bytes released than held")
        // The lane stays, empty: its next sequence is the producer's on that partition.
        lanes[batch.partition] = lane
    }

    /// Batches not in flight that waited `delivery.timeout.ms` since their first record: taken
    /// out, to fail their records.
    public mutating func expire(nowMs: Int64) -> [Batch] {
        var expired: [Batch] = []
        let timeoutMs = settings.deliveryTimeoutMs
        let late = { (b: Batch) in nowMs - b.createdMs >= timeoutMs }
        for key in lanes.keys.sorted() {
            var lane = lanes[key]!
            expired += lane.queued.filter(late)
            lane.queued.removeAll(where: late)
            if let open = lane.open, late(open) {
                expired.append(open)
                lane.open = nil
            }
            lanes[key] = lane
        }
        for batch in expired { usedBytes -= batch.bytes }
        if expired.contains(where: { $0.producer.baseSequence >= 0 }) { forgetProducer() }
        return expired
    }

    /// When `drain` or `expire` next has something to do for batches not in flight (nil: not
    /// before a batch completes or a record comes).
    public func nextDeadlineMs() -> Int64? {
        var next: Int64?
        func consider(_ t: Int64) { next = min(next ?? t, t) }
        for lane in lanes.values {
            if let open = lane.open { consider(flushing ? 0 : open.createdMs + settings.lingerMs) }
            if lane.inFlight == nil, let first = lane.queued.first { consider(first.retryAtMs) }
            for batch in lane.queued { consider(batch.createdMs + settings.deliveryTimeoutMs) }
        }
        return next
    }
}
