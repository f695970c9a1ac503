import BrookCore

/// What a node finds on its disk at start: nothing on first boot.
public struct PersistentState: Sendable {
    public var hardState: HardState
    public var snapshot: Snapshot?
    /// The entries after the snapshot, contiguous.
    public var entries: [Entry]
    public init(hardState: HardState = HardState(), snapshot: Snapshot? = nil, entries: [Entry] = []) {
        self.hardState = hardState
        self.snapshot = snapshot
        self.entries = entries
    }

    /// Applies the persistence steps of `ready` (Ready's steps 1 and 2) to this in-memory image:
    /// the model of a disk that the simulator and the tests keep.
    public mutating func write(_ ready: Ready) {
        if let received = ready.snapshot {
            snapshot = received
            entries = []
        }
        if let first = ready.entries.first {
            let base = snapshot?.index ?? .zero
            precondition(first.index > base, "the core wrote entry \(first.index) below its snapshot \(base)")
            precondition(first.index.value <= base.value + Int64(entries.count) + 1, "the core left a hole before entry \(first.index)")
            entries.removeLast(entries.count - Int(first.index.value - base.value - 1))
            entries.append(contentsOf: ready.entries)
        }
        if let written = ready.hardState { hardState = written }
    }

    /// Makes `newSnapshot` (taken by the node) the snapshot and drops the entries it covers.
    public mutating func install(_ newSnapshot: Snapshot) {
        snapshot = newSnapshot
        entries.removeAll { $0.index <= newSnapshot.index }
    }
}

/// One Raft node as a pure state machine, in the style of etcd's raft: messages (`step`), time
/// (`tick`) and requests (`propose`, `proposeConfigurationChange`, `transferLeadership`) go in;
/// a `Ready` comes out with what to persist, send and apply. No clock, disk, socket or global
/// randomness inside: the election jitter comes from a seeded generator the driver hands in.
///
/// Implements leader election with pre-vote and check-quorum, log replication with conflict
/// back-off, commitment of current-term entries only, snapshots, leader transfer and single-voter
/// membership changes (Ongaro's thesis, §4.1).
public struct Raft: Sendable {
    public let id: NodeID
    let config: RaftConfig
    var random: SeededRandom

    public internal(set) var term: Term
    public internal(set) var votedFor: NodeID?
    public internal(set) var leader: NodeID?
    public internal(set) var role: Role = .follower
    var log: RaftLog
    public internal(set) var commit: LogIndex
    public internal(set) var applied: LogIndex
    /// The voter set in force: the latest configuration in the log, committed or not.
    public internal(set) var configuration: Configuration

    var votes: [NodeID: Bool] = [:]
    var progress: [NodeID: Progress] = [:]
    var electionElapsed = 0
    var heartbeatElapsed = 0
    var randomizedElectionTicks = 0
    var leadTransferee: NodeID?
    /// A leader accepts no configuration change until this index is committed.
    var pendingConfigurationIndex = LogIndex.zero
    var uncommittedBytes = 0

    var messages: [Message] = []
    var receivedSnapshot: Snapshot?
    var persistedHardState: HardState
    var readyOutstanding = false

    /// A queue the driver drains every Ready; more than this means the driver stopped draining.
    static let messagesQueuedMax = 1 << 20

    /// `bootstrap` is the voter set of a brand-new quorum (every founding node gets the same one;
    /// a node joining later gets an empty one). It is ignored once a snapshot exists.
    public init(id: NodeID, config: RaftConfig = RaftConfig(), restoring state: PersistentState = PersistentState(),
                bootstrap: Configuration, randomSeed: UInt64) {
        config.validate()
        self.id = id
        self.config = config
        random = SeededRandom(seed: randomSeed)
        let snapshot = state.snapshot ?? Snapshot(index: .zero, term: .zero, configuration: bootstrap, data: [])
        log = RaftLog(snapshot: snapshot, entries: state.entries)
        precondition(state.hardState.commit <= log.lastIndex, "the persisted commit index \(state.hardState.commit) is past the log's end \(log.lastIndex)")
        precondition(log.lastTerm <= state.hardState.term, "the log holds a term newer than the persisted term")
        term = state.hardState.term
        votedFor = state.hardState.votedFor
        commit = max(state.hardState.commit, snapshot.index)
        applied = snapshot.index
        configuration = log.configuration(at: log.lastIndex)
        persistedHardState = state.hardState
        resetElectionTimer()
    }

    public var status: RaftStatus {
        RaftStatus(id: id, role: role, term: term, leader: leader, commit: commit, applied: applied,
                   lastIndex: log.lastIndex, configuration: configuration)
    }
    public var lastIndex: LogIndex { log.lastIndex }
    public var snapshotIndex: LogIndex { log.snapshot.index }
    /// The entry at `index`, if the log still holds it (not compacted, not past the end).
    public func entry(at index: LogIndex) -> Entry? {
        index >= log.firstIndex && index <= log.lastIndex ? log.entry(at: index) : nil
    }
    /// The term of the entry at `index`, if the log still holds it.
    public func term(at index: LogIndex) -> Term? { log.term(at: index) }
    /// The last entry a leader knows `node` holds (its own last entry for itself); nil on a
    /// node that does not lead, or for a node it does not replicate to.
    public func matchIndex(of node: NodeID) -> LogIndex? {
        guard role == .leader else { return nil }
        return node == id ? log.lastIndex : progress[node]?.match
    }
    var hardState: HardState { HardState(term: term, votedFor: votedFor, commit: commit) }
    var isVoter: Bool { configuration.contains(id) }
    /// A voter campaigns; so does a node that an uncommitted configuration leaves out but the
    /// one before it included: it may be the only one able to win, and to commit its removal.
    var canCampaign: Bool {
        if isVoter { return true }
        guard let last = log.lastConfigurationIndex, last > commit else { return false }
        return log.configuration(at: last - 1).contains(id)
    }
    /// A node heard from its leader within the election timeout: it refuses to help unseat it.
    var inLease: Bool { config.checkQuorum && leader != nil && electionElapsed < config.electionTicks }

