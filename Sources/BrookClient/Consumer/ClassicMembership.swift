import BrookCore
import BrookProtocol

/// A consumer's membership of a classic group (JoinGroup, SyncGroup, Heartbeat, LeaveGroup;
/// the eager and the cooperative rebalance protocols), as a pure core: which request goes next
/// and what each answer asks of the consumer. No I/O, no clock: times are given in milliseconds.
///
/// Eager: before each join the member gives up every partition it owns (committing them
/// first), so no partition is ever owned by two members. Cooperative (KIP-429, when every
/// assignor the member names is cooperative, as the Java client decides): the member keeps its
/// partitions through the rebalance and says which it owns in its join; the leader gives no
/// member a partition another still owns; a member whose assignment lacks some it owns gives
/// those up and joins again. The coordinator picks a leader among
/// the joined members; the leader runs the assignor over everyone's subscription and hands the
/// assignment out with its SyncGroup; the others get theirs from SyncGroup. Then heartbeats
/// every `heartbeat.interval.ms`, until one says REBALANCE_IN_PROGRESS (join again) or the
/// member is fenced (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID: its partitions
/// are lost, not committed).
struct ClassicMembership {
    enum Phase: Equatable {
        case idle
        case active
        /// Out of the group for not polling within `max.poll.interval.ms`; joins again at
        /// the next poll (`rejoin`).
        case stale
        case left
    }

    /// Where the member is in a rebalance.
    enum Stage: Equatable {
        /// A join is to be sent (after the partitions owned were given up).
        case toJoin
        /// Joined: a SyncGroup is to be sent (by the leader with the members' subscriptions).
        case toSync(leader: Bool)
        /// Synced: heartbeats.
        case stable
    }

    enum Request: Equatable {
        case join(memberID: String)
        /// The leader assigns (``assignments(partitions:)``) before it sends.
        case sync(generation: Int32, memberID: String, leader: Bool)
        case heartbeat(generation: Int32, memberID: String)
    }

    enum Failure: Equatable {
        /// Fenced: the partitions listed are lost (not committed); the member joins again.
        case fenced(lost: Set<TopicPartition>)
        /// Join again (a rebalance began, or the join needs the member id it was given).
        case rejoin
        /// The coordinator moved or is loading, or the answer was lost: find it, send again.
        case coordinator
        /// The group cannot be used as asked: stop.
        case fatal
    }

    let assignors: [ClassicAssignor]
    /// The cooperative protocol (every assignor named is cooperative).
    let cooperative: Bool
    private(set) var phase = Phase.idle
    private(set) var stage = Stage.toJoin
    /// Given by the coordinator at the first join, kept until the member is fenced.
    private(set) var memberID = ""
    private(set) var generation: Int32 = -1
    private(set) var subscription: [String] = []
    private(set) var owned: Set<TopicPartition> = []
    /// Cooperative: owned partitions the last assignment left out, to give up before joining again.
    private(set) var leaving: Set<TopicPartition> = []
    /// The last assignment and the generation it came in (the sticky assignors' user data).
    private(set) var lastAssignment: Set<TopicPartition> = []
    private(set) var lastAssignedGeneration: Int32 = -1
    private(set) var inFlight = false
    private(set) var lastHeartbeatMs: Int64?
    let heartbeatIntervalMs: Int64
    /// The leader's view of the join: each member's subscription, and the assignor chosen.
    private(set) var members: [String: ClassicAssignor.Member] = [:]
    /// The leader's view of what each member owns now (cooperative members say).
    private(set) var membersOwning: [String: Set<TopicPartition>] = [:]
    private(set) var assignor: ClassicAssignor?
    /// Each change of the subscription counts one; the group has the one its last join carried
    /// (a change made while a join or sync was in flight is carried by the next join).
    private var subscriptionVersion = 0
    private var sentVersion = 0
    private var joinedVersion = -1

    /// This member's `client.rack`, in its subscription (for a rack-aware leader, KIP-881).
    let rack: String?

    init(assignors: [ClassicAssignor], heartbeatIntervalMs: Int64, rack: String? = nil) {
        precondition(!assignors.isEmpty, "at least one assignor")
        precondition(heartbeatIntervalMs > 0, "a heartbeat interval")
        self.rack = rack
        self.assignors = assignors
        self.cooperative = assignors.allSatisfy(\.cooperative)
        self.heartbeatIntervalMs = heartbeatIntervalMs
    }

    /// The partitions to give up before the next request. Eager: all of them, when a join is
    /// next. Cooperative: those the last assignment left out, and those of topics no longer
    /// subscribed.
    var toRevoke: Set<TopicPartition> {
        guard phase == .active, !inFlight else { return [] }
        guard cooperative else { return stage == .toJoin ? owned : [] }
        let subscribed = Set(subscription)
        return leaving.union(owned.filter { !subscribed.contains($0.topic) })
    }

