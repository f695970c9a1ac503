import BrookCore
import BrookProtocol

/// The classic protocol's group states (Kafka's names, as DescribeGroups reports them).
public enum ClassicState: String, Sendable, CaseIterable {
    case empty = "Empty"
    case preparingRebalance = "PreparingRebalance"
    case completingRebalance = "CompletingRebalance"
    case stable = "Stable"
    case dead = "Dead"
}

public struct JoinRequest: Sendable {
    public var groupID: String
    public var memberID: String
    public var instanceID: String?
    public var protocolType: String
    public var protocols: [GroupProtocol]
    public var sessionTimeoutMs: Int32
    public var rebalanceTimeoutMs: Int32
    /// v4+: a first join without a member id is answered MEMBER_ID_REQUIRED with one (KIP-394).
    public var requireKnownMemberID: Bool
    /// v9+: a static leader rejoining a stable group is told to skip the assignment.
    public var supportsSkipAssignment: Bool
    public var clientID: String
    public var clientHost: String
    public init(groupID: String, memberID: String, instanceID: String?, protocolType: String,
                protocols: [GroupProtocol], sessionTimeoutMs: Int32, rebalanceTimeoutMs: Int32,
                requireKnownMemberID: Bool, supportsSkipAssignment: Bool, clientID: String, clientHost: String) {
        self.groupID = groupID
        self.memberID = memberID
        self.instanceID = instanceID
        self.protocolType = protocolType
        self.protocols = protocols
        self.sessionTimeoutMs = sessionTimeoutMs
        self.rebalanceTimeoutMs = rebalanceTimeoutMs
        self.requireKnownMemberID = requireKnownMemberID
        self.supportsSkipAssignment = supportsSkipAssignment
        self.clientID = clientID
        self.clientHost = clientHost
    }
}

public struct JoinResult: Sendable, Equatable {
    public struct Member: Sendable, Equatable {
        public var memberID: String
        public var instanceID: String?
        public var metadata: [UInt8]
    }
    public var error: ErrorCode
    public var generation: Int32 = -1
    public var protocolType: String?
    public var protocolName: String?
    public var leader: String = ""
    public var skipAssignment = false
    public var memberID: String = ""
    public var members: [Member] = []

    public init(error: ErrorCode, generation: Int32 = -1, protocolType: String? = nil, protocolName: String? = nil,
                leader: String = "", skipAssignment: Bool = false, memberID: String = "", members: [Member] = []) {
        self.error = error
        self.generation = generation
        self.protocolType = protocolType
        self.protocolName = protocolName
        self.leader = leader
        self.skipAssignment = skipAssignment
        self.memberID = memberID
        self.members = members
    }

    static func failed(_ error: ErrorCode, memberID: String = "") -> JoinResult {
        JoinResult(error: error, memberID: memberID)
    }
}

public struct SyncRequest: Sendable {
    public var groupID: String
    public var generation: Int32
    public var memberID: String
    public var instanceID: String?
    public var protocolType: String?
    public var protocolName: String?
    public var assignments: [String: [UInt8]]
    public init(groupID: String, generation: Int32, memberID: String, instanceID: String?,
                protocolType: String?, protocolName: String?, assignments: [String: [UInt8]]) {
        self.groupID = groupID
        self.generation = generation
        self.memberID = memberID
        self.instanceID = instanceID
        self.protocolType = protocolType
        self.protocolName = protocolName
        self.assignments = assignments
    }
}

public struct SyncResult: Sendable, Equatable {
    public var error: ErrorCode
    public var protocolType: String?
    public var protocolName: String?
    public var assignment: [UInt8] = []

    public init(error: ErrorCode, protocolType: String? = nil, protocolName: String? = nil, assignment: [UInt8] = []) {
        self.error = error
        self.protocolType = protocolType
        self.protocolName = protocolName
        self.assignment = assignment
    }
}

/// A member of a classic group.
public struct ClassicMember: Sendable, Equatable {
    public var memberID: String
    public var instanceID: String?
    public var clientID: String
    public var clientHost: String
    public var rebalanceTimeoutMs: Int32
    public var sessionTimeoutMs: Int32
    public var protocolType: String
    public var protocols: [GroupProtocol]
    public var assignment: [UInt8] = []
    /// The join request waiting for the rebalance to complete.
    var pendingJoin: PendingID?
    var pendingJoinSkips = false
    /// The sync request waiting for the leader's assignment.
    var pendingSync: PendingID?
    /// When the member is dropped unless it heartbeats.
    var sessionDeadline: Int64 = 0

