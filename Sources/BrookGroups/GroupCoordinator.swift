import BrookCore
import BrookProtocol

/// A group of either protocol, with its committed offsets (which outlive its members).
public struct GroupEntry: Sendable {
    public enum Kind: Sendable {
        case classic(ClassicGroup)
        case consumer(ConsumerGroup)
    }
    public var kind: Kind
    public var offsets: [TopicPartition: CommittedOffset] = [:]

    public var isEmpty: Bool {
        switch kind {
        case .classic(let g): return g.isEmpty
        case .consumer(let g): return g.isEmpty
        }
    }
    public var typeName: String {
        if case .consumer = kind { return "consumer" }
        return "classic"
    }
    public var protocolType: String {
        switch kind {
        case .classic(let g): return g.protocolType ?? ""
        case .consumer: return "consumer"
        }
    }
    public var stateName: String {
        switch kind {
        case .classic(let g): return g.state.rawValue
        case .consumer(let g): return g.state
        }
    }
    var stateSince: Int64 {
        switch kind {
        case .classic(let g): return g.stateSince
        case .consumer(let g): return g.stateSince
        }
    }
}

/// The group coordinator of one broker: every group it owns, both protocols, and their offsets.
/// A pure state machine: the driver (BrookBroker's GroupService) passes the time in, writes the
/// records that come out to `__consumer_offsets` before it sends the answers, and feeds the
/// records back through `replay` when it loads.
public struct GroupCoordinator: Sendable {
    public let config: GroupConfig
    public private(set) var groups: [String: GroupEntry] = [:]
    /// Offsets committed inside open transactions (TxnOffsetCommit), by producer id: they take
    /// effect when the transaction's commit marker reaches `__consumer_offsets`.
    public private(set) var pendingTxnOffsets: [ProducerID: [String: [TopicPartition: CommittedOffset]]] = [:]
    var random: SeededRandom
    var lastExpiryCheck: Int64 = 0

    public init(config: GroupConfig, seed: UInt64) {
        self.config = config
        self.random = SeededRandom(seed: seed)
    }

    public func group(_ id: String) -> GroupEntry? { groups[id] }

    /// Forgets the groups `leaving` names, with their offsets and the offsets their open
    /// transactions committed (their coordinator moved to another broker, which loads them from
    /// `__consumer_offsets`). Returns the ids dropped.
    @discardableResult
    public mutating func unload(where leaving: (String) -> Bool) -> [String] {
        let dropped = groups.keys.filter(leaving)
        for id in dropped { groups[id] = nil }
        for (producer, byGroup) in pendingTxnOffsets {
            let kept = byGroup.filter { !leaving($0.key) }
            pendingTxnOffsets[producer] = kept.isEmpty ? nil : kept
        }
        return dropped.sorted()
    }

    func newClassic(_ id: String, now: Int64) -> ClassicGroup {
        ClassicGroup(id: id, now: now, initialDelayMs: config.initialRebalanceDelayMs)
    }

    static func validID(_ id: String) -> Bool { !id.isEmpty && id.utf8.count <= GroupLimits.idBytesMax }

    mutating func newMemberID(prefix: String) -> String {
        let uuid = KafkaUUID.random(using: &random).description
        return prefix.isEmpty ? uuid : "\(prefix.prefix(GroupLimits.idBytesMax / 2))-\(uuid)"
    }

    // MARK: classic protocol

