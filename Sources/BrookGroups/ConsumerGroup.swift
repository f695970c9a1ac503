import BrookCore
import BrookProtocol

public struct ConsumerHeartbeatRequest: Sendable {
    public var groupID: String
    public var memberID: String
    public var memberEpoch: Int32
    public var instanceID: String?
    public var rackID: String?
    /// -1: unchanged.
    public var rebalanceTimeoutMs: Int32
    /// nil: unchanged.
    public var subscribedTopicNames: [String]?
    public var serverAssignor: String?
    /// What the member owns now; nil: unchanged since its last heartbeat.
    public var ownedPartitions: Assignment?
    public var clientID: String
    public var clientHost: String
    public init(groupID: String, memberID: String, memberEpoch: Int32, instanceID: String? = nil, rackID: String? = nil,
                rebalanceTimeoutMs: Int32 = -1, subscribedTopicNames: [String]? = nil, serverAssignor: String? = nil,
                ownedPartitions: Assignment? = nil, clientID: String = "", clientHost: String = "") {
        self.groupID = groupID
        self.memberID = memberID
        self.memberEpoch = memberEpoch
        self.instanceID = instanceID
        self.rackID = rackID
        self.rebalanceTimeoutMs = rebalanceTimeoutMs
        self.subscribedTopicNames = subscribedTopicNames
        self.serverAssignor = serverAssignor
        self.ownedPartitions = ownedPartitions
        self.clientID = clientID
        self.clientHost = clientHost
    }
}

public struct ConsumerHeartbeatResult: Sendable, Equatable {
    public var error: ErrorCode
    public var message: String?
    public var memberID: String = ""
    public var memberEpoch: Int32 = 0
    public var heartbeatIntervalMs: Int32 = 0
    /// nil: unchanged since the last answer.
    public var assignment: Assignment?

    public static func failed(_ error: ErrorCode, _ message: String) -> ConsumerHeartbeatResult {
        ConsumerHeartbeatResult(error: error, message: message)
    }
}

/// Where a member is in reconciling its assignment with the group's target (KIP-848).
public enum ReconcileState: String, Sendable {
    /// It has its target.
    case stable
    /// It must give up partitions first (it keeps its epoch until it reports they are gone).
    case unrevokedPartitions = "unrevoked_partitions"
    /// It waits for partitions that other members still own.
    case unreleasedPartitions = "unreleased_partitions"
}

public struct ConsumerMember: Sendable {
    public var memberID: String
    public var instanceID: String?
    public var rackID: String?
    public var clientID: String
    public var clientHost: String
    public var memberEpoch: Int32 = 0
    var previousEpoch: Int32 = -1
    public var state: ReconcileState = .stable
    public var subscribedTopics: [String] = []
    public var serverAssignor: String?
    public var rebalanceTimeoutMs: Int32 = 300_000
    /// Owned now (what it was last told).
    public var assigned: Assignment = [:]
    /// Being given up.
    public var revoking: Assignment = [:]
    var lastSent: Assignment?
    var sessionDeadline: Int64 = 0
    var revocationDeadline: Int64 = 0
}

/// A KIP-848 consumer group: the broker computes the assignment (`group.consumer.assignors`)
/// and each member converges to its part of it on its own heartbeats, revoking before others
/// get its partitions, with no group-wide barrier.
public struct ConsumerGroup: Sendable {
    public let id: String
    public internal(set) var groupEpoch: Int32 = 0
    public internal(set) var assignmentEpoch: Int32 = 0
    public internal(set) var members: [String: ConsumerMember] = [:]
    public internal(set) var target: [String: Assignment] = [:]
    /// The subscribed topics' ids and sizes when the target was computed.
    public internal(set) var subscribedTopics: [String: SubscribedTopic] = [:]
    public internal(set) var stateSince: Int64

    public init(id: String, now: Int64) {
        self.id = id
        self.stateSince = now
    }

    /// KIP-848's group states, as ConsumerGroupDescribe and ListGroups report them.
    public var state: String {
        if members.isEmpty { return "Empty" }
        if groupEpoch > assignmentEpoch { return "Assigning" }
        if members.values.contains(where: { $0.state != .stable || $0.memberEpoch != assignmentEpoch }) { return "Reconciling" }
        return "Stable"
    }

