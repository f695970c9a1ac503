import BrookCore

extension Raft {
    mutating func stepFollower(_ m: Message) {
        switch m.body {
        case .append(let prevIndex, let prevTerm, let entries, let leaderCommit):
            heardFromLeader(m.from)
            handleAppend(from: m.from, prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, leaderCommit: leaderCommit)
        case .installSnapshot(let snapshot):
            heardFromLeader(m.from)
            handleSnapshot(from: m.from, snapshot)
        case .timeoutNow:
            // Our leader hands over: campaign now, skipping the pre-vote and the voters' lease.
            if canCampaign { startElection(transfer: true) }
        default:
            break
        }
    }

    mutating func heardFromLeader(_ node: NodeID) {
        electionElapsed = 0
        leader = node
    }

    mutating func handleAppend(from node: NodeID, prevIndex: LogIndex, prevTerm: Term, entries: [Entry], leaderCommit: LogIndex) {
        if prevIndex < commit {
            // Everything up to our commit is in the leader's log: continue from there.
            send(to: node, .appendResponse(success: true, index: commit, hint: .zero))
            return
        }
        guard log.matches(index: prevIndex, term: prevTerm) else {
            send(to: node, .appendResponse(success: false, index: prevIndex, hint: conflictHint(prevIndex)))
            return
        }
        let lastNew = prevIndex + Int64(entries.count)
        for (i, entry) in entries.enumerated() {
            precondition(entry.index == prevIndex + Int64(i + 1), "an append carries contiguous entries")
            if let existing = log.term(at: entry.index) {
                if existing == entry.term { continue }
                precondition(entry.index > commit, "a leader asked to overwrite committed entry \(entry.index)")
                log.truncate(from: entry.index)
            }
            log.append(entry)
        }
        refreshConfiguration()
        commit(to: min(leaderCommit, lastNew))
        send(to: node, .appendResponse(success: true, index: lastNew, hint: .zero))
    }

    /// Where the leader should try next after a rejected append at `prevIndex`: past our end if
    /// we are short, else the first index of the conflicting term (one round trip per term).
    func conflictHint(_ prevIndex: LogIndex) -> LogIndex {
        guard prevIndex <= log.lastIndex, let conflictTerm = log.term(at: prevIndex) else { return log.lastIndex + 1 }
        var index = prevIndex
        while index - 1 > commit, log.term(at: index - 1) == conflictTerm { index = index - 1 }
        return index
    }

    mutating func handleSnapshot(from node: NodeID, _ snapshot: Snapshot) {
        if snapshot.index <= commit {
            send(to: node, .appendResponse(success: true, index: commit, hint: .zero))
            return
        }
        if log.matches(index: snapshot.index, term: snapshot.term) {
            // We hold the snapshot's last entry: it is committed, keep our log.
            commit(to: snapshot.index)
        } else {
            log.restore(snapshot)
            commit = snapshot.index
            receivedSnapshot = snapshot
            refreshConfiguration()
        }
        send(to: node, .appendResponse(success: true, index: snapshot.index, hint: .zero))
    }
}