    public mutating func join(_ request: JoinRequest, pending: PendingID, now: Int64) -> Effects {
        var effects = Effects()
        func fail(_ code: ErrorCode) -> Effects {
            effects.joins.append((pending, .failed(code, memberID: request.memberID)))
            return effects
        }
        guard Self.validID(request.groupID) else { return fail(.invalidGroupID) }
        guard request.memberID.utf8.count <= GroupLimits.idBytesMax, (request.instanceID?.utf8.count ?? 0) <= GroupLimits.idBytesMax,
              !request.protocols.isEmpty, request.protocols.count <= GroupLimits.protocolsPerMemberMax,
              request.protocols.allSatisfy({ $0.metadata.count <= GroupLimits.memberMetadataBytesMax }),
              !request.protocolType.isEmpty else {
            return fail(.inconsistentGroupProtocol)
        }
        guard request.sessionTimeoutMs >= config.minSessionTimeoutMs, request.sessionTimeoutMs <= config.maxSessionTimeoutMs else {
            return fail(.invalidSessionTimeout)
        }
        var entry: GroupEntry
        if let existing = groups[request.groupID] {
            entry = existing
        } else {
            guard request.memberID.isEmpty else { return fail(.unknownMemberID) }
            guard groups.count < GroupLimits.groupsMax else { return fail(.coordinatorNotAvailable) }
            entry = GroupEntry(kind: .classic(newClassic(request.groupID, now: now)))
        }
        var group: ClassicGroup
        switch entry.kind {
        case .classic(let g): group = g
        case .consumer(let g):
            // An empty KIP-848 group may become classic; a live one may not.
            guard g.isEmpty else { return fail(.inconsistentGroupProtocol) }
            group = newClassic(request.groupID, now: now)
        }
        // A new member id only for a join without one (drawing it costs randomness and a string).
        let memberID = request.memberID.isEmpty ? newMemberID(prefix: request.clientID) : ""
        group.join(request, pending: pending, newMemberID: memberID, config: config, now: now, effects: &effects)
        entry.kind = .classic(group)
        groups[request.groupID] = entry
        return effects
    }

    public mutating func sync(_ request: SyncRequest, pending: PendingID, now: Int64) -> Effects {
        var effects = Effects()
        guard Self.validID(request.groupID) else {
            effects.syncs.append((pending, SyncResult(error: .invalidGroupID)))
            return effects
        }
        guard case .classic(var group)? = groups[request.groupID]?.kind else {
            effects.syncs.append((pending, SyncResult(error: .unknownMemberID)))
            return effects
        }
        let limit = GroupLimits.memberMetadataBytesMax
        guard request.assignments.values.allSatisfy({ $0.count <= limit }) else {
            effects.syncs.append((pending, SyncResult(error: .invalidRequest)))
            return effects
        }
        group.sync(request, pending: pending, now: now, effects: &effects)
        groups[request.groupID]!.kind = .classic(group)
        return effects
    }

    public mutating func heartbeat(groupID: String, memberID: String, instanceID: String?, generation: Int32,
                                   now: Int64) -> ErrorCode {
        guard Self.validID(groupID) else { return .invalidGroupID }
        guard let entry = groups[groupID] else { return .unknownMemberID }
        guard case .classic(var group) = entry.kind else { return .unknownMemberID }
        let code = group.heartbeat(memberID: memberID, instanceID: instanceID, generation: generation, now: now)
        groups[groupID]!.kind = .classic(group)
        return code
    }

    /// LeaveGroup: one error for each member, in order (or the group's error for all of them).
    public mutating func leave(groupID: String, members: [(memberID: String, instanceID: String?)],
                               now: Int64) -> (ErrorCode, [ErrorCode], Effects) {
        var effects = Effects()
        guard Self.validID(groupID) else { return (.invalidGroupID, [], effects) }
        guard case .classic(var group)? = groups[groupID]?.kind else { return (.unknownMemberID, [], effects) }
        var codes: [ErrorCode] = []
        for m in members {
            codes.append(group.leave(memberID: m.memberID, instanceID: m.instanceID, now: now, effects: &effects))
        }
        groups[groupID]!.kind = .classic(group)
        return (.none, codes, effects)
    }

    // MARK: KIP-848

