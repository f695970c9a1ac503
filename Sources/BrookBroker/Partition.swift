import BrookCore
import BrookProtocol
import BrookRecords
import BrookStorage
import BrookTxn
import Logging
import NIOCore
import Synchronization

/// One partition this broker leads: its log and producer state under one lock, and the
/// fetches parked on it. A single node is the whole ISR, so the high watermark is the log end.
public final class Partition: Sendable {
    public let topic: String
    public let index: Int32
    public let logDirectory: String
    let state: Mutex<Locked>
    let parked = Mutex<[ObjectIdentifier: Wake]>([:])
    /// Produces with acks=all waiting for the high watermark (in a cluster).
    let waiters = HighWatermarkWaiters()
    /// What this broker is for the partition. A single node leads every partition in epoch 0;
    /// in a cluster the metadata image decides (ReplicaManager).
    public enum Role: Sendable, Equatable {
        case leader(LeaderEpoch)
        /// Another broker leads (nil: none can now); this one holds a replica or nothing.
        case follower(leader: NodeID?, epoch: LeaderEpoch)
    }
    let roleState = Mutex<Role>(.leader(LeaderEpoch(0)))
    /// What clients wrote here and read from here since the start (the server's metrics).
    public let traffic = Traffic()

    /// Counts any thread adds to, in one object per partition: records and bytes produced by
    /// clients (retries not counted twice), bytes fetched by consumers (a follower's fetches are
    /// replication, not counted), and maintenance (segments retention deleted, compaction passes
    /// and what they removed).
    public final class Traffic: Sendable {
        public enum Kind: Sendable, CaseIterable {
            case recordsIn, bytesIn, bytesOut, segmentsDeletedByRetention, compactionPasses, compactionRecordsRemoved,
                 compactionBytesReclaimed
        }
        let recordsIn = Atomic<Int>(0), bytesIn = Atomic<Int>(0), bytesOut = Atomic<Int>(0)
        let segmentsDeletedByRetention = Atomic<Int>(0), compactionPasses = Atomic<Int>(0)
        let compactionRecordsRemoved = Atomic<Int>(0), compactionBytesReclaimed = Atomic<Int>(0)

        public func add(_ kind: Kind, _ n: Int) {
            switch kind {
            case .recordsIn: recordsIn.add(n, ordering: .relaxed)
            case .bytesIn: bytesIn.add(n, ordering: .relaxed)
            case .bytesOut: bytesOut.add(n, ordering: .relaxed)
            case .segmentsDeletedByRetention: segmentsDeletedByRetention.add(n, ordering: .relaxed)
            case .compactionPasses: compactionPasses.add(n, ordering: .relaxed)
            case .compactionRecordsRemoved: compactionRecordsRemoved.add(n, ordering: .relaxed)
            case .compactionBytesReclaimed: compactionBytesReclaimed.add(n, ordering: .relaxed)
            }
        }

        public func count(_ kind: Kind) -> Int {
            switch kind {
            case .recordsIn: recordsIn.load(ordering: .relaxed)
            case .bytesIn: bytesIn.load(ordering: .relaxed)
            case .bytesOut: bytesOut.load(ordering: .relaxed)
            case .segmentsDeletedByRetention: segmentsDeletedByRetention.load(ordering: .relaxed)
            case .compactionPasses: compactionPasses.load(ordering: .relaxed)
            case .compactionRecordsRemoved: compactionRecordsRemoved.load(ordering: .relaxed)
            case .compactionBytesReclaimed: compactionBytesReclaimed.load(ordering: .relaxed)
            }
        }
    }

    public var role: Role { roleState.withLock { $0 } }
    public func become(_ role: Role) { roleState.withLock { $0 = role } }
    public var isLeader: Bool { if case .leader = role { true } else { false } }
    /// The leader epoch stamped into appended batches.
    public var leaderEpoch: LeaderEpoch {
        switch role {
        case .leader(let epoch): epoch
        case .follower(_, let epoch): epoch
        }
    }

