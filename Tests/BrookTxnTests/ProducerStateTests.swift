@testable import BrookTxn
import BrookCore
import BrookProtocol
import Testing

// One partition's producer state driven as the broker drives it: each batch is checked, and an
// accepted one is recorded at the log end. Time is a plain `now` (no clock anywhere).

let producerA = ProducerID(1_000), producerB = ProducerID(2_000), producerC = ProducerID(3_000)
let producerD = ProducerID(4_000)

/// An idempotent (or, with `txn`, transactional) data batch of `count` records.
func dataBatch(_ producer: ProducerID, epoch: Int16 = 0, seq: Int32, count: Int32 = 1, txn: Bool = false) -> ProducerBatch {
    ProducerBatch(producerID: producer, epoch: ProducerEpoch(epoch), baseSequence: seq, offsetDelta: count - 1,
                  isTransactional: txn, maxTimestamp: 0)
}

/// A commit or abort marker, as a transaction coordinator has it written (a control batch).
func endMarker(_ producer: ProducerID, epoch: Int16 = 0, commit: Bool) -> ProducerBatch {
    ProducerBatch(producerID: producer, epoch: ProducerEpoch(epoch), baseSequence: -1, offsetDelta: 0,
                  isTransactional: true, marker: commit ? .commit : .abort, maxTimestamp: 0)
}

/// A batch of a plain producer (no producer id): never tracked, it only moves the offsets.
func plainBatch(count: Int32 = 1) -> ProducerBatch {
    ProducerBatch(producerID: .none, epoch: .none, baseSequence: -1, offsetDelta: count - 1, isTransactional: false,
                  maxTimestamp: 0)
}

func aborted(_ producer: ProducerID, _ first: Int64, _ last: Int64, stable: Int64? = nil) -> AbortedTxn {
    AbortedTxn(producerID: producer, firstOffset: Offset(first), lastOffset: Offset(last),
               lastStableOffset: Offset(stable ?? last + 1))
}

extension ProducerCheck {
    /// The error of a refusal (nil when the batch is written or is a duplicate).
    var refusal: ErrorCode? {
        if case .refuse(let code, _) = self { return code }
        return nil
    }
}

/// A partition's log reduced to its end offset, with the producer state beside it.
struct ProducerLog {
    var state = ProducerState()
    var logEnd = Offset.zero
    /// What each appended marker completed, in order.
    var completed: [ProducerState.Completed] = []

    /// Checks `batch` and, when it is to be written, records it at the log end. Returns the check
    /// and the offset the batch was (or would have been) written at.
    @discardableResult
    mutating func write(_ batch: ProducerBatch, now: Int64 = 1_000, coordinatorEpoch: Int32 = -1) -> (ProducerCheck, Offset) {
        let check = state.check(batch, fromCoordinator: batch.marker != nil, coordinatorEpoch: coordinatorEpoch)
        let first = logEnd
        guard check == .append else { return (check, first) }
        if let done = state.appended(batch, firstOffset: first, coordinatorEpoch: coordinatorEpoch, now: now) {
            completed.append(done)
        }
        logEnd = first + Int64(batch.offsetDelta) + 1
        return (check, first)
    }

    var lastStableOffset: Offset { state.lastStableOffset(logEnd: logEnd) }
}

@Suite struct ProducerStateTests {
    @Test func anUnknownProducerMayStartAtAnySequence() {
        var log = ProducerLog()
        #expect(log.state.check(dataBatch(producerA, seq: 42, count: 3)) == .append)
        #expect(log.write(dataBatch(producerA, seq: 42, count: 3)).0 == .append)
        #expect(log.state.producers[producerA]?.lastSequence == 44)
        #expect(log.state.check(dataBatch(producerA, seq: 45)) == .append)
        // Another producer never seen here starts wherever it likes too, at any epoch.
        #expect(log.state.check(dataBatch(producerB, epoch: 3, seq: 1_000_000)) == .append)
        // A batch with no producer id is written and not tracked.
        #expect(log.write(plainBatch(count: 2)).0 == .append)
        #expect(log.state.producers.count == 1)
        #expect(log.logEnd == Offset(5))
    }

