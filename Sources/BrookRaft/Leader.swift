import BrookCore

/// The leader's view of one follower's log.
struct Progress: Sendable {
    enum State: Equatable, Sendable {
        /// Unsure where the follower's log ends: one append at a time, backing off on rejection.
        case probe
        /// In step: appends stream ahead optimistically, up to the inflight window.
        case replicate
        /// The follower needs the snapshot taken at this index.
        case snapshot(LogIndex)
    }
    var match: LogIndex
    var next: LogIndex
    var state: State = .probe
    /// A probe is out and unanswered.
    var probeSent = false
    /// Heard from within the current election timeout (check-quorum).
    var recentActive = true
    /// Heartbeats since the snapshot went out: after an election timeout of silence it is
    /// presumed lost and sent again (not on every heartbeat: it may be large).
    var snapshotWaitHeartbeats = 0
}

extension Raft {
    mutating func tickLeader() {
        heartbeatElapsed += 1
        electionElapsed += 1
        if electionElapsed >= config.electionTicks {
            electionElapsed = 0
            if config.checkQuorum {
                let active = configuration.voters.filter { $0 == id || progress[$0]?.recentActive == true }.count
                guard active >= configuration.quorum else {
                    // Cut off from a majority: stop acting as leader so clients look elsewhere.
                    becomeFollower(term: term, leader: nil)
                    return
                }
                for node in progress.keys { progress[node]!.recentActive = false }
            }
            leadTransferee = nil // a transfer that took a whole election timeout has failed
        }
        if heartbeatElapsed >= config.heartbeatTicks {
            heartbeatElapsed = 0
            for node in progress.keys {
                progress[node]!.probeSent = false
                if case .snapshot = progress[node]!.state {
                    progress[node]!.snapshotWaitHeartbeats += 1
                    if progress[node]!.snapshotWaitHeartbeats * config.heartbeatTicks >= config.electionTicks {
                        progress[node]!.state = .probe
                    }
                }
            }
            broadcastAppend(sendEmpty: true)
        }
    }

    mutating func stepLeader(_ m: Message) {
        switch m.body {
        case .append, .installSnapshot:
            preconditionFailure("two leaders in term \(term): \(id) and \(m.from)")
        case .appendResponse(let success, let index, let hint):
            guard progress[m.from] != nil else { return }
            progress[m.from]!.recentActive = true
            if success { handleAppendAccepted(from: m.from, match: index) } else { handleAppendRejected(from: m.from, rejected: index, hint: hint) }
        default:
            break
        }
    }

    mutating func handleAppendAccepted(from node: NodeID, match: LogIndex) {
        var p = progress[node]!
        precondition(match <= log.lastIndex, "follower \(node) acknowledged \(match) past the leader's end \(log.lastIndex)")
        if match > p.match {
            p.match = match
            p.next = max(p.next, match + 1)
        }
        p.probeSent = false
        switch p.state {
        case .probe: p.state = .replicate; p.next = p.match + 1
        case .snapshot(let pending) where p.match >= pending: p.state = .probe; p.next = p.match + 1
        default: break
        }
        progress[node] = p
        if advanceCommit() {
            broadcastAppend(sendEmpty: true)
        } else {
            sendAppend(to: node, sendEmpty: false)
        }
        if leadTransferee == node && progress[node]?.match == log.lastIndex {
            send(to: node, .timeoutNow)
        }
    }

    mutating func handleAppendRejected(from node: NodeID, rejected: LogIndex, hint: LogIndex) {
        var p = progress[node]!
        switch p.state {
        case .replicate where rejected <= p.match: return // stale
        case .probe where rejected != p.next - 1: return // stale
        case .snapshot: return // an answer to an append sent before the snapshot
        default: break
        }
        p.next = max(p.match + 1, min(hint, rejected))
        p.state = .probe
        p.probeSent = false
        progress[node] = p
        sendAppend(to: node, sendEmpty: true)
    }

    /// Sends `node` the entries it lacks (or the snapshot when they were compacted away); with
    /// `sendEmpty`, an empty append (a heartbeat carrying the commit index) when it lacks none.
    mutating func sendAppend(to node: NodeID, sendEmpty: Bool) {
        guard var p = progress[node] else { return }
        if case .snapshot = p.state { return } // waiting for the snapshot's acknowledgement
        let paused = (p.state == .probe && p.probeSent)
            || (p.state == .replicate && p.next - p.match > Int64(config.inflightEntriesMax))
        if paused && !sendEmpty { return }
        let prevIndex = p.next - 1
        guard let prevTerm = log.term(at: prevIndex) else {
            send(to: node, .installSnapshot(log.snapshot))
            p.state = .snapshot(log.snapshot.index)
            p.snapshotWaitHeartbeats = 0
            progress[node] = p
            return
        }
        var entries: [Entry] = []
        if !paused && p.next <= log.lastIndex {
            entries = log.slice(from: p.next, through: log.lastIndex, countMax: config.entriesPerAppendMax, bytesMax: config.appendBytesMax)
        }
        if entries.isEmpty && !sendEmpty { return }
        send(to: node, .append(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commit))
        if let last = entries.last, p.state == .replicate { p.next = last.index + 1 }
        if p.state == .probe { p.probeSent = true }
        progress[node] = p
    }