    /// What the lock guards: the log, and the producer state that describes it up to its end.
    struct Locked {
        var log: PartitionLog
        var producers: ProducerState
        /// The offset of the newest producer-state snapshot on disk.
        var snapshotOffset: Offset
        var snapshotMs: Int64
        /// In a cluster, the replica's state (epochs, high watermark, followers when leading);
        /// nil on a single node, whose high watermark is its log end.
        var replica: ReplicaState?
        /// Closed (the replica left this broker, moved or went offline): nothing touches its files.
        var closed = false
    }

    /// Told of every I/O failure of the log (its directory may have failed). It may be called
    /// under this partition's lock: it must only hand the news on, not block or lock.
    let onIOError: @Sendable (StorageError) -> Void

    /// The broker's clock (the log's too): the gap rule measures a leadership's age on it.
    let clock: any Clock

    init(topic: String, index: Int32, logDirectory: String, log: sending PartitionLog, producers: ProducerState,
         snapshotOffset: Offset, now: Int64, clock: any Clock, onIOError: @escaping @Sendable (StorageError) -> Void = { _ in }) {
        self.topic = topic
        self.index = index
        self.logDirectory = logDirectory
        self.clock = clock
        self.onIOError = onIOError
        state = Mutex(Locked(log: log, producers: producers, snapshotOffset: snapshotOffset, snapshotMs: now))
    }

    /// Set (with `Locked.closed`) when the partition closes: read where its lock cannot be taken.
    let closedFlag = Atomic<Bool>(false)

    /// `error`, told to `onIOError` first when it is an I/O failure of a partition still open
    /// (one closed and deleted meets ENOENT from work that began before: no disk failed).
    func noted(_ error: StorageError) -> StorageError {
        if case .io = error, !closedFlag.load(ordering: .sequentiallyConsistent) { onIOError(error) }
        return error
    }

    /// `body` under the partition's lock, its I/O failures told to `onIOError`; `.closed` once
    /// the partition closed (work that took it before then touches none of its files).
    func withLogIO<T>(_ body: (inout Locked) throws(StorageError) -> sending T) throws(StorageError) -> sending T {
        do {
            return try state.withLock { (s: inout Locked) throws(StorageError) -> sending T in
                guard !s.closed else { throw .closed }
                return try body(&s)
            }
        } catch {
            throw noted(error)
        }
    }

    public var name: String { "\(topic)-\(index)" }

    public struct Offsets: Sendable {
        public var logStart: Offset
        public var highWatermark: Offset
        /// The first offset of the oldest open transaction, or the high watermark.
        public var lastStable: Offset
    }

    public var offsets: Offsets {
        state.withLock { Self.offsets($0) }
    }

    /// The offset the next record appended here gets.
    public var logEndOffset: Offset {
        state.withLock { $0.log.logEndOffset }
    }

    static func offsets(_ s: borrowing Locked) -> Offsets {
        let end = s.log.logEndOffset
        let high = s.replica.map { min($0.highWatermark, end) } ?? end
        return Offsets(logStart: s.log.logStartOffset, highWatermark: high, lastStable: s.producers.lastStableOffset(logEnd: high))
    }

    /// Why an append was refused.
    public enum AppendError: Error {
        case storage(StorageError)
        /// The producer state refused it (sequence, epoch, transaction).
        case producer(ErrorCode, String)
    }

    /// What an append did: its offsets (the original ones for a retried batch) and the log start.
    public struct Appended: Sendable {
        public var result: AppendResult
        public var logStart: Offset
        public var duplicate: Bool
    }