    @Test func inOrderBatchesAreAcceptedAndRemembered() throws {
        var log = ProducerLog()
        for (seq, count) in [(Int32(0), Int32(3)), (3, 2), (5, 1), (6, 4)] {
            #expect(log.write(dataBatch(producerA, seq: seq, count: count)).0 == .append, "sequence \(seq)")
        }
        let entry = try #require(log.state.producers[producerA])
        #expect(entry.epoch == ProducerEpoch(0))
        #expect(entry.lastSequence == 9)
        #expect(entry.batches.map(\.firstSequence) == [0, 3, 5, 6])
        #expect(entry.batches.last == RecentBatch(firstSequence: 6, lastSequence: 9, firstOffset: Offset(6), lastOffset: Offset(9)))
        #expect(entry.currentTxnFirstOffset == nil)
        #expect(log.logEnd == Offset(10))
        #expect(log.lastStableOffset == Offset(10))
    }

    @Test func aRetryOfEachOfTheLastFiveBatchesGetsItsOriginalOffsets() {
        var log = ProducerLog()
        var written: [RecentBatch] = []
        for i in 0..<7 {
            log.write(plainBatch(count: 3))  // other writers keep the offsets apart from the sequence numbers
            let seq = Int32(i * 2)
            let (check, first) = log.write(dataBatch(producerA, seq: seq, count: 2))
            #expect(check == .append)
            written.append(RecentBatch(firstSequence: seq, lastSequence: seq + 1, firstOffset: first, lastOffset: first + 1))
        }
        #expect(ProducerState.recentBatchesMax == 5)
        #expect(log.state.producers[producerA]?.batches == Array(written.suffix(5)))
        let end = log.logEnd
        for original in written.suffix(5) {
            let retry = dataBatch(producerA, seq: original.firstSequence, count: 2)
            #expect(log.write(retry).0 == .duplicate(original), "retry of sequence \(original.firstSequence)")
        }
        // Nothing was written for the duplicates.
        #expect(log.logEnd == end)
        // A retry older than the last five is no longer recognised: it is out of order.
        for original in written.prefix(2) {
            let retry = dataBatch(producerA, seq: original.firstSequence, count: 2)
            #expect(log.state.check(retry).refusal == .outOfOrderSequenceNumber, "retry of sequence \(original.firstSequence)")
        }
        // A batch at a remembered first sequence but of another length is not the same batch.
        #expect(log.state.check(dataBatch(producerA, seq: 12, count: 1)).refusal == .outOfOrderSequenceNumber)
        // And the producer carries on where it was.
        #expect(log.state.check(dataBatch(producerA, seq: 14)) == .append)
    }

    @Test func aGapInTheSequenceIsOutOfOrder() {
        var log = ProducerLog()
        log.write(dataBatch(producerA, seq: 0, count: 3))
        #expect(log.state.check(dataBatch(producerA, seq: 4)).refusal == .outOfOrderSequenceNumber)
        #expect(log.state.check(dataBatch(producerA, seq: 1_000)).refusal == .outOfOrderSequenceNumber)
        // Overlapping what was written without being a retry of it.
        #expect(log.state.check(dataBatch(producerA, seq: 2, count: 2)).refusal == .outOfOrderSequenceNumber)
        #expect(log.write(dataBatch(producerA, seq: 3)).0 == .append)
        #expect(log.state.producers[producerA]?.lastSequence == 3)
    }

    @Test func anOlderEpochIsRefused() {
        var log = ProducerLog()
        log.write(dataBatch(producerA, epoch: 0, seq: 0))
        #expect(log.write(dataBatch(producerA, epoch: 1, seq: 0)).0 == .append)
        #expect(log.state.check(dataBatch(producerA, epoch: 0, seq: 1)).refusal == .invalidProducerEpoch)
        // Even a retry of what the old epoch wrote.
        #expect(log.state.check(dataBatch(producerA, epoch: 0, seq: 0)).refusal == .invalidProducerEpoch)
        #expect(log.state.check(dataBatch(producerA, epoch: 1, seq: 1)) == .append)
    }

