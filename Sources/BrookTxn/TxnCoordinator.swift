import BrookCore
import BrookProtocol

/// A topic partition that a transaction writes to.
public struct TxnPartition: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(_ topic: String, _ partition: Int32) { self.topic = topic; self.partition = partition }
    public static func < (a: TxnPartition, b: TxnPartition) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
    public var description: String { "\(topic)-\(partition)" }
}

/// A transaction's state, numbered as Kafka's `__transaction_state` values are.
public enum TxnStatus: Int8, Sendable, CaseIterable {
    case empty = 0, ongoing, prepareCommit, prepareAbort, completeCommit, completeAbort, dead, prepareEpochFence

    /// The name DescribeTransactions and ListTransactions use.
    public var name: String {
        switch self {
        case .empty: "Empty"
        case .ongoing: "Ongoing"
        case .prepareCommit: "PrepareCommit"
        case .prepareAbort: "PrepareAbort"
        case .completeCommit: "CompleteCommit"
        case .completeAbort: "CompleteAbort"
        case .dead: "Dead"
        case .prepareEpochFence: "PrepareEpochFence"
        }
    }

    public init?(name: String) {
        guard let found = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = found
    }

    var isPrepare: Bool { self == .prepareCommit || self == .prepareAbort }
}

/// One transactional id's state: what `__transaction_state` holds for it.
public struct TxnMetadata: Sendable, Equatable {
    public var transactionalID: String
    public var producerID: ProducerID
    public var epoch: ProducerEpoch
    /// The epoch before the last bump by the coordinator (a timeout abort or a per-transaction
    /// bump), so that the producer's retry under it is recognised; -1 when none.
    public var previousEpoch: ProducerEpoch = .none
    public var timeoutMs: Int32
    public var status: TxnStatus
    public var partitions: Set<TxnPartition> = []
    public var startMs: Int64 = -1
    public var lastUpdateMs: Int64

    public init(transactionalID: String, producerID: ProducerID, epoch: ProducerEpoch, timeoutMs: Int32,
                status: TxnStatus, lastUpdateMs: Int64) {
        self.transactionalID = transactionalID
        self.producerID = producerID
        self.epoch = epoch
        self.timeoutMs = timeoutMs
        self.status = status
        self.lastUpdateMs = lastUpdateMs
    }
}

/// The markers that end a transaction: one control batch per partition.
public struct MarkerPlan: Sendable, Equatable {
    public var transactionalID: String
    public var producerID: ProducerID
    /// The epoch the markers carry (bumped past the producer's when it is being fenced).
    public var epoch: ProducerEpoch
    public var commit: Bool
    public var partitions: [TxnPartition]
    /// The PrepareCommit / PrepareAbort state to write before the markers.
    public var prepared: TxnMetadata
}

/// The transaction coordinator: every transactional id, its producer id and epoch, and its
/// transaction's partitions. A pure state machine: the driver (BrookBroker's TxnService) passes
/// the time in, writes the states it returns to `__transaction_state`, writes the markers, and
/// replays the log at load.
///
/// Ending a transaction has two steps, as in Kafka: `prepareEnd` moves it to PrepareCommit or
/// PrepareAbort (written before any marker, so a restart finishes the job), the driver writes
/// the markers, and `completeEnd` moves it to CompleteCommit or CompleteAbort.
public struct TxnCoordinator: Sendable {
    public let config: TxnConfig
    public private(set) var txns: [String: TxnMetadata] = [:]
    var lastTimeoutCheck: Int64 = 0
    var lastExpiryCheck: Int64 = 0
    /// When, on the monotonic clock, each open transaction began as this coordinator reckons
    /// it (with the start time it had then): timeouts are measured there, so that a step of the
    /// wall clock does not time out every open transaction (Kafka's coordinator measures them
    /// on the wall clock, and does).
    var opened: [String: (startMs: Int64, monotonicMs: Int64)] = [:]

    public init(config: TxnConfig) { self.config = config }

    public func metadata(_ transactionalID: String) -> TxnMetadata? { txns[transactionalID] }

    /// A state read back from `__transaction_state` (nil: the id was removed).
    public mutating func replay(_ transactionalID: String, _ metadata: TxnMetadata?) {
        txns[transactionalID] = metadata
    }