    /// Appends validated batches and wakes the fetches parked here. A batch with a producer id
    /// is checked against the producer state first (one such batch per request, as Kafka asks):
    /// a retry of a recent batch is answered with its original offsets and not written again.
    /// `verify` (KIP-890) is asked, under the partition's lock, whether a transactional batch
    /// belongs to its producer's open transaction; without one (no transactional id in the
    /// request) a transactional batch is refused.
    public func append(_ records: inout ByteBuffer, now: Int64, origin: AppendOrigin = .client,
                       verify: ((ProducerBatch) -> ErrorCode?)? = nil) throws(AppendError) -> Appended {
        let header = records.withUnsafeReadableBytes { RecordBatchHeader.decode($0) }
        var batch: ProducerBatch?
        if let header, header.producerID != .none || header.attributes.isTransactional {
            // Refused before the producer state sees it (the log refuses control batches too).
            guard !header.attributes.isControl else { throw .producer(.invalidRecord, "Clients may not write control batches") }
            guard header.totalBytes == records.readableBytes else {
                throw .producer(.invalidRecord, "Idempotent and transactional batches come one per partition per request")
            }
            batch = ProducerBatch(header)
        }
        let roleEpoch = leaderEpoch
        // Checked (and decompressed) before the lock, under the settings of the moment: only
        // the offsets and the write need the lock.
        let (config, version) = state.withLock { ($0.log.config, $0.log.configVersion) }
        let validated: ValidatedBatches
        do throws(StorageError) {
            validated = try PartitionLog.validate(&records, origin: origin, config: config, configVersion: version, now: clock.now().ms)
        } catch {
            throw .storage(error)
        }
        let appended = try state.withLock { (s: inout Locked) throws(AppendError) -> Appended in
            guard !s.closed else { throw .storage(.closed) }
            // In a cluster only the leader writes, with its own epoch, checked under the lock a
            // role change takes too (a coordinator's stale group on a follower included).
            let epoch = try Self.writableEpoch(s, roleEpoch, name)
            if let batch {
                switch s.producers.check(batch) {
                case .append: break
                case .duplicate(let original):
                    let result = AppendResult(firstOffset: original.firstOffset, lastOffset: original.lastOffset,
                                              recordCount: Int(original.lastOffset - original.firstOffset) + 1, logAppendTime: nil)
                    return Appended(result: result, logStart: s.log.logStartOffset, duplicate: true)
                case .refuse(let code, let message):
                    if code == .outOfOrderSequenceNumber, let leading = s.replica?.leading,
                       Self.gapFollowsLeaderChange(batch, s.producers, leading, nowMs: clock.monotonicMs()) {
                        throw .producer(.notLeaderOrFollower,
                                        "\(message), all written before this broker came to lead \(name): retry the earlier batches here")
                    }
                    throw .producer(code, message)
                }
                if batch.isTransactional {
                    let problem: ErrorCode? = if let verify { verify(batch) } else { .invalidTxnState }
                    if let code = problem {
                        throw .producer(code, "Producer \(batch.producerID) at epoch \(batch.epoch) has no open transaction holding \(name)")
                    }
                }
            }
            let result: AppendResult
            do throws(StorageError) {
                result = try s.log.append(&records, validated: validated, leaderEpoch: epoch, origin: origin)
            } catch {
                throw .storage(noted(error))
            }
            if let batch { s.producers.appended(batch, firstOffset: result.firstOffset, now: now) }
            s.replica?.leaderAppended(logEnd: s.log.logEndOffset)
            return Appended(result: result, logStart: s.log.logStartOffset, duplicate: false)
        }
        if !appended.duplicate {
            wakeParked(appendedBytes: records.readableBytes)
            highWatermarkMayHaveMoved()
            if origin == .client {
                traffic.add(.recordsIn, appended.result.recordCount)
                traffic.add(.bytesIn, records.readableBytes)
            }
        }
        return appended
    }