    // MARK: input

    /// Advances time by one tick.
    public mutating func tick() {
        precondition(!readyOutstanding, "advance() the last Ready before new input")
        if role == .leader { tickLeader() } else { tickElection() }
    }

    /// Takes one message from a peer.
    public mutating func step(_ m: Message) {
        precondition(!readyOutstanding, "advance() the last Ready before new input")
        precondition(m.to == id, "message for node \(m.to) stepped into node \(id)")
        guard m.from != id else { return }
        if m.term > term {
            switch m.body {
            case .preVote, .preVoteResponse(granted: true):
                break // a pre-vote never changes a term
            case .vote(_, _, let transfer) where !transfer && inLease:
                return // our leader is alive: ignore the disrupter
            case .append, .installSnapshot, .timeoutNow:
                becomeFollower(term: m.term, leader: m.from)
            default:
                becomeFollower(term: m.term, leader: nil)
            }
        } else if m.term < term {
            switch m.body {
            case .append, .installSnapshot, .timeoutNow:
                // A deposed leader: the rejection carries our term, which makes it step down.
                send(to: m.from, .appendResponse(success: false, index: .zero, hint: .zero))
            case .preVote:
                send(to: m.from, .preVoteResponse(granted: false))
            default:
                break
            }
            return
        }
        switch m.body {
        case .preVote(let lastIndex, let lastTerm):
            handlePreVote(m, lastIndex: lastIndex, lastTerm: lastTerm)
        case .vote(let lastIndex, let lastTerm, _):
            handleVote(m, lastIndex: lastIndex, lastTerm: lastTerm)
        default:
            switch role {
            case .leader: stepLeader(m)
            case .candidate, .preCandidate: stepCandidate(m)
            case .follower: stepFollower(m)
            }
        }
    }

    // MARK: output

    public var hasReady: Bool {
        hardState != persistedHardState || receivedSnapshot != nil || log.unstableFrom != nil
            || !messages.isEmpty || commit > applied
    }

    /// What to persist, send and apply now (see `Ready`). Call `advance(_:)` after handling it.
    public mutating func ready() -> Ready {
        precondition(!readyOutstanding, "advance() the last Ready before asking for another")
        readyOutstanding = true
        var committed: [Entry] = []
        let applyFrom = max(applied, log.snapshot.index) + 1
        if commit >= applyFrom {
            committed = log.slice(from: applyFrom, through: commit, countMax: config.committedEntriesPerReadyMax)
        }
        return Ready(hardState: hardState == persistedHardState ? nil : hardState,
                     snapshot: receivedSnapshot, entries: log.unstableEntries, messages: messages,
                     committedEntries: committed)
    }

    /// The driver handled `ready` in full.
    public mutating func advance(_ ready: Ready) {
        precondition(readyOutstanding, "advance() without ready()")
        readyOutstanding = false
        if let hardState = ready.hardState { persistedHardState = hardState }
        if let snapshot = ready.snapshot { applied = max(applied, snapshot.index) }
        if let last = ready.committedEntries.last { applied = max(applied, last.index) }
        precondition(applied <= commit, "applied \(applied) past commit \(commit)")
        receivedSnapshot = nil
        log.stabilized()
        messages.removeFirst(ready.messages.count)
    }

    // MARK: compaction

    /// Replaces the log up to `index` (already applied) by the state machine's snapshot `data`.
    /// The driver persists the returned snapshot, then may drop its durable entries up to it.
    public mutating func compact(through index: LogIndex, data: [UInt8]) -> Snapshot {
        precondition(index <= applied, "compact through \(index) but only \(applied) is applied")
        precondition(index > log.snapshot.index, "compact through \(index) but the snapshot is already at \(log.snapshot.index)")
        let snapshot = Snapshot(index: index, term: log.term(at: index)!, configuration: log.configuration(at: index), data: data)
        log.compact(to: snapshot)
        return snapshot
    }

    // MARK: helpers

    mutating func send(to: NodeID, _ body: Message.Body, term messageTerm: Term? = nil) {
        precondition(messages.count < Self.messagesQueuedMax, "the driver stopped draining messages")
        messages.append(Message(from: id, to: to, term: messageTerm ?? term, body: body))
    }

    mutating func resetElectionTimer() {
        electionElapsed = 0
        randomizedElectionTicks = config.electionTicks + Int(random.next() % UInt64(config.electionTicks))
    }

    mutating func commit(to index: LogIndex) {
        guard index > commit else { return }
        precondition(index <= log.lastIndex, "commit \(index) past the log's end \(log.lastIndex)")
        commit = index
    }

    /// The log changed: the voter set is the latest configuration in it.
    mutating func refreshConfiguration() {
        let latest = log.configuration(at: log.lastIndex)
        guard latest != configuration else { return }
        configuration = latest
        if role == .leader { syncProgressWithConfiguration() }
    }
}
