import BrookCore
import BrookGroups
import BrookProtocol
import BrookRecords
import BrookStorage
import BrookTxn
import Logging
import NIOCore
import Synchronization

/// Drives the group coordinator (BrookGroups, a pure state machine): holds the requests that
/// wait for a rebalance, writes what the coordinator decides to `__consumer_offsets` before
/// answering, reloads it at start, and ticks its timers.
public final class GroupService: Sendable {
    public static let offsetsTopic = "__consumer_offsets"

    enum Waiter {
        case join(EventLoopPromise<JoinResult>)
        case sync(EventLoopPromise<SyncResult>)
    }

    struct State {
        var coordinator: GroupCoordinator
        var waiting: [PendingID: Waiter] = [:]
        /// The group each held request is for.
        var waitingGroup: [PendingID: String] = [:]
        var nextPending: UInt64 = 1
        /// In a cluster: the `__consumer_offsets` partitions this broker leads and has loaded.
        var owned: Set<Int> = []
        /// Partitions being loaded after a leadership change (COORDINATOR_LOAD_IN_PROGRESS).
        var loading: Set<Int> = []

        mutating func hold(_ waiter: Waiter, group: String) -> PendingID {
            let id = PendingID(nextPending)
            nextPending += 1
            waiting[id] = waiter
            waitingGroup[id] = group
            return id
        }

        mutating func release(_ id: PendingID) -> Waiter? {
            waitingGroup[id] = nil
            return waiting.removeValue(forKey: id)
        }
    }

    let state: Mutex<State>
    let topics: TopicRegistry
    let clock: any Clock
    let logger: Logger
    let offsetsTopic: InternalTopic
    let isCluster: Bool

    init(config: BrokerConfig, topics: TopicRegistry, clock: any Clock, logger: Logger) {
        isCluster = !config.processRoles.isEmpty
        var seed = SystemRandomNumberGenerator()
        state = Mutex(State(coordinator: GroupCoordinator(config: config.groups, seed: seed.next())))
        self.config = config.groups
        self.topics = topics
        // Sessions and rebalance timeouts are durations: a step of the wall clock must not end
        // them (the fault campaign's clock jumps did, for transactions).
        self.clock = SteadyWallClock(clock)
        self.logger = logger
        offsetsTopic = InternalTopic(name: Self.offsetsTopic, partitionCount: config.offsetsTopicPartitions,
                                     segmentBytes: config.offsetsTopicSegmentBytes, topics: topics,
                                     createLocally: config.processRoles.isEmpty)
    }

    public let config: GroupConfig
    var now: Int64 { clock.now().ms }

    /// A read-only look at the coordinator (for Describe / List / OffsetFetch).
    public func read<T>(_ body: (borrowing GroupCoordinator) -> T) -> T {
        state.withLock { body($0.coordinator) }
    }

    /// A read-only look at `groupID` where this broker coordinates it, judged under the same
    /// lock as the read: a group whose partition stops leading (or starts loading) between a
    /// check and a separate read would be read from an emptied coordinator, and its committed
    /// offsets answered as none (a consumer then starts over by `auto.offset.reset`).
    /// The error when it is not coordinated here.
    public func read<T>(coordinating groupID: String, _ body: (borrowing GroupCoordinator) -> T) -> Result<T, CoordinationError> {
        state.withLock { s in
            if let code = notCoordinating(groupID, s) { return .failure(CoordinationError(code: code)) }
            return .success(body(s.coordinator))
        }
    }

    /// Why a group is not read here: NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS.
    public struct CoordinationError: Error {
        public let code: ErrorCode
    }

    // MARK: loading and writing __consumer_offsets

    /// Replays `__consumer_offsets` into the coordinator (a single node; in a cluster each
    /// partition loads when this broker comes to lead it).
    func load() throws(StorageError) {
        if isCluster { return }
        try load(only: nil)
    }

    // MARK: coordinating by leadership (a cluster)