    /// An offset-preserving mirror's append (`MirrorBatches.forAppend`): the source's batches
    /// at their own offsets, from the log end on (those before it, sent again, are skipped),
    /// stamped with this leader's epoch and without producer fields. Only a leader writes.
    /// Returns the offsets written (nil: nothing new) and the log start.
    public func appendMirrored(_ records: ByteBuffer) throws(AppendError) -> (first: Offset, last: Offset, logStart: Offset)? {
        let roleEpoch = leaderEpoch
        let written = try state.withLock { (s: inout Locked) throws(AppendError) -> (first: Offset, last: Offset, logStart: Offset, bytes: Int)? in
            guard !s.closed else { throw .storage(.closed) }
            let epoch = try Self.writableEpoch(s, roleEpoch, name)
            let logEnd = s.log.logEndOffset
            let prepared: (bytes: [UInt8], first: Offset, last: Offset)?
            do throws(MirrorBatchError) {
                prepared = try records.withUnsafeReadableBytes { (bytes) throws(MirrorBatchError) in
                    try MirrorBatches.forAppend(bytes, logEnd: logEnd, leaderEpoch: epoch)
                }
            } catch {
                throw .producer(.corruptMessage, "\(name): \(error)")
            }
            guard let prepared else { return nil }
            do throws(StorageError) {
                try s.log.appendReplicated(ByteBuffer(bytes: prepared.bytes))
            } catch {
                throw .storage(noted(error))
            }
            s.replica?.leaderAppended(logEnd: s.log.logEndOffset)
            return (prepared.first, prepared.last, s.log.logStartOffset, prepared.bytes.count)
        }
        guard let written else { return nil }
        wakeParked(appendedBytes: written.bytes)
        highWatermarkMayHaveMoved()
        traffic.add(.recordsIn, Int(written.last.value - written.first.value + 1))
        traffic.add(.bytesIn, written.bytes)
        return (written.first, written.last, written.logStart)
    }

    /// Writes a transaction marker for `producerID` (from the transaction coordinator) and
    /// returns what it ended here.
    /// Returns the transaction it completed and the offset just past the marker.
    @discardableResult
    public func appendMarker(producerID: ProducerID, epoch: ProducerEpoch, commit: Bool, coordinatorEpoch: Int32,
                             now: Timestamp) throws(AppendError) -> (completed: ProducerState.Completed?, end: Offset) {
        var records = ByteBuffer(bytes: ControlBatch.build(producerID: producerID, epoch: epoch, commit: commit,
                                                           coordinatorEpoch: coordinatorEpoch, timestamp: now))
        let batch = ProducerBatch(producerID: producerID, epoch: epoch, baseSequence: -1, offsetDelta: 0,
                                  isTransactional: true, marker: commit ? .commit : .abort, maxTimestamp: now.ms)
        let done = try appendFromCoordinator(&records, batch: batch, coordinatorEpoch: coordinatorEpoch, now: now.ms)
        return (done.completed, done.result.lastOffset + 1)
    }

    /// Writes batches the broker makes for a transaction (offset commits in `__consumer_offsets`)
    /// under the producer's id, recorded in the producer state but not sequence-checked.
    public func appendForTransaction(_ records: inout ByteBuffer, now: Int64) throws(AppendError) -> AppendResult {
        guard let header = records.withUnsafeReadableBytes({ RecordBatchHeader.decode($0) }) else {
            throw .storage(.invalidArgument("an append needs at least one batch"))
        }
        return try appendFromCoordinator(&records, batch: ProducerBatch(header), coordinatorEpoch: -1, now: now).result
    }

