import BrookCluster
import BrookCore
import BrookProtocol
import BrookStorage
import BrookTxn
import Logging
import NIOCore
import Synchronization

/// A partition's replication state in a cluster, under the partition's lock with its log: the
/// leader-epoch cache, the high watermark, and, while this broker leads, the followers
/// (PartitionReplication, the pure core in BrookCluster).
struct ReplicaState {
    var epochs: LeaderEpochCache
    /// A follower's HW (from its leader's answers); a leader's is its core's.
    var followerHighWatermark: Offset
    var leading: PartitionReplication?
    /// An AlterPartition request is on its way (its proposal in flight in `leading`).
    var proposalOutstanding = false
    var proposalSentMs: Int64 = 0
    /// When `outOfSyncNotice` last said something (nil: never).
    var outOfSyncNoticeMs: Int64?

    var highWatermark: Offset { leading?.highWatermark ?? followerHighWatermark }

    mutating func leaderAppended(logEnd: Offset) {
        guard leading != nil else { return }
        leading!.leaderAppended(logEnd: logEnd)
    }
}

/// What the leader tells a follower that fetched.
public enum ReplicaFetchCheck: Sendable {
    /// Read from the fetch offset, up to the log end.
    case read
    /// The follower's log diverged: it must truncate (KIP-320's diverging epoch; nil epoch when
    /// the leader knows none that old).
    case diverging(LeaderEpoch, Offset)
    case refused(ErrorCode)
}

/// True for the first caller only: the HW and the timeout race to answer a wait.
final class AnsweredOnce: Sendable {
    let done = Atomic<Bool>(false)
    func first() -> Bool { !done.exchange(true, ordering: .sequentiallyConsistent) }
}

/// Waiters for the high watermark (acks=all), per partition.
final class HighWatermarkWaiters: Sendable {
    struct Waiter {
        let id: UInt64
        let offset: Offset
        let done: @Sendable (ErrorCode) -> Void
    }
    let waiting = Mutex<[Waiter]>([])
    let nextID = Atomic<UInt64>(0)
    /// The highest HW seen, to wake parked fetches only when it moves.
    let lastSeen = Mutex<Offset>(.zero)
    static let waitersMax = 100_000
}

extension Partition {
    /// How long after a replica comes to lead a sequence gap may still be a leader change's
    /// (`gapFollowsLeaderChange`): twice a client's default request.timeout.ms, as a request
    /// sent to a paused old leader times out after it and is only then sent here.
    static let leaderChangeGapMs: Int64 = 60_000

    /// Whether a batch whose sequence skips ahead (OUT_OF_ORDER_SEQUENCE_NUMBER) may have earlier
    /// batches still on their way here after a leader change: its producer, at the same epoch,
    /// has written nothing since this replica began to lead, and that was less than
    /// `leaderChangeGapMs` ago. The earlier batches were sent to the old leader, or refused here
    /// (NOT_LEADER_OR_FOLLOWER) in the moment before this replica took the leadership that other
    /// brokers already announced; the client retries them. Answered NOT_LEADER_OR_FOLLOWER, the
    /// skipping batch is retried after them, in order. Answered OUT_OF_ORDER_SEQUENCE_NUMBER,
    /// librdkafka takes the gap for lost batches, bumps its epoch and sends every unacknowledged
    /// batch again under it, one the old leader had written and replicated included: a
    /// duplicate (fault campaign seed 424242, docs/reliability.md).
    static func gapFollowsLeaderChange(_ batch: ProducerBatch, _ producers: ProducerState, _ leading: PartitionReplication,
                                       nowMs: Int64) -> Bool {
        guard nowMs - leading.ledSinceMs < leaderChangeGapMs,
              let entry = producers.producers[batch.producerID], entry.epoch == batch.epoch,
              let last = entry.batches.last, last.lastOffset < leading.epochStartOffset else { return false }
        // Ahead of the next sequence (which wraps past Int32.max to 0), not behind it.
        let ahead = (Int64(batch.baseSequence) - Int64(ProducerState.sequence(last.lastSequence, plus: 1)) + (1 << 31)) % (1 << 31)
        return ahead > 0 && ahead < (1 << 30)
    }

