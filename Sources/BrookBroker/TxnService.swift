import BrookCore
import BrookGroups
import BrookProtocol
import BrookRecords
import BrookStorage
import BrookTxn
import Logging
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Drives the transaction coordinator (BrookTxn, a pure state machine): allocates producer ids,
/// writes each transactional id's state to `__transaction_state` before answering, writes the
/// commit and abort markers to the transaction's partitions, reloads at start (finishing any
/// transaction a crash left half-ended), and aborts transactions past their timeout.
///
/// Locks: a produce holds its partition's lock while `verify` takes the coordinator's; so the
/// coordinator's lock is never held while a marker is written to a partition. It is held while
/// `__transaction_state` is written, which clients may not produce to.
public final class TxnService: Sendable {
    public static let stateTopic = "__transaction_state"
    /// Producer ids are reserved on disk in blocks of this many, so none is ever handed out twice.
    static let idBlockSize: Int64 = 1000
    static let idBlockFile = "producer-id-block"
    /// A single node's marker to a replica that is closed for a move's swap is tried again
    /// while the swap lasts (milliseconds), for at most about 30 s.
    static let markerAttemptsMax = 6_000
    static let markerRetryMicros: UInt32 = 5_000

    struct State {
        var coordinator: TxnCoordinator
        var ids = IDBlock()
        /// In a cluster: the `__transaction_state` partitions this broker leads and has loaded,
        /// with their leader epoch (the coordinator epoch its markers carry).
        var owned: [Int: LeaderEpoch] = [:]
        /// Partitions being loaded after a leadership change (COORDINATOR_LOAD_IN_PROGRESS).
        var loading: Set<Int> = []
        /// In a cluster: the controller's next block of producer ids, had before `ids` runs out,
        /// and whether one has been asked for.
        var nextBlock: IDBlock?
        var blockAsked = false
        /// In a cluster: the transactions whose markers are being delivered, each by one task
        /// (its token), so that none is delivered twice and none is forgotten.
        var delivering: [String: UInt64] = [:]
        var deliveries: UInt64 = 0
    }

    /// The next producer id to hand out, and the end of the block reserved on disk.
    struct IDBlock {
        var nextID: Int64 = 0
        var reservedEnd: Int64 = 0
        /// Where the block began (a cluster's blocks come from the controller).
        var blockStart: Int64 = 0
    }

    let state: Mutex<State>
    let topics: TopicRegistry
    let groups: GroupService
    let clock: any Clock
    let logger: Logger
    let idBlockPath: String
    let stateTopic: InternalTopic
    public let config: TxnConfig
    /// The cluster this broker belongs to (coordinators by leadership, markers over the network).
    let cluster: ClusterMembership
    let node: NodeID
    let isCluster: Bool

    init(config: BrokerConfig, topics: TopicRegistry, groups: GroupService, cluster: ClusterMembership, clock: any Clock, logger: Logger) {
        self.cluster = cluster
        node = config.nodeID
        isCluster = !config.processRoles.isEmpty
        self.config = config.transactions
        state = Mutex(State(coordinator: TxnCoordinator(config: config.transactions)))
        self.topics = topics
        self.groups = groups
        self.clock = clock
        self.logger = logger
        idBlockPath = config.logDirs[0] + "/" + Self.idBlockFile
        stateTopic = InternalTopic(name: Self.stateTopic, partitionCount: config.transactions.stateLogPartitions,
                                   segmentBytes: config.transactions.stateLogSegmentBytes, topics: topics,
                                   createLocally: config.processRoles.isEmpty)
    }

    var now: Int64 { clock.now().ms }

    /// In a cluster: asks the controller for a block of producer ids at once and waits, at most
    /// `timeoutMs`, until one is at hand (a node about to serve its first clients). True when
    /// one is.
    public func prefetchProducerIDs(timeoutMs: Int) -> Bool {
        guard isCluster else { return true }
        let deadline = clock.now().ms + Int64(timeoutMs)
        while true {
            refillProducerIDs()
            if state.withLock({ $0.ids.nextID < $0.ids.reservedEnd || $0.nextBlock != nil }) { return true }
            guard clock.now().ms < deadline else { return false }
            usleep(10_000)
        }
    }

    /// The end of the producer ids reserved on disk: none below it may be handed out again.
    public var reservedProducerIDsEnd: ProducerID { state.withLock { ProducerID($0.ids.reservedEnd) } }