    /// A batch the coordinators write for a producer: checked (but for its sequence), appended,
    /// recorded; an abort it completes goes to the active segment's `.txnindex`.
    private func appendFromCoordinator(_ records: inout ByteBuffer, batch: ProducerBatch, coordinatorEpoch: Int32,
                                       now: Int64) throws(AppendError) -> (result: AppendResult, completed: ProducerState.Completed?) {
        let roleEpoch = leaderEpoch
        let done = try state.withLock { (s: inout Locked) throws(AppendError) -> (result: AppendResult, completed: ProducerState.Completed?) in
            guard !s.closed else { throw .storage(.closed) }
            let leader = try Self.writableEpoch(s, roleEpoch, name)
            if case .refuse(let code, let message) = s.producers.check(batch, fromCoordinator: true, coordinatorEpoch: coordinatorEpoch) {
                throw .producer(code, message)
            }
            let result: AppendResult
            do throws(StorageError) { result = try s.log.append(&records, leaderEpoch: leader) } catch { throw .storage(noted(error)) }
            s.replica?.leaderAppended(logEnd: s.log.logEndOffset)
            let completed = s.producers.appended(batch, firstOffset: result.firstOffset, coordinatorEpoch: coordinatorEpoch, now: now)
            if let completed, completed.aborted, let txn = s.producers.aborted.last {
                let base = s.log.segmentBaseOffsets.last ?? .zero
                do throws(StorageError) { try ProducerStateFiles.appendAborted(txn, directory: logDirectory, segmentBase: base) } catch { throw .storage(noted(error)) }
            }
            return (result, completed)
        }
        wakeParked(appendedBytes: Self.wakeAll)
        highWatermarkMayHaveMoved()
        return done
    }

    /// The epoch to stamp an append with: a single node's, or in a cluster the leading core's;
    /// a replica that does not lead refuses.
    static func writableEpoch(_ s: borrowing Locked, _ roleEpoch: LeaderEpoch, _ name: String) throws(AppendError) -> LeaderEpoch {
        guard let replica = s.replica else { return roleEpoch }
        guard let leading = replica.leading else {
            throw .producer(.notLeaderOrFollower, "This broker does not lead \(name)")
        }
        return leading.leaderEpoch
    }

    /// A request's current leader epoch checked against ours (-1: not given, always fine).
    public func checkLeaderEpoch(_ current: LeaderEpoch) -> ErrorCode? {
        guard isLeader else { return .notLeaderOrFollower }
        return Self.epochMismatch(current, leading: leaderEpoch)
    }

    /// A request's current leader epoch against the one this replica leads in: nil when they
    /// agree or none was given (-1), else UNKNOWN_LEADER_EPOCH (newer) or FENCED_LEADER_EPOCH.
    static func epochMismatch(_ current: LeaderEpoch, leading epoch: LeaderEpoch) -> ErrorCode? {
        guard current != LeaderEpoch(-1), current != epoch else { return nil }
        return current > epoch ? .unknownLeaderEpoch : .fencedLeaderEpoch
    }

    public struct ReadResult: Sendable {
        public var slice: LogSlice
        public var offsets: Offsets
        /// For read_committed: the aborted transactions overlapping what was read.
        public var aborted: [AbortedTxn]
    }

    /// Whole batches from `offset` up to the high watermark, or (`readCommitted`) up to the last
    /// stable offset, with the aborted transactions in that range.
    public func read(from offset: Offset, maxBytes: Int, minOneBatch: Bool, readCommitted: Bool = false) throws(StorageError) -> ReadResult {
        try withLogIO { (s: inout Locked) throws(StorageError) -> ReadResult in
            let offsets = Self.offsets(s)
            let bound = readCommitted ? offsets.lastStable : offsets.highWatermark
            let slice = try s.log.read(from: offset, maxBytes: maxBytes, upperBound: bound, minOneBatch: minOneBatch)
            let aborted = readCommitted && !slice.isEmpty ? s.producers.abortedTransactions(from: offset, upTo: bound) : []
            return ReadResult(slice: slice, offsets: offsets, aborted: aborted)
        }
    }

    /// Runs `body` on the log under the partition's lock.
    /// DeleteRecords: the log start moves to `requested` (nil: the high watermark), which may
    /// not pass the high watermark (in a cluster, records the ISR does not all have yet stay).
    /// Returns the new log start.
    public func deleteRecords(before requested: Offset?) throws(StorageError) -> Offset {
        try withLogIO { (s: inout Locked) throws(StorageError) -> Offset in
            let high = Self.offsets(s).highWatermark
            let target = requested ?? high
            guard target >= .zero, target <= high else {
                throw .offsetOutOfRange(requested: target, logStart: s.log.logStartOffset, logEnd: high)
            }
            let start = try s.log.deleteRecords(before: target)
            if var replica = s.replica {
                replica.epochs.truncate(before: start)
                saveEpochs(replica.epochs, s.log)
                s.replica = replica
            }
            return start
        }
    }