    // MARK: roles

    /// Leads in `epoch`: the epoch's first offset is the log end; followers start unknown.
    public func becomeLeader(_ info: PartitionInfo, config: ReplicationConfig, nowMs: Int64, node: NodeID) {
        prepareLeadership(info, config: config, nowMs: nowMs, node: node)
        finishLeadership(info)
    }

    /// The first half of `becomeLeader`: the leading state, with the new epoch's start in the
    /// cache. No file is written: the log writes the checkpoint, durably, before its recovery
    /// point passes a batch of the epoch (`PartitionLog.unsavedLeaderEpochs`), and a crash
    /// before that is recovered from the batches' epochs (`loadReplicaState`). Until
    /// `finishLeadership` the role is unchanged and every append is refused (a follower's, as
    /// this replica leads; a client's, as the role is not yet leader).
    public func prepareLeadership(_ info: PartitionInfo, config: ReplicationConfig, nowMs: Int64, node: NodeID) {
        state.withLock { s in
            var replica = s.replica ?? loadReplicaState(s.log)
            let end = s.log.logEndOffset
            if replica.epochs.latestEpoch.map({ $0 < info.leaderEpoch }) ?? true {
                replica.epochs.assign(info.leaderEpoch, startOffset: end)
                s.log.unsavedLeaderEpochs = replica.epochs
            }
            let high = min(replica.highWatermark, end)
            replica.leading = PartitionReplication(
                leader: node, leaderEpoch: info.leaderEpoch, partitionEpoch: info.partitionEpoch, replicas: info.replicas,
                isr: info.isr.contains(node) ? info.isr : info.isr + [node], elr: info.elr, logEndOffset: end, highWatermark: high,
                config: config, nowMs: nowMs)
            s.replica = replica
        }
    }

    /// The second half of `becomeLeader`: the role, after the leading state.
    public func finishLeadership(_ info: PartitionInfo) {
        highWatermarkMayHaveMoved()
        become(.leader(info.leaderEpoch))
    }

    /// The topic's min.insync.replicas or replica.lag.time.max.ms changed while this broker
    /// leads: it applies from now (acks=all and the next ISR check use it).
    public func replicationConfigChanged(_ config: ReplicationConfig) {
        let changed = state.withLock { s -> Bool in
            guard var replica = s.replica, var leading = replica.leading, leading.config != config else { return false }
            leading.config = config
            replica.leading = leading
            s.replica = replica
            return true
        }
        if changed { highWatermarkMayHaveMoved() }
    }

    /// Follows `leader` (nil: none now) in `epoch`; waiters for this leader's HW are let go.
    public func becomeFollower(leader: NodeID?, epoch: LeaderEpoch) {
        become(.follower(leader: leader, epoch: epoch))
        state.withLock { s in
            var replica = s.replica ?? loadReplicaState(s.log)
            if let leading = replica.leading { replica.followerHighWatermark = leading.highWatermark }
            replica.leading = nil
            s.replica = replica
        }
        releaseWaiters()
    }

    /// The controller committed an ISR (AlterPartition's answer, or a change in the metadata).
    public func isrCommitted(_ isr: [NodeID], elr: [NodeID], partitionEpoch: PartitionEpoch) {
        state.withLock { s in
            guard s.replica?.leading != nil, let leader = s.replica?.leading?.leader, isr.contains(leader) else { return }
            s.replica!.leading!.isrCommitted(isr, elr: elr, partitionEpoch: partitionEpoch)
        }
        highWatermarkMayHaveMoved()
    }