    /// nil when this broker coordinates `groupID` now (always on a single node); else the error
    /// to answer: NOT_COORDINATOR, or COORDINATOR_LOAD_IN_PROGRESS while its partition loads.
    func notCoordinating(_ groupID: String, _ s: borrowing State) -> ErrorCode? {
        guard isCluster else { return nil }
        guard let index = partitionIndex(of: groupID) else { return .notCoordinator }
        if s.loading.contains(index) { return .coordinatorLoadInProgress }
        return s.owned.contains(index) ? nil : .notCoordinator
    }

    /// The same, for handlers that only read the coordinator (OffsetFetch, DescribeGroups).
    public func notCoordinating(_ groupID: String) -> ErrorCode? {
        state.withLock { notCoordinating(groupID, $0) }
    }

    func partitionIndex(of groupID: String) -> Int? {
        offsetsTopic.partitionCountNow.map { InternalTopic.partitionIndex(for: groupID, partitions: $0) }
    }

    /// In a cluster, this broker became the leader of `__consumer_offsets` partition `index`: its
    /// groups' state is replayed from the partition's log (to its end, which is this leader's).
    public func becameLeader(ofPartition index: Int) {
        state.withLock { s in
            dropGroups(ofPartition: index, &s)
            s.loading.insert(index)
        }
        do { try load(only: index) } catch {
            // Not coordinated here rather than coordinated without its committed offsets.
            logger.error("cannot load groups of \(Self.offsetsTopic)-\(index): \(error); not coordinating them")
            state.withLock { s in
                s.loading.remove(index)
                dropGroups(ofPartition: index, &s)
            }
            return
        }
        state.withLock { s in
            s.loading.remove(index)
            s.owned.insert(index)
        }
    }

    /// This broker no longer leads `__consumer_offsets` partition `index`: its groups are
    /// forgotten here and their held requests answered NOT_COORDINATOR (the members find the
    /// new coordinator).
    public func stoppedLeading(partition index: Int) {
        let (dropped, held) = state.withLock { s -> ([String], [Waiter]) in
            s.owned.remove(index)
            s.loading.remove(index)
            return dropGroups(ofPartition: index, &s)
        }
        for waiter in held {
            switch waiter {
            case .join(let p): p.succeed(JoinResult(error: .notCoordinator))
            case .sync(let p): p.succeed(SyncResult(error: .notCoordinator))
            }
        }
        if !dropped.isEmpty { logger.info("no longer coordinating \(dropped.count) groups of \(Self.offsetsTopic)-\(index)") }
    }

    @discardableResult
    func dropGroups(ofPartition index: Int, _ s: inout State) -> ([String], [Waiter]) {
        guard let count = offsetsTopic.partitionCountNow else { return ([], []) }
        let leaving: (String) -> Bool = { InternalTopic.partitionIndex(for: $0, partitions: count) == index }
        let dropped = s.coordinator.unload(where: leaving)
        let ids = s.waitingGroup.filter { leaving($0.value) }.map(\.key)
        return (dropped, ids.compactMap { s.release($0) })
    }

    func load(only: Int?) throws(StorageError) {
        let now = self.now
        var count = 0
        try offsetsTopic.forEachBatch(logger: logger, only: only, toLogEnd: only != nil) { partition, header, batch in
            let events = Self.decode(header, batch, partition: partition, logger: logger)
            state.withLock { s in
                for event in events {
                    switch event {
                    case .record(let r): s.coordinator.replay(r, now: now)
                    case .transactional(let pid, let group, let tp, let committed):
                        s.coordinator.addPendingTxnOffsets(producerID: pid, groupID: group, [(tp, committed)])
                    case .marker(let pid, let commit): s.coordinator.completeTxnOffsets(producerID: pid, commit: commit, now: now)
                    }
                }
            }
            count += events.count
        }
        logger.info("loaded \(count) group records from \(Self.offsetsTopic)")
    }