    @Test func aNewEpochStartsAtSequenceZero() {
        var log = ProducerLog()
        log.write(dataBatch(producerA, epoch: 0, seq: 0, count: 5))  // offsets 0...4
        #expect(log.state.check(dataBatch(producerA, epoch: 1, seq: 5)).refusal == .outOfOrderSequenceNumber)
        #expect(log.state.check(dataBatch(producerA, epoch: 1, seq: 1)).refusal == .outOfOrderSequenceNumber)
        #expect(log.write(dataBatch(producerA, epoch: 1, seq: 0, count: 2)).0 == .append)  // offsets 5...6
        let entry = log.state.producers[producerA]
        #expect(entry?.epoch == ProducerEpoch(1))
        #expect(entry?.batches == [RecentBatch(firstSequence: 0, lastSequence: 1, firstOffset: Offset(5), lastOffset: Offset(6))])
        #expect(log.state.check(dataBatch(producerA, epoch: 1, seq: 2)) == .append)
    }

    @Test func theSequenceWrapsPastInt32Max() {
        var log = ProducerLog()
        log.write(dataBatch(producerA, seq: Int32.max - 1, count: 2))  // Int32.max - 1, Int32.max
        #expect(log.state.producers[producerA]?.lastSequence == Int32.max)
        #expect(log.state.check(dataBatch(producerA, seq: 1)).refusal == .outOfOrderSequenceNumber)
        #expect(log.write(dataBatch(producerA, seq: 0, count: 3)).0 == .append)
        #expect(log.state.producers[producerA]?.lastSequence == 2)
        #expect(log.state.check(dataBatch(producerA, seq: 3)) == .append)

        // One batch may itself cross the wrap.
        var other = ProducerLog()
        let spanning = dataBatch(producerB, seq: Int32.max - 1, count: 4)
        #expect(spanning.lastSequence == 1)
        #expect(other.write(spanning).0 == .append)
        #expect(other.state.producers[producerB]?.lastSequence == 1)
        #expect(other.state.check(spanning)
            == .duplicate(RecentBatch(firstSequence: Int32.max - 1, lastSequence: 1, firstOffset: .zero, lastOffset: Offset(3))))
        #expect(other.state.check(dataBatch(producerB, seq: 0)).refusal == .outOfOrderSequenceNumber)
        #expect(other.state.check(dataBatch(producerB, seq: 2)) == .append)
    }

    @Test func anOpenTransactionHoldsTheLastStableOffsetUntilItsCommit() {
        var log = ProducerLog()
        log.write(plainBatch(count: 3))  // 0...2
        #expect(log.lastStableOffset == Offset(3))
        let (check, first) = log.write(dataBatch(producerA, seq: 0, count: 2, txn: true))  // 3...4
        #expect(check == .append)
        #expect(first == Offset(3))
        #expect(log.state.producers[producerA]?.currentTxnFirstOffset == Offset(3))
        #expect(log.lastStableOffset == Offset(3))
        log.write(plainBatch(count: 2))  // 5...6
        log.write(dataBatch(producerA, seq: 2, txn: true))  // 7
        #expect(log.lastStableOffset == Offset(3))
        #expect(log.completed.isEmpty)

        let (markerCheck, markerOffset) = log.write(endMarker(producerA, commit: true), coordinatorEpoch: 3)  // 8
        #expect(markerCheck == .append)
        #expect(markerOffset == Offset(8))
        #expect(log.completed == [ProducerState.Completed(producerID: producerA, firstOffset: Offset(3), lastOffset: Offset(8), aborted: false)])
        #expect(log.logEnd == Offset(9))
        #expect(log.lastStableOffset == log.logEnd)
        #expect(log.state.producers[producerA]?.currentTxnFirstOffset == nil)
        #expect(log.state.producers[producerA]?.coordinatorEpoch == 3)
        // A commit records no aborted range.
        #expect(log.state.aborted.isEmpty)
        #expect(log.state.abortedTransactions(from: .zero, upTo: log.logEnd).isEmpty)
        // The next transaction under the same epoch carries on with the sequence.
        #expect(log.state.check(dataBatch(producerA, seq: 3, txn: true)) == .append)
    }

    @Test func anAbortRecordsTheAbortedRangeForReadCommittedFetches() {
        var log = ProducerLog()
        log.write(plainBatch(count: 2))  // 0...1
        log.write(dataBatch(producerA, seq: 0, count: 2, txn: true))  // 2...3
        log.write(plainBatch())  // 4
        log.write(dataBatch(producerA, seq: 2, txn: true))  // 5
        let (check, markerOffset) = log.write(endMarker(producerA, commit: false))  // 6
        #expect(check == .append)
        #expect(markerOffset == Offset(6))
        #expect(log.completed == [ProducerState.Completed(producerID: producerA, firstOffset: Offset(2), lastOffset: Offset(6), aborted: true)])
        let expected = aborted(producerA, 2, 6, stable: 7)
        #expect(log.state.aborted == [expected])
        #expect(log.lastStableOffset == Offset(7))
        // Fetch ranges that overlap it see it...
        #expect(log.state.abortedTransactions(from: .zero, upTo: log.logEnd) == [expected])
        #expect(log.state.abortedTransactions(from: Offset(3), upTo: Offset(4)) == [expected])
        #expect(log.state.abortedTransactions(from: .zero, upTo: Offset(3)) == [expected])
        #expect(log.state.abortedTransactions(from: Offset(6), upTo: Offset(7)) == [expected])
        // ...ranges outside it do not.
        #expect(log.state.abortedTransactions(from: .zero, upTo: Offset(2)).isEmpty)
        #expect(log.state.abortedTransactions(from: Offset(7), upTo: Offset(100)).isEmpty)
    }

    @Test func anAbortWhileAnotherTransactionIsOpenRecordsThatTransactionAsTheStableBound() {
        var log = ProducerLog()
        log.write(dataBatch(producerA, seq: 0, txn: true))  // 0
        log.write(dataBatch(producerB, seq: 0, count: 2, txn: true))  // 1...2
        #expect(log.lastStableOffset == .zero)
        log.write(endMarker(producerB, commit: false))  // 3
        #expect(log.state.aborted == [aborted(producerB, 1, 3, stable: 0)])
        #expect(log.lastStableOffset == .zero)
        log.write(endMarker(producerA, commit: true))  // 4
        #expect(log.lastStableOffset == Offset(5))
        #expect(log.completed.map(\.producerID) == [producerB, producerA])
    }

    @Test func aNonTransactionalWriteInsideAnOpenTransactionIsRefused() {
        var log = ProducerLog()
        log.write(dataBatch(producerA, seq: 0, txn: true))
        #expect(log.state.check(dataBatch(producerA, seq: 1)).refusal == .invalidTxnState)
        #expect(log.state.check(dataBatch(producerA, seq: 1, txn: true)) == .append)
    }

    @Test func aMarkerOfAnOlderEpochIsFenced() {
        var log = ProducerLog()
        log.write(dataBatch(producerA, epoch: 2, seq: 0, txn: true))
        #expect(log.state.check(endMarker(producerA, epoch: 1, commit: true)).refusal == .producerFenced)
        #expect(log.state.check(endMarker(producerA, epoch: 1, commit: false)).refusal == .producerFenced)
        #expect(log.state.check(endMarker(producerA, epoch: 2, commit: true)) == .append)
        // A marker for a producer this partition does not know is written, and ends nothing.
        var other = ProducerLog()
        #expect(other.write(endMarker(producerB, epoch: 5, commit: false)).0 == .append)
        #expect(other.completed.isEmpty)
        #expect(other.state.aborted.isEmpty)
        #expect(other.state.producers[producerB]?.epoch == ProducerEpoch(5))
    }

    @Test func aMarkerFromAReplacedCoordinatorIsFenced() {
        var log = ProducerLog()
        log.write(dataBatch(producerA, seq: 0, txn: true))
        // The coordinator moved (its __transaction_state partition's leader epoch went 3 -> 4).
        #expect(log.write(endMarker(producerA, commit: true), coordinatorEpoch: 4).0 == .append)
        log.write(dataBatch(producerA, seq: 1, txn: true))
        let late = endMarker(producerA, commit: false)
        #expect(log.state.check(late, fromCoordinator: true, coordinatorEpoch: 3).refusal == .transactionCoordinatorFenced)
        #expect(log.state.check(late, fromCoordinator: true, coordinatorEpoch: 4) == .append)
        #expect(log.state.check(late, fromCoordinator: true, coordinatorEpoch: 5) == .append)
        // A marker replayed from the log (its coordinator epoch not read back) keeps the one known.
        _ = log.state.appended(endMarker(producerA, commit: false), firstOffset: log.logEnd, coordinatorEpoch: -1, now: 1_000)
        #expect(log.state.producers[producerA]?.coordinatorEpoch == 4)
    }

    @Test func aMarkerWithABumpedEpochFencesTheOldEpochAndRestartsTheSequence() {
        var log = ProducerLog()
        log.write(dataBatch(producerA, epoch: 0, seq: 0, count: 3, txn: true))  // 0...2
        // The coordinator aborts the transaction (a timeout, or a new instance) under epoch 1.
        let (check, _) = log.write(endMarker(producerA, epoch: 1, commit: false))  // 3
        #expect(check == .append)
        #expect(log.state.aborted == [aborted(producerA, 0, 3)])
        let entry = log.state.producers[producerA]
        #expect(entry?.epoch == ProducerEpoch(1))
        #expect(entry?.batches.isEmpty == true)
        #expect(entry?.currentTxnFirstOffset == nil)
        // The fenced instance's next batch, and its retry of an earlier one, are refused.
        #expect(log.state.check(dataBatch(producerA, epoch: 0, seq: 3, txn: true)).refusal == .invalidProducerEpoch)
        #expect(log.state.check(dataBatch(producerA, epoch: 0, seq: 0, count: 3, txn: true)).refusal == .invalidProducerEpoch)
        // Under the new epoch the sequence starts again at 0 (Kafka: the entry's epoch is known,
        // its last sequence is none, so only 0 follows).
        #expect(log.state.check(dataBatch(producerA, epoch: 1, seq: 3, txn: true)).refusal == .outOfOrderSequenceNumber)
        #expect(log.state.check(dataBatch(producerA, epoch: 1, seq: 0, txn: true)) == .append)
    }

    @Test func expiryRemovesIdleProducersButNotOpenTransactions() {
        let expiration = TxnConfig().producerIDExpirationMs
        let t0: Int64 = 1_000_000
        var log = ProducerLog()
        log.write(dataBatch(producerA, seq: 0), now: t0)  // idle, no transaction
        log.write(dataBatch(producerB, seq: 0, txn: true), now: t0)  // idle, transaction open
        log.write(dataBatch(producerC, seq: 0), now: t0 + 10_000)  // active later
        #expect(log.state.expire(now: t0 + expiration - 1, expirationMs: expiration) == 0)
        #expect(log.state.producers.count == 3)
        #expect(log.state.expire(now: t0 + expiration, expirationMs: expiration) == 1)
        #expect(Set(log.state.producers.keys) == [producerB, producerC])
        // An expired producer is unknown again: any sequence is accepted.
        #expect(log.state.check(dataBatch(producerA, seq: 77)) == .append)
        // Once its transaction ends, B expires too, counted from its marker.
        log.write(endMarker(producerB, commit: true), now: t0 + expiration + 5)
        #expect(log.state.expire(now: t0 + 2 * expiration, expirationMs: expiration) == 1)
        #expect(Set(log.state.producers.keys) == [producerB])
        #expect(log.state.expire(now: t0 + 2 * expiration + 5, expirationMs: expiration) == 1)
        #expect(log.state.producers.isEmpty)
    }

    @Test func restoredAbortedTransactionsAreSortedWithoutRepeats() {
        let t1 = aborted(producerA, 0, 10), t2 = aborted(producerB, 5, 20), t3 = aborted(producerA, 12, 30)
        let t4 = aborted(producerC, 25, 40)
        var state = ProducerState()
        state.restoreAborted([t3, t1])
        state.restoreAborted([t2, t1, t3, t4, t2])
        #expect(state.aborted == [t1, t2, t3, t4])
        #expect(state.abortedTransactions(from: Offset(21), upTo: Offset(26)) == [t3, t4])
        #expect(state.abortedTransactions(from: Offset(11), upTo: Offset(12)) == [t2])
        #expect(state.abortedTransactions(from: .zero, upTo: Offset(100), limit: 2) == [t1, t2])

        // Restored ranges merge with one the log replay recorded.
        var log = ProducerLog()
        log.write(plainBatch(count: 50))  // 0...49
        log.write(dataBatch(producerD, seq: 0, txn: true))  // 50
        log.write(endMarker(producerD, commit: false))  // 51
        let replayed = aborted(producerD, 50, 51)
        log.state.restoreAborted([t2, replayed, t1])
        #expect(log.state.aborted == [t1, t2, replayed])
    }

    @Test func droppingAbortedRangesCutsAtTheirMarkers() {
        let all = [aborted(producerA, 0, 10), aborted(producerB, 5, 20), aborted(producerC, 12, 30)]
        // A log cut back to 20 loses the abort whose marker was at 20.
        var cut = ProducerState()
        cut.restoreAborted(all)
        cut.dropAborted(from: Offset(20))
        #expect(cut.aborted == [all[0]])
        // Retention up to 20 loses only what ended below it.
        var retained = ProducerState()
        retained.restoreAborted(all)
        retained.dropAborted(before: Offset(20))
        #expect(retained.aborted == [all[1], all[2]])
        retained.dropAborted(before: Offset(31))
        #expect(retained.aborted.isEmpty)
    }
}