    /// The controller's answer to this leader's ISR proposal: the proposal ends.
    public func isrProposalCommitted(_ isr: [NodeID], elr: [NodeID], partitionEpoch: PartitionEpoch) {
        state.withLock { s in
            guard s.replica?.leading != nil, let leader = s.replica?.leading?.leader, isr.contains(leader) else {
                s.replica?.proposalOutstanding = false
                return
            }
            s.replica!.leading!.proposalCommitted(isr, elr: elr, partitionEpoch: partitionEpoch)
            s.replica!.proposalOutstanding = false
        }
        highWatermarkMayHaveMoved()
    }

    /// The ISR change to ask the controller for, if any (at most one in flight).
    public func isrProposal(nowMs: Int64, eligible: (NodeID) -> Bool) -> ISRProposal? {
        state.withLock { s in
            guard let proposal = s.replica?.leading?.proposal(nowMs: nowMs, eligible: eligible) else { return nil }
            s.replica!.proposalOutstanding = true
            s.replica!.proposalSentMs = nowMs
            return proposal
        }
    }

    /// The controller answered `proposal` with an error: it ends for good, or stays in flight
    /// to be sent again (see PartitionReplication.proposalRefused).
    public func isrProposalFailed(_ proposal: ISRProposal, _ code: ErrorCode) {
        state.withLock { s in
            s.replica?.proposalOutstanding = false
            if PartitionReplication.refusesForGood(code) { s.replica?.leading?.proposalRefused(proposal) }
        }
    }

    /// A proposal still in flight with no request outstanding for over `resendMs`: send again.
    public func isrProposalToResend(nowMs: Int64, resendMs: Int64 = 1000) -> ISRProposal? {
        state.withLock { s in
            // Looked at in place: a copy of the replica state would retain all it holds, for
            // every partition on every pass.
            guard let pending = s.replica?.leading?.inFlight, s.replica?.proposalOutstanding == false,
                  nowMs - s.replica!.proposalSentMs >= resendMs else { return nil }
            s.replica!.proposalOutstanding = true
            s.replica!.proposalSentMs = nowMs
            return pending
        }
    }

    /// While leading: eligible replicas out of the ISR for over `afterMs` of this leadership,
    /// described (PartitionReplication.outOfSyncReport), at most once per `afterMs`.
    public func outOfSyncNotice(nowMs: Int64, afterMs: Int64 = 30_000, eligible: (NodeID) -> Bool) -> String? {
        state.withLock { s in
            guard s.replica?.leading != nil else { return nil }
            if let said = s.replica!.outOfSyncNoticeMs, nowMs - said < afterMs { return nil }
            guard let report = s.replica!.leading?.outOfSyncReport(nowMs: nowMs, afterMs: afterMs, eligible: eligible),
                  !report.isEmpty else { return nil }
            s.replica!.outOfSyncNoticeMs = nowMs
            return report.joined(separator: "; ") + (s.replica!.proposalOutstanding ? ", a request outstanding" : "")
        }
    }

    /// True once this broker took the partition's role from a cluster's metadata.
    public var isReplicating: Bool { state.withLock { $0.replica != nil } }

    /// acks=all may be taken: the ISR has min.insync.replicas members (always on a single node).
    public var hasEnoughReplicas: Bool {
        state.withLock { s in s.replica?.leading?.hasEnoughReplicas ?? true }
    }