    /// Rolled segments' fsyncs, due flushes, then (`retention`) retention and compaction, which
    /// in a cluster stop at the high watermark. The epoch cache follows a log start that moved.
    /// The fsyncs of rolled segments and the unlinks of deleted ones
    /// (`applyRetention(bound:detached:)`) run without the partition's lock.
    public func maintainLog(retention: Bool, compaction: Bool) throws(StorageError) {
        if let rolled = try withLogIO({ (s: inout Locked) throws(StorageError) in s.log.takeUnsynced() }) {
            for segment in rolled.segments { try segment.sync() }
            try withLogIO { (s: inout Locked) throws(StorageError) in try s.log.synced(upTo: rolled.upTo, rewrites: rolled.rewrites) }
        }
        var detached: [String] = []
        defer { for path in detached { try? FileSystem.remove(path) } }
        let (before, plan) = try withLogIO { (s: inout Locked) throws(StorageError) -> (Offset, CompactionPlan?) in
            try s.log.flushIfDue()
            let before = s.log.logStartOffset
            guard retention else { return (before, nil) }
            let bound = s.replica.map { _ in Self.offsets(s).highWatermark }
            traffic.add(.segmentsDeletedByRetention, try s.log.applyRetention(bound: bound, detached: &detached))
            return (before, compaction ? s.log.planCompaction(bound: bound) : nil)
        }
        guard retention else { return }
        if let plan { try compact(plan, detached: &detached) }
        try withLogIO { (s: inout Locked) throws(StorageError) in
            if s.log.logStartOffset > before, var replica = s.replica {
                // Entries below the log start only: losing this write in a crash loses nothing.
                replica.epochs.truncate(before: s.log.logStartOffset)
                saveEpochs(replica.epochs, s.log, durable: false)
                s.replica = replica
            }
        }
    }

    /// Runs a planned compaction pass: the keys mapped and the cleaned segments written without
    /// the lock; each group swapped in under it (renames and two directory fsyncs), so produces
    /// and fetches on this partition wait for no more than a swap.
    func compact(_ plan: CompactionPlan, detached: inout [String]) throws(StorageError) {
        defer { try? withLogIO { (s: inout Locked) in s.log.endCompaction() } }
        do throws(StorageError) {
            let result = try plan.run { (group) throws(StorageError) -> Bool in
                try withLogIO { (s: inout Locked) throws(StorageError) -> Bool in try s.log.swapIn(group, detached: &detached) }
            }
            traffic.add(.compactionPasses, 1)
            traffic.add(.compactionRecordsRemoved, result.recordsRemoved)
            traffic.add(.compactionBytesReclaimed, max(0, result.bytesBefore - result.bytesAfter))
        } catch {
            // A truncation or a close since the plan may have cut what the pass was reading:
            // then the pass is void, not a fault.
            let void = (try? withLogIO { (s: inout Locked) in s.log.rewrites != plan.rewrites }) ?? true
            if !void { throw error }
            plan.logger.debug("\(name): compaction pass given up, the log changed under it (\(error))")
        }
    }

    public func withLog<T: Sendable>(_ body: (PartitionLog) throws(StorageError) -> T) throws(StorageError) -> T {
        try withLogIO { (s: inout Locked) throws(StorageError) -> T in try body(s.log) }
    }

    /// The producers this partition knows (DescribeProducers).
    public var producers: [ProducerID: ProducerEntry] {
        state.withLock { $0.producers.producers }
    }

    /// What a parked fetch is told on each append: the bytes appended, or `wakeAll` for a change
    /// whose effect on what may be read is not its size (a transaction marker moves the LSO).
    public typealias Wake = @Sendable (_ appendedBytes: Int) -> Void
    static let wakeAll = Int(UInt32.max)