    /// What a batch of `__consumer_offsets` holds for the coordinator.
    enum LoadEvent {
        case record(GroupRecord)
        /// An offset committed inside a transaction (TxnOffsetCommit).
        case transactional(ProducerID, group: String, TopicPartition, CommittedOffset)
        /// A transaction's marker.
        case marker(ProducerID, commit: Bool)
    }

    /// What one batch (`header`, the whole `batch`) holds for the coordinator.
    static func decode(_ header: RecordBatchHeader, _ batch: UnsafeRawBufferPointer, partition: String, logger: Logger) -> [LoadEvent] {
        if header.attributes.isControl {
            guard let marker = ControlBatch.marker(header, batch: batch) else { return [] }
            return [.marker(header.producerID, commit: marker == .commit)]
        }
        var out: [LoadEvent] = []
        let transactional = header.attributes.isTransactional
        do throws(BatchDefect) {
            try header.forEachRecord(in: batch) { record, records in
                guard let key = record.key else { return }
                do {
                    guard let r = try GroupRecord.decode(key: Array(records[key]), value: record.value.map { Array(records[$0]) }) else { return }
                    if transactional, case .offset(let group, let tp, let committed) = r {
                        out.append(.transactional(header.producerID, group: group, tp, committed))
                    } else {
                        out.append(.record(r))
                    }
                } catch {
                    logger.warning("\(partition): unreadable group record at offset \(header.baseOffset + Int64(record.offsetDelta)): \(error)")
                }
            }
        } catch {
            logger.warning("\(partition): unreadable batch at offset \(header.baseOffset): \(error)")
        }
        return out
    }

    /// Appends records to the group's partitions of `__consumer_offsets` (made on first use).
    /// Called under the state lock, so the log holds them in the order they were decided.
    /// Returns what must reach the ISR before an answer in a cluster (nothing on a single node).
    @discardableResult
    func write(_ records: [GroupRecord]) throws(StorageError) -> [InternalWrite] {
        let written = try offsetsTopic.append(records.map { ($0.groupID, $0.key, $0.value) }, now: clock.now())
        return isCluster ? written : []
    }

    // MARK: running the coordinator

    /// Runs `body` on the coordinator, writes the records it decided, then answers the held
    /// requests it completed: in a cluster once the ISR has the records. A write that fails or
    /// does not reach the ISR is never answered as a success: the held requests get
    /// COORDINATOR_NOT_AVAILABLE (NOT_COORDINATOR when this broker stopped leading), as Kafka's
    /// coordinator answers a failed group metadata append; the members join again.
    @discardableResult
    func run<T>(_ body: (inout State, Int64) -> (T, Effects)) -> T {
        let now = self.now
        let (value, answers, written, failed) = state.withLock { s -> (T, [HeldAnswer], [InternalWrite], Bool) in
            let (value, effects) = body(&s, now)
            var written: [InternalWrite] = []
            var failed = false
            do {
                written = try write(effects.records)
            } catch {
                logger.error("writing \(effects.records.count) group records: \(error)")
                failed = true
            }
            var answers: [HeldAnswer] = []
            for (id, result) in effects.joins {
                if case .join(let p)? = s.release(id) {
                    logger.debug("join answer #\(id.value): \(result.error) generation \(result.generation) member \(result.memberID) leader \(result.leader) members \(result.members.count)")
                    answers.append(HeldAnswer(loop: p.futureResult.eventLoop) { code in p.succeed(code.map { JoinResult(error: $0) } ?? result) })
                }
            }
            for (id, result) in effects.syncs {
                if case .sync(let p)? = s.release(id) {
                    logger.debug("sync answer #\(id.value): \(result.error) assignment \(result.assignment.count) bytes")
                    answers.append(HeldAnswer(loop: p.futureResult.eventLoop) { code in p.succeed(code.map { SyncResult(error: $0) } ?? result) })
                }
            }
            return (value, answers, written, failed && !effects.records.isEmpty)
        }
        guard let loop = answers.first?.loop, !written.isEmpty, !failed else {
            for answer in answers { answer.give(failed ? .coordinatorNotAvailable : nil) }
            return value
        }
        InternalWrite.settled(written, on: loop).whenSuccess { bad in
            for answer in answers { answer.give(bad) }
        }
        return value
    }