    mutating func subscribe(_ topics: [String]) {
        precondition(phase != .left, "a member that left does not subscribe again")
        let sorted = Array(Set(topics)).sorted()
        if phase == .idle { phase = .active }
        guard sorted != subscription else { return }
        subscription = sorted
        subscriptionVersion += 1
        // A new subscription: a rebalance (the leader assigns from subscriptions), once what is
        // in flight is answered.
        if !inFlight { settle() }
    }

    /// A stable member whose group has an older subscription joins again.
    private mutating func settle() {
        if stage == .stable && joinedVersion != subscriptionVersion { stage = .toJoin }
    }

    /// The partitions of `toRevoke` were given up (committed first); the join can go.
    mutating func revoked() {
        precondition(cooperative || stage == .toJoin, "eager: partitions are given up before a join")
        let given = toRevoke
        owned.subtract(given)
        leaving.subtract(given)
    }

    /// What the join says for each assignor named, preferred first: the subscription with the
    /// partitions owned and their generation, and for the sticky assignors the last assignment
    /// (as the Java client and librdkafka write it).
    func joinProtocols() -> [(name: String, metadata: [UInt8])] {
        let owning = Dictionary(grouping: owned, by: \.topic).mapValues { $0.map(\.partition).sorted() }
        return assignors.map { assignor in
            var userData: [UInt8]?
            if assignor == .sticky || assignor == .cooperativeSticky, lastAssignedGeneration >= 0 {
                let previous = Dictionary(grouping: lastAssignment, by: \.topic).mapValues { $0.map(\.partition).sorted() }
                userData = ConsumerProtocol.encodeStickyUserData(previous: previous, generation: lastAssignedGeneration)
            }
            let subscription = ConsumerProtocol.Subscription(topics: subscription, userData: userData, owned: owning, generation: generation,
                                                             rack: rack)
            return (assignor.rawValue, ConsumerProtocol.encode(subscription))
        }
    }

    /// The request to send at `nowMs`, or when the next one is due (nil: none now).
    func next(nowMs: Int64) -> (request: Request?, atMs: Int64?) {
        guard phase == .active, !inFlight, toRevoke.isEmpty else { return (nil, nil) }
        switch stage {
        case .toJoin: return (.join(memberID: memberID), nil)
        case .toSync(let leader):
            return (.sync(generation: generation, memberID: memberID, leader: leader), nil)
        case .stable:
            let due = (lastHeartbeatMs ?? Int64.min / 2) + heartbeatIntervalMs
            guard nowMs >= due else { return (nil, due) }
            return (.heartbeat(generation: generation, memberID: memberID), nil)
        }
    }

    /// The topics the leader's assignment covers (every member's).
    var topicsToAssign: [String] { Array(Set(members.values.flatMap(\.topics))).sorted() }

    /// The leader's assignment of `partitions` (each topic's count) to the joined members, by
    /// the assignor the coordinator chose (`racks`: each partition's replicas' racks, for the
    /// rack-aware range assignor); the counts are kept to notice a change.
    mutating func assignments(partitions: [String: Int32], racks: [TopicPartition: Set<String>]) -> [String: [TopicPartition]] {
        assignedCounts = partitions
        let chosen = assignor ?? assignors[0]
        let assigned = chosen.assign(members: members, partitions: partitions, racks: racks)
        // By the assignor the group chose, as the Java client's: an eager leader (one naming an
        // eager assignor too) of cooperative members holds back what they still own as well.
        return chosen.cooperative ? ClassicAssignor.withoutMoving(assigned, owned: membersOwning) : assigned
    }

    /// The partition counts the leader's assignment was made from (nil: not the leader).
    private(set) var assignedCounts: [String: Int32]?

    /// The metadata now: a stable leader whose assignment was made from other partition counts
    /// (a topic grown, made or deleted) joins again, as the Java client's leader does.
    mutating func metadataChanged(_ counts: [String: Int32]) {
        guard stage == .stable, let assigned = assignedCounts, counts != assigned else { return }
        stage = .toJoin
    }

    mutating func sent() {
        precondition(!inFlight, "one request at a time")
        inFlight = true
        if stage == .toJoin { sentVersion = subscriptionVersion }
    }