    /// Parks a fetch: `wake` runs on every append until it is unparked. Returns false when
    /// `Limits.parkedFetchesPerPartitionMax` wait here already.
    func park(_ key: ObjectIdentifier, wake: @escaping Wake) -> Bool {
        parked.withLock { waiting in
            guard waiting.count < Limits.parkedFetchesPerPartitionMax else { return false }
            waiting[key] = wake
            return true
        }
    }

    func unpark(_ key: ObjectIdentifier) {
        _ = parked.withLock { $0.removeValue(forKey: key) }
    }

    /// Counts every wake of parked fetches, in any partition of the process (appends, high
    /// watermark moves, markers), before the fetches are woken. A fetch that read, then parked,
    /// re-reads only if this moved in between: whatever it read is otherwise still so (an idle
    /// cluster's replica fetches then read each partition once per round, not twice).
    static let changes = Atomic<UInt64>(0)

    /// Fetches parked here now.
    public var parkedCount: Int { parked.withLock { $0.count } }

    /// Tells every parked fetch what was appended. Each wake is a few atomic operations (the
    /// fetch re-reads on its own event loop only once enough has arrived), so an append's cost
    /// is bounded by the parked-fetch limit, whatever the fetches asked for.
    func wakeParked(appendedBytes: Int) {
        // Counted before any fetch is woken: one that parks after this sees the count moved.
        Self.changes.add(1, ordering: .sequentiallyConsistent)
        parked.withLock { waiting in
            for wake in waiting.values { wake(appendedBytes) }
        }
    }
}

/// A log slice that the server sends from its file (sendfile) rather than from memory.
public final class LogRecords: FileRecords {
    public let slice: LogSlice
    public init(_ slice: LogSlice) { self.slice = slice }
    public var byteCount: Int { slice.length }
}

extension WireWriter {
    /// The whole message in one buffer, the record data kept in files read in at its places
    /// (for an answer that is not sent with sendfile, or one read in process).
    public func contiguousBytes(allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        var rest = buffer
        guard !fileRecords.isEmpty else { return rest }
        var whole = allocator.buffer(capacity: messageBytes)
        for (position, records) in fileRecords {
            var before = rest.readSlice(length: position - rest.readerIndex)!
            whole.writeBuffer(&before)
            guard let log = records as? LogRecords else { throw StorageError.invalidArgument("record data of an unknown kind") }
            try log.slice.readBytes(into: &whole)
        }
        whole.writeBuffer(&rest)
        return whole
    }
}

extension Partition {
    /// Opens the partition's log and its producer state.
    static func open(topic: String, index: Int32, directory: String, config: LogConfig, role: Role = .leader(LeaderEpoch(0)), clock: any Clock,
                     logger: Logger, durable: Bool = true, onIOError: @escaping @Sendable (StorageError) -> Void = { _ in }) throws(StorageError) -> Partition {
        // What the log and the producer state say carries the partition as metadata.
        var logger = logger
        logger[metadataKey: "topic"] = "\(topic)"
        logger[metadataKey: "partition"] = "\(index)"
        let log = try PartitionLog.open(directory: directory, config: config, clock: clock, logger: logger, durable: durable)
        let now = clock.now().ms
        let producers: ProducerState
        let snapshotOffset: Offset
        do {
            (producers, snapshotOffset) = try ProducerStateFiles.load(log: log, directory: directory, now: now, logger: logger)
        } catch {
            try? log.close()
            throw error
        }
        let partition = Partition(topic: topic, index: index, logDirectory: directory, log: log, producers: producers,
                                  snapshotOffset: snapshotOffset, now: now, clock: clock, onIOError: onIOError)
        partition.become(role)
        return partition
    }