    /// A held join or sync's answer: the coordinator's result, or (given a code) that error.
    struct HeldAnswer: Sendable {
        let loop: any EventLoop
        let give: @Sendable (ErrorCode?) -> Void
    }

    public func join(_ request: JoinRequest, on eventLoop: any EventLoop,
                     connection: ConnectionScope? = nil) -> EventLoopFuture<JoinResult> {
        let promise = eventLoop.makePromise(of: JoinResult.self)
        return holdWhileCoordinating(request.groupID, promise, connection: connection, refused: { JoinResult(error: $0) }) { s, now in
            let id = s.hold(.join(promise), group: request.groupID)
            logger.debug("join #\(id.value) group \(request.groupID) member '\(request.memberID)' instance \(request.instanceID ?? "-") client \(request.clientID) protocols \(request.protocols.map(\.name))",
                         metadata: ["group": "\(request.groupID)", "client_id": "\(request.clientID)"])
            return (id, s.coordinator.join(request, pending: id, now: now))
        }
    }

    public func sync(_ request: SyncRequest, on eventLoop: any EventLoop,
                     connection: ConnectionScope? = nil) -> EventLoopFuture<SyncResult> {
        let promise = eventLoop.makePromise(of: SyncResult.self)
        return holdWhileCoordinating(request.groupID, promise, connection: connection, refused: { SyncResult(error: $0) }) { s, now in
            let id = s.hold(.sync(promise), group: request.groupID)
            logger.debug("sync #\(id.value) group \(request.groupID) member \(request.memberID) generation \(request.generation) assignments \(request.assignments.count)",
                         metadata: ["group": "\(request.groupID)"])
            return (id, s.coordinator.sync(request, pending: id, now: now))
        }
    }

    /// A join or sync: `start` holds `promise` and hands the request to the coordinator, under
    /// the lock in which this broker is found to coordinate `groupID` (the partition may stop
    /// leading at any moment before); otherwise the promise gets `refused` with the code.
    func holdWhileCoordinating<T: Sendable>(_ groupID: String, _ promise: EventLoopPromise<T>, connection: ConnectionScope?,
                                            refused: (ErrorCode) -> T,
                                            _ start: (inout State, Int64) -> (PendingID, Effects)) -> EventLoopFuture<T> {
        let held = run { s, now -> (Result<PendingID, CoordinationError>, Effects) in
            if let code = notCoordinating(groupID, s) { return (.failure(CoordinationError(code: code)), Effects()) }
            let (id, effects) = start(&s, now)
            return (.success(id), effects)
        }
        switch held {
        case .success(let id): own(id, promise.futureResult, by: connection)
        case .failure(let error): promise.succeed(refused(error.code))
        }
        return promise.futureResult
    }

    /// A held request belongs to its connection: if the connection closes first, the request is
    /// let go at once (its answer would be dropped anyway). The group is not told, as in Kafka:
    /// the member stays until it leaves, its session times out or the rebalance moves on.
    func own<T>(_ id: PendingID, _ answer: EventLoopFuture<T>, by connection: ConnectionScope?) {
        guard let connection else { return }
        guard let token = connection.register({ [self] in abandon(id) }) else { return abandon(id) }
        answer.whenComplete { _ in connection.unregister(token) }
    }

    func abandon(_ id: PendingID) {
        switch state.withLock({ $0.release(id) }) {
        case .join(let promise)?: promise.fail(ConnectionClosed())
        case .sync(let promise)?: promise.fail(ConnectionClosed())
        case nil: break  // answered already
        }
    }

    /// Join and sync requests held now.
    public var heldCount: Int { state.withLock { $0.waiting.count } }

