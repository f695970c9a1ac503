@testable import BrookGroups
import BrookCore
import BrookProtocol
import Testing

// Shared fixtures for the BrookGroups tests: a classic-protocol driver and a KIP-848 driver
// around one GroupCoordinator, with a hand-advanced clock (no real time anywhere).

extension GroupConfig {
    /// Kafka's defaults, with the initial rebalance delay and anything else set by the test.
    static func testing(delay: Int32 = 3_000, _ configure: (inout GroupConfig) -> Void = { _ in }) -> GroupConfig {
        var config = GroupConfig()
        config.initialRebalanceDelayMs = delay
        configure(&config)
        return config
    }
}

/// A consumer-protocol member's offer: an assignor name and its subscription.
func consumerProtocol(_ name: String = "range", topics: [String] = ["orders"]) -> GroupProtocol {
    GroupProtocol(name: name, metadata: ConsumerProtocol.encodeSubscription(topics))
}

func joinAnswer(_ effects: Effects, _ pending: PendingID) -> JoinResult? {
    let hits = effects.joins.filter { $0.0 == pending }
    #expect(hits.count <= 1, "request \(pending) answered \(hits.count) times")
    return hits.first?.1
}

func syncAnswer(_ effects: Effects, _ pending: PendingID) -> SyncResult? {
    let hits = effects.syncs.filter { $0.0 == pending }
    #expect(hits.count <= 1, "request \(pending) answered \(hits.count) times")
    return hits.first?.1
}

func committed(_ offset: Int64, metadata: String = "", at ms: Int64, epoch: Int32 = 0) -> CommittedOffset {
    CommittedOffset(offset: Offset(offset), leaderEpoch: LeaderEpoch(epoch), metadata: metadata, commitTimestamp: Timestamp(ms: ms))
}

/// Drives one classic group of a coordinator as the broker would: every held request gets a
/// fresh PendingID, and time only moves through `advance` / `tick(at:)`.
struct ClassicHarness {
    var gc: GroupCoordinator
    var now: Int64 = 1_000_000
    var lastPending: UInt64 = 0
    let group: String
    static let sessionMs: Int32 = 10_000
    static let rebalanceMs: Int32 = 30_000

    init(config: GroupConfig = .testing(), group: String = "g", seed: UInt64 = 7) {
        gc = GroupCoordinator(config: config, seed: seed)
        self.group = group
    }

    mutating func nextPending() -> PendingID {
        lastPending += 1
        return PendingID(lastPending)
    }

    mutating func join(_ memberID: String = "", instance: String? = nil, protocolType: String = "consumer",
                       protocols: [GroupProtocol] = [consumerProtocol()], session: Int32 = sessionMs,
                       rebalance: Int32 = rebalanceMs, requireKnown: Bool = true, skip: Bool = false,
                       clientID: String = "client") -> (PendingID, Effects) {
        let pending = nextPending()
        let request = JoinRequest(groupID: group, memberID: memberID, instanceID: instance, protocolType: protocolType,
                                  protocols: protocols, sessionTimeoutMs: session, rebalanceTimeoutMs: rebalance,
                                  requireKnownMemberID: requireKnown, supportsSkipAssignment: skip,
                                  clientID: clientID, clientHost: "/127.0.0.1")
        return (pending, gc.join(request, pending: pending, now: now))
    }

    /// The KIP-394 round trip: a join without a member id, answered MEMBER_ID_REQUIRED with one.
    mutating func requestMemberID(protocols: [GroupProtocol] = [consumerProtocol()],
                                  sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let (pending, effects) = join(protocols: protocols)
        let answer = try #require(joinAnswer(effects, pending), sourceLocation: sourceLocation)
        try #require(answer.error == .memberIDRequired, sourceLocation: sourceLocation)
        try #require(!answer.memberID.isEmpty, sourceLocation: sourceLocation)
        return answer.memberID
    }

    mutating func sync(_ memberID: String, generation: Int32, instance: String? = nil,
                       assignments: [String: [UInt8]] = [:]) -> (PendingID, Effects) {
        let pending = nextPending()
        let request = SyncRequest(groupID: group, generation: generation, memberID: memberID, instanceID: instance,
                                  protocolType: "consumer", protocolName: nil, assignments: assignments)
        return (pending, gc.sync(request, pending: pending, now: now))
    }

    mutating func heartbeat(_ memberID: String, generation: Int32, instance: String? = nil) -> ErrorCode {
        gc.heartbeat(groupID: group, memberID: memberID, instanceID: instance, generation: generation, now: now)
    }

    mutating func leave(_ memberID: String, instance: String? = nil) -> (ErrorCode, [ErrorCode], Effects) {
        gc.leave(groupID: group, members: [(memberID: memberID, instanceID: instance)], now: now)
    }