    /// Transactions a restart found half-ended: their markers must be written again.
    public var unfinished: [MarkerPlan] {
        txns.values.filter { $0.status.isPrepare }.sorted { $0.transactionalID < $1.transactionalID }.map { m in
            MarkerPlan(transactionalID: m.transactionalID, producerID: m.producerID, epoch: m.epoch,
                       commit: m.status == .prepareCommit, partitions: m.partitions.sorted(), prepared: m)
        }
    }

    // MARK: InitProducerId

    public enum InitOutcome: Sendable, Equatable {
        /// The producer id and epoch to use, and the state to write first (nil for an idempotent
        /// producer without a transactional id, which has none).
        case ready(ProducerID, ProducerEpoch, write: TxnMetadata?)
        case refused(ErrorCode)
        /// An open transaction of this id must be aborted first (its producer is being fenced);
        /// then InitProducerId is asked again.
        case abortFirst(MarkerPlan)
    }

    /// InitProducerId. `expected` is the id and epoch a producer that already has one names
    /// (KIP-360, v3+) to have its epoch bumped rather than be fenced.
    public mutating func initProducerID(transactionalID: String?, timeoutMs: Int32,
                                        expected: (ProducerID, ProducerEpoch)?, now: Int64,
                                        allocate: () -> ProducerID?) -> InitOutcome {
        guard let id = transactionalID, !id.isEmpty else {
            guard let pid = allocate() else { return .refused(.coordinatorNotAvailable) }
            return .ready(pid, ProducerEpoch(0), write: nil)
        }
        guard timeoutMs > 0, timeoutMs <= config.maxTimeoutMs else { return .refused(.invalidTransactionTimeout) }
        // The id is a compact string on the wire (any length) but an int16-length one in
        // __transaction_state's key: a longer one trapped writing it.
        guard id.utf8.count <= TxnRecords.transactionalIDBytesMax else { return .refused(.invalidRequest) }
        guard var m = txns[id] else {
            guard txns.count < config.transactionalIDsMax else { return .refused(.coordinatorNotAvailable) }
            guard let pid = allocate() else { return .refused(.coordinatorNotAvailable) }
            let m = TxnMetadata(transactionalID: id, producerID: pid, epoch: ProducerEpoch(0), timeoutMs: timeoutMs,
                                status: .empty, lastUpdateMs: now)
            txns[id] = m
            return .ready(pid, m.epoch, write: m)
        }
        if m.status.isPrepare { return .refused(.concurrentTransactions) }
        if let (pid, epoch) = expected, pid != .none {
            guard pid == m.producerID else { return .refused(.producerFenced) }
            if epoch != m.epoch {
                // A retry of an init that succeeded (KIP-360) gets the same answer again.
                guard epoch == m.previousEpoch && m.previousEpoch != .none && m.status != .ongoing else {
                    return .refused(.producerFenced)
                }
                return .ready(m.producerID, m.epoch, write: nil)
            }
        }
        if m.status == .ongoing {
            // A new instance fences the old one: its transaction is aborted under a bumped epoch.
            return .abortFirst(prepare(&m, commit: false, bump: true, fence: true, now: now))
        }
        m.previousEpoch = m.epoch
        if m.epoch.value >= Int16.max - 1 {
            guard let pid = allocate() else { return .refused(.coordinatorNotAvailable) }
            m.producerID = pid
            m.epoch = ProducerEpoch(0)
            m.previousEpoch = .none
        } else {
            m.epoch = ProducerEpoch(m.epoch.value + 1)
        }
        m.timeoutMs = timeoutMs
        m.status = .empty
        m.partitions = []
        m.startMs = -1
        m.lastUpdateMs = now
        txns[id] = m
        return .ready(m.producerID, m.epoch, write: m)
    }

    // MARK: adding partitions and offsets