    func metadata(for name: String?) -> [UInt8] {
        protocols.first { $0.name == name }?.metadata ?? []
    }
}

/// One classic group: the state machine of Kafka's GroupCoordinator for the JoinGroup /
/// SyncGroup / Heartbeat / LeaveGroup protocol. No I/O and no clock: every call takes the time,
/// answers to requests held open come out through `Effects`.
public struct ClassicGroup: Sendable {
    public let id: String
    public internal(set) var state: ClassicState = .empty
    public internal(set) var generation: Int32 = 0
    public internal(set) var protocolType: String?
    public internal(set) var protocolName: String?
    public internal(set) var leaderID: String?
    /// Members in the order they joined (the first is the leader when a new one must be chosen).
    public internal(set) var members: [ClassicMember] = []
    /// Member ids handed out with MEMBER_ID_REQUIRED, and until when they may be used.
    var pendingMembers: [String: Int64] = [:]
    /// group.instance.id -> member id.
    var staticMembers: [String: String] = [:]
    /// PreparingRebalance: when the join phase ends at the latest. CompletingRebalance: when
    /// members that have not synced are dropped.
    var phaseDeadline: Int64 = 0
    /// The new-group delay (group.initial.rebalance.delay.ms) is running.
    var initialDelay = false
    var initialDelayLimit: Int64 = 0
    /// When the group entered its state (kept with its metadata, for offset expiry).
    public internal(set) var stateSince: Int64

    /// group.initial.rebalance.delay.ms
    let initialDelayMs: Int32

    public init(id: String, now: Int64, initialDelayMs: Int32) {
        self.id = id
        self.stateSince = now
        self.initialDelayMs = initialDelayMs
    }

    func index(of memberID: String) -> Int? { members.firstIndex { $0.memberID == memberID } }
    public func member(_ memberID: String) -> ClassicMember? { index(of: memberID).map { members[$0] } }
    public var isEmpty: Bool { members.isEmpty }

    mutating func transition(_ to: ClassicState, now: Int64) {
        state = to
        stateSince = now
    }

    // MARK: JoinGroup

    mutating func join(_ request: JoinRequest, pending: PendingID, newMemberID: String, config: GroupConfig,
                       now: Int64, effects: inout Effects) {
        func answer(_ result: JoinResult) { effects.joins.append((pending, result)) }
        if state == .dead { return answer(.failed(.coordinatorNotAvailable, memberID: request.memberID)) }
        if !members.isEmpty {
            let common = protocolType == request.protocolType
                && request.protocols.contains { offered in members.allSatisfy { m in m.protocols.contains { $0.name == offered.name } } }
            if !common { return answer(.failed(.inconsistentGroupProtocol, memberID: request.memberID)) }
        }
        if request.memberID.isEmpty {
            joinUnknown(request, pending: pending, newMemberID: newMemberID, config: config, now: now, effects: &effects)
        } else {
            joinKnown(request, pending: pending, config: config, now: now, effects: &effects)
        }
    }