    public func read<T>(_ body: (borrowing TxnCoordinator) -> T) -> T {
        state.withLock { body($0.coordinator) }
    }

    // MARK: loading

    /// Reads the reserved producer-id block, replays `__transaction_state`, and finishes the
    /// transactions a stop left between PrepareCommit/PrepareAbort and their completion.
    func load() throws(StorageError) {
        if let text = try FileSystem.readText(idBlockPath) {
            for line in text.split(separator: "\n") where line.hasPrefix("reserved=") {
                if let end = Int64(line.dropFirst("reserved=".count)), end >= 0 {
                    state.withLock { $0.ids = IDBlock(nextID: end, reservedEnd: end) }
                }
            }
        }
        // In a cluster, a partition's transactions load when this broker comes to lead it.
        if isCluster { return }
        var count = 0
        try stateTopic.forEachBatch(logger: logger) { partition, header, batch in
            let records = Self.decode(header, batch, partition: partition, logger: logger)
            state.withLock { s in for (id, m) in records { s.coordinator.replay(id, m) } }
            count += records.count
        }
        logger.info("loaded \(count) transaction records from \(Self.stateTopic)")
        for plan in read({ $0.unfinished }) {
            logger.info("finishing transaction \(plan.transactionalID) left \(plan.prepared.status.name)")
            finish(plan)
        }
    }

    /// The transactional ids' states in one batch (`header`, the whole `batch`); nil: removed.
    static func decode(_ header: RecordBatchHeader, _ batch: UnsafeRawBufferPointer, partition: String,
                       logger: Logger) -> [(String, TxnMetadata?)] {
        guard !header.attributes.isControl else { return [] }
        var out: [(String, TxnMetadata?)] = []
        try? header.forEachRecord(in: batch) { record, records in
            guard let key = record.key else { return }
            do throws(ProducerSnapshot.DecodeError) {
                let id = try TxnRecords.decodeKey(Array(records[key]))
                let m = try record.value.map { v throws(ProducerSnapshot.DecodeError) in
                    try TxnRecords.decodeValue(Array(records[v]), transactionalID: id)
                }
                out.append((id, m))
            } catch {
                logger.warning("\(partition): unreadable transaction record at offset \(header.baseOffset + Int64(record.offsetDelta)): \(error)")
            }
        }
        return out
    }

    // MARK: writing

    /// Appends states (nil: a tombstone) to the transactional ids' partitions of
    /// `__transaction_state`, made on first use. Called under the state lock. Returns what must
    /// reach the ISR before an answer in a cluster (nothing on a single node).
    @discardableResult
    func write(_ states: [(String, TxnMetadata?)]) throws(StorageError) -> [InternalWrite] {
        let written = try stateTopic.append(states.map { id, m in (id, TxnRecords.key(id), m.map(TxnRecords.value)) }, now: clock.now())
        return isCluster ? written : []
    }

    /// In a cluster, what an answer from states already in memory waits for: everything this
    /// coordinator wrote to `transactionalID`'s partition of `__transaction_state`, on the ISR.
    /// A write whose wait failed (COORDINATOR_NOT_AVAILABLE) stays in memory; its retry, answered
    /// at once, told the client of a state a new coordinator might never see (AddPartitionsToTxn
    /// retried after a timeout, then the producer's EndTxn met INVALID_TXN_STATE there). Kafka
    /// keeps such a state pending until its write completes. Nothing to wait for when the ISR
    /// has it all (the common case: the future is already complete).
    func written(before transactionalID: String?) -> [InternalWrite] {
        guard isCluster, let id = transactionalID, !id.isEmpty, let count = stateTopic.partitionCountNow else { return [] }
        let index = InternalTopic.partitionIndex(for: id, partitions: count)
        guard let partition = topics.partition(Self.stateTopic, Int32(index)) else { return [] }
        return [InternalWrite(partition: partition, end: partition.logEndOffset)]
    }

    /// In a cluster: the next producer id of the controller's blocks (nil until one has come).
    static func take(_ ids: inout IDBlock, _ next: inout IDBlock?) -> ProducerID? {
        if ids.nextID >= ids.reservedEnd, let block = next {
            ids = block
            next = nil
        }
        guard ids.nextID < ids.reservedEnd else { return nil }
        defer { ids.nextID += 1 }
        return ProducerID(ids.nextID)
    }

