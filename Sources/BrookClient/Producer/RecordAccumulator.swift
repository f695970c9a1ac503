import BrookCore
import BrookRecords
import NIOCore

/// The producer's core, free of I/O and clocks (times come in as milliseconds): records gathered
/// into a batch per partition (`batch.size`, `linger.ms`), the memory they hold bounded by
/// `buffer.memory`, batches handed out for sending in the order they were made, up to
/// `max.in.flight.requests.per.connection` per partition at a time (an idempotent producer's
/// sequences follow on without a gap), batches that failed for a passing reason handed out again
/// after `retry.backoff.ms`, alone and oldest first (so a partition's batches are still written
/// in order), batches a broker found too large split in two, and batches that waited longer
/// than `delivery.timeout.ms` failed.
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
        /// Batches of one partition in flight at once, at most (an idempotent producer: at most
        /// 5, the batches a partition remembers per producer to find a repeat).
        public var maxInFlight: Int

        public init(lingerMs: Int64 = 5, batchBytes: Int = 1_000_000, bufferBytes: Int = 33_554_432,
                    deliveryTimeoutMs: Int64 = 120_000, retryBackoffMs: Int64 = 100, idempotent: Bool = true,
                    maxInFlight: Int = 5) {
            precondition(lingerMs >= 0 && batchBytes > 0 && bufferBytes > 0 && deliveryTimeoutMs > 0 && retryBackoffMs >= 0)
            precondition(maxInFlight >= 1 && (!idempotent || maxInFlight <= 5), "1 to 5 batches in flight (idempotent), at least 1")
            self.maxInFlight = maxInFlight
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
        /// Batches are made in the order of their ids; the halves of a split batch share its
        /// range of ids, `id..<id + span`, so they keep its place.
        public let id: UInt64
        let span: UInt64
        public let partition: TopicPartition
        /// The records, encoded as they were appended (the header is filled in when sent).
        public internal(set) var encoder: BatchEncoder
        /// Each record's timestamp (for its delivery report), in order.
        public internal(set) var timestamps: [Timestamp] = []
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

        public var recordCount: Int { Int(encoder.count) }

        /// The batch's bytes to send: its header written (under its producer's fields), in place
        /// unless compressed.
        public mutating func seal(transactional: Bool, compression: CompressionCodec, level: Int?) throws(CodecError) -> ByteBuffer {
            try encoder.seal(producer: producer, transactional: transactional, compression: compression, level: level)
        }

        /// Adds a record and the `bytes` it counts against `buffer.memory`.
        mutating func add(_ record: SimpleRecord, token: Token, bytes: Int) {
            self.bytes += bytes
            encoder.append(record)
            timestamps.append(record.timestamp)
            tokens.append(token)
        }

        /// The ids a new batch takes: room for 24 halvings.
        static var idSpan: UInt64 { 1 << 24 }

        /// The bytes a new batch makes room for at once: `batch.size`, up to 16 KiB (a larger
        /// batch grows as it fills; Kafka's default `batch.size` is 16 KiB).
        static var reservedBytesMax: Int { 16_384 }

        init(id: UInt64, span: UInt64 = Self.idSpan, partition: TopicPartition, createdMs: Int64, reserving: Int = 0) {
            self.id = id
            self.span = span
            self.partition = partition
            self.createdMs = createdMs
            encoder = BatchEncoder(capacity: min(reserving, Self.reservedBytesMax))
        }

        /// The batch cut in two halves that keep its place, its attempts and (numbered under
        /// `current`) its sequences, or nil when it cannot be (a single record, or its ids used
        /// up).
        func halves(current: Bool) -> (Batch, Batch)? {
            guard recordCount > 1, span >= 2 else { return nil }
            let records = encoder.records()
            let cut = records.count / 2
            var first = Batch(id: id, span: span / 2, partition: partition, createdMs: createdMs)
            var second = Batch(id: id + span / 2, span: span - span / 2, partition: partition, createdMs: createdMs)
            for (index, record) in records.enumerated() {
                let size = RecordAccumulator.bytes(of: record)
                if index < cut { first.add(record, token: tokens[index], bytes: size) } else { second.add(record, token: tokens[index], bytes: size) }
            }
            first.attempts = attempts
            second.attempts = attempts
            if current {
                first.producer = producer
                second.producer = RecordBatchBuilder.Producer(
                    id: producer.id, epoch: producer.epoch, baseSequence: RecordAccumulator.sequence(producer.baseSequence, plus: cut))
            }
            return (first, second)
        }
    }

    /// A batch in flight: its id and the producer it was numbered under.
    struct Sent: Sendable {
        let id: UInt64
        let producer: RecordBatchBuilder.Producer
    }

    /// What `append` did.
    public enum Appended: Equatable, Sendable {
        /// `buffer.memory` has no room for the record now: wait for batches to complete.
        case noRoom
        /// Added; `wake` when a batch became ready to send or got its first record (the
        /// sender's next deadline changed).
        case added(wake: Bool)
    }

    /// Closed batches of a partition, oldest first: taken from the front (without moving the
    /// rest), a batch sent again put back at the front.
    struct BatchQueue: Sendable {
        /// A batch taken from the front leaves nil behind: the queue keeps no copy of a batch
        /// handed out (its buffer is then written in place when it is sealed, not copied).
        private var items: [Batch?] = []
        private var head = 0

        var isEmpty: Bool { head == items.count }
        var first: Batch? { isEmpty ? nil : items[head] }

        mutating func append(_ batch: Batch) { items.append(batch) }

        mutating func popFirst() -> Batch {
            precondition(!isEmpty, "a batch taken from an empty queue")
            let batch = items[head].take()!
            head += 1
            dropTaken(&items, head: &head, atLeast: 64)
            return batch
        }

        /// Puts back a batch sent before: in the order of ids, so before every batch made after
        /// it (batches come back from the brokers in any order).
        mutating func putBack(_ batch: Batch) {
            let at = items[head...].firstIndex { $0!.id > batch.id } ?? items.count
            if at == head && head > 0 {
                head -= 1
                items[head] = batch
            } else {
                items.insert(batch, at: at)
            }
        }

        /// Takes out the batches `late` picks, in order.
        mutating func remove(where late: (Batch) -> Bool) -> [Batch] {
            let kept = items[head...].filter { !late($0!) }
            let removed = items[head...].compactMap { $0 }.filter(late)
            items = kept
            head = 0
            return removed
        }

        func contains(where matches: (Batch) -> Bool) -> Bool { items[head...].contains { matches($0!) } }

        /// Every queued batch loses its sequence (a new producer numbers them again).
        mutating func clearSequences() {
            for i in head..<items.count { items[i]!.producer = .none }
        }
    }

    struct Lane: Sendable {
        var open: Batch?
        /// Closed batches, oldest first (a batch sent again goes back to the front).
        var queued = BatchQueue()
        /// Batches in flight, in the order they were handed out.
        var inFlight: [Sent] = []
        /// The sequence the partition expects next from the current producer (kept while the
        /// lane is empty: starting again at 0 would be a gap, or worse, a "duplicate").
        var nextSequence: Int32 = 0

        /// Adds a record to the open batch, or to a new one when there is none or it would
        /// outgrow `batch.size`, if `buffer.memory` has room. Asks to wake the sender only when
        /// the partition has room in flight and nothing queued (else a completion wakes it, or
        /// it knows already): for a first record (a new linger deadline) or a batch that just
        /// closed.
        mutating func append(_ record: SimpleRecord, token: Token, bytes: Int, partition: TopicPartition, nowMs: Int64,
                             settings: Settings, usedBytes: inout Int, nextBatchID: inout UInt64) -> Appended {
            let fresh = open.map { $0.bytes + bytes > settings.batchBytes } ?? true
            let cost = bytes + (fresh ? Batch.overheadBytes : 0)
            guard usedBytes + cost <= settings.bufferBytes else { return .noRoom }
            usedBytes += cost
            let idle = inFlight.count < settings.maxInFlight && queued.isEmpty
            if fresh {
                if let full = open { queued.append(full) }
                open = Batch(id: nextBatchID, partition: partition, createdMs: nowMs, reserving: settings.batchBytes)
                nextBatchID += Batch.idSpan
            }
            open!.add(record, token: token, bytes: bytes)
            let closed = open!.bytes >= settings.batchBytes || settings.lingerMs == 0
            if closed {
                queued.append(open!)
                open = nil
            }
            return .added(wake: idle && (fresh || closed))
        }

        /// When `take` next hands out a batch, with no completion before (nil: not until a
        /// completion or a record). Not while `max.in.flight` batches are in flight, nor while
        /// one numbered under a producer since forgotten is (its answer comes first: what follows
        /// is numbered again after it). A batch sent before goes alone, with nothing else in
        /// flight (so a partition's batches stay in order when one failed and those behind it
        /// were refused for it). Else the oldest closed one (after its retry backoff), or the
        /// open one once it lingered (at once if it is older than a flush's mark).
        func readyAtMs(flushBefore: UInt64, settings: Settings, roomWanted: Bool,
                       current: (RecordBatchBuilder.Producer) -> Bool) -> Int64? {
            guard inFlight.count < settings.maxInFlight else { return nil }
            if settings.idempotent && inFlight.contains(where: { $0.producer.baseSequence >= 0 && !current($0.producer) }) { return nil }
            if let first = queued.first {
                if first.attempts > 0 && !inFlight.isEmpty { return nil }
                return first.retryAtMs
            }
            guard let open else { return nil }
            return open.id < flushBefore || roomWanted ? 0 : open.createdMs + settings.lingerMs
        }

        /// The batch to send now (see `readyAtMs`), numbered from the partition's next sequence
        /// if it has no sequence yet.
        mutating func take(nowMs: Int64, flushBefore: UInt64, settings: Settings, roomWanted: Bool,
                           producer: (id: ProducerID, epoch: ProducerEpoch)?) -> Batch? {
            let current = { (stamp: RecordBatchBuilder.Producer) in
                producer.map { stamp.id == $0.id && stamp.epoch == $0.epoch } ?? false
            }
            guard let at = readyAtMs(flushBefore: flushBefore, settings: settings, roomWanted: roomWanted, current: current), at <= nowMs else {
                return nil
            }
            var batch: Batch
            if queued.first != nil {
                batch = queued.popFirst()
            } else {
                batch = open!
                open = nil
            }
            if settings.idempotent && batch.producer.baseSequence < 0, let (id, epoch) = producer {
                batch.producer = RecordBatchBuilder.Producer(id: id, epoch: epoch, baseSequence: nextSequence)
                nextSequence = RecordAccumulator.sequence(nextSequence, plus: batch.recordCount)
            }
            batch.attempts += 1
            inFlight.append(Sent(id: batch.id, producer: batch.producer))
            return batch
        }

        /// Takes `id` out of the batches in flight.
        mutating func landed(_ id: UInt64) {
            guard let at = inFlight.firstIndex(where: { $0.id == id }) else {
                preconditionFailure("a batch completed that was not in flight")
            }
            inFlight.remove(at: at)
        }
    }

    public let settings: Settings
    /// The partitions' lanes, in the order they were first used (a lane is never dropped: its
    /// next sequence is the producer's on that partition), found through `slots`; the last
    /// one appended to is found without hashing (a producer's records come in runs to a
    /// partition: a sticky partition's, or a run of one key's).
    var lanes: [Lane] = []
    var laneKeys: [TopicPartition] = []
    var slots: [TopicPartition: Int] = [:]
    var lastSlot = -1
    var nextBatchID: UInt64 = Batch.idSpan
    /// Bytes held by batches not yet completed.
    public private(set) var usedBytes = 0
    /// The producer id and epoch idempotent batches are stamped with (nil: none yet, or the
    /// last one's sequences became unknown; see `needsProducer`).
    public private(set) var producer: (id: ProducerID, epoch: ProducerEpoch)?
    /// Open batches made before this batch id are ready at once (a flush waits for them).
    public private(set) var flushBefore: UInt64 = 0
    /// A `send` waits for room in `buffer.memory`: open batches go without lingering, as the
    /// Java client's do when its buffer is exhausted (waiting would only hold the memory longer).
    public var roomWanted = false

    public init(_ settings: Settings) { self.settings = settings }

    /// Every batch made so far is ready at once; returns the mark to wait on with
    /// `hasBatches(before:)` (records appended later are not waited for).
    public mutating func flush() -> UInt64 {
        flushBefore = max(flushBefore, nextBatchID)
        return nextBatchID
    }

    /// Some batch made before `mark` is open, queued or in flight.
    public func hasBatches(before mark: UInt64) -> Bool {
        lanes.contains { lane in
            (lane.open.map { $0.id < mark } ?? false) || lane.inFlight.contains { $0.id < mark }
                || lane.queued.contains { $0.id < mark }
        }
    }

    /// The bytes a record adds to a batch, as the batch's record 4096 written 4 s after its
    /// first: its fields and length varints exactly, two bytes each for its offset and
    /// timestamp deltas (one more than a batch's first 64 records within 64 ms take), so a
    /// batch holds about as many records as its `batch.size` lets it (the Java client counts
    /// each exactly). A record past 8192 in a batch, or more than 4 s from its first (a
    /// timestamp the caller set), takes a few bytes more than counted: such a batch may pass
    /// `batch.size` by those (one refused as too large is split).
    public static func bytes(of record: SimpleRecord) -> Int {
        RecordBatchBuilder.recordSize(key: record.key, value: record.value, headers: record.headers,
                                      timestampDelta: 4_095, offsetDelta: 4_095).total
    }

    /// `stamp` numbers a batch under the current producer (a batch of an older one failing says
    /// nothing of the current one's sequences).
    func isCurrent(_ stamp: RecordBatchBuilder.Producer) -> Bool {
        guard settings.idempotent, stamp.baseSequence >= 0, let producer else { return false }
        return stamp.id == producer.id && stamp.epoch == producer.epoch
    }

    /// An idempotent producer needs an id before anything more is handed out.
    public var needsProducer: Bool { settings.idempotent && producer == nil }

    /// No record is waiting, queued or in flight.
    public var isEmpty: Bool { usedBytes == 0 }

    /// Partitions with records waiting to be handed out.
    public var waitingPartitions: [TopicPartition] {
        lanes.indices.filter { lanes[$0].open != nil || !lanes[$0].queued.isEmpty }.map { laneKeys[$0] }.sorted()
    }

    /// Adds `record` to `partition`'s open batch (a new one when it has none or it is full).
    /// The lane is changed in place, with one lookup: a copy of it would make every append copy
    /// the open batch.
    /// `bytes`: the record's `bytes(of:)`, when the caller has worked it out already.
    public mutating func append(_ record: SimpleRecord, token: Token, to partition: TopicPartition, nowMs: Int64,
                                bytes: Int? = nil) -> Appended {
        let size = bytes ?? Self.bytes(of: record)
        // A record alone larger than the whole buffer never fits: the caller refuses it first.
        precondition(size + Batch.overheadBytes <= settings.bufferBytes, "a record larger than buffer.memory")
        let slot: Int
        if lastSlot >= 0 && laneKeys[lastSlot] == partition {
            slot = lastSlot
        } else if let known = slots[partition] {
            slot = known
        } else {
            slot = lanes.count
            lanes.append(Lane())
            laneKeys.append(partition)
            slots[partition] = slot
        }
        lastSlot = slot
        return lanes[slot].append(
            record, token: token, bytes: size, partition: partition, nowMs: nowMs, settings: settings,
            usedBytes: &usedBytes, nextBatchID: &nextBatchID)
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
        for slot in lanes.indices {
            lanes[slot].nextSequence = 0
            lanes[slot].queued.clearSequences()
        }
    }

    /// The batches to send now, by the leader `leader` names (partitions without one wait): at
    /// most one per partition (a request carries one batch of a partition), as `Lane.readyAtMs`
    /// tells; `nextDeadlineMs` is 0 while a partition has more to send.
    public mutating func drain(nowMs: Int64, leader: (TopicPartition) -> NodeID?) -> [NodeID: [Batch]] {
        guard !needsProducer else { return [:] }
        var out: [NodeID: [Batch]] = [:]
        for slot in lanes.indices.sorted(by: { laneKeys[$0] < laneKeys[$1] }) {
            guard let node = leader(laneKeys[slot]),
                  let batch = lanes[slot].take(nowMs: nowMs, flushBefore: flushBefore, settings: settings, roomWanted: roomWanted, producer: producer)
            else { continue }
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
    /// `backoff` false: it may go again at once (KIP-951: the answer named the new leader).
    public mutating func failed(_ batch: Batch, retriable: Bool, nowMs: Int64, backoff: Bool = true) -> Bool {
        if retriable && nowMs - batch.createdMs < settings.deliveryTimeoutMs {
            var again = batch
            again.retryAtMs = backoff ? nowMs + settings.retryBackoffMs : nowMs
            // Sent by a producer since forgotten: numbered again under the next one.
            if producer.map({ again.producer.id != $0.id || again.producer.epoch != $0.epoch }) ?? true { again.producer = .none }
            lanes[slot(of: batch.partition)].landed(batch.id)
            lanes[slot(of: batch.partition)].queued.putBack(again)
            return false
        }
        finish(batch)
        if isCurrent(batch.producer) { forgetProducer() }
        return true
    }

    /// A batch refused as too large (MESSAGE_TOO_LARGE) goes again as two halves, in its place,
    /// after the retry backoff (returns true); one that cannot be split, or is out of time, is
    /// left to `failed` (returns false).
    public mutating func split(_ batch: Batch, nowMs: Int64) -> Bool {
        guard nowMs - batch.createdMs < settings.deliveryTimeoutMs,
              let (first, second) = batch.halves(current: isCurrent(batch.producer)) else { return false }
        lanes[slot(of: batch.partition)].landed(batch.id)
        for var half in [second, first] {
            half.retryAtMs = nowMs + settings.retryBackoffMs
            lanes[slot(of: batch.partition)].queued.putBack(half)
        }
        usedBytes += first.bytes + second.bytes - batch.bytes
        return true
    }

    /// `batch` was refused as out of order (or of an unknown producer) while a batch before it
    /// on its partition, of the same producer, is in flight or waits to go again: the refusal
    /// is that batch's doing, and `batch` goes again after it with the same sequence.
    public func followsUnwrittenBatch(_ batch: Batch) -> Bool {
        guard isCurrent(batch.producer), let slot = slots[batch.partition] else { return false }
        let lane = lanes[slot]
        return lane.inFlight.contains { $0.id < batch.id && isCurrent($0.producer) }
            || lane.queued.contains { $0.id < batch.id && isCurrent($0.producer) }
    }

    /// Where `partition`'s lane is (it has one: a batch of it exists).
    func slot(of partition: TopicPartition) -> Int {
        guard let slot = slots[partition] else { preconditionFailure("a batch of \(partition), which has no lane") }
        return slot
    }

    /// Changed in place; the lane stays when empty: its next sequence is the producer's on
    /// that partition.
    private mutating func finish(_ batch: Batch) {
        lanes[slot(of: batch.partition)].landed(batch.id)
        usedBytes -= batch.bytes
        precondition(usedBytes >= 0, "more bytes released than held")
    }

    /// Batches not in flight that waited `delivery.timeout.ms` since their first record: taken
    /// out, to fail their records.
    public mutating func expire(nowMs: Int64) -> [Batch] {
        let timeoutMs = settings.deliveryTimeoutMs
        let late = { (b: Batch) in nowMs - b.createdMs >= timeoutMs }
        // Batches queue oldest first (a batch sent again goes back to the front, and it is the
        // oldest): a lane has a late batch if its first queued one, or its open one, is late.
        let lateLanes = lanes.indices.filter { lanes[$0].queued.first.map(late) == true || lanes[$0].open.map(late) == true }
        guard !lateLanes.isEmpty else { return [] }
        var expired: [Batch] = []
        for slot in lateLanes.sorted(by: { laneKeys[$0] < laneKeys[$1] }) {
            expired += lanes[slot].queued.remove(where: late)
            if let open = lanes[slot].open, late(open) {
                expired.append(open)
                lanes[slot].open = nil
            }
        }
        for batch in expired { usedBytes -= batch.bytes }
        if expired.contains(where: { isCurrent($0.producer) }) { forgetProducer() }
        return expired
    }

    /// When `drain` or `expire` next has something to do for batches not in flight (nil: not
    /// before a batch completes or a record comes). A partition that cannot send more until a
    /// completion (`Lane.readyAtMs`), or without a leader, counts only for expiry: its
    /// completion, or the metadata, wakes the sender for the rest (counting its linger would
    /// have the sender spin).
    public func nextDeadlineMs(leader: (TopicPartition) -> NodeID?) -> Int64? {
        var next: Int64?
        func consider(_ t: Int64) { next = min(next ?? t, t) }
        for (key, lane) in zip(laneKeys, lanes) {
            if leader(key) != nil,
               let at = lane.readyAtMs(flushBefore: flushBefore, settings: settings, roomWanted: roomWanted, current: isCurrent) {
                consider(at)
            }
            // The oldest batch is the first queued one, or else the open one.
            if let oldest = lane.queued.first ?? lane.open { consider(oldest.createdMs + settings.deliveryTimeoutMs) }
        }
        return next
    }
}