    private mutating func joinUnknown(_ request: JoinRequest, pending: PendingID, newMemberID: String,
                                      config: GroupConfig, now: Int64, effects: inout Effects) {
        if let instance = request.instanceID, let old = staticMembers[instance], let at = index(of: old) {
            // A static member back under a new member id: it takes the old one's place.
            var member = members[at]
            if let held = member.pendingJoin {
                effects.joins.append((held, .failed(.fencedInstanceID, memberID: old)))
                member.pendingJoin = nil
            }
            if let held = member.pendingSync {
                effects.syncs.append((held, SyncResult(error: .fencedInstanceID)))
                member.pendingSync = nil
            }
            let unchanged = member.protocols == request.protocols
            member.memberID = newMemberID
            member.clientID = request.clientID
            member.clientHost = request.clientHost
            member.sessionTimeoutMs = request.sessionTimeoutMs
            member.rebalanceTimeoutMs = request.rebalanceTimeoutMs
            member.sessionDeadline = now + Int64(request.sessionTimeoutMs)
            member.protocols = request.protocols
            members[at] = member
            staticMembers[instance] = newMemberID
            if leaderID == old { leaderID = newMemberID }
            effects.records.append(.groupMetadata(snapshot))
            switch state {
            case .stable where unchanged:
                // No rebalance: the member syncs and gets its old assignment back.
                let isLeader = leaderID == newMemberID
                var result = JoinResult(error: .none, generation: generation, protocolType: protocolType,
                                        protocolName: protocolName, leader: leaderID ?? "", memberID: newMemberID)
                if isLeader && request.supportsSkipAssignment {
                    result.skipAssignment = true
                    result.members = joinedMembers()
                }
                effects.joins.append((pending, result))
            case .completingRebalance where unchanged:
                effects.joins.append((pending, currentJoinResult(for: newMemberID)))
            case .preparingRebalance:
                members[at].pendingJoin = pending
                members[at].pendingJoinSkips = request.supportsSkipAssignment
                maybeCompleteJoin(now: now, effects: &effects)
            default:
                members[at].pendingJoin = pending
                prepareRebalance(now: now, effects: &effects)
            }
            return
        }
        if members.count + pendingMembers.count >= config.maxSize {
            return effects.joins.append((pending, .failed(.groupMaxSizeReached)))
        }
        if request.requireKnownMemberID && request.instanceID == nil {
            // KIP-394: the member must come back with this id, within its session timeout.
            pendingMembers[newMemberID] = now + Int64(request.sessionTimeoutMs)
            return effects.joins.append((pending, .failed(.memberIDRequired, memberID: newMemberID)))
        }
        addMember(request, memberID: newMemberID, pending: pending, now: now, effects: &effects)
    }

    private mutating func joinKnown(_ request: JoinRequest, pending: PendingID, config: GroupConfig,
                                    now: Int64, effects: inout Effects) {
        if pendingMembers.removeValue(forKey: request.memberID) != nil {
            if members.count >= config.maxSize {
                return effects.joins.append((pending, .failed(.groupMaxSizeReached, memberID: request.memberID)))
            }
            return addMember(request, memberID: request.memberID, pending: pending, now: now, effects: &effects)
        }
        if let instance = request.instanceID, let owner = staticMembers[instance], owner != request.memberID {
            return effects.joins.append((pending, .failed(.fencedInstanceID, memberID: request.memberID)))
        }
        guard let at = index(of: request.memberID), state != .empty, state != .dead else {
            return effects.joins.append((pending, .failed(.unknownMemberID, memberID: request.memberID)))
        }
        let changed = members[at].protocols != request.protocols
        members[at].protocols = request.protocols
        members[at].sessionTimeoutMs = request.sessionTimeoutMs
        members[at].rebalanceTimeoutMs = request.rebalanceTimeoutMs
        members[at].sessionDeadline = now + Int64(request.sessionTimeoutMs)
        if let held = members[at].pendingJoin, held != pending {
            // A retried join replaces the one already waiting.
            effects.joins.append((held, .failed(.rebalanceInProgress, memberID: request.memberID)))
        }
        switch state {
        case .preparingRebalance:
            members[at].pendingJoin = pending
            members[at].pendingJoinSkips = request.supportsSkipAssignment
            maybeCompleteJoin(now: now, effects: &effects)
        case .completingRebalance where !changed:
            // Its join answer was lost: the same answer again.
            effects.joins.append((pending, currentJoinResult(for: request.memberID)))
        case .stable where !changed && leaderID != request.memberID:
            effects.joins.append((pending, currentJoinResult(for: request.memberID)))
        default:
            members[at].pendingJoin = pending
            members[at].pendingJoinSkips = request.supportsSkipAssignment
            prepareRebalance(now: now, effects: &effects)
        }
    }

