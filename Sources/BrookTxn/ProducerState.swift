import BrookCore
import BrookProtocol

/// What a batch says about the producer that wrote it (its header fields), as the producer state
/// judges it before the append and records it after.
public struct ProducerBatch: Sendable, Equatable {
    public var producerID: ProducerID
    public var epoch: ProducerEpoch
    public var baseSequence: Int32
    /// `lastOffsetDelta`: the batch holds `offsetDelta + 1` sequence numbers.
    public var offsetDelta: Int32
    public var isTransactional: Bool
    /// A commit or abort marker (a control batch); nil for data.
    public var marker: Marker?
    public var maxTimestamp: Int64

    public enum Marker: Sendable, Equatable {
        case commit, abort
    }

    public init(producerID: ProducerID, epoch: ProducerEpoch, baseSequence: Int32, offsetDelta: Int32,
                isTransactional: Bool, marker: Marker? = nil, maxTimestamp: Int64) {
        self.producerID = producerID
        self.epoch = epoch
        self.baseSequence = baseSequence
        self.offsetDelta = offsetDelta
        self.isTransactional = isTransactional
        self.marker = marker
        self.maxTimestamp = maxTimestamp
    }

    /// The last sequence number, wrapping past Int32.max to 0 as the producer does.
    public var lastSequence: Int32 { ProducerState.sequence(baseSequence, plus: offsetDelta) }
}

/// One of a producer's recent batches, kept to recognise a retry.
public struct RecentBatch: Sendable, Equatable {
    public var firstSequence: Int32
    public var lastSequence: Int32
    public var firstOffset: Offset
    public var lastOffset: Offset
}

/// One producer's state in one partition.
public struct ProducerEntry: Sendable, Equatable {
    public var epoch: ProducerEpoch
    /// The last `ProducerState.recentBatchesMax` batches, oldest first.
    public var batches: [RecentBatch] = []
    /// The first offset of its open transaction here (nil: none open).
    public var currentTxnFirstOffset: Offset?
    public var coordinatorEpoch: Int32 = -1
    /// The time (ms) of its last write, which expiry counts from.
    public var lastTimestamp: Int64
    public var lastSequence: Int32 { batches.last?.lastSequence ?? -1 }
}

/// An aborted transaction's range in a partition, as Fetch returns it to read_committed
/// consumers (and as `.txnindex` keeps it).
public struct AbortedTxn: Sendable, Equatable, Hashable {
    public var producerID: ProducerID
    public var firstOffset: Offset
    /// The offset of its abort marker.
    public var lastOffset: Offset
    public var lastStableOffset: Offset

    public init(producerID: ProducerID, firstOffset: Offset, lastOffset: Offset, lastStableOffset: Offset) {
        self.producerID = producerID
        self.firstOffset = firstOffset
        self.lastOffset = lastOffset
        self.lastStableOffset = lastStableOffset
    }
}

/// What the producer state says of a batch about to be appended.
public enum ProducerCheck: Sendable, Equatable {
    /// Write it.
    case append
    /// A retry of a batch already written: answer with its offsets and write nothing.
    case duplicate(RecentBatch)
    /// Refuse it.
    case refuse(ErrorCode, String)
}

/// The producer state of one partition: every idempotent producer's epoch and recent sequence
/// ranges, the open transactions (which hold the last stable offset back) and the aborted ones.
/// A pure value: the broker checks each batch before the append and records it after, under the
/// partition's lock; it is rebuilt from a snapshot plus the log after it.
public struct ProducerState: Sendable, Equatable {
    /// Kafka keeps the last five batches per producer: as many as a producer may have in flight.
    public static let recentBatchesMax = 5
    /// Producers kept per partition; the least recently active idle one makes room.
    public static let producersMax = 100_000

    public private(set) var producers: [ProducerID: ProducerEntry] = [:]
    /// Aborted transactions by marker offset (ascending).
    public private(set) var aborted: [AbortedTxn] = []
    /// The producers with a transaction open here and its first offset: each entry's
    /// `currentTxnFirstOffset`, kept apart so that the last stable offset (asked on every
    /// fetch) looks at the few open transactions, not at every producer.
    private var openTransactions: [ProducerID: Offset] = [:]

    public init() {}

    public static func sequence(_ base: Int32, plus delta: Int32) -> Int32 {
        let sum = Int64(base) + Int64(delta)
        return sum > Int64(Int32.max) ? Int32(sum - Int64(Int32.max) - 1) : Int32(sum)
    }