@Suite struct ProducerSnapshotTests {
    /// Four producers: an idempotent one, one with an open transaction, one past five batches with
    /// a committed transaction and a coordinator epoch, and one known only from a bumped abort marker.
    static func busyState() -> ProducerState {
        var log = ProducerLog()
        for seq in stride(from: Int32(0), to: 6, by: 2) {
            log.write(dataBatch(producerA, seq: seq, count: 2), now: 1_000 + Int64(seq))
        }
        log.write(dataBatch(producerB, epoch: 4, seq: 0, count: 3, txn: true), now: 2_000)
        log.write(dataBatch(producerB, epoch: 4, seq: 3, txn: true), now: 2_001)
        for i in 0..<7 {
            log.write(dataBatch(producerC, epoch: 2, seq: Int32(i), txn: true), now: 3_000 + Int64(i))
        }
        log.write(endMarker(producerC, epoch: 2, commit: true), now: 3_100, coordinatorEpoch: 9)
        log.write(dataBatch(producerD, seq: 10, txn: true), now: 4_000)
        log.write(endMarker(producerD, epoch: 1, commit: false), now: 4_001, coordinatorEpoch: 2)
        return log.state
    }

    static func flipped(_ bytes: [UInt8], at index: Int) -> [UInt8] {
        var copy = bytes
        copy[index] ^= 0x10
        return copy
    }