    /// A KIP-848 heartbeat; `overrides` are the group's own configs (its GROUP config resource).
    public mutating func consumerHeartbeat(_ request: ConsumerHeartbeatRequest, topics: any TopicsView,
                                           overrides: GroupOverrides? = nil, now: Int64) -> ConsumerHeartbeatResult {
        guard Self.validID(request.groupID) else { return .failed(.invalidGroupID, "The group id is not valid.") }
        guard request.memberID.utf8.count <= GroupLimits.idBytesMax, (request.instanceID?.utf8.count ?? 0) <= GroupLimits.idBytesMax else {
            return .failed(.invalidRequest, "An id is too long.")
        }
        guard (request.subscribedTopicNames?.count ?? 0) <= GroupLimits.subscribedTopicsMax else {
            return .failed(.invalidRequest, "Too many subscribed topics.")
        }
        var entry: GroupEntry
        if let existing = groups[request.groupID] {
            entry = existing
        } else {
            guard request.memberEpoch == 0 else { return .failed(.unknownMemberID, "Unknown member \(request.memberID).") }
            guard groups.count < GroupLimits.groupsMax else { return .failed(.coordinatorNotAvailable, "Too many groups.") }
            entry = GroupEntry(kind: .consumer(ConsumerGroup(id: request.groupID, now: now)))
        }
        var group: ConsumerGroup
        switch entry.kind {
        case .consumer(let g): group = g
        case .classic(let g):
            guard g.isEmpty, request.memberEpoch == 0 else {
                return .failed(.groupIDNotFound, "Group \(request.groupID) is not a consumer group.")
            }
            // An empty classic group (or offsets alone) becomes a consumer group, offsets kept.
            group = ConsumerGroup(id: request.groupID, now: now)
        }
        let wasEmpty = group.isEmpty
        let memberID = request.memberEpoch == 0 && request.memberID.isEmpty ? newMemberID(prefix: "") : ""
        let result = group.heartbeat(request, newMemberID: memberID, topics: topics, config: config.applying(overrides), now: now)
        if wasEmpty != group.isEmpty { group.stateSince = now }
        entry.kind = .consumer(group)
        groups[request.groupID] = entry
        return result
    }

    // MARK: offsets

    public struct CommitCheck: Sendable {
        /// For every partition when set.
        public var groupError: ErrorCode = .none
        public var partitionErrors: [TopicPartition: ErrorCode] = [:]
        /// To write, then `applyCommitted`.
        public var records: [GroupRecord] = []

        public init(groupError: ErrorCode = .none) { self.groupError = groupError }
    }

    /// OffsetCommit: checks the committer and returns the records to write. `generation` is the
    /// classic generation or the KIP-848 member epoch (-1: a commit from outside the group).
    public mutating func checkCommit(groupID: String, generation: Int32, memberID: String, instanceID: String?,
                                     offsets: [(TopicPartition, CommittedOffset)], now: Int64) -> CommitCheck {
        var check = CommitCheck()
        check.groupError = committerError(groupID: groupID, generation: generation, memberID: memberID, instanceID: instanceID,
                                          transactional: false)
        guard check.groupError == .none else { return check }
        let existing = groups[groupID]?.offsets.count ?? 0
        for (tp, committed) in offsets {
            if committed.metadata.utf8.count > config.offsetMetadataMaxBytes {
                check.partitionErrors[tp] = .offsetMetadataTooLarge
            } else if existing + check.records.count >= GroupLimits.offsetsPerGroupMax {
                check.partitionErrors[tp] = .invalidCommitOffsetSize
            } else {
                check.partitionErrors[tp] = ErrorCode.none
                check.records.append(.offset(group: groupID, tp, committed))
            }
        }
        return check
    }

    /// Records written to the log (or read back from it at load) take effect.
    public mutating func replay(_ record: GroupRecord, now: Int64) {
        switch record {
        case .offset(let group, let tp, let committed):
            if groups[group] == nil { groups[group] = GroupEntry(kind: .classic(newClassic(group, now: now))) }
            groups[group]!.offsets[tp] = committed
        case .offsetTombstone(let group, let tp):
            groups[group]?.offsets[tp] = nil
        case .groupMetadata(let snap):
            var entry = groups[snap.groupID] ?? GroupEntry(kind: .classic(newClassic(snap.groupID, now: now)))
            entry.kind = .classic(ClassicGroup(restoring: snap, now: now, initialDelayMs: config.initialRebalanceDelayMs))
            groups[snap.groupID] = entry
        case .groupTombstone(let group):
            groups[group] = nil
        }
    }

    /// TxnOffsetCommit's check of the committer (KIP-447), as Kafka's coordinator makes it: a
    /// consumer that names its member and generation (v3+) must still be that member in that
    /// generation, so offsets from a member a rebalance has replaced (a zombie whose partitions
    /// another member now reads) cannot commit with its transaction. Without a member and
    /// generation (v0-2, or a client outside group management) the commit is taken, as Kafka
    /// takes it. `generation` is the classic generation or the KIP-848 member epoch.
    public func checkTxnCommit(groupID: String, generation: Int32, memberID: String, instanceID: String?) -> ErrorCode {
        committerError(groupID: groupID, generation: generation, memberID: memberID, instanceID: instanceID, transactional: true)
    }