    /// Judges a batch before it is written. `fromCoordinator` marks batches the broker writes for
    /// a transaction coordinator (offset commits, markers), whose sequence is not checked.
    /// `coordinatorEpoch`: a marker's (-1: not known); one older than the last marker's of the
    /// same producer comes from a coordinator that has since been replaced.
    public func check(_ batch: ProducerBatch, fromCoordinator: Bool = false, coordinatorEpoch: Int32 = -1) -> ProducerCheck {
        guard batch.producerID != .none else {
            if batch.isTransactional { return .refuse(.invalidRecord, "A transactional batch needs a producer id") }
            return .append
        }
        guard batch.epoch >= ProducerEpoch(0) else { return .refuse(.invalidRecord, "Producer id \(batch.producerID) with no epoch") }
        let entry = producers[batch.producerID]
        if let marker = batch.marker {
            if let entry, batch.epoch < entry.epoch {
                return .refuse(.producerFenced, "Marker of epoch \(batch.epoch) for producer \(batch.producerID) at epoch \(entry.epoch)")
            }
            if let entry, coordinatorEpoch >= 0, coordinatorEpoch < entry.coordinatorEpoch {
                return .refuse(.transactionCoordinatorFenced,
                               "Marker from coordinator epoch \(coordinatorEpoch) for producer \(batch.producerID), after one from \(entry.coordinatorEpoch)")
            }
            _ = marker
            return .append
        }
        if let entry {
            if batch.epoch < entry.epoch {
                return .refuse(.invalidProducerEpoch,
                               "Producer \(batch.producerID) wrote with epoch \(batch.epoch), older than its current \(entry.epoch)")
            }
            if batch.epoch == entry.epoch,
               let original = entry.batches.first(where: { $0.firstSequence == batch.baseSequence && $0.lastSequence == batch.lastSequence }) {
                return .duplicate(original)
            }
            if !batch.isTransactional && entry.currentTxnFirstOffset != nil {
                return .refuse(.invalidTxnState, "Producer \(batch.producerID) wrote outside its open transaction")
            }
        }
        if fromCoordinator { return .append }
        guard batch.baseSequence >= 0 else { return .refuse(.invalidRecord, "Producer \(batch.producerID) sent no sequence number") }
        if let entry {
            if batch.epoch > entry.epoch {
                // A new epoch starts its sequence again.
                if batch.baseSequence != 0 {
                    return .refuse(.outOfOrderSequenceNumber,
                                   "Producer \(batch.producerID)'s new epoch \(batch.epoch) starts at sequence \(batch.baseSequence), not 0")
                }
            } else if entry.batches.isEmpty {
                // Known at this epoch (from a marker) but with nothing written: it starts at 0.
                if batch.baseSequence != 0 {
                    return .refuse(.outOfOrderSequenceNumber,
                                   "Producer \(batch.producerID) starts epoch \(batch.epoch) here at sequence \(batch.baseSequence), not 0")
                }
            } else if batch.baseSequence != Self.sequence(entry.lastSequence, plus: 1) {
                return .refuse(.outOfOrderSequenceNumber,
                               "Producer \(batch.producerID) sent sequence \(batch.baseSequence) after \(entry.lastSequence)")
            }
        }
        // An unknown producer (new, or expired) may start at any sequence, as in Kafka.
        return .append
    }

    /// What appending a marker ended, if it ended a transaction here.
    public struct Completed: Sendable, Equatable {
        public var producerID: ProducerID
        public var firstOffset: Offset
        public var lastOffset: Offset
        public var aborted: Bool
    }