    private mutating func addMember(_ request: JoinRequest, memberID: String, pending: PendingID,
                                    now: Int64, effects: inout Effects) {
        if members.isEmpty { protocolType = request.protocolType }
        var member = ClassicMember(memberID: memberID, instanceID: request.instanceID, clientID: request.clientID,
                                   clientHost: request.clientHost, rebalanceTimeoutMs: request.rebalanceTimeoutMs,
                                   sessionTimeoutMs: request.sessionTimeoutMs, protocolType: request.protocolType,
                                   protocols: request.protocols)
        member.pendingJoin = pending
        member.pendingJoinSkips = request.supportsSkipAssignment
        member.sessionDeadline = now + Int64(request.sessionTimeoutMs)
        members.append(member)
        if let instance = request.instanceID { staticMembers[instance] = memberID }
        if state == .preparingRebalance {
            if initialDelay {
                // Each new member during the initial delay extends it, up to the rebalance timeout.
                phaseDeadline = min(initialDelayLimit, max(phaseDeadline, now + Int64(initialDelayMs)))
            }
            maybeCompleteJoin(now: now, effects: &effects)
        } else {
            prepareRebalance(now: now, effects: &effects)
        }
    }


    var rebalanceTimeoutMs: Int64 { Int64(members.map(\.rebalanceTimeoutMs).max() ?? 0) }

    mutating func prepareRebalance(now: Int64, effects: inout Effects) {
        if state == .completingRebalance {
            // The assignment being synced is void: its waiters rejoin.
            for i in members.indices {
                members[i].assignment = []
                if let held = members[i].pendingSync {
                    effects.syncs.append((held, SyncResult(error: .rebalanceInProgress)))
                    members[i].pendingSync = nil
                    members[i].sessionDeadline = now + Int64(members[i].sessionTimeoutMs)
                }
            }
        }
        if state == .empty && initialDelayMs > 0 {
            initialDelay = true
            initialDelayLimit = now + max(rebalanceTimeoutMs, Int64(initialDelayMs))
            phaseDeadline = min(initialDelayLimit, now + Int64(initialDelayMs))
        } else {
            initialDelay = false
            phaseDeadline = now + rebalanceTimeoutMs
        }
        transition(.preparingRebalance, now: now)
        maybeCompleteJoin(now: now, effects: &effects)
    }

    /// The join phase ends when every member has rejoined (and no id handed out is still
    /// expected), unless the initial delay is running.
    mutating func maybeCompleteJoin(now: Int64, effects: inout Effects) {
        guard state == .preparingRebalance, !initialDelay else { return }
        if members.allSatisfy({ $0.pendingJoin != nil }) && pendingMembers.isEmpty {
            completeJoin(now: now, effects: &effects)
        }
    }

    mutating func completeJoin(now: Int64, effects: inout Effects) {
        precondition(state == .preparingRebalance, "join completes only while preparing a rebalance")
        initialDelay = false
        // Members that did not rejoin in time are out.
        for member in members where member.pendingJoin == nil {
            removeMember(member.memberID)
        }
        pendingMembers.removeAll()
        generation &+= 1
        if members.isEmpty {
            protocolName = nil
            leaderID = nil
            transition(.empty, now: now)
            effects.records.append(.groupMetadata(snapshot))
            return
        }
        protocolName = selectProtocol()
        if leaderID == nil || index(of: leaderID!) == nil { leaderID = members[0].memberID }
        transition(.completingRebalance, now: now)
        phaseDeadline = now + rebalanceTimeoutMs
        for i in members.indices {
            guard let held = members[i].pendingJoin else { continue }
            members[i].pendingJoin = nil
            members[i].sessionDeadline = now + Int64(members[i].sessionTimeoutMs)
            effects.joins.append((held, currentJoinResult(for: members[i].memberID)))
        }
    }

    func joinedMembers() -> [JoinResult.Member] {
        members.map { JoinResult.Member(memberID: $0.memberID, instanceID: $0.instanceID, metadata: $0.metadata(for: protocolName)) }
    }

    func currentJoinResult(for memberID: String) -> JoinResult {
        JoinResult(error: .none, generation: generation, protocolType: protocolType, protocolName: protocolName,
                   leader: leaderID ?? "", memberID: memberID,
                   members: memberID == leaderID ? joinedMembers() : [])
    }