    func loadReplicaState(_ log: PartitionLog) -> ReplicaState {
        // The epoch cache from its checkpoint; rebuilt from the log's batches when that is
        // missing or unreadable (an empty cache would skip the divergence check); epochs said to
        // start past the log end (a crash between the checkpoint and the log's flush) go.
        // A leadership's entry reaches the file only before the recovery point passes its
        // batches (`PartitionLog.unsavedLeaderEpochs`): the batches from the recovery point the
        // log was opened with say the epochs a crash kept from it.
        var epochs = (try? ReplicaCheckpoints.readLeaderEpochs(directory: logDirectory)) ?? LeaderEpochCache()
        let before = epochs
        if epochs.entries.isEmpty && log.logEndOffset > log.logStartOffset {
            epochs = (try? LeaderEpochCache.rebuilt(from: log)) ?? epochs
        } else {
            epochs.truncate(from: log.logEndOffset + 1)
            if log.recoveryPointAtOpen < log.logEndOffset {
                try? epochs.extend(from: log, at: max(log.recoveryPointAtOpen, log.logStartOffset))
            }
        }
        epochs.truncate(from: log.logEndOffset + 1)
        // Saved with the log's next move of its recovery point (10,000 partitions opened after
        // a kill would write 10,000 files first).
        if epochs != before { log.unsavedLeaderEpochs = epochs }
        // The HW starts at 0 unless the replica manager restores the checkpointed one
        // (`restoreHighWatermark`); the leader's answers (or the followers' fetches) raise it.
        return ReplicaState(epochs: epochs, followerHighWatermark: .zero, leading: nil)
    }

    /// At start, the HW this replica had (`replication-offset-checkpoint`): what it had
    /// acknowledged or learned as committed, so consumers of a restarted leader read it at once.
    /// Never above the log end, never lowers a HW already known.
    public func restoreHighWatermark(_ offset: Offset) {
        state.withLock { s in
            var replica = s.replica ?? loadReplicaState(s.log)
            guard replica.leading == nil else { return }
            replica.followerHighWatermark = max(replica.followerHighWatermark, min(offset, s.log.logEndOffset))
            s.replica = replica
        }
    }

    /// The HW to checkpoint (nil for a partition that does not replicate).
    public var checkpointHighWatermark: Offset? {
        state.withLock { s in s.replica.map { min($0.highWatermark, s.log.logEndOffset) } }
    }

    /// Returns whether the checkpoint was written.
    @discardableResult
    func saveEpochs(_ epochs: LeaderEpochCache, _ log: PartitionLog, durable: Bool = true) -> Bool {
        do { try ReplicaCheckpoints.writeLeaderEpochs(epochs, directory: logDirectory, durable: durable) } catch {
            // Tried again before the log's recovery point moves (a flush then fails as this did).
            log.unsavedLeaderEpochs = epochs
            return false
        }
        // What is left unsaved is the newest cache.
        log.unsavedLeaderEpochs = durable ? nil : log.unsavedLeaderEpochs.map { _ in epochs }
        return true
    }

    // MARK: the leader's side of a follower's fetch

    /// A follower's fetch from `fetchOffset` having last written `lastFetchedEpoch`: its
    /// divergence checked against our epochs, then its position recorded (which may move the HW).
    public func followerFetch(_ follower: NodeID, fetchOffset: Offset, lastFetchedEpoch: LeaderEpoch, nowMs: Int64,
                              eligible: Bool = false) -> (ReplicaFetchCheck, ISRProposal?) {
        var expansion: ISRProposal?
        var moved = false
        let check = state.withLock { (s: inout Locked) -> ReplicaFetchCheck in
            // Changed in place (`s.replica!`): a copy taken out and written back would share the
            // leader's follower table while it is changed, and copy it whole on every fetch.
            guard s.replica?.leading != nil else { return .refused(.notLeaderOrFollower) }
            let end = s.log.logEndOffset
            if lastFetchedEpoch != .none {
                guard let known = s.replica!.epochs.endOffset(for: lastFetchedEpoch, logEnd: end) else {
                    return .diverging(.none, .zero)  // (impossible for a leader, whose epoch is the newest) back to the HW
                }
                if known.epoch < lastFetchedEpoch || known.endOffset < fetchOffset { return .diverging(known.epoch, known.endOffset) }
            }
            // Below our log start (retention, DeleteRecords): the answer carries the log start,
            // where the follower starts again.
            guard fetchOffset <= end, fetchOffset >= s.log.logStartOffset else { return .refused(.offsetOutOfRange) }
            moved = s.replica!.leading!.followerFetched(follower, fetchOffset: fetchOffset, nowMs: nowMs)
            expansion = s.replica!.leading!.expansion(after: follower, eligible: eligible)
            if expansion != nil {
                s.replica!.proposalOutstanding = true
                s.replica!.proposalSentMs = nowMs
            }
            return .read
        }
        // Only this fetch's move of the HW is for it to tell (whoever moves it tells).
        if moved { highWatermarkMayHaveMoved() }
        return (check, expansion)
    }