    mutating func tick(at time: Int64) -> Effects {
        now = time
        return gc.tick(now: time)
    }

    mutating func advance(_ ms: Int64) -> Effects { tick(at: now + ms) }

    var classic: ClassicGroup? {
        if case .classic(let g)? = gc.group(group)?.kind { return g }
        return nil
    }
    var state: ClassicState? { classic?.state }
    var generation: Int32 { classic?.generation ?? -1 }
    var memberIDs: [String] { classic?.members.map(\.memberID) ?? [] }

    /// Forms a Stable group, one member per entry of `instances` (nil: a dynamic member, which
    /// goes through MEMBER_ID_REQUIRED first). The first member is the leader; member i is
    /// assigned `[i + 1]`. Followers sync before the leader. Returns the member ids in order.
    mutating func formStable(_ instances: [String?], sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        var ids: [String?] = instances.map { _ in nil }
        for (i, instance) in instances.enumerated() where instance == nil {
            ids[i] = try requestMemberID(sourceLocation: sourceLocation)
        }
        var pendings: [PendingID] = []
        var answers: [PendingID: JoinResult] = [:]
        for (i, instance) in instances.enumerated() {
            let (pending, effects) = join(ids[i] ?? "", instance: instance)
            pendings.append(pending)
            for (p, r) in effects.joins { answers[p] = r }
        }
        if state == .preparingRebalance {
            for (p, r) in advance(Int64(gc.config.initialRebalanceDelayMs)).joins { answers[p] = r }
        }
        try #require(state == .completingRebalance, sourceLocation: sourceLocation)
        var members: [String] = []
        for pending in pendings {
            let answer = try #require(answers[pending], sourceLocation: sourceLocation)
            try #require(answer.error == .none, sourceLocation: sourceLocation)
            try #require(answer.generation == generation, sourceLocation: sourceLocation)
            members.append(answer.memberID)
        }
        try #require(classic?.leaderID == members[0], sourceLocation: sourceLocation)
        for (i, id) in members.enumerated().dropFirst() {
            let (_, effects) = sync(id, generation: generation, instance: instances[i])
            try #require(effects.syncs.isEmpty, sourceLocation: sourceLocation)
        }
        var assignments: [String: [UInt8]] = [:]
        for (i, id) in members.enumerated() { assignments[id] = [UInt8(i + 1)] }
        let (_, effects) = sync(members[0], generation: generation, instance: instances[0], assignments: assignments)
        try #require(effects.syncs.count == members.count, sourceLocation: sourceLocation)
        try #require(state == .stable, sourceLocation: sourceLocation)
        return members
    }
}

/// Drives one KIP-848 consumer group through ConsumerGroupHeartbeat.
struct ConsumerHarness {
    static let orders = KafkaUUID(high: 0x0A, low: 0x01)
    static let payments = KafkaUUID(high: 0x0B, low: 0x02)

    var gc: GroupCoordinator
    var topics: StaticTopics
    var now: Int64 = 1_000_000
    let group = "cg"
    /// The group's own configs, given with every heartbeat.
    var overrides: GroupOverrides?

    init(config: GroupConfig = .testing(), orders: Int32 = 6) {
        gc = GroupCoordinator(config: config, seed: 11)
        topics = StaticTopics(["orders": (id: Self.orders, partitions: orders), "payments": (id: Self.payments, partitions: 4)])
    }

    mutating func heartbeat(_ memberID: String, epoch: Int32, subscribe: [String]? = nil, owned: Assignment? = nil,
                            assignor: String? = nil, instance: String? = nil) -> ConsumerHeartbeatResult {
        let request = ConsumerHeartbeatRequest(groupID: group, memberID: memberID, memberEpoch: epoch, instanceID: instance,
                                               rebalanceTimeoutMs: epoch == 0 ? 60_000 : -1, subscribedTopicNames: subscribe,
                                               serverAssignor: assignor, ownedPartitions: owned, clientID: "client")
        return gc.consumerHeartbeat(request, topics: topics, overrides: overrides, now: now)
    }

    mutating func tick(at time: Int64) -> Effects {
        now = time
        return gc.tick(now: time)
    }

    var consumer: ConsumerGroup? {
        if case .consumer(let g)? = gc.group(group)?.kind { return g }
        return nil
    }

    func member(_ id: String) -> ConsumerMember? { consumer?.members[id] }
}

/// Partitions of `orders`, the usual subject of the KIP-848 tests.
func orders(_ partitions: Int32...) -> Assignment { [ConsumerHarness.orders: Set(partitions)] }
func orders(_ partitions: Range<Int32>) -> Assignment { [ConsumerHarness.orders: Set(partitions)] }