    public var isEmpty: Bool { members.isEmpty }

    public func assignorName(config: GroupConfig) -> String {
        members.values.compactMap(\.serverAssignor).sorted().first ?? config.consumerAssignors.first ?? "uniform"
    }

    mutating func heartbeat(_ request: ConsumerHeartbeatRequest, newMemberID: String, topics: any TopicsView,
                            config: GroupConfig, now: Int64) -> ConsumerHeartbeatResult {
        if let assignor = request.serverAssignor, !config.consumerAssignors.contains(assignor) {
            return .failed(.unsupportedAssignor, "Assignor \(assignor) is not one of \(config.consumerAssignors).")
        }
        var bump = false
        var memberID = request.memberID
        switch request.memberEpoch {
        case -1, -2:
            guard let member = members[memberID] else { return .failed(.unknownMemberID, "Unknown member \(memberID).") }
            if request.memberEpoch == -2 && member.instanceID != nil {
                // A static member leaving for a while keeps its partitions until its session ends.
                members[memberID]!.previousEpoch = member.memberEpoch
                members[memberID]!.memberEpoch = -2
                members[memberID]!.sessionDeadline = now + Int64(config.consumerSessionTimeoutMs)
            } else {
                remove(memberID)
            }
            return ConsumerHeartbeatResult(error: .none, memberID: memberID, memberEpoch: request.memberEpoch,
                                           heartbeatIntervalMs: config.consumerHeartbeatIntervalMs)
        case 0:
            if memberID.isEmpty { memberID = newMemberID }
            var member = ConsumerMember(memberID: memberID, instanceID: request.instanceID, rackID: request.rackID,
                                        clientID: request.clientID, clientHost: request.clientHost)
            if let instance = request.instanceID, let old = members.values.first(where: { $0.instanceID == instance }),
               old.memberID != memberID {
                guard old.memberEpoch == -2 else {
                    return .failed(.unreleasedInstanceID, "Static member \(instance) is still in the group as \(old.memberID).")
                }
                // The static member is back: it takes over its old self's epoch and partitions.
                members[old.memberID] = nil
                member.memberEpoch = max(old.previousEpoch, 0)
                member.assigned = old.assigned
                member.revoking = old.revoking
                member.state = old.state
                member.subscribedTopics = old.subscribedTopics
                if let t = target.removeValue(forKey: old.memberID) { target[memberID] = t }
            } else if let existing = members[memberID] {
                // A member rejoining from epoch 0 starts over.
                member.subscribedTopics = existing.subscribedTopics
                remove(memberID)
                bump = true
            } else {
                guard members.count < config.consumerMaxSize else {
                    return .failed(.groupMaxSizeReached, "The group has reached its maximum size of \(config.consumerMaxSize).")
                }
                bump = true
            }
            members[memberID] = member
        default:
            guard let member = members[memberID] else { return .failed(.unknownMemberID, "Unknown member \(memberID).") }
            if request.memberEpoch != member.memberEpoch {
                let owned = request.ownedPartitions ?? [:]
                guard request.memberEpoch == member.previousEpoch, owned.subtracting(member.assigned).isEmpty else {
                    return .failed(.fencedMemberEpoch, "Member epoch \(request.memberEpoch) is not the current \(member.memberEpoch).")
                }
            }
        }
        var member = members[memberID]!
        member.sessionDeadline = now + Int64(config.consumerSessionTimeoutMs)
        if request.rebalanceTimeoutMs >= 0 { member.rebalanceTimeoutMs = request.rebalanceTimeoutMs }
        if let names = request.subscribedTopicNames {
            let sorted = Array(Set(names)).sorted()
            if sorted != member.subscribedTopics { member.subscribedTopics = sorted; bump = true }
        }
        if let assignor = request.serverAssignor, assignor != member.serverAssignor { member.serverAssignor = assignor; bump = true }
        if let rack = request.rackID { member.rackID = rack }
        members[memberID] = member
        // The subscribed topics' sizes moved (a topic created, deleted or grown): new target.
        let current = subscribedTopicMetadata(topics)
        if current != subscribedTopics { subscribedTopics = current; bump = true }
        if bump { groupEpoch &+= 1 }
        if groupEpoch > assignmentEpoch { computeTarget(config: config) }
        reconcile(memberID, owned: request.ownedPartitions, now: now)
        member = members[memberID]!
        // A member waiting for partitions others still hold comes back sooner than the
        // configured interval, so the group converges in a few short round trips.
        let waiting = member.state == .unreleasedPartitions
        let interval = waiting ? min(config.consumerHeartbeatIntervalMs, GroupConfig.reconcilingHeartbeatIntervalMs)
                               : config.consumerHeartbeatIntervalMs
        var result = ConsumerHeartbeatResult(error: .none, memberID: memberID, memberEpoch: member.memberEpoch,
                                             heartbeatIntervalMs: interval)
        let ownedDiffers = request.ownedPartitions.map { $0.filter { !$0.value.isEmpty } != member.assigned } ?? false
        if request.memberEpoch == 0 || member.lastSent != member.assigned || ownedDiffers {
            result.assignment = member.assigned
            members[memberID]!.lastSent = member.assigned
        }
        return result
    }