    mutating func broadcastAppend(sendEmpty: Bool) {
        for node in progress.keys.sorted() { sendAppend(to: node, sendEmpty: sendEmpty) }
    }

    /// Commits the highest index a quorum of voters holds, if it is of this leader's term
    /// (§5.4.2: an older term's entry is committed only through a newer one). True if it moved.
    @discardableResult
    mutating func advanceCommit() -> Bool {
        guard !configuration.voters.isEmpty else { return false }
        let matches = configuration.voters.map { $0 == id ? log.lastIndex : (progress[$0]?.match ?? .zero) }.sorted(by: >)
        let candidate = matches[configuration.quorum - 1]
        guard candidate > commit, log.term(at: candidate) == term else { return false }
        for index in stride(from: commit + 1, through: candidate, by: 1) {
            uncommittedBytes = max(0, uncommittedBytes - log.entry(at: index).sizeBytes)
        }
        commit(to: candidate)
        if !isVoter && commit >= (log.lastConfigurationIndex ?? .zero) {
            // Our own removal is committed: hand over by stepping down.
            broadcastAppend(sendEmpty: true)
            becomeFollower(term: term, leader: nil)
        }
        return true
    }

    /// Progress entries for exactly the voters other than ourselves.
    mutating func syncProgressWithConfiguration() {
        for node in progress.keys where !configuration.contains(node) { progress[node] = nil }
        for node in configuration.voters where node != id && progress[node] == nil {
            progress[node] = Progress(match: .zero, next: log.lastIndex + 1)
        }
    }

    // MARK: requests

    /// Appends `data` as a new entry and returns its index. `expectedTerm` is the controller epoch
    /// the proposer acted under: a different one is refused, which fences a stale controller.
    @discardableResult
    public mutating func propose(_ data: [UInt8], expectedTerm: Term? = nil) throws(ProposalError) -> LogIndex {
        try appendAsLeader(kind: .data, data: data, expectedTerm: expectedTerm)
    }

    /// Adds or removes one voter. The new voter set takes effect at once on every node that
    /// appends the entry; the next change waits for this one to commit.
    @discardableResult
    public mutating func proposeConfigurationChange(adding: NodeID? = nil, endpoint: String? = nil, removing: NodeID? = nil) throws(ProposalError) -> LogIndex {
        precondition((adding == nil) != (removing == nil), "one voter at a time")
        guard role == .leader else { throw .notLeader(leader: leader) }
        guard pendingConfigurationIndex <= commit else { throw .configurationChangePending }
        var next = configuration
        if let node = adding {
            guard !next.contains(node), next.voters.count < Configuration.votersMax,
                  endpoint.map({ !$0.isEmpty && $0.utf8.count <= Configuration.endpointBytesMax }) ?? true else { throw .invalidConfigurationChange }
            next = next.adding(node, endpoint: endpoint)
        }
        if let node = removing {
            guard next.contains(node), next.voters.count > 1 else { throw .invalidConfigurationChange }
            next = next.removing(node)
        }
        let index = try appendAsLeader(kind: .configuration, data: next.encoded, expectedTerm: nil)
        pendingConfigurationIndex = index
        return index
    }

    /// Hands leadership to `target`: once its log matches ours it is told to campaign at once.
    /// Proposals are refused meanwhile; the transfer is abandoned after an election timeout.
    public mutating func transferLeadership(to target: NodeID) throws(ProposalError) {
        guard role == .leader else { throw .notLeader(leader: leader) }
        guard target != id, configuration.contains(target) else { throw .invalidTransferTarget }
        leadTransferee = target
        electionElapsed = 0
        if progress[target]?.match == log.lastIndex {
            send(to: target, .timeoutNow)
        } else {
            sendAppend(to: target, sendEmpty: true)
        }
    }

    mutating func appendAsLeader(kind: Entry.Kind, data: [UInt8], expectedTerm: Term?) throws(ProposalError) -> LogIndex {
        precondition(!readyOutstanding, "advance() the last Ready before new input")
        guard role == .leader else { throw .notLeader(leader: leader) }
        if let expectedTerm, expectedTerm != term { throw .staleTerm(current: term) }
        guard leadTransferee == nil else { throw .transferring }
        guard data.count <= config.entryBytesMax else { throw .entryTooLarge(bytes: data.count, limit: config.entryBytesMax) }
        let entry = Entry(term: term, index: log.lastIndex + 1, kind: kind, data: data)
        guard uncommittedBytes + entry.sizeBytes <= config.uncommittedBytesMax else { throw .tooManyUncommitted }
        uncommittedBytes += entry.sizeBytes
        log.append(entry)
        refreshConfiguration()
        broadcastAppend(sendEmpty: advanceCommit())
        return entry.index
    }
}
