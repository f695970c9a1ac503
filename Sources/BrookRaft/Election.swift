import BrookCore

extension Raft {
    mutating func tickElection() {
        electionElapsed += 1
        guard canCampaign, electionElapsed >= randomizedElectionTicks else { return }
        campaign(transfer: false)
    }

    /// Starts a pre-vote round (when enabled and not a transfer) or a real election.
    mutating func campaign(transfer: Bool) {
        precondition(canCampaign, "only a voter campaigns")
        if config.preVote && !transfer {
            role = .preCandidate
            leader = nil
            votes = [id: true]
            resetElectionTimer()
            if tally() == .won { startElection(transfer: false); return }
            for voter in configuration.voters where voter != id {
                send(to: voter, .preVote(lastIndex: log.lastIndex, lastTerm: log.lastTerm), term: term.next)
            }
        } else {
            startElection(transfer: transfer)
        }
    }

    mutating func startElection(transfer: Bool) {
        term = term.next
        votedFor = id
        role = .candidate
        leader = nil
        votes = [id: true]
        leadTransferee = nil
        resetElectionTimer()
        if tally() == .won { becomeLeader(); return }
        for voter in configuration.voters where voter != id {
            send(to: voter, .vote(lastIndex: log.lastIndex, lastTerm: log.lastTerm, transfer: transfer))
        }
    }

    enum ElectionOutcome { case won, lost, pending }

    func tally() -> ElectionOutcome {
        let granted = configuration.voters.filter { votes[$0] == true }.count
        let rejected = configuration.voters.filter { votes[$0] == false }.count
        if granted >= configuration.quorum { return .won }
        if rejected > configuration.voters.count - configuration.quorum { return .lost }
        return .pending
    }

    /// Grants a pre-vote to a node whose log is at least as up to date as ours, unless our
    /// leader is alive. Nothing changes here: a pre-vote is only a question.
    mutating func handlePreVote(_ m: Message, lastIndex: LogIndex, lastTerm: Term) {
        if m.term > term && inLease { return }
        let granted = m.term > term && log.isUpToDate(lastIndex: lastIndex, lastTerm: lastTerm)
        send(to: m.from, .preVoteResponse(granted: granted), term: granted ? m.term : term)
    }

    /// Grants one vote per term, to a candidate whose log is at least as up to date (§5.4.1).
    mutating func handleVote(_ m: Message, lastIndex: LogIndex, lastTerm: Term) {
        precondition(m.term == term, "a vote request is seen at the voter's term")
        let free = votedFor == m.from || (votedFor == nil && leader == nil)
        let granted = free && log.isUpToDate(lastIndex: lastIndex, lastTerm: lastTerm)
        if granted {
            votedFor = m.from
            electionElapsed = 0
        }
        send(to: m.from, .voteResponse(granted: granted))
    }

    mutating func stepCandidate(_ m: Message) {
        switch m.body {
        case .append, .installSnapshot:
            // A leader exists in our term (or the term we were pre-campaigning in is taken).
            becomeFollower(term: m.term, leader: m.from)
            stepFollower(m)
        case .preVoteResponse(let granted) where role == .preCandidate:
            votes[m.from] = granted
            switch tally() {
            case .won: startElection(transfer: false)
            case .lost: becomeFollower(term: term, leader: nil)
            case .pending: break
            }
        case .voteResponse(let granted) where role == .candidate:
            votes[m.from] = granted
            switch tally() {
            case .won: becomeLeader()
            case .lost: becomeFollower(term: term, leader: nil)
            case .pending: break
            }
        default:
            break
        }
    }

    mutating func becomeFollower(term newTerm: Term, leader newLeader: NodeID?) {
        precondition(newTerm >= term, "terms never go back")
        if newTerm > term {
            term = newTerm
            votedFor = nil
        }
        role = .follower
        leader = newLeader
        votes = [:]
        progress = [:]
        leadTransferee = nil
        resetElectionTimer()
    }

    mutating func becomeLeader() {
        precondition(role == .candidate, "only a candidate becomes leader")
        role = .leader
        leader = id
        votes = [:]
        heartbeatElapsed = 0
        electionElapsed = 0
        uncommittedBytes = 0
        progress = [:]
        syncProgressWithConfiguration()
        // No configuration change until this leader commits an entry of its term (the bug
        // Ongaro found in single-server changes), and a no-op commits one at once.
        pendingConfigurationIndex = log.lastIndex + 1
        log.append(Entry(term: term, index: log.lastIndex + 1, kind: .noop))
        advanceCommit()
        broadcastAppend(sendEmpty: true)
    }
}