    /// Kafka's vote: of the protocols every member supports, each member votes for the first it
    /// lists; the most votes win (ties go to the earlier candidate in the leader's order).
    func selectProtocol() -> String? {
        guard let first = members.first else { return nil }
        let candidates = first.protocols.map(\.name).filter { name in members.allSatisfy { m in m.protocols.contains { $0.name == name } } }
        var votes: [String: Int] = [:]
        for member in members {
            if let choice = member.protocols.first(where: { candidates.contains($0.name) }) { votes[choice.name, default: 0] += 1 }
        }
        var best: String?
        var bestVotes = -1
        for name in candidates where votes[name, default: 0] > bestVotes {
            best = name
            bestVotes = votes[name, default: 0]
        }
        return best
    }

    // MARK: SyncGroup

    mutating func sync(_ request: SyncRequest, pending: PendingID, now: Int64, effects: inout Effects) {
        func answer(_ error: ErrorCode) { effects.syncs.append((pending, SyncResult(error: error))) }
        if let instance = request.instanceID, let owner = staticMembers[instance], owner != request.memberID {
            return answer(.fencedInstanceID)
        }
        guard let at = index(of: request.memberID) else { return answer(.unknownMemberID) }
        if request.generation != generation { return answer(.illegalGeneration) }
        if let type = request.protocolType, type != protocolType { return answer(.inconsistentGroupProtocol) }
        if let name = request.protocolName, name != protocolName { return answer(.inconsistentGroupProtocol) }
        switch state {
        case .empty, .dead:
            answer(.unknownMemberID)
        case .preparingRebalance:
            answer(.rebalanceInProgress)
        case .completingRebalance:
            if let held = members[at].pendingSync {
                effects.syncs.append((held, SyncResult(error: .rebalanceInProgress)))
            }
            members[at].pendingSync = pending
            members[at].sessionDeadline = now + Int64(members[at].sessionTimeoutMs)
            guard request.memberID == leaderID else { return }
            for i in members.indices {
                members[i].assignment = request.assignments[members[i].memberID] ?? []
            }
            transition(.stable, now: now)
            effects.records.append(.groupMetadata(snapshot))
            for i in members.indices {
                guard let held = members[i].pendingSync else { continue }
                members[i].pendingSync = nil
                // Its session restarts when its answer goes out (it waited without heartbeats).
                members[i].sessionDeadline = now + Int64(members[i].sessionTimeoutMs)
                effects.syncs.append((held, SyncResult(error: .none, protocolType: protocolType,
                                                       protocolName: protocolName, assignment: members[i].assignment)))
            }
        case .stable:
            members[at].sessionDeadline = now + Int64(members[at].sessionTimeoutMs)
            effects.syncs.append((pending, SyncResult(error: .none, protocolType: protocolType,
                                                      protocolName: protocolName, assignment: members[at].assignment)))
        }
    }

    // MARK: Heartbeat and LeaveGroup

    mutating func heartbeat(memberID: String, instanceID: String?, generation requested: Int32, now: Int64) -> ErrorCode {
        if let instance = instanceID, let owner = staticMembers[instance], owner != memberID { return .fencedInstanceID }
        guard let at = index(of: memberID) else { return .unknownMemberID }
        switch state {
        case .empty, .dead:
            return .unknownMemberID
        case .preparingRebalance:
            members[at].sessionDeadline = now + Int64(members[at].sessionTimeoutMs)
            return .rebalanceInProgress
        case .completingRebalance, .stable:
            guard requested == generation else { return .illegalGeneration }
            members[at].sessionDeadline = now + Int64(members[at].sessionTimeoutMs)
            return .none
        }
    }

    /// A member leaves (LeaveGroup, or its session expired). `memberID` may be empty when a
    /// static member leaves by its instance id.
    mutating func leave(memberID: String, instanceID: String?, now: Int64, effects: inout Effects) -> ErrorCode {
        var id = memberID
        if let instance = instanceID {
            guard let owner = staticMembers[instance] else { return .unknownMemberID }
            if !memberID.isEmpty && owner != memberID { return .fencedInstanceID }
            id = owner
        }
        if pendingMembers.removeValue(forKey: id) != nil {
            maybeCompleteJoin(now: now, effects: &effects)
            return .none
        }
        guard let at = index(of: id) else { return .unknownMemberID }
        if let held = members[at].pendingJoin { effects.joins.append((held, .failed(.unknownMemberID, memberID: id))) }
        if let held = members[at].pendingSync { effects.syncs.append((held, SyncResult(error: .unknownMemberID))) }
        removeMember(id)
        switch state {
        case .stable, .completingRebalance:
            prepareRebalance(now: now, effects: &effects)
        case .preparingRebalance:
            if members.isEmpty && !initialDelay {
                completeJoin(now: now, effects: &effects)
            } else {
                maybeCompleteJoin(now: now, effects: &effects)
            }
        case .empty, .dead:
            break
        }
        return .none
    }