    /// Whether `replica` counts in this leader's maximal ISR (the committed ISR and any member
    /// being added): the replicas the high watermark waits for. True when not leading.
    public func inMaximalISR(_ replica: NodeID) -> Bool {
        state.withLock { s in s.replica?.leading?.maximalISR.contains(replica) ?? true }
    }

    /// Batches from `offset` up to the log end (what a follower copies), and the HW.
    public func readForFollower(from offset: Offset, maxBytes: Int) throws(StorageError) -> (LogSlice, Offsets) {
        try withLogIO { (s: inout Locked) throws(StorageError) -> (LogSlice, Offsets) in
            (try s.log.read(from: offset, maxBytes: maxBytes, upperBound: nil, minOneBatch: true), Self.offsets(s))
        }
    }

    // MARK: the follower's side

    /// The position to fetch from and the epoch of the last batch written.
    public var followerPosition: (fetchOffset: Offset, lastEpoch: LeaderEpoch) {
        state.withLock { s in
            if s.replica == nil { s.replica = loadReplicaState(s.log) }
            return (s.log.logEndOffset, s.replica!.epochs.latestEpoch ?? .none)
        }
    }

    /// Writes what the leader sent, with its offsets and epochs, and takes its HW.
    public func appendFromLeader(_ records: ByteBuffer, leaderHighWatermark: Offset) throws(StorageError) {
        let bytes = records.readableBytes
        let moved = try withLogIO { (s: inout Locked) throws(StorageError) -> Bool in
            if bytes == 0, s.replica != nil {
                // Nothing to write (most answers of an idle leader): the HW is taken in place.
                guard s.replica!.leading == nil else { throw .invalidArgument("\(name): a leader does not append as a follower") }
                let before = s.replica!.followerHighWatermark
                s.replica!.followerHighWatermark = max(before, min(leaderHighWatermark, s.log.logEndOffset))
                return s.replica!.followerHighWatermark > before
            }
            var replica = s.replica ?? loadReplicaState(s.log)
            guard replica.leading == nil else { throw .invalidArgument("\(name): a leader does not append as a follower") }
            if bytes > 0 {
                let before = s.log.logEndOffset
                let batches = try s.log.appendReplicated(records)
                // The producer state follows the log, so that a follower made leader dedups retries
                // of idempotent producers as the old leader did; the aborts it copied go to the
                // `.txnindex` as a leader's do (read_committed needs them after a restart).
                let abortsBefore = s.producers.aborted.count
                _ = try ProducerStateFiles.replay(log: s.log, from: before, into: &s.producers, now: Int64.max)
                for txn in s.producers.aborted.dropFirst(abortsBefore) where txn.lastOffset >= before {
                    let base = s.log.segmentBaseOffsets.last(where: { $0 <= txn.lastOffset }) ?? .zero
                    try ProducerStateFiles.appendAborted(txn, directory: logDirectory, segmentBase: base)
                }
                var changed = false
                for batch in batches where replica.epochs.latestEpoch.map({ batch.leaderEpoch > $0 }) ?? true {
                    replica.epochs.assign(batch.leaderEpoch, startOffset: batch.baseOffset)
                    changed = true
                }
                if changed { saveEpochs(replica.epochs, s.log) }
            }
            let before = replica.followerHighWatermark
            replica.followerHighWatermark = max(replica.followerHighWatermark, min(leaderHighWatermark, s.log.logEndOffset))
            s.replica = replica
            return replica.followerHighWatermark > before
        }
        // Consumers read a follower up to its HW (KIP-392): a move of it is what they wait for.
        if moved { wakeParked(appendedBytes: Self.wakeAll) } else if bytes > 0 { wakeParked(appendedBytes: bytes) }
    }