    /// Checks that `producerID` at `epoch` owns `transactionalID` and may change it.
    func owner(_ transactionalID: String, _ producerID: ProducerID, _ epoch: ProducerEpoch) -> (TxnMetadata?, ErrorCode) {
        guard let m = txns[transactionalID], m.status != .dead else { return (nil, .invalidProducerIDMapping) }
        guard m.producerID == producerID else { return (nil, .invalidProducerIDMapping) }
        guard m.epoch == epoch else { return (nil, .producerFenced) }
        if m.status.isPrepare { return (nil, .concurrentTransactions) }
        return (m, .none)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's `__consumer_offsets` partition):
    /// the transaction starts with its first partition. Returns the error and the state to write.
    public mutating func addPartitions(transactionalID: String, producerID: ProducerID, epoch: ProducerEpoch,
                                       partitions: [TxnPartition], now: Int64) -> (ErrorCode, write: TxnMetadata?) {
        let (found, code) = owner(transactionalID, producerID, epoch)
        guard var m = found else { return (code, nil) }
        let added = Set(partitions).subtracting(m.partitions)
        if added.isEmpty && m.status == .ongoing { return (.none, nil) }
        guard m.partitions.count + added.count <= config.partitionsPerTransactionMax else { return (.invalidRequest, nil) }
        if m.status != .ongoing {
            m.status = .ongoing
            m.partitions = []
            m.startMs = now
        }
        m.partitions.formUnion(added)
        m.lastUpdateMs = now
        txns[transactionalID] = m
        return (.none, m)
    }

    /// KIP-890's check on produce: a transactional batch is written only to a partition its
    /// transaction holds, under the transaction's current epoch. nil: write it.
    public func verify(transactionalID: String, producerID: ProducerID, epoch: ProducerEpoch,
                       partition: TxnPartition) -> ErrorCode? {
        guard let m = txns[transactionalID], m.producerID == producerID else { return .invalidProducerIDMapping }
        if epoch < m.epoch { return .invalidProducerEpoch }
        guard epoch == m.epoch, m.status == .ongoing, m.partitions.contains(partition) else { return .invalidTxnState }
        return nil
    }

    // MARK: ending

    public enum EndOutcome: Sendable, Equatable {
        case refused(ErrorCode)
        /// A retry of an end already done: answer success with this id and epoch.
        case done(ProducerID, ProducerEpoch)
        /// Write `plan.prepared`, then the markers, then `completeEnd`.
        case markers(MarkerPlan)
    }

    /// EndTxn. `bumpEpoch` (EndTxn v5, transaction version 2) ends each transaction under a new
    /// epoch, so that nothing sent under the old one can touch the next transaction.
    public mutating func prepareEnd(transactionalID: String, producerID: ProducerID, epoch: ProducerEpoch,
                                    commit: Bool, bumpEpoch: Bool, now: Int64) -> EndOutcome {
        guard var m = txns[transactionalID], m.status != .dead, m.producerID == producerID else {
            return .refused(.invalidProducerIDMapping)
        }
        let finished: TxnStatus = commit ? .completeCommit : .completeAbort
        // A retry of the end just done (under the epoch it was sent with).
        let retryEpoch = bumpEpoch ? m.previousEpoch : m.epoch
        if m.status == finished && epoch == retryEpoch { return .done(m.producerID, m.epoch) }
        if m.status.isPrepare && (epoch == m.epoch || epoch == retryEpoch) {
            // Its markers are being written: a retry waits, the other outcome is refused.
            return .refused((m.status == .prepareCommit) == commit ? .concurrentTransactions : .invalidTxnState)
        }
        guard epoch == m.epoch else { return .refused(.producerFenced) }
        switch m.status {
        case .ongoing:
            return .markers(prepare(&m, commit: commit, bump: bumpEpoch, now: now))
        case .empty where !commit && bumpEpoch, .completeCommit where !commit && bumpEpoch,
             .completeAbort where !commit && bumpEpoch:
            // KIP-890: aborting with nothing added is allowed (and bumps the epoch).
            return .markers(prepare(&m, commit: false, bump: true, now: now))
        default:
            return .refused(.invalidTxnState)
        }
    }

    /// `fence`: the bump fences the producer (a new instance, a timeout), so its old epoch is not
    /// remembered as one whose retries are answered.
    private mutating func prepare(_ m: inout TxnMetadata, commit: Bool, bump: Bool, fence: Bool = false, now: Int64) -> MarkerPlan {
        if bump && m.epoch.value < Int16.max {
            m.previousEpoch = fence ? .none : m.epoch
            m.epoch = ProducerEpoch(m.epoch.value + 1)
        }
        m.status = commit ? .prepareCommit : .prepareAbort
        m.lastUpdateMs = now
        txns[m.transactionalID] = m
        return MarkerPlan(transactionalID: m.transactionalID, producerID: m.producerID, epoch: m.epoch, commit: commit,
                          partitions: m.partitions.sorted(), prepared: m)
    }

    /// The markers are written: the transaction is complete. Returns the state to write.
    public mutating func completeEnd(transactionalID: String, now: Int64) -> TxnMetadata? {
        guard var m = txns[transactionalID], m.status.isPrepare else { return nil }
        m.status = m.status == .prepareCommit ? .completeCommit : .completeAbort
        m.partitions = []
        m.startMs = -1
        m.lastUpdateMs = now
        txns[transactionalID] = m
        return m
    }

    // MARK: timers

    /// Open transactions past their `transaction.timeout.ms` are aborted under a bumped epoch
    /// (fencing their producer); idle ids past `transactional.id.expiration.ms` are removed.
    ///
    /// `monotonicMs` (a clock no wall-clock step moves; `now` when not given) measures the
    /// timeouts. An open transaction is reckoned to have begun, on that clock, when a tick
    /// first sees it, minus its age by the wall clock then: called often (every 100 ms), a new
    /// transaction's age is that small, and one loaded after a failover keeps the age its start
    /// time gives it, unless that age is past the timeout or negative (clocks that disagree):
    /// then it gets its whole timeout from now, at most one timeout late where the age was
    /// true, never early.
    public mutating func tick(now: Int64, monotonicMs: Int64? = nil) -> (aborts: [MarkerPlan], removed: [String]) {
        let mono = monotonicMs ?? now
        var aborts: [MarkerPlan] = []
        var removed: [String] = []
        for (id, m) in txns where m.status == .ongoing && opened[id]?.startMs != m.startMs {
            // An age past the timeout (or below 0) says the wall clocks disagree (the start was
            // stamped by a coordinator whose clock was stepped back, or this one's was stepped
            // since): it counts from now. Reckoned as the timeout, it aborted every transaction
            // loaded from such a coordinator at once, and fenced live producers (a fault
            // campaign: two of them in one 200-round run).
            let wallAge = now - m.startMs
            let age = wallAge >= 0 && wallAge <= Int64(m.timeoutMs) ? wallAge : 0
            opened[id] = (m.startMs, mono - age)
        }
        if mono - lastTimeoutCheck >= config.abortTimedOutIntervalMs {
            lastTimeoutCheck = mono
            opened = opened.filter { id, _ in txns[id]?.status == .ongoing }
            for id in txns.keys.sorted() {
                guard var m = txns[id], m.status == .ongoing, let began = opened[id], mono - began.monotonicMs > Int64(m.timeoutMs) else { continue }
                aborts.append(prepare(&m, commit: false, bump: true, fence: true, now: now))
            }
        }
        if mono - lastExpiryCheck >= config.removeExpiredIntervalMs {
            lastExpiryCheck = mono
            for (id, m) in txns where m.status != .ongoing && !m.status.isPrepare
                && now - m.lastUpdateMs >= config.transactionalIDExpirationMs {
                removed.append(id)
            }
            removed.sort()
            for id in removed { txns[id] = nil }
        }
        return (aborts, removed)
    }

    // MARK: describing

    /// ListTransactions: by state names and producer ids (empty filters match all), and open for
    /// at least `minDurationMs` (-1: any).
    public func list(states: [String], producerIDs: [ProducerID], minDurationMs: Int64, now: Int64) -> [TxnMetadata] {
        txns.values.filter { m in
            (states.isEmpty || states.contains(m.status.name))
                && (producerIDs.isEmpty || producerIDs.contains(m.producerID))
                && (minDurationMs < 0 || (m.status == .ongoing && now - m.startMs >= minDurationMs))
        }.sorted { $0.transactionalID < $1.transactionalID }
    }
}