    public func heartbeat(groupID: String, memberID: String, instanceID: String?, generation: Int32) -> ErrorCode {
        run { s, now in
            if let code = notCoordinating(groupID, s) { return (code, Effects()) }
            let code = s.coordinator.heartbeat(groupID: groupID, memberID: memberID, instanceID: instanceID, generation: generation, now: now)
            logger.debug("heartbeat group \(groupID) member \(memberID) generation \(generation): \(code)", metadata: ["group": "\(groupID)"])
            return (code, Effects())
        }
    }

    public func leave(groupID: String, members: [(memberID: String, instanceID: String?)]) -> (ErrorCode, [ErrorCode]) {
        run { s, now in
            if let code = notCoordinating(groupID, s) { return ((code, members.map { _ in code }), Effects()) }
            let (code, codes, effects) = s.coordinator.leave(groupID: groupID, members: members, now: now)
            logger.debug("leave group \(groupID) members \(members.map(\.memberID)): \(code) \(codes)", metadata: ["group": "\(groupID)"])
            return ((code, codes), effects)
        }
    }

    public func consumerHeartbeat(_ request: ConsumerHeartbeatRequest, overrides: GroupOverrides? = nil) -> ConsumerHeartbeatResult {
        let view = RegistryTopics(registry: topics)
        return run { s, now in
            if let code = notCoordinating(request.groupID, s) {
                return (.failed(code, "This broker does not coordinate group \(request.groupID)"), Effects())
            }
            return (s.coordinator.consumerHeartbeat(request, topics: view, overrides: overrides, now: now), Effects())
        }
    }

    /// OffsetCommit: checked, written, then applied; a failed write fails every partition. In a
    /// cluster the answer waits for the returned writes to reach the ISR.
    func commit(groupID: String, generation: Int32, memberID: String, instanceID: String?,
                offsets: [(TopicPartition, CommittedOffset)]) -> (GroupCoordinator.CommitCheck, [InternalWrite]) {
        let now = self.now
        return state.withLock { s in
            if let code = notCoordinating(groupID, s) {
                return (GroupCoordinator.CommitCheck(groupError: code), [])
            }
            var check = s.coordinator.checkCommit(groupID: groupID, generation: generation, memberID: memberID,
                                                  instanceID: instanceID, offsets: offsets, now: now)
            do {
                let written = try write(check.records)
                for r in check.records { s.coordinator.replay(r, now: now) }
                return (check, written)
            } catch {
                logger.error("writing offsets of group \(groupID): \(error)", metadata: ["group": "\(groupID)"])
                check.groupError = .coordinatorNotAvailable
                return (check, [])
            }
        }
    }

    /// TxnOffsetCommit (the transaction coordinator checked the producer): the offsets go to the
    /// group's `__consumer_offsets` partition in a transactional batch of the producer, and wait
    /// there for the transaction's marker.
    /// Returns the codes and, in a cluster, the write the answer waits for (the ISR must have
    /// it, as for OffsetCommit).
    func commitTransactional(groupID: String, producerID: ProducerID, epoch: ProducerEpoch, member: TxnCommitter,
                             offsets: [(TopicPartition, CommittedOffset)]) -> ([TopicPartition: ErrorCode], [InternalWrite]) {
        var errors: [TopicPartition: ErrorCode] = [:]
        var accepted: [(TopicPartition, CommittedOffset)] = []
        for (tp, committed) in offsets {
            if committed.metadata.utf8.count > config.offsetMetadataMaxBytes {
                errors[tp] = .offsetMetadataTooLarge
            } else {
                errors[tp] = ErrorCode.none
                accepted.append((tp, committed))
            }
        }
        guard !accepted.isEmpty else { return (errors, []) }
        let now = clock.now()
        return state.withLock { s in
            if let code = notCoordinating(groupID, s) { return (errors.mapValues { $0 == .none ? code : $0 }, []) }
            let fenced = s.coordinator.checkTxnCommit(groupID: groupID, generation: member.generation, memberID: member.memberID,
                                                      instanceID: member.instanceID)
            if fenced != .none { return (errors.mapValues { $0 == .none ? fenced : $0 }, []) }
            do throws(Partition.AppendError) {
                let partition: Partition
                do throws(StorageError) { partition = try offsetsTopic.partition(for: groupID) } catch { throw .storage(error) }
                let records = accepted.map { tp, c -> SimpleRecord in
                    let r = GroupRecord.offset(group: groupID, tp, c)
                    return SimpleRecord(key: r.key, value: r.value, timestamp: now)
                }
                var buffer = ByteBuffer(bytes: RecordBatchBuilder.build(
                    baseOffset: .zero, records: records, attributes: BatchAttributes(transactional: true),
                    producer: .init(id: producerID, epoch: epoch, baseSequence: -1)))
                let result = try partition.appendForTransaction(&buffer, now: now.ms)
                s.coordinator.addPendingTxnOffsets(producerID: producerID, groupID: groupID, accepted)
                return (errors, isCluster ? [InternalWrite(partition: partition, end: result.lastOffset + 1)] : [])
            } catch {
                logger.error("writing transactional offsets of group \(groupID): \(error)", metadata: ["group": "\(groupID)"])
                let code: ErrorCode
                if case .producer(let c, _) = error { code = c } else { code = .coordinatorNotAvailable }
                return (errors.mapValues { $0 == .none ? code : $0 }, [])
            }
        }
    }