    /// JoinGroup answered without error.
    mutating func joined(memberID: String, generation: Int32, leader: String, protocolName: String?,
                         members: [(id: String, metadata: [UInt8])]) {
        precondition(inFlight && stage == .toJoin, "an answer to a join")
        inFlight = false
        self.memberID = memberID
        self.generation = generation
        joinedVersion = sentVersion
        let isLeader = leader == memberID
        assignedCounts = nil
        assignor = protocolName.flatMap(ClassicAssignor.init(rawValue:))
        self.members = [:]
        membersOwning = [:]
        if isLeader {
            for (id, metadata) in members where self.members[id] == nil {
                let said = ConsumerProtocol.subscription(metadata) ?? .init(topics: [])
                let sticky = said.userData.flatMap(ConsumerProtocol.stickyUserData)
                let owning = Self.partitions(said.owned)
                // The partitions it owns now; else (an eager sticky member) those it had.
                let had = owning.isEmpty ? Self.partitions(sticky?.previous ?? [:]) : owning
                self.members[id] = .init(topics: said.topics, owned: had, generation: said.generation >= 0 ? said.generation : sticky?.generation ?? -1,
                                         rack: said.rack.flatMap { $0.isEmpty ? nil : $0 })
                membersOwning[id] = owning
            }
        }
        stage = .toSync(leader: isLeader)
    }

    private static func partitions(_ byTopic: [String: [Int32]]) -> Set<TopicPartition> {
        Set(byTopic.flatMap { topic, list in list.map { TopicPartition(topic, $0) } })
    }

    /// SyncGroup answered with this member's assignment: returns the partitions it did not
    /// own (to take up). When the subscription changed meanwhile (a join is next), they are
    /// owned all the same and given up as that join needs. Cooperative: owned partitions the
    /// assignment leaves out are given up (``toRevoke``), then the member joins again.
    @discardableResult
    mutating func synced(_ assignment: Set<TopicPartition>, nowMs: Int64) -> Set<TopicPartition> {
        precondition(inFlight, "an answer to a sync")
        inFlight = false
        let added = assignment.subtracting(owned)
        if cooperative { leaving = owned.subtracting(assignment) }
        owned.formUnion(assignment)
        lastAssignment = assignment
        lastAssignedGeneration = generation
        guard case .toSync = stage else { return added }
        stage = .stable
        lastHeartbeatMs = nowMs
        if !leaving.isEmpty { stage = .toJoin }
        settle()
        return added
    }

    mutating func heartbeatAnswered(nowMs: Int64) {
        precondition(inFlight, "an answer to a heartbeat")
        inFlight = false
        lastHeartbeatMs = nowMs
        settle()
    }

    /// A request failed with `code` (`.networkException` for a lost connection); `memberID` is
    /// the one a MEMBER_ID_REQUIRED join answer gives.
    mutating func failed(_ code: ErrorCode, memberID given: String? = nil) -> Failure {
        precondition(inFlight, "a failure of a request sent")
        inFlight = false
        switch code {
        case .memberIDRequired:
            if let given, !given.isEmpty { memberID = given }
            stage = .toJoin
            return .rejoin
        case .rebalanceInProgress:
            stage = .toJoin
            return .rejoin
        case .unknownMemberID, .illegalGeneration, .fencedInstanceID:
            let lost = owned
            owned = []
            leaving = []
            lastAssignment = []
            lastAssignedGeneration = -1
            if code == .unknownMemberID { memberID = "" }
            generation = -1
            stage = .toJoin
            // Another consumer has this group.instance.id: this one stops.
            if code == .fencedInstanceID {
                phase = .left
                return .fatal
            }
            return .fenced(lost: lost)
        case .coordinatorNotAvailable, .notCoordinator, .coordinatorLoadInProgress, .networkException, .requestTimedOut,
             .unknownServerError:
            // A lost join or sync: start the rebalance again (the coordinator times out the rest).
            if stage != .stable { stage = .toJoin }
            return .coordinator
        default:
            phase = .left
            return .fatal
        }
    }

    /// The application stopped polling for `max.poll.interval.ms`: the member leaves the group
    /// (as the Java client's), stays subscribed and joins again, as a new member, at the next
    /// poll. Returns the member id to send in LeaveGroup (nil when it never joined) and the
    /// partitions owned, now lost (not committed).
    mutating func leaveStale() -> (memberID: String?, lost: Set<TopicPartition>) {
        precondition(phase == .active && !inFlight, "a stale member is an active one between requests")
        let id = memberID.isEmpty ? nil : memberID
        let lost = owned
        phase = .stale
        owned = []
        leaving = []
        lastAssignment = []
        lastAssignedGeneration = -1
        memberID = ""
        generation = -1
        stage = .toJoin
        return (id, lost)
    }

    /// A stale member polled again: it joins.
    mutating func rejoin() {
        precondition(phase == .stale, "only a stale member joins again")
        phase = .active
        stage = .toJoin
    }

    /// Leaves the group: the member id to send in LeaveGroup (nil when it never joined).
    mutating func leave() -> String? {
        defer {
            phase = .left
            owned = []
            leaving = []
        }
        guard phase == .active, !memberID.isEmpty else { return nil }
        return memberID
    }
}
