import BrookCore
import BrookRaft

/// A broken safety property, described.
struct Violation: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// The safety properties of the Raft paper (§5.2-5.4), checked against everything any node
/// ever committed, applied or led.
struct Checker {
    /// Election Safety: the one leader of each term seen so far.
    private var leaderOfTerm: [Term: NodeID] = [:]
    /// Every entry some node applied: no node may ever apply a different one at that index.
    private var committed: [LogIndex: Entry] = [:]
    /// The state machine digest after applying each index.
    private var digestAfter: [LogIndex: UInt64] = [:]
    private(set) var highestCommitted = LogIndex.zero

    func isCommitted(index: LogIndex, term: Term) -> Bool { committed[index]?.term == term }

    /// Election Safety and Leader Completeness: a leader is alone in its term and its log holds
    /// every entry committed before it.
    mutating func checkLeader(_ raft: Raft) -> Result<Void, Violation> {
        if let other = leaderOfTerm[raft.term] {
            guard other == raft.id else { return .failure(Violation("election safety: nodes \(other) and \(raft.id) both lead term \(raft.term)")) }
            return .success(())
        }
        leaderOfTerm[raft.term] = raft.id
        guard raft.lastIndex >= highestCommitted else {
            return .failure(Violation("leader completeness: node \(raft.id) leads term \(raft.term) with log ending at \(raft.lastIndex), below committed \(highestCommitted)"))
        }
        var index = raft.snapshotIndex + 1
        while index <= highestCommitted {
            if let entry = committed[index], raft.term(at: index) != entry.term {
                let held = raft.term(at: index).map { "\($0)" } ?? "none"
                return .failure(Violation("leader completeness: node \(raft.id) leads term \(raft.term) but holds term \(held) at committed index \(index) (term \(entry.term))"))
            }
            index = index + 1
        }
        return .success(())
    }

    /// State Machine Safety: every node applies the same entry at each index, in order.
    mutating func apply(_ entry: Entry, to digest: UInt64, node: NodeID) -> Result<UInt64, Violation> {
        if let known = committed[entry.index] {
            guard known == entry else {
                return .failure(Violation("state machine safety: node \(node) applied \(entry.kind) term \(entry.term) at \(entry.index), another applied \(known.kind) term \(known.term)"))
            }
        } else {
            committed[entry.index] = entry
            highestCommitted = max(highestCommitted, entry.index)
        }
        let next = EntryDigest.chain(digest, entry)
        if let known = digestAfter[entry.index] {
            guard known == next else { return .failure(Violation("state machine safety: node \(node) reached a different state after applying \(entry.index)")) }
        } else {
            digestAfter[entry.index] = next
        }
        return .success(next)
    }

    /// A node restored from a snapshot must hold the state every other node had at that index.
    func checkRestored(_ snapshot: Snapshot, node: NodeID) -> Result<Void, Violation> {
        let digest = EntryDigest.digest(fromSnapshot: snapshot.data)
        if let known = digestAfter[snapshot.index], known != digest {
            return .failure(Violation("state machine safety: node \(node) installed a snapshot at \(snapshot.index) whose state differs from the applied one"))
        }
        return .success(())
    }
}