    /// Cuts the log where the leader's diverges (`epoch`/`endOffset` from its answer; nil epoch:
    /// the leader knows none so old, back to the HW). Returns the new log end.
    @discardableResult
    public func truncateToLeader(epoch: LeaderEpoch, endOffset: Offset) throws(StorageError) -> Offset {
        try withLogIO { (s: inout Locked) throws(StorageError) -> Offset in
            var replica = s.replica ?? loadReplicaState(s.log)
            // An answer that arrives after this broker became leader must not cut the leader's log.
            guard replica.leading == nil else { throw .invalidArgument("\(name): a leader does not truncate to another") }
            let end = s.log.logEndOffset
            let answer: (epoch: LeaderEpoch, endOffset: Offset)? = epoch == .none ? nil : (epoch, endOffset)
            let cut = replica.epochs.truncationOffset(leaderAnswer: answer, logEnd: end, highWatermark: replica.followerHighWatermark)
            if cut < end {
                try s.log.truncate(to: cut)
                try ProducerStateFiles.truncateIndexes(directory: logDirectory, from: s.log.logEndOffset)
                // The producer state is rebuilt for the shorter log, from snapshots not past it.
                for name in try FileSystem.list(logDirectory) {
                    if let offset = ProducerSnapshot.offset(fileName: name), offset > s.log.logEndOffset {
                        try FileSystem.remove(logDirectory + "/" + name)
                    }
                }
                (s.producers, s.snapshotOffset) = try ProducerStateFiles.load(log: s.log, directory: logDirectory, now: Int64.max,
                                                                               logger: Logger(label: "brook.partition"))
            }
            // Even at the log end: an epoch begun here as leader but never written goes.
            replica.epochs.truncate(from: min(cut, end))
            replica.followerHighWatermark = min(replica.followerHighWatermark, s.log.logEndOffset)
            saveEpochs(replica.epochs, s.log)
            s.replica = replica
            return s.log.logEndOffset
        }
    }

    /// The leader's log start moved (DeleteRecords, retention there): a follower's moves with it,
    /// as far as its own log reaches, so that records deleted on the leader go here too.
    public func followLeaderLogStart(_ leaderLogStart: Offset) throws(StorageError) {
        try withLogIO { (s: inout Locked) throws(StorageError) in
            guard leaderLogStart > s.log.logStartOffset, leaderLogStart <= s.log.logEndOffset,
                  var replica = s.replica, replica.leading == nil else { return }
            let start = try s.log.deleteRecords(before: leaderLogStart)
            replica.epochs.truncate(before: start)
            saveEpochs(replica.epochs, s.log)
            s.replica = replica
        }
    }