    func subscribedTopicMetadata(_ topics: any TopicsView) -> [String: SubscribedTopic] {
        var out: [String: SubscribedTopic] = [:]
        for name in Set(members.values.flatMap(\.subscribedTopics)) {
            if let t = topics.describe(name) { out[name] = SubscribedTopic(name: name, id: t.id, partitions: t.partitions) }
        }
        return out
    }

    mutating func computeTarget(config: GroupConfig) {
        let assignor = ServerAssignor(rawValue: assignorName(config: config)) ?? .uniform
        let input = members.values.map { m in
            AssignorMember(memberID: m.memberID, topics: Set(m.subscribedTopics), previous: target[m.memberID] ?? [:])
        }
        target = assignor.assign(members: input, topics: subscribedTopics)
        assignmentEpoch = groupEpoch
    }

    /// Partitions another member holds (assigned or still being revoked).
    func ownedByOthers(_ memberID: String) -> Assignment {
        var out: Assignment = [:]
        for m in members.values where m.memberID != memberID { out = out.union(m.assigned).union(m.revoking) }
        return out
    }

    /// Moves a member toward its target (Kafka's CurrentAssignmentBuilder): revoke first, keep
    /// the epoch until the revocation is reported, then take what others have released.
    mutating func reconcile(_ memberID: String, owned: Assignment?, now: Int64) {
        guard var member = members[memberID], member.memberEpoch >= 0 else { return }
        if member.state == .unrevokedPartitions {
            guard let owned, owned.intersection(member.revoking).isEmpty else { return }
            member.revoking = [:]
            member.state = .stable
        }
        if member.state == .stable && member.memberEpoch == assignmentEpoch && member.assigned == (target[memberID] ?? [:]) {
            members[memberID] = member
            return
        }
        let goal = target[memberID] ?? [:]
        let revoke = member.assigned.subtracting(goal)
        if !revoke.isEmpty {
            member.assigned = member.assigned.intersection(goal)
            member.revoking = revoke
            member.state = .unrevokedPartitions
            member.revocationDeadline = now + Int64(member.rebalanceTimeoutMs)
        } else {
            let wanted = goal.subtracting(member.assigned)
            let free = wanted.subtracting(ownedByOthers(memberID))
            member.assigned = member.assigned.union(free)
            if member.memberEpoch != assignmentEpoch {
                member.previousEpoch = member.memberEpoch
                member.memberEpoch = assignmentEpoch
            }
            member.state = wanted.subtracting(free).isEmpty ? .stable : .unreleasedPartitions
        }
        members[memberID] = member
    }

    mutating func remove(_ memberID: String) {
        guard members.removeValue(forKey: memberID) != nil else { return }
        target[memberID] = nil
        groupEpoch &+= 1
    }

    /// Sessions that ended and revocations not done within the rebalance timeout.
    mutating func tick(now: Int64) -> [String] {
        var expired: [String] = []
        for m in members.values.sorted(by: { $0.memberID < $1.memberID }) {
            if m.sessionDeadline <= now || (m.state == .unrevokedPartitions && m.revocationDeadline <= now) {
                remove(m.memberID)
                expired.append(m.memberID)
            }
        }
        return expired
    }
}