    /// The committer check of OffsetCommit and (`transactional`) TxnOffsetCommit, one function as
    /// Kafka's validateOffsetCommit. A commit from outside group management (no generation, no
    /// member, no instance) is taken by an empty group, and always with a transaction on a
    /// classic group; otherwise the committer must be a member of the current generation (a
    /// fenced static instance, an unknown member, an old generation are refused), and a classic
    /// group between its join and its sync refuses plain commits. A KIP-848 member's stale epoch
    /// is STALE_MEMBER_EPOCH, or ILLEGAL_GENERATION with a transaction (as Kafka answers).
    func committerError(groupID: String, generation: Int32, memberID: String, instanceID: String?,
                        transactional: Bool) -> ErrorCode {
        guard Self.validID(groupID) else { return .invalidGroupID }
        let unnamed = generation < 0 && memberID.isEmpty && instanceID == nil
        guard let entry = groups[groupID] else {
            // A named generation of a group that is not here is gone.
            if transactional ? generation >= 0 : !unnamed { return .illegalGeneration }
            return groups.count >= GroupLimits.groupsMax ? .coordinatorNotAvailable : .none
        }
        switch entry.kind {
        case .classic(let g):
            if g.state == .dead { return .coordinatorNotAvailable }
            if g.state == .empty && generation < 0 && (transactional || unnamed) { return .none }
            if transactional && unnamed { return .none }
            if let instance = instanceID, let owner = g.staticMembers[instance], owner != memberID { return .fencedInstanceID }
            guard g.member(memberID) != nil else { return .unknownMemberID }
            guard generation == g.generation else { return .illegalGeneration }
            return !transactional && g.state == .completingRebalance ? .rebalanceInProgress : .none
        case .consumer(let g):
            if g.isEmpty && generation < 0 && (transactional || unnamed) { return .none }
            guard let member = g.members[memberID] else { return .unknownMemberID }
            guard generation == member.memberEpoch else { return transactional ? .illegalGeneration : .staleMemberEpoch }
            return .none
        }
    }

    /// Offsets a transaction wrote (or that the load read back from a transactional batch):
    /// held until the transaction ends.
    public mutating func addPendingTxnOffsets(producerID: ProducerID, groupID: String, _ offsets: [(TopicPartition, CommittedOffset)]) {
        for (tp, committed) in offsets { pendingTxnOffsets[producerID, default: [:]][groupID, default: [:]][tp] = committed }
    }

    /// A transaction's marker: its offsets take effect (commit) or are dropped (abort).
    public mutating func completeTxnOffsets(producerID: ProducerID, commit: Bool, now: Int64) {
        guard let pending = pendingTxnOffsets.removeValue(forKey: producerID), commit else { return }
        for (group, offsets) in pending.sorted(by: { $0.key < $1.key }) {
            for (tp, committed) in offsets { replay(.offset(group: group, tp, committed), now: now) }
        }
    }

    /// Whether an open transaction holds an offset of `groupID` for `tp` (OffsetFetch's
    /// `require_stable` answers UNSTABLE_OFFSET_COMMIT then).
    public func hasPendingTxnOffset(groupID: String, _ tp: TopicPartition) -> Bool {
        pendingTxnOffsets.values.contains { $0[groupID]?[tp] != nil }
    }

    /// OffsetFetch for one group: the committed offsets of `partitions` (all of them when nil).
    /// A KIP-848 member that names itself is checked (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH).
    public func fetchOffsets(groupID: String, partitions: [TopicPartition]?, memberID: String?,
                             memberEpoch: Int32) -> (ErrorCode, [(TopicPartition, CommittedOffset?)]) {
        guard Self.validID(groupID) else { return (.invalidGroupID, []) }
        let entry = groups[groupID]
        if let memberID, memberEpoch >= 0, case .consumer(let g)? = entry?.kind {
            guard let member = g.members[memberID] else { return (.unknownMemberID, []) }
            if member.memberEpoch != memberEpoch { return (.staleMemberEpoch, []) }
        }
        let offsets = entry?.offsets ?? [:]
        if let partitions { return (.none, partitions.map { ($0, offsets[$0]) }) }
        return (.none, offsets.keys.sorted().map { ($0, offsets[$0]) })
    }