    @Test func aSnapshotRoundTrips() throws {
        let state = Self.busyState()
        #expect(state.producers.count == 4)
        #expect(state.producers[producerB]?.currentTxnFirstOffset != nil)
        #expect(state.producers[producerC]?.batches.count == 5)
        #expect(state.producers[producerC]?.coordinatorEpoch == 9)
        #expect(state.producers[producerD]?.batches.isEmpty == true)
        let bytes = ProducerSnapshot.encode(state)
        let decoded = try ProducerSnapshot.decode(bytes)
        #expect(decoded.producers == state.producers)
        // Aborted ranges are kept in .txnindex files, not in the snapshot.
        #expect(state.aborted.count == 1)
        #expect(decoded.aborted.isEmpty)
        #expect(ProducerSnapshot.encode(decoded) == bytes)
        #expect(try ProducerSnapshot.decode(ProducerSnapshot.encode(ProducerState())) == ProducerState())
    }

    @Test func aFlippedByteFailsTheChecksum() {
        let bytes = ProducerSnapshot.encode(Self.busyState())
        // The checksum itself and everything it covers.
        for index in 4..<bytes.count {
            let damaged = Self.flipped(bytes, at: index)
            #expect(throws: ProducerSnapshot.DecodeError.checksum, "byte \(index)") { try ProducerSnapshot.decode(damaged) }
        }
        let notOurs = Self.flipped(bytes, at: 0)
        #expect(throws: ProducerSnapshot.DecodeError.notASnapshot) { try ProducerSnapshot.decode(notOurs) }
    }

