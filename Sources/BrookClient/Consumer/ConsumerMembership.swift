import BrookCore
import BrookProtocol

/// A consumer's membership of a KIP-848 group (the `consumer` group protocol), as a pure core:
/// what the next ConsumerGroupHeartbeat says, when it goes, and what each answer asks the
/// consumer to do (partitions to give up, partitions to take). No I/O, no clock: times are
/// given in milliseconds.
///
/// The broker computes the assignment. The member's part: heartbeat every interval the broker
/// gives; when an answer carries an assignment, give up the partitions not in it (after
/// committing them), take the new ones, and report what it owns in the next heartbeat, which
/// goes at once. Heartbeats go on while a reconciliation is carried out (a revocation callback
/// may take longer than the session timeout); an assignment answered meanwhile is kept and
/// reconciled toward once the one under way is done (as the Java client does). A member fenced (UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH) has lost its
/// partitions without committing them and joins again at epoch 0.
struct ConsumerMembership {
    enum Phase: Equatable {
        /// Not subscribed.
        case idle
        /// Subscribed: joining (epoch 0) or a member.
        case active
        /// Subscribed, but out of the group: the application did not poll within
        /// `max.poll.interval.ms`; it joins again at its next poll (`rejoin`).
        case stale
        /// Left the group (a closed consumer).
        case left
    }

    struct Heartbeat: Equatable {
        var memberID: String
        var memberEpoch: Int32
        /// nil: unchanged since the last heartbeat the broker answered.
        var subscription: [String]?
        /// The partitions owned, when they changed (or at a join).
        var owned: Set<TopicPartition>?
    }

    /// What an answer asks of the consumer.
    struct Reconciliation: Equatable {
        var revoke: Set<TopicPartition> = []
        var assign: Set<TopicPartition> = []
        var isEmpty: Bool { revoke.isEmpty && assign.isEmpty }
    }

    enum Failure: Equatable {
        /// Fenced: the partitions listed are lost (not committed); the member joins again.
        case fenced(lost: Set<TopicPartition>)
        /// The coordinator moved or is loading: find it and send again after a backoff.
        case coordinator
        /// The group cannot be used as asked (authorization, an unsupported assignor, a static
        /// member still in the group, the group full, a broker without KIP-848): stop.
        case fatal
    }

    private(set) var phase = Phase.idle
    /// Chosen by the member (KIP-1082), kept for its life, through fencing and rejoining.
    private(set) var memberID: String
    private(set) var memberEpoch: Int32 = 0
    private(set) var subscription: [String] = []
    private(set) var owned: Set<TopicPartition> = []
    private(set) var heartbeatIntervalMs: Int64 = 3000
    /// When the last heartbeat was answered (nil: none yet in this join).
    private(set) var lastAnsweredMs: Int64?
    private(set) var inFlight = false
    /// The number of the reconciliation being carried out (nil: none); heartbeats go on. A
    /// reconciliation abandoned (the member fenced, stale or gone) is not this one any more:
    /// its end is not taken.
    private(set) var reconciling: Int?
    private var reconciliations = 0
    /// The latest assignment answered while a reconciliation was under way: the next one goes
    /// toward it.
    private var pendingAssignment: Set<TopicPartition>?
    /// The next heartbeat goes at once (a join, a changed subscription, partitions reported).
    private(set) var due = false
    /// Each change of the subscription or of the partitions owned counts one; a heartbeat
    /// carries them until an answer acknowledges the change it carried (a change made while a
    /// heartbeat was in flight is not acknowledged by its answer).
    private var subscriptionVersion = 0
    private var subscriptionAcknowledged = -1
    private var ownedVersion = 0
    private var ownedAcknowledged = -1
    private var sentVersions: (subscription: Int?, owned: Int?) = (nil, nil)

    init(memberID: String) {
        precondition(!memberID.isEmpty, "a member id")
        self.memberID = memberID
    }

    /// Subscribes to exactly `topics` (sorted, without repeats); a change goes in the next
    /// heartbeat, at once.
    mutating func subscribe(_ topics: [String]) {
        precondition(phase != .left, "a member that left does not subscribe again")
        let sorted = Array(Set(topics)).sorted()
        if phase == .idle { phase = .active }
        guard sorted != subscription || subscriptionAcknowledged != subscriptionVersion else { return }
        subscription = sorted
        subscriptionVersion += 1
        // (A stale member carries it when it joins again.)
        if phase == .active { due = true }
    }

    /// When the next heartbeat should go (nil: none now: idle, stale, left, or one in flight).
    func nextHeartbeatAtMs() -> Int64? {
        guard phase == .active, !inFlight else { return nil }
        guard !due, let last = lastAnsweredMs else { return Int64.min }
        return last + heartbeatIntervalMs
    }

    /// The heartbeat to send now.
    mutating func send() -> Heartbeat {
        precondition(phase == .active && !inFlight, "a heartbeat only from an active member with none in flight")
        inFlight = true
        due = false
        let joining = memberEpoch == 0
        let withSubscription = joining || subscriptionAcknowledged != subscriptionVersion
        let withOwned = joining || ownedAcknowledged != ownedVersion
        sentVersions = (withSubscription ? subscriptionVersion : nil, withOwned ? ownedVersion : nil)
        return Heartbeat(memberID: memberID, memberEpoch: memberEpoch,
                         subscription: withSubscription ? subscription : nil, owned: withOwned ? owned : nil)
    }