    // MARK: administration

    /// DeleteGroups for one group: tombstones for its offsets and metadata.
    public mutating func deleteGroup(_ groupID: String) -> (ErrorCode, [GroupRecord]) {
        guard Self.validID(groupID) else { return (.invalidGroupID, []) }
        guard let entry = groups[groupID] else { return (.groupIDNotFound, []) }
        guard entry.isEmpty else { return (.nonEmptyGroup, []) }
        var records = entry.offsets.keys.sorted().map { GroupRecord.offsetTombstone(group: groupID, $0) }
        records.append(.groupTombstone(group: groupID))
        groups[groupID] = nil
        return (.none, records)
    }

    /// OffsetDelete: a topic the group is still subscribed to keeps its offsets.
    public mutating func deleteOffsets(groupID: String, partitions: [TopicPartition])
        -> (ErrorCode, [TopicPartition: ErrorCode], [GroupRecord]) {
        guard Self.validID(groupID) else { return (.invalidGroupID, [:], []) }
        guard let entry = groups[groupID] else { return (.groupIDNotFound, [:], []) }
        let subscribed = subscribedTopics(entry)
        var errors: [TopicPartition: ErrorCode] = [:]
        var records: [GroupRecord] = []
        for tp in partitions {
            if subscribed.contains(tp.topic) {
                errors[tp] = .groupSubscribedToTopic
            } else {
                errors[tp] = ErrorCode.none
                if groups[groupID]!.offsets.removeValue(forKey: tp) != nil {
                    records.append(.offsetTombstone(group: groupID, tp))
                }
            }
        }
        return (.none, errors, records)
    }

    /// The topics a group's live members subscribe to.
    public func subscribedTopics(_ entry: GroupEntry) -> Set<String> {
        switch entry.kind {
        case .classic(let g):
            guard g.protocolType == "consumer" else { return [] }
            return Set(g.members.flatMap { ConsumerProtocol.subscribedTopics($0.metadata(for: g.protocolName)) ?? [] })
        case .consumer(let g):
            return Set(g.members.values.flatMap(\.subscribedTopics))
        }
    }

    // MARK: time

    /// Sessions, join and sync deadlines, and (every offsets.retention.check.interval.ms) the
    /// expiry of old offsets and of empty groups with none left.
    public mutating func tick(now: Int64) -> Effects {
        var effects = Effects()
        for id in groups.keys.sorted() {
            switch groups[id]!.kind {
            case .classic(var g):
                g.tick(now: now, effects: &effects)
                groups[id]!.kind = .classic(g)
            case .consumer(var g):
                let wasEmpty = g.isEmpty
                if !g.tick(now: now).isEmpty, g.isEmpty, !wasEmpty { g.stateSince = now }
                groups[id]!.kind = .consumer(g)
            }
        }
        if now - lastExpiryCheck >= config.offsetsRetentionCheckIntervalMs {
            lastExpiryCheck = now
            expireOffsets(now: now, effects: &effects)
        }
        return effects
    }

    /// Kafka's rule: a group's offsets expire `offsets.retention.minutes` after it became empty;
    /// offsets committed from outside any group (no protocol) expire that long after their
    /// commit. An empty group left with no offsets is removed.
    mutating func expireOffsets(now: Int64, effects: inout Effects) {
        let retention = config.offsetsRetentionMs
        for id in groups.keys.sorted() {
            guard let entry = groups[id], entry.isEmpty else { continue }
            let standalone = entry.protocolType.isEmpty
            for (tp, c) in entry.offsets.sorted(by: { $0.key < $1.key }) {
                let since = standalone ? c.commitTimestamp.ms : max(entry.stateSince, c.commitTimestamp.ms)
                if now - since >= retention {
                    groups[id]!.offsets[tp] = nil
                    effects.records.append(.offsetTombstone(group: id, tp))
                }
            }
            if groups[id]!.offsets.isEmpty {
                groups[id] = nil
                effects.records.append(.groupTombstone(group: id))
            }
        }
    }
}