    /// Records a batch written at `firstOffset ... firstOffset + offsetDelta`. `logEnd` is the
    /// log end offset after it (the last stable offset a completed abort records).
    @discardableResult
    public mutating func appended(_ batch: ProducerBatch, firstOffset: Offset, coordinatorEpoch: Int32 = -1,
                                  now: Int64) -> Completed? {
        guard batch.producerID != .none else { return nil }
        let lastOffset = firstOffset + Int64(batch.offsetDelta)
        var entry = producers[batch.producerID] ?? ProducerEntry(epoch: batch.epoch, lastTimestamp: now)
        if batch.epoch > entry.epoch {
            entry.epoch = batch.epoch
            entry.batches.removeAll()
        }
        entry.lastTimestamp = max(entry.lastTimestamp, now)
        var completed: Completed?
        if let marker = batch.marker {
            entry.coordinatorEpoch = max(entry.coordinatorEpoch, coordinatorEpoch)
            if let first = entry.currentTxnFirstOffset {
                completed = Completed(producerID: batch.producerID, firstOffset: first, lastOffset: lastOffset, aborted: marker == .abort)
                entry.currentTxnFirstOffset = nil
            }
        } else {
            if batch.isTransactional && entry.currentTxnFirstOffset == nil { entry.currentTxnFirstOffset = firstOffset }
            if batch.baseSequence >= 0 {
                entry.batches.append(RecentBatch(firstSequence: batch.baseSequence, lastSequence: batch.lastSequence,
                                                 firstOffset: firstOffset, lastOffset: lastOffset))
                if entry.batches.count > Self.recentBatchesMax { entry.batches.removeFirst() }
            }
        }
        if producers[batch.producerID] == nil && producers.count >= Self.producersMax { evictOne() }
        producers[batch.producerID] = entry
        openTransactions[batch.producerID] = entry.currentTxnFirstOffset
        // Markers come in offset order; one already listed (a replay over restored entries) is not listed again.
        if let completed, completed.aborted, aborted.last.map({ $0.lastOffset < completed.lastOffset }) ?? true {
            let stable = lastStableOffset(logEnd: lastOffset + 1)
            aborted.append(AbortedTxn(producerID: completed.producerID, firstOffset: completed.firstOffset,
                                      lastOffset: completed.lastOffset, lastStableOffset: stable))
        }
        return completed
    }

    /// The last stable offset: the first offset of the oldest open transaction, or the log end.
    public func lastStableOffset(logEnd: Offset) -> Offset {
        openTransactions.values.reduce(logEnd) { min($0, $1) }
    }

    /// Aborted transactions that overlap `from ..< upTo`, oldest first, at most `limit`.
    public func abortedTransactions(from: Offset, upTo: Offset, limit: Int = 10_000) -> [AbortedTxn] {
        var low = 0
        var high = aborted.count
        while low < high {  // the first whose marker is at or after `from`
            let middle = (low + high) / 2
            if aborted[middle].lastOffset < from { low = middle + 1 } else { high = middle }
        }
        var out: [AbortedTxn] = []
        for txn in aborted[low...] where txn.firstOffset < upTo {
            out.append(txn)
            if out.count >= limit { break }
        }
        return out
    }

    /// Adds aborted transactions read from `.txnindex` files (kept in marker order, no repeats).
    public mutating func restoreAborted(_ list: [AbortedTxn]) {
        var seen = Set(aborted.map(\.lastOffset))
        for txn in list where !seen.contains(txn.lastOffset) {
            aborted.append(txn)
            seen.insert(txn.lastOffset)
        }
        aborted.sort { $0.lastOffset < $1.lastOffset }
    }

    /// Forgets what lies at or past `offset` (a log cut back by recovery) among aborted ranges.
    public mutating func dropAborted(from offset: Offset) {
        aborted.removeAll { $0.lastOffset >= offset }
    }

    /// Forgets aborted ranges that end below the log start (retention removed them).
    public mutating func dropAborted(before logStart: Offset) {
        aborted.removeAll { $0.lastOffset < logStart }
    }

    /// Removes producers idle for `expirationMs` with no open transaction (`producer.id.expiration.ms`).
    @discardableResult
    public mutating func expire(now: Int64, expirationMs: Int64) -> Int {
        let doomed = producers.filter { $0.value.currentTxnFirstOffset == nil && now - $0.value.lastTimestamp >= expirationMs }
        for id in doomed.keys { producers[id] = nil }
        return doomed.count
    }

    private mutating func evictOne() {
        guard let idle = producers.filter({ $0.value.currentTxnFirstOffset == nil })
            .min(by: { $0.value.lastTimestamp < $1.value.lastTimestamp }) else { return }
        producers[idle.key] = nil
    }

    /// Restores a producer (from a snapshot).
    mutating func restore(_ id: ProducerID, _ entry: ProducerEntry) {
        precondition(entry.batches.count <= Self.recentBatchesMax, "a snapshot keeps at most \(Self.recentBatchesMax) batches")
        producers[id] = entry
        openTransactions[id] = entry.currentTxnFirstOffset
    }
}