    /// OffsetForLeaderEpoch (KIP-101/320) from the leader-epoch cache: the largest epoch not above
    /// `requested` and the offset where it ended (the log end for the leading epoch); nil when
    /// unknown (Kafka's UNDEFINED). A single node has one epoch: every epoch up to it ends at the
    /// high watermark.
    /// Only a leader answers, and `current` (the asker's leader epoch, -1: unchecked) must be its
    /// epoch (else FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH), judged under the same lock as
    /// the answer: a replica that stopped leading in between must not answer UNDEFINED, which a
    /// consumer takes for a truncated log and answers by `auto.offset.reset`.
    public func lastOffset(forEpoch requested: LeaderEpoch, current: LeaderEpoch) -> (ErrorCode, (epoch: LeaderEpoch, endOffset: Offset)?) {
        state.withLock { s in
            guard let replica = s.replica else {
                // A single node (or a replica not yet told its role): the role alone decides.
                guard case .leader(let epoch) = role else { return (.notLeaderOrFollower, nil) }
                if let code = Self.epochMismatch(current, leading: epoch) { return (code, nil) }
                guard requested >= LeaderEpoch(0), requested <= epoch else { return (.none, nil) }
                return (.none, (epoch, Self.offsets(s).highWatermark))
            }
            guard let leading = replica.leading else { return (.notLeaderOrFollower, nil) }
            if let code = Self.epochMismatch(current, leading: leading.leaderEpoch) { return (code, nil) }
            if requested == leading.leaderEpoch { return (.none, (requested, s.log.logEndOffset)) }
            return (.none, replica.epochs.endOffset(for: requested, logEnd: s.log.logEndOffset))
        }
    }

    /// The leader's log starts past this follower's log end (retention or DeleteRecords there
    /// removed what this follower still lacks): everything here goes and the log starts again,
    /// empty, at the leader's log start, as Kafka's truncateFullyAndStartAt. Returns the new log
    /// end; nothing is done unless `leaderLogStart` is past it.
    @discardableResult
    public func restartAtLeaderLogStart(_ leaderLogStart: Offset) throws(StorageError) -> Offset {
        try withLogIO { (s: inout Locked) throws(StorageError) -> Offset in
            var replica = s.replica ?? loadReplicaState(s.log)
            guard replica.leading == nil else { throw .invalidArgument("\(name): a leader does not truncate to another") }
            guard leaderLogStart > s.log.logEndOffset else { return s.log.logEndOffset }
            try s.log.truncateFully(startingAt: leaderLogStart)
            for name in try FileSystem.list(logDirectory) where ProducerSnapshot.offset(fileName: name) != nil || name.hasSuffix(TxnIndex.suffix) {
                try FileSystem.remove(logDirectory + "/" + name)
            }
            (s.producers, s.snapshotOffset) = try ProducerStateFiles.load(log: s.log, directory: logDirectory, now: Int64.max,
                                                                           logger: Logger(label: "brook.partition"))
            replica.epochs.truncate(from: .zero)
            replica.followerHighWatermark = leaderLogStart
            saveEpochs(replica.epochs, s.log)
            s.replica = replica
            return s.log.logEndOffset
        }
    }

    // MARK: acks=all

    /// Calls `done(.none)` once the HW reaches `offset` while this broker leads with the ISR at
    /// min.insync.replicas or more; NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below
    /// it meanwhile (Kafka's answer); NOT_LEADER_OR_FOLLOWER when this broker stops leading.
    /// Returns the waiter's id for `cancelWait` (the caller's timeout), nil if already done.
    @discardableResult
    public func whenHighWatermark(reaches offset: Offset, _ done: @escaping @Sendable (ErrorCode) -> Void) -> UInt64? {
        let id = waiters.nextID.add(1, ordering: .relaxed).newValue
        let added = waiters.waiting.withLock { list -> Bool in
            guard list.count < HighWatermarkWaiters.waitersMax else { return false }
            list.append(.init(id: id, offset: offset, done: done))
            return true
        }
        guard added else {
            done(.notLeaderOrFollower)
            return nil
        }
        highWatermarkMayHaveMoved()
        return id
    }

    /// `whenHighWatermark` with a timeout: the code on `loop`, REQUEST_TIMED_OUT when the HW did
    /// not get there within `timeoutMs`.
    public func highWatermark(reaching offset: Offset, timeoutMs: Int64, on loop: any EventLoop) -> EventLoopFuture<ErrorCode> {
        // Already there (a leader alone in its ISR, as a single node is): no waiter, no timer.
        let now = highWatermarkState()
        if now.leading && now.high >= offset { return loop.makeSucceededFuture(now.enough ? .none : .notEnoughReplicasAfterAppend) }
        let promise = loop.makePromise(of: ErrorCode.self)
        let answered = AnsweredOnce()
        let answer: @Sendable (ErrorCode) -> Void = { code in
            guard answered.first() else { return }
            promise.succeed(code)
        }
        let id = whenHighWatermark(reaches: offset, answer)
        loop.scheduleTask(in: .milliseconds(max(0, timeoutMs))) { [self] in
            if let id { cancelWait(id) }
            answer(.requestTimedOut)
        }
        return promise.futureResult
    }