    /// Who sends offsets to a transaction (TxnOffsetCommit v3+; -1, "" and nil before).
    public struct TxnCommitter: Sendable {
        public var generation: Int32
        public var memberID: String
        public var instanceID: String?
        public init(generation: Int32 = -1, memberID: String = "", instanceID: String? = nil) {
            self.generation = generation
            self.memberID = memberID
            self.instanceID = instanceID
        }
    }

    /// A transaction's marker reached `__consumer_offsets`: its offsets take effect or are dropped.
    public func completeTransaction(producerID: ProducerID, commit: Bool) {
        let now = self.now
        state.withLock { $0.coordinator.completeTxnOffsets(producerID: producerID, commit: commit, now: now) }
    }

    public func deleteGroup(_ groupID: String) -> ErrorCode {
        run { s, _ in
            if let code = notCoordinating(groupID, s) { return (code, Effects()) }
            let (code, records) = s.coordinator.deleteGroup(groupID)
            var effects = Effects()
            effects.records = records
            return (code, effects)
        }
    }

    public func deleteOffsets(groupID: String, partitions: [TopicPartition]) -> (ErrorCode, [TopicPartition: ErrorCode]) {
        run { s, _ in
            if let code = notCoordinating(groupID, s) { return ((code, [:]), Effects()) }
            let (code, errors, records) = s.coordinator.deleteOffsets(groupID: groupID, partitions: partitions)
            var effects = Effects()
            effects.records = records
            return ((code, errors), effects)
        }
    }

    /// The coordinator's timers (called about every 100 ms by the server).
    public func tick() {
        run { s, now in ((), s.coordinator.tick(now: now)) }
    }

    /// Held requests are answered COORDINATOR_NOT_AVAILABLE when the broker stops.
    func shutdown() {
        let waiting = state.withLock { s -> [Waiter] in
            defer {
                s.waiting.removeAll()
                s.waitingGroup.removeAll()
            }
            return Array(s.waiting.values)
        }
        for w in waiting {
            switch w {
            case .join(let p): p.succeed(JoinResult(error: .coordinatorNotAvailable))
            case .sync(let p): p.succeed(SyncResult(error: .coordinatorNotAvailable))
            }
        }
    }
}

/// The topic registry as the coordinator sees it.
struct RegistryTopics: TopicsView {
    let registry: TopicRegistry
    func describe(_ topic: String) -> (id: KafkaUUID, partitions: Int32)? {
        registry.topic(topic).map { ($0.id, Int32($0.partitions.count)) }
    }
    func name(of id: KafkaUUID) -> String? { registry.topic(id: id)?.name }
}