    /// In a cluster: asks the controller for the next block of producer ids (AllocateProducerIds)
    /// once fewer than a tenth of the current one is left, so that InitProducerId rarely waits;
    /// until the first block comes it is answered COORDINATOR_NOT_AVAILABLE (the client retries).
    /// The metadata log records every block handed out, so ids never repeat across brokers or
    /// restarts.
    func refillProducerIDs() {
        let ask = state.withLock { s -> Bool in
            let left = s.ids.reservedEnd - s.ids.nextID
            guard !s.blockAsked, s.nextBlock == nil, left * 10 < max(1, s.ids.reservedEnd - s.ids.blockStart) || left <= 0 else { return false }
            s.blockAsked = true
            return true
        }
        guard ask else { return }
        cluster.allocateProducerIDs { [self] code, first, count in
            state.withLock { s in
                s.blockAsked = false
                guard code == .none, count > 0 else { return }
                let block = IDBlock(nextID: first.value, reservedEnd: first.value + count, blockStart: first.value)
                if s.ids.nextID >= s.ids.reservedEnd { s.ids = block } else { s.nextBlock = block }
            }
            if code != .none { logger.debug("producer ids: the controller answered \(code)") }
        }
    }

    /// The next producer id; a new block is reserved on disk (durably) before any id of it is used.
    static func allocate(_ s: inout IDBlock, path: String, logger: Logger) -> ProducerID? {
        if s.nextID >= s.reservedEnd {
            let end = s.nextID + idBlockSize
            do {
                try FileSystem.writeAtomically(path, contents: "version=1\nreserved=\(end)\n", durable: true)
            } catch {
                logger.error("reserving producer ids: \(error)")
                return nil
            }
            s.reservedEnd = end
        }
        defer { s.nextID += 1 }
        return ProducerID(s.nextID)
    }

    // MARK: requests

    public struct InitResult: Sendable {
        public var error: ErrorCode
        public var producerID: ProducerID
        public var epoch: ProducerEpoch
    }

    /// InitProducerId. An open transaction of the id is aborted first (fencing its producer).
    /// Returns the answer and the writes it waits for (see `reply`).
    func initProducerID(transactionalID: String?, timeoutMs: Int32, expected: (ProducerID, ProducerEpoch)?) -> (InitResult, [InternalWrite]) {
        var written: [InternalWrite] = []
        for _ in 0..<3 {
            let now = self.now
            let path = idBlockPath
            let logger = self.logger
            let cluster = isCluster
            defer { if cluster { refillProducerIDs() } }
            let outcome = state.withLock { s -> TxnCoordinator.InitOutcome in
                if let id = transactionalID, let code = notCoordinating(id, s) { return .refused(code) }
                // A state not written is not kept (as Kafka's coordinator reverts it).
                let before = s.coordinator
                var (ids, next) = (s.ids, s.nextBlock)
                let outcome = s.coordinator.initProducerID(transactionalID: transactionalID, timeoutMs: timeoutMs,
                                                           expected: expected, now: now) {
                    cluster ? Self.take(&ids, &next) : Self.allocate(&ids, path: path, logger: logger)
                }
                (s.ids, s.nextBlock) = (ids, next)
                switch outcome {
                case .ready(let pid, let epoch, let m?):
                    do { written = try write([(m.transactionalID, m)]) } catch {
                        logger.error("writing transaction state of \(m.transactionalID): \(error)")
                        s.coordinator = before
                        return .refused(.coordinatorNotAvailable)
                    }
                    return .ready(pid, epoch, write: nil)
                case .abortFirst(let plan):
                    do { written = try write([(plan.transactionalID, plan.prepared)]) } catch {
                        s.coordinator = before
                        return .refused(.coordinatorNotAvailable)
                    }
                    return outcome
                default:
                    return outcome
                }
            }
            switch outcome {
            case .ready(let pid, let epoch, _):
                // A retry answered from memory (KIP-360) waits for what was written before it.
                if written.isEmpty { written = self.written(before: transactionalID) }
                return (InitResult(error: .none, producerID: pid, epoch: epoch), written)
            case .refused(let code): return (InitResult(error: code, producerID: .none, epoch: .none), [])
            case .abortFirst(let plan):
                // In a cluster the markers go out on their own; the producer is told to retry
                // (CONCURRENT_TRANSACTIONS) until they are written.
                complete(plan, after: written)
                written = []
            }
        }
        return (InitResult(error: .concurrentTransactions, producerID: .none, epoch: .none), [])
    }