    /// The same, awaited.
    public func highWatermark(reaching offset: Offset, timeoutMs: Int64) async -> ErrorCode {
        await withCheckedContinuation { (continuation: CheckedContinuation<ErrorCode, Never>) in
            let answered = AnsweredOnce()
            let answer: @Sendable (ErrorCode) -> Void = { code in
                guard answered.first() else { return }
                continuation.resume(returning: code)
            }
            let id = whenHighWatermark(reaches: offset, answer)
            // The timer outlives an earlier answer (then it does nothing): a sleeping task.
            Task { [self] in
                try? await Task.sleep(nanoseconds: UInt64(max(0, timeoutMs)) * 1_000_000)
                if let id { cancelWait(id) }
                answer(.requestTimedOut)
            }
        }
    }

    /// The caller gave up (its timeout): the waiter goes.
    public func cancelWait(_ id: UInt64) {
        waiters.waiting.withLock { list in list.removeAll { $0.id == id } }
    }

    /// Completes the waiters the HW passed, and wakes parked consumer fetches when it moved
    /// (in a cluster, records become readable when the HW passes them, not when appended).
    /// How this broker's leadership of the partition stands, for the server's metrics: nil when
    /// it does not lead. A single node leads every partition with a whole ISR of one.
    public struct LeaderHealth: Sendable, Equatable {
        public var replicas: Int
        public var isr: Int
        public var minInSyncReplicas: Int
        public var underReplicated: Bool { isr < replicas }
        public var underMinISR: Bool { isr < minInSyncReplicas }
    }

    public var leaderHealth: LeaderHealth? {
        state.withLock { s in
            guard let replica = s.replica else { return isLeader ? LeaderHealth(replicas: 1, isr: 1, minInSyncReplicas: 1) : nil }
            guard let leading = replica.leading else { return nil }
            return LeaderHealth(replicas: leading.replicas.count, isr: leading.isr.count, minInSyncReplicas: leading.config.minInSyncReplicas)
        }
    }

    /// The HW, whether this replica leads, and whether its ISR is at least min.insync.replicas.
    func highWatermarkState() -> (high: Offset, leading: Bool, enough: Bool) {
        state.withLock { s in
            (Self.offsets(s).highWatermark, s.replica == nil || s.replica?.leading != nil,
             s.replica?.leading.map { $0.maximalISR.count >= $0.config.minInSyncReplicas } ?? true)
        }
    }

    func highWatermarkMayHaveMoved() {
        let (high, leading, enough) = highWatermarkState()
        let moved = waiters.lastSeen.withLock { last in
            defer { last = max(last, high) }
            return high > last
        }
        if moved && isReplicating { wakeParked(appendedBytes: Self.wakeAll) }
        // Only a leader answers: a follower's HW says nothing of what this broker acknowledged.
        guard leading else { return }
        let ready = waiters.waiting.withLock { list -> [HighWatermarkWaiters.Waiter] in
            guard !list.isEmpty else { return [] }
            let done = list.filter { $0.offset <= high }
            list.removeAll { $0.offset <= high }
            return done
        }
        for waiter in ready { waiter.done(enough ? .none : .notEnoughReplicasAfterAppend) }
    }

    func releaseWaiters() {
        let all = waiters.waiting.withLock { list in defer { list = [] }; return list }
        for waiter in all { waiter.done(.notLeaderOrFollower) }
    }
}