    @Test func aTruncatedSnapshotFails() {
        let bytes = ProducerSnapshot.encode(Self.busyState())
        for length in 0..<bytes.count {
            let cut = Array(bytes.prefix(length))
            #expect(throws: ProducerSnapshot.DecodeError.self, "\(length) bytes") { try ProducerSnapshot.decode(cut) }
        }
        let header = Array(bytes.prefix(7))
        #expect(throws: ProducerSnapshot.DecodeError.notASnapshot) { try ProducerSnapshot.decode(header) }
        let longer = bytes + [0]
        #expect(throws: ProducerSnapshot.DecodeError.self) { try ProducerSnapshot.decode(longer) }
        // The reader reports a short read as truncated.
        #expect(throws: ProducerSnapshot.DecodeError.truncated) {
            var reader = ByteReader(bytes: [0, 0, 1])
            return try reader.int32()
        }
    }

    @Test func fileNamesCarryTheOffset() {
        #expect(ProducerSnapshot.fileName(Offset(1234)) == "00000000000000001234.snapshot")
        for value in [Int64(0), 1234, 9_876_543_210, Int64.max] {
            #expect(ProducerSnapshot.offset(fileName: ProducerSnapshot.fileName(Offset(value))) == Offset(value))
        }
        for name in ["1234.snapshot", "00000000000000001234.txnindex", "0000000000000000123x.snapshot",
                     "00000000000000001234.snapshot.deleted"] {
            #expect(ProducerSnapshot.offset(fileName: name) == nil, "\(name)")
        }
    }
}