    mutating func removeMember(_ memberID: String) {
        guard let at = index(of: memberID) else { return }
        if let instance = members[at].instanceID, staticMembers[instance] == memberID { staticMembers[instance] = nil }
        members.remove(at: at)
        if leaderID == memberID { leaderID = nil }
    }

    // MARK: time

    /// Expired sessions, the end of the join phase, members that never synced.
    mutating func tick(now: Int64, effects: inout Effects) {
        for (id, deadline) in pendingMembers where deadline <= now { pendingMembers[id] = nil }
        switch state {
        case .preparingRebalance:
            // At the deadline (the initial delay's or the rebalance timeout's) the join phase
            // ends with whoever has joined; before it, once everyone has.
            if now >= phaseDeadline {
                completeJoin(now: now, effects: &effects)
            } else {
                maybeCompleteJoin(now: now, effects: &effects)
            }
        case .completingRebalance:
            if now >= phaseDeadline {
                // Members that did not sync in time are dropped, and the rebalance starts over.
                for member in members where member.pendingSync == nil {
                    _ = leave(memberID: member.memberID, instanceID: nil, now: now, effects: &effects)
                }
            }
        default:
            break
        }
        if state == .stable || state == .completingRebalance {
            for member in members where member.sessionDeadline <= now && member.pendingSync == nil {
                _ = leave(memberID: member.memberID, instanceID: nil, now: now, effects: &effects)
            }
        } else if state == .preparingRebalance {
            // Members waiting in a join are kept alive by it.
            for member in members where member.sessionDeadline <= now && member.pendingJoin == nil {
                _ = leave(memberID: member.memberID, instanceID: nil, now: now, effects: &effects)
            }
        }
    }

    // MARK: persistence

    /// The group as kept in `__consumer_offsets` (Kafka's GroupMetadataValue).
    public var snapshot: GroupSnapshot {
        GroupSnapshot(groupID: id, protocolType: protocolType ?? "", generation: generation, protocolName: protocolName,
                      leader: leaderID, stateTimestamp: stateSince,
                      members: members.map { m in
                          GroupSnapshot.Member(memberID: m.memberID, instanceID: m.instanceID, clientID: m.clientID,
                                               clientHost: m.clientHost, rebalanceTimeoutMs: m.rebalanceTimeoutMs,
                                               sessionTimeoutMs: m.sessionTimeoutMs,
                                               subscription: m.metadata(for: protocolName), assignment: m.assignment)
                      })
    }

    /// A group brought back from its snapshot: stable with its members (who keep heartbeating),
    /// or empty.
    init(restoring snap: GroupSnapshot, now: Int64, initialDelayMs: Int32) {
        id = snap.groupID
        self.initialDelayMs = initialDelayMs
        stateSince = snap.stateTimestamp
        generation = snap.generation
        protocolType = snap.protocolType.isEmpty ? nil : snap.protocolType
        protocolName = snap.protocolName
        leaderID = snap.leader
        members = snap.members.map { m in
            var member = ClassicMember(memberID: m.memberID, instanceID: m.instanceID, clientID: m.clientID,
                                       clientHost: m.clientHost, rebalanceTimeoutMs: m.rebalanceTimeoutMs,
                                       sessionTimeoutMs: m.sessionTimeoutMs, protocolType: snap.protocolType,
                                       protocols: [GroupProtocol(name: snap.protocolName ?? "", metadata: m.subscription)],
                                       assignment: m.assignment)
            member.sessionDeadline = now + Int64(m.sessionTimeoutMs)
            return member
        }
        for m in members { if let instance = m.instanceID { staticMembers[instance] = m.memberID } }
        state = members.isEmpty ? .empty : .stable
    }
}
