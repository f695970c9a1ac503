/// Everything the driver must do after the core took some input, in this order:
/// 1. if `snapshot` is set, make it the durable snapshot and delete every durable entry;
/// 2. write `hardState` if set, and `entries`, replacing every durable entry from the first
///    one's index on; then fsync all of it. (RaftStore writes the hard state first, so a term is
///    on disk before any entry of it, and lowers a commit index past the log's end at load.)
/// 3. send `messages` (never before the fsync: that is what makes a vote or an acknowledgement
///    count);
/// 4. restore the state machine from `snapshot` if set, then apply `committedEntries`;
/// 5. call `advance(_:)` with this value before giving the core any new input.
public struct Ready: Sendable {
    public var hardState: HardState?
    public var snapshot: Snapshot?
    public var entries: [Entry]
    public var messages: [Message]
    public var committedEntries: [Entry]

    public init(hardState: HardState? = nil, snapshot: Snapshot? = nil, entries: [Entry] = [], messages: [Message] = [],
                committedEntries: [Entry] = []) {
        self.hardState = hardState
        self.snapshot = snapshot
        self.entries = entries
        self.messages = messages
        self.committedEntries = committedEntries
    }

    public var isEmpty: Bool {
        hardState == nil && snapshot == nil && entries.isEmpty && messages.isEmpty && committedEntries.isEmpty
    }
    /// True when something must be fsynced before the messages go out.
    public var needsSync: Bool { hardState != nil || snapshot != nil || !entries.isEmpty }
}

/// What the core looks like from outside, for logs, tools and checks.
public struct RaftStatus: Equatable, Sendable {
    public var id: NodeID
    public var role: Role
    public var term: Term
    public var leader: NodeID?
    public var commit: LogIndex
    public var applied: LogIndex
    public var lastIndex: LogIndex
    public var configuration: Configuration
}

import BrookCore