    /// AddPartitionsToTxn: the error per partition (all the same: the request is all or nothing),
    /// and the write it waits for.
    func addPartitions(transactionalID: String, producerID: ProducerID, epoch: ProducerEpoch,
                              partitions: [TxnPartition]) -> (ErrorCode, [InternalWrite]) {
        for p in partitions where !topics.exists(p.topic, p.partition) { return (.unknownTopicOrPartition, []) }
        let now = self.now
        let (code, writes, retry) = state.withLock { s -> (ErrorCode, [InternalWrite], Bool) in
            if let code = notCoordinating(transactionalID, s) { return (code, [], false) }
            let before = s.coordinator
            let (code, m) = s.coordinator.addPartitions(transactionalID: transactionalID, producerID: producerID, epoch: epoch,
                                                        partitions: partitions, now: now)
            guard let m else { return (code, [], code == .none) }
            do { return (code, try write([(transactionalID, m)]), false) } catch {
                logger.error("writing transaction state of \(transactionalID): \(error)")
                s.coordinator = before
                return (.coordinatorNotAvailable, [], false)
            }
        }
        // Nothing new (a retry): the answer waits for the states written before it.
        return (code, retry ? written(before: transactionalID) : writes)
    }

    /// The `__consumer_offsets` partition that holds a group's offsets (the topic made if missing).
    func offsetsPartition(for groupID: String) -> TxnPartition? {
        guard let index = try? groups.offsetsTopic.index(for: groupID) else { return nil }
        return TxnPartition(GroupService.offsetsTopic, index)
    }

    /// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction.
    func addOffsets(transactionalID: String, producerID: ProducerID, epoch: ProducerEpoch, groupID: String) -> (ErrorCode, [InternalWrite]) {
        guard !groupID.isEmpty else { return (.invalidGroupID, []) }
        guard let target = offsetsPartition(for: groupID) else { return (.coordinatorNotAvailable, []) }
        return addPartitions(transactionalID: transactionalID, producerID: producerID, epoch: epoch, partitions: [target])
    }

    /// TxnOffsetCommit: allowed to the producer whose open transaction holds the group's partition.
    func commitOffsets(transactionalID: String, groupID: String, producerID: ProducerID, epoch: ProducerEpoch,
                       member: GroupService.TxnCommitter = .init(),
                       offsets: [(TopicPartition, CommittedOffset)]) -> ([TopicPartition: ErrorCode], [InternalWrite]) {
        guard let target = offsetsPartition(for: groupID) else {
            return (Dictionary(offsets.map { ($0.0, ErrorCode.coordinatorNotAvailable) }, uniquingKeysWith: { a, _ in a }), [])
        }
        if let problem = verify(transactionalID: transactionalID, producerID: producerID, epoch: epoch, partition: target) {
            // Kafka names a fenced producer so here; a missing AddOffsetsToTxn is a state error.
            let code: ErrorCode = problem == .invalidProducerEpoch ? .producerFenced : problem
            return (Dictionary(offsets.map { ($0.0, code) }, uniquingKeysWith: { a, _ in a }), [])
        }
        return groups.commitTransactional(groupID: groupID, producerID: producerID, epoch: epoch, member: member, offsets: offsets)
    }

    /// EndTxn: PrepareCommit/PrepareAbort is written, then the markers, then the completion.
    /// On a single node the answer comes after all three; in a cluster, as in Kafka, once the
    /// prepared state is replicated (the markers follow on their own, and the producer's next
    /// request waits for them with CONCURRENT_TRANSACTIONS). `bumpEpoch` (v5) ends under a new
    /// epoch, returned.
    func endTxn(transactionalID: String, producerID: ProducerID, epoch: ProducerEpoch, commit: Bool,
                       bumpEpoch: Bool) -> (InitResult, [InternalWrite]) {
        let now = self.now
        var written: [InternalWrite] = []
        let outcome = state.withLock { s -> TxnCoordinator.EndOutcome in
            if let code = notCoordinating(transactionalID, s) { return .refused(code) }
            let before = s.coordinator
            let outcome = s.coordinator.prepareEnd(transactionalID: transactionalID, producerID: producerID, epoch: epoch,
                                                   commit: commit, bumpEpoch: bumpEpoch, now: now)
            if case .markers(let plan) = outcome {
                do { written = try write([(transactionalID, plan.prepared)]) } catch {
                    logger.error("writing transaction state of \(transactionalID): \(error)")
                    s.coordinator = before
                    return .refused(.coordinatorNotAvailable)
                }
            }
            return outcome
        }
        switch outcome {
        case .refused(let code): return (InitResult(error: code, producerID: .none, epoch: .none), [])
        case .done(let pid, let epoch):
            return (InitResult(error: .none, producerID: pid, epoch: epoch), self.written(before: transactionalID))
        case .markers(let plan):
            complete(plan, after: written)
            return (InitResult(error: .none, producerID: plan.producerID, epoch: plan.epoch), written)
        }
    }