@Suite struct TxnIndexTests {
    static let entries = [
        aborted(producerA, 0, 10, stable: 11),
        AbortedTxn(producerID: ProducerID(Int64.max), firstOffset: Offset(5), lastOffset: Offset(20), lastStableOffset: Offset(3)),
        aborted(producerB, 1 << 40, (1 << 40) + 7),
    ]

    @Test func entriesRoundTrip() {
        #expect(TxnIndex.entryBytes == 34)
        let bytes = Self.entries.flatMap { TxnIndex.encode($0) }
        #expect(bytes.count == Self.entries.count * TxnIndex.entryBytes)
        #expect(TxnIndex.decode(bytes) == Self.entries)
        #expect(TxnIndex.decode([]) == [])
        // Kafka's layout: version 0, then the producer id big endian.
        let first = TxnIndex.encode(Self.entries[0])
        #expect(Array(first[0..<10]) == [0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0xE8])
    }

    @Test func aTornLastEntryIsIgnored() {
        let whole = Self.entries.flatMap { TxnIndex.encode($0) }
        let torn = TxnIndex.encode(aborted(producerC, 100, 200))
        for length in 1..<TxnIndex.entryBytes {
            #expect(TxnIndex.decode(whole + Array(torn.prefix(length))) == Self.entries, "\(length) bytes of the last entry")
        }
        #expect(TxnIndex.decode(whole + torn) == Self.entries + [aborted(producerC, 100, 200)])
    }
}
