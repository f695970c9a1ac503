/// The core's settings. Time is counted in ticks: the driver decides how long a tick is.
public struct RaftConfig: Sendable {
    /// A follower that hears nothing from a leader for a random number of ticks in
    /// [electionTicks, 2 × electionTicks) campaigns.
    public var electionTicks = 10
    /// A leader sends heartbeats every this many ticks (must be well below electionTicks).
    public var heartbeatTicks = 1
    /// Campaign first in a pre-vote round that changes no term, so a node that was cut off
    /// cannot force a new election when it returns.
    public var preVote = true
    /// A leader that has not heard from a quorum within an election timeout steps down, and
    /// a node that heard from its leader within one ignores votes (the leader lease).
    public var checkQuorum = true
    /// At most this many entries, and about this many bytes, per append message.
    public var entriesPerAppendMax = 64
    public var appendBytesMax = 1 << 20
    /// A follower being replicated to optimistically has at most this many entries unacknowledged.
    public var inflightEntriesMax = 1024
    /// The largest entry a proposal may carry.
    public var entryBytesMax = 1 << 20
    /// A leader refuses proposals while this many bytes are appended but not committed.
    public var uncommittedBytesMax = 16 << 20
    /// At most this many committed entries are handed to the driver per `Ready`.
    public var committedEntriesPerReadyMax = 4096

    public init() {}

    func validate() {
        precondition(electionTicks > 0 && heartbeatTicks > 0, "ticks are positive")
        precondition(heartbeatTicks < electionTicks, "heartbeats must come more often than elections")
        precondition(entriesPerAppendMax > 0 && inflightEntriesMax >= entriesPerAppendMax, "replication windows are positive")
        precondition(entryBytesMax <= uncommittedBytesMax, "one entry must fit the uncommitted limit")
    }
}

/// Why a proposal or request to the leader was refused.
public enum ProposalError: Error, Equatable, Sendable {
    /// This node is not the leader; `leader` is the one it knows of.
    case notLeader(leader: NodeID?)
    /// The proposer acted under an older term (controller epoch): it is fenced.
    case staleTerm(current: Term)
    /// A leader transfer is under way.
    case transferring
    /// A configuration change is already in flight, or this leader has not yet committed an
    /// entry of its own term.
    case configurationChangePending
    /// The change would add a voter already present, remove one absent, or leave no voter.
    case invalidConfigurationChange
    /// Leader transfer to itself or to a node that is not a voter.
    case invalidTransferTarget
    case entryTooLarge(bytes: Int, limit: Int)
    /// Too many bytes are appended but not yet committed: back off and retry.
    case tooManyUncommitted
}

import BrookCore