    /// Transactions this coordinator completed since the start (their markers written).
    public let committed = Counter()
    public let aborted = Counter()

    /// Writes a prepared transaction's markers, then its completion.
    func finish(_ plan: MarkerPlan) {
        let time = clock.now()
        for target in plan.partitions {
            // A replica moving between log dirs is closed for a moment before its copy takes
            // its place: the marker goes to the copy.
            var closed: Partition?
            for attempt in 0..<Self.markerAttemptsMax {
                guard let partition = topics.partition(target.topic, target.partition) else {
                    logger.info("transaction \(plan.transactionalID): \(target) no longer exists; no marker written")
                    break
                }
                if partition === closed { usleep(Self.markerRetryMicros) }
                do {
                    _ = try partition.appendMarker(producerID: plan.producerID, epoch: plan.epoch, commit: plan.commit,
                                                   coordinatorEpoch: 0, now: time)
                } catch {
                    // Closed for its swap (or replaced since): the copy takes the marker.
                    if case .storage(.closed) = error, attempt + 1 < Self.markerAttemptsMax,
                       topics.moves.isSwapping(partition.name) || topics.partition(target.topic, target.partition) !== partition {
                        closed = partition
                        continue
                    }
                    logger.error("transaction \(plan.transactionalID): marker to \(target) failed: \(error)")
                }
                break
            }
            if target.topic == GroupService.offsetsTopic {
                groups.completeTransaction(producerID: plan.producerID, commit: plan.commit)
            }
        }
        (plan.commit ? committed : aborted).add(1)
        state.withLock { s in
            guard let m = s.coordinator.completeEnd(transactionalID: plan.transactionalID, now: time.ms) else { return }
            do { try write([(plan.transactionalID, m)]) } catch {
                logger.error("writing transaction state of \(plan.transactionalID): \(error)")
            }
        }
    }

    /// KIP-890's produce check (called under the partition's lock). In a cluster it is made only
    /// where this broker coordinates the transaction; elsewhere the write is taken unchecked, as
    /// Kafka does without `transaction.partition.verification.enable` (asking the remote
    /// coordinator from under a partition lock is not done). `asCoordinator`: the question came
    /// to this broker as the coordinator (AddPartitionsToTxn verify_only), answered
    /// NOT_COORDINATOR when it is not.
    public func verify(transactionalID: String, producerID: ProducerID, epoch: ProducerEpoch, partition: TxnPartition,
                       asCoordinator: Bool = false) -> ErrorCode? {
        state.withLock { s in
            if let code = notCoordinating(transactionalID, s) { return asCoordinator ? code : nil }
            return s.coordinator.verify(transactionalID: transactionalID, producerID: producerID, epoch: epoch, partition: partition)
        }
    }

    /// Aborts transactions past their timeout and forgets idle ids (called about every 100 ms);
    /// in a cluster, keeps a block of producer ids at hand.
    public func tick() {
        if isCluster { refillProducerIDs() }
        let now = self.now
        let (aborts, written) = state.withLock { s -> ([MarkerPlan], [InternalWrite]) in
            let before = s.coordinator
            let (aborts, removed) = s.coordinator.tick(now: now, monotonicMs: clock.monotonicMs())
            guard !aborts.isEmpty || !removed.isEmpty else { return ([], []) }
            do {
                return (aborts, try write(aborts.map { ($0.transactionalID, $0.prepared) } + removed.map { ($0, nil) }))
            } catch {
                // Tried again at a later tick.
                logger.error("writing timed-out transactions: \(error)")
                s.coordinator = before
                return ([], [])
            }
        }
        if isCluster { resumeDeliveries() }
        for plan in aborts {
            logger.info("transaction \(plan.transactionalID) timed out; aborting it and fencing producer \(plan.producerID) with epoch \(plan.epoch)")
            complete(plan, after: written)
        }
    }
}