    /// The broker answered without an error: its member id and epoch, the interval, and the
    /// assignment when it sent one (already named: the consumer resolves topic ids). Returns
    /// the reconciliation to carry out (`reconciling` is its number), or an empty one: nothing
    /// to change, or a reconciliation is under way and the assignment waits for its end.
    mutating func answered(memberID: String?, epoch: Int32, intervalMs: Int32, assignment: Set<TopicPartition>?,
                           nowMs: Int64) -> Reconciliation {
        precondition(inFlight, "an answer to a heartbeat sent")
        inFlight = false
        lastAnsweredMs = nowMs
        if let version = sentVersions.subscription { subscriptionAcknowledged = version }
        if let version = sentVersions.owned { ownedAcknowledged = version }
        // Something changed while the heartbeat was in flight: the next one carries it, at once.
        if subscriptionAcknowledged != subscriptionVersion || ownedAcknowledged != ownedVersion { due = true }
        if let memberID, !memberID.isEmpty { self.memberID = memberID }
        memberEpoch = epoch
        if intervalMs > 0 { heartbeatIntervalMs = Int64(intervalMs) }
        guard phase == .active, let assignment else { return Reconciliation() }
        guard reconciling == nil else {
            pendingAssignment = assignment
            return Reconciliation()
        }
        return begin(toward: assignment)
    }

    /// A reconciliation from what is owned toward `assignment` (numbered when not empty).
    private mutating func begin(toward assignment: Set<TopicPartition>) -> Reconciliation {
        precondition(reconciling == nil, "one reconciliation at a time")
        let change = Reconciliation(revoke: owned.subtracting(assignment), assign: assignment.subtracting(owned))
        if !change.isEmpty {
            reconciliations += 1
            reconciling = reconciliations
        }
        return change
    }

    /// The consumer carried out reconciliation `number` (the current one): it now owns `owned`,
    /// which the next heartbeat reports, at once. Returns the next reconciliation, toward an
    /// assignment answered meanwhile (empty: none).
    mutating func reconciled(_ number: Int, owning owned: Set<TopicPartition>) -> Reconciliation {
        precondition(phase == .active && reconciling == number, "the reconciliation under way")
        reconciling = nil
        self.owned = owned
        ownedVersion += 1
        due = true
        guard let assignment = pendingAssignment else { return Reconciliation() }
        pendingAssignment = nil
        return begin(toward: assignment)
    }

    /// A reconciliation under way is given up (the member fenced, stale or gone): what it did
    /// counts for nothing, its end is not taken.
    private mutating func abandonReconciliation() {
        reconciling = nil
        pendingAssignment = nil
    }

    /// The heartbeat failed with `code` (`.networkException` for a lost connection).
    mutating func failed(_ code: ErrorCode) -> Failure {
        precondition(inFlight, "a failure of a heartbeat sent")
        inFlight = false
        switch code {
        case .unknownMemberID, .fencedMemberEpoch:
            abandonReconciliation()
            let lost = owned
            owned = []
            memberEpoch = 0
            ownedVersion += 1
            lastAnsweredMs = nil
            due = true
            return .fenced(lost: lost)
        case .coordinatorNotAvailable, .notCoordinator, .coordinatorLoadInProgress, .networkException, .requestTimedOut,
             .unknownServerError:
            // The broker may have taken the heartbeat and its answer been lost: the next one
            // says everything again (the subscription and the partitions owned).
            subscriptionAcknowledged = -1
            ownedAcknowledged = -1
            due = true
            return .coordinator
        default:
            abandonReconciliation()
            phase = .left
            return .fatal
        }
    }

    /// The application stopped polling for `max.poll.interval.ms`: the member leaves the group,
    /// as the Java client's does, so the group gives its partitions to members that poll. It
    /// stays subscribed and joins again at the next poll. Returns the leave heartbeat (as
    /// `leave`'s), and the partitions owned, now lost (not committed: the application may be
    /// in the middle of them). A reconciliation under way is given up.
    mutating func leaveStale(staticMember: Bool) -> (heartbeat: Heartbeat?, lost: Set<TopicPartition>) {
        precondition(phase == .active && !inFlight, "a stale member is an active one between heartbeats")
        abandonReconciliation()
        let beat = lastAnsweredMs != nil || memberEpoch > 0
            ? Heartbeat(memberID: memberID, memberEpoch: staticMember ? -2 : -1, subscription: nil, owned: nil) : nil
        let lost = owned
        phase = .stale
        owned = []
        ownedVersion += 1
        memberEpoch = 0
        lastAnsweredMs = nil
        due = false
        return (beat, lost)
    }

    /// A stale member polled again: it joins at epoch 0, at once, saying everything.
    mutating func rejoin() {
        precondition(phase == .stale, "only a stale member joins again")
        phase = .active
        subscriptionAcknowledged = -1
        ownedAcknowledged = -1
        due = true
    }

    /// Leaves the group: the heartbeat to send (epoch -1, or -2 for a static member, which
    /// keeps its partitions for its session), or nil when it never sent one. A member whose
    /// first heartbeat is still unanswered leaves too: the broker may have taken it in (its
    /// member id is its own, KIP-1082), and the leave goes on the same connection, after it.
    mutating func leave(staticMember: Bool) -> Heartbeat? {
        defer {
            abandonReconciliation()
            phase = .left
            owned = []
        }
        guard phase == .active, inFlight || lastAnsweredMs != nil || memberEpoch > 0 else { return nil }
        return Heartbeat(memberID: memberID, memberEpoch: staticMember ? -2 : -1, subscription: nil, owned: nil)
    }
}