    /// Producer-state upkeep: idle producers expire (`producer.id.expiration.ms`), the state is
    /// snapshotted when it changed a while ago, and `.txnindex` files retention passed go.
    func maintainProducers(now: Int64, expirationMs: Int64) throws(StorageError) {
        try withLogIO { (s: inout Locked) throws(StorageError) in
            s.producers.expire(now: now, expirationMs: expirationMs)
            s.producers.dropAborted(before: s.log.logStartOffset)
            let end = s.log.logEndOffset
            if end != s.snapshotOffset && now - s.snapshotMs >= ProducerStateFiles.snapshotIntervalMs {
                try ProducerStateFiles.writeSnapshot(s.producers, offset: end, directory: logDirectory)
                s.snapshotOffset = end
                s.snapshotMs = now
            }
            try ProducerStateFiles.removeStaleIndexes(directory: logDirectory, logStart: s.log.logStartOffset)
        }
    }

    /// Writes the producer snapshot at the log end and closes the log.
    func close() throws(StorageError) {
        try withLogIO { (s: inout Locked) throws(StorageError) in try closeLocked(&s) }
    }

    /// `close` with the lock held: marked closed first, so nothing touches the files after.
    func closeLocked(_ s: inout Locked) throws(StorageError) {
        try markClosed(&s)
        try s.log.close()
    }

    /// Closed from here on (nothing touches the files after), with the producer snapshot at the
    /// log end written.
    func markClosed(_ s: inout Locked) throws(StorageError) {
        s.closed = true
        closedFlag.store(true, ordering: .sequentiallyConsistent)
        let end = s.log.logEndOffset
        if end != s.snapshotOffset || !FileSystem.exists(logDirectory + "/" + ProducerSnapshot.fileName(end)) {
            try ProducerStateFiles.writeSnapshot(s.producers, offset: end, directory: logDirectory)
            s.snapshotOffset = end
        }
    }
}

extension Partition {
    /// A shutdown's close, step 1 (`PartitionLog.beginShutdownClose`, which says the steps): the
    /// producer snapshot written and the log closed, neither fsynced.
    func beginShutdownClose() throws(StorageError) {
        try withLogIO { (s: inout Locked) throws(StorageError) in
            try markClosed(&s)
            try s.log.beginShutdownClose()
        }
    }

    /// Step 2 of a shutdown's close, once its data is durable.
    func writeShutdownCheckpoint() throws(StorageError) {
        try state.withLock { (s: inout Locked) throws(StorageError) in try s.log.writeShutdownCheckpoint() }
    }

    /// Step 3 of a shutdown's close, once its checkpoint is durable.
    func leaveShutdownMarker() throws(StorageError) {
        try state.withLock { (s: inout Locked) throws(StorageError) in try s.log.leaveShutdownMarker() }
    }
}

extension Partition {
    /// Appends batches the broker makes itself (group records), which carry no producer id.
    func appendInternal(_ records: inout ByteBuffer, now: Int64) throws(StorageError) -> AppendResult {
        do { return try append(&records, now: now, origin: .internal).result } catch {
            switch error {
            case .storage(let e): throw e
            case .producer(_, let message): throw .invalidArgument(message)
            }
        }
    }
}

extension Partition {
    /// The time of the batch holding `offset` (its first record's, or the broker's with
    /// LogAppendTime), read from the first 61 bytes of that batch: how old the oldest record a
    /// consumer at `offset` has not read is (consumer lag in time). nil when nothing is there.
    public func batchTimestamp(at offset: Offset) -> Timestamp? {
        let header = try? withLog { (log: PartitionLog) throws(StorageError) -> ByteBuffer? in
            let from = max(offset, log.logStartOffset)
            guard from < log.logEndOffset else { return nil }
            let slice = try log.read(from: from, maxBytes: 0, minOneBatch: true)
            guard !slice.isEmpty else { return nil }
            return try slice.prefix(RecordBatchHeader.Field.records).readBytes()
        }
        guard let bytes = header ?? nil,
              let decoded = bytes.withUnsafeReadableBytes({ RecordBatchHeader.decode($0) }) else { return nil }
        return decoded.attributes.isLogAppendTime ? decoded.maxTimestamp : decoded.baseTimestamp
    }
}
