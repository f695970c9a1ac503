import BrookCore
import BrookRecords
import BrookProtocol
import NIOCore

/// Where a seek goes.
public enum OffsetSpec: Sendable, Equatable {
    case earliest
    case latest
    /// The first record at or after this time (ms since the epoch); the end when none is.
    case timestamp(Int64)
    case offset(Offset)
}

/// What a subscribed consumer hears of its partitions changing.
public struct RebalanceListener: Sendable {
    /// Partitions the group gave this member (they start at the group's committed offsets).
    public var assigned: @Sendable ([TopicPartition]) async -> Void
    /// Partitions given up (with `enable.auto.commit`, their positions were committed first).
    public var revoked: @Sendable ([TopicPartition]) async -> Void
    /// Partitions lost without a commit: the member was fenced (another may read them now).
    public var lost: @Sendable ([TopicPartition]) async -> Void

    public init(assigned: @escaping @Sendable ([TopicPartition]) async -> Void = { _ in },
                revoked: @escaping @Sendable ([TopicPartition]) async -> Void = { _ in },
                lost: @escaping @Sendable ([TopicPartition]) async -> Void = { _ in }) {
        self.assigned = assigned
        self.revoked = revoked
        self.lost = lost
    }
}

/// A Kafka consumer in Swift: partitions assigned by the application (`assign`) or by a
/// KIP-848 group (`subscribe`), fetched from each partition's leader (one fetch in flight per
/// broker, the next sent while the application handles what came), read_committed, seeks by
/// offset and time, pause and resume, and commits to a group's offsets.
///
/// ```swift
/// var config = ConsumerConfig(bootstrapServers: ["127.0.0.1:9092"])
/// config.offsetReset = .earliest
/// let consumer = KafkaConsumer(config)
/// try await consumer.assign([TopicPartition("events", 0)])
/// for try await record in consumer.records { print(record.offset, record.value ?? []) }
/// ```
///
/// At most one fetch's worth of each partition (`max.partition.fetch.bytes`) is held: a
/// partition is fetched again once what came of it was returned. Groups speak the `consumer`
/// protocol (KIP-848: the broker assigns); the classic protocol (JoinGroup and SyncGroup, with
/// the assignment computed by a member) is not built yet.
public actor KafkaConsumer {
    public nonisolated let config: ConsumerConfig
    let cluster: ClusterClient
    var positions = FetchPositions()
    var topics: [String: TopicMeta] = [:]
    /// The brokers a fetch is in flight to.
    var fetchingFrom: Set<NodeID> = []
    /// The listener's last call (`tell` runs them one at a time).
    var listenerTail: Task<Void, Never>?
    /// Each broker's incremental fetch session (KIP-227).
    var fetchSessions: [NodeID: FetchSession] = [:]
    /// The number of the last fetch sent (to any broker; `FetchPositions.sent(slot:fetch:)`).
    var fetchNumber: UInt64 = 0
    /// KIP-392: partitions a leader sent to a replica in this consumer's rack (`client.rack`),
    /// fetched there until when (`metadata.max.age.ms` after, as the Java client), or until it
    /// refuses a fetch.
    var readReplicas: [TopicPartition: (node: NodeID, untilMs: Int64)] = [:]
    /// Brokers not fetched from again before this time (after an error).
    var backoffUntilMs: [NodeID: Int64] = [:]
    /// What the next `poll` throws.
    var failure: ConsumeError?
    var closed = false
    var findingStarts = false
    /// After a search for starts that did not find them all: not again before this.
    var startsRetryAtMs = Int64.min
    var refreshing = false
    var lastRefreshMs = Int64.min / 2
    var lastAutoCommitMs: Int64
    var autoCommitting: Task<Void, Never>?
    /// `commitAsync`: the commit under way, and the next one (the offsets of every call made
    /// meanwhile, the later ones winning, with each call's completion).
    var asyncCommitting: Task<Void, Never>?
    var nextAsyncCommit: (offsets: [TopicPartition: Offset], completions: [CommitCompletion])?
    var timerAtMs: Int64?
    /// Polls waiting for records (any number of tasks may poll).
    var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    var nextWaiter: UInt64 = 0
    let clock = ElapsedClock()
    // Group membership (subscribe).
    var membership: ConsumerMembership = {
        var random = SystemRandomNumberGenerator()
        return ConsumerMembership(memberID: KafkaUUID.random(using: &random).description)
    }()
    /// A classic group's membership (`group.protocol=classic`), and the connections its
    /// requests go on: a JoinGroup waits for the whole group, and a broker answers a
    /// connection's requests in order, so the group has connections of its own (as Java's and
    /// librdkafka's coordinator connections).
    var classic: ClassicMembership
    let groupCluster: ClusterClient
    var classicMetadataCheckedMs: Int64 = 0
    var listener: RebalanceListener?
    /// A pattern subscription's regular expression, and when it was last matched.
    var pattern: String?
    var patternMatchedMs = Int64.min / 2
    var coordinatorNode: NodeID?
    var membershipTask: Task<Void, Never>?
    var membershipSleeper: CheckedContinuation<Void, Never>?
    /// When a `poll` last began or ended, and how many are under way: a member that has not
    /// polled for `max.poll.interval.ms` leaves the group until it polls again.
    var lastPollMs: Int64 = 0
    var polling = 0

    struct TopicMeta {
        var leaders: [NodeID?]
        var id: KafkaUUID
        var fetchedMs: Int64

        /// Partition `index`'s leader, if known.
        func leader(of index: Int32) -> NodeID? {
            index >= 0 && index < leaders.count ? leaders[Int(index)] : nil
        }
    }

    /// A consumer whose connections are opened by `connect` (with TLS or SASL as the caller
    /// wants them).
    public init(_ config: ConsumerConfig, connect: @escaping ClusterClient.Connect) {
        self.config = config
        cluster = ClusterClient(bootstrap: config.bootstrapServers, requestTimeoutMs: config.requestTimeoutMs, connect: connect)
        groupCluster = ClusterClient(bootstrap: config.bootstrapServers, requestTimeoutMs: config.requestTimeoutMs, connect: connect)
        // (Settings made in code, not through properties, are held to what the core needs.)
        classic = ClassicMembership(assignors: config.assignors.isEmpty ? [.range] : config.assignors,
                                    heartbeatIntervalMs: max(1, config.heartbeatIntervalMs), rack: config.rack)
        lastAutoCommitMs = 0
    }

    /// A consumer over plain connections, or with `sasl` and `tls` when given.
    public init(_ config: ConsumerConfig, sasl: SaslCredentials? = nil, tls: ClientTLS? = nil) {
        let clientID = config.clientID
        self.init(config) { address in
            try await BrokerConnection.connect(address, clientID: clientID, sasl: sasl, tls: tls)
        }
    }

    func nowMs() -> Int64 { clock.nowMs() }

    // MARK: assignment and positions

    /// Reads exactly `partitions` from now on (partitions kept keep their positions). A new
    /// partition starts at its group's committed offset, or by `auto.offset.reset`.
    public func assign(_ partitions: [TopicPartition]) async throws {
        guard !closed else { throw ConsumeError(nil, "the consumer is closed") }
        guard groupPhase == .idle else { throw ConsumeError(nil, "a subscribed consumer's partitions are the group's to assign") }
        positions.assign(partitions)
        let missing = Set(partitions.map(\.topic)).filter { topics[$0] == nil }
        if !missing.isEmpty { try? await refresh() }
        kick()
    }

    public func assignment() -> [TopicPartition] { positions.assigned }

    /// The partitions of `topic` (as the cluster's metadata has them now).
    public func partitions(of topic: String) async throws -> [Int32] {
        let answer = try await cluster.metadata(topics: [topic])
        guard let found = answer.topics.first(where: { $0.name == topic }) else { throw ConsumeError(.unknownTopicOrPartition, "topic \(topic)") }
        guard found.errorCode == 0 else { throw ConsumeError(ErrorCode(rawValue: found.errorCode), "topic \(topic)") }
        return found.partitions.map(\.partitionIndex).sorted()
    }

    /// The offset of the next record `poll` returns for `partition` (nil: not found yet, or
    /// not assigned).
    public func position(_ partition: TopicPartition) -> Offset? {
        positions.state(partition)?.position
    }

    /// The high watermark the last fetch of `partition` saw.
    public func highWatermark(_ partition: TopicPartition) -> Offset? {
        positions.state(partition)?.highWatermark
    }

    /// Moves `partitions` to `spec`: an offset, their start, their end, or the first record
    /// at or after a time.
    public func seek(_ partitions: [TopicPartition], to spec: OffsetSpec) async throws {
        let partitions = Array(Set(partitions)).sorted()
        let assigned = partitions.filter { positions.state($0) != nil }
        guard assigned.count == partitions.count else {
            throw ConsumeError(nil, "seek on partitions not assigned: \(partitions.filter { positions.state($0) == nil })")
        }
        switch spec {
        case .offset(let offset):
            guard offset.value >= 0 else { throw ConsumeError(.offsetOutOfRange, "seek to \(offset)") }
            for partition in partitions { positions.seek(partition, to: offset) }
        case .earliest, .latest, .timestamp:
            let found = try await listOffsets(partitions, spec)
            for partition in partitions {
                guard let offset = found[partition] else {
                    throw ConsumeError(.leaderNotAvailable, "no offset for \(partition) within request.timeout.ms")
                }
                positions.seek(partition, to: offset)
            }
        }
        kick()
    }

    /// Stops returning (and fetching) `partitions`' records until `resume`.
    public func pause(_ partitions: [TopicPartition]) {
        for partition in partitions { positions.pause(partition, true) }
    }

    public func resume(_ partitions: [TopicPartition]) {
        for partition in partitions { positions.pause(partition, false) }
        kick()
    }

    // MARK: polling

    /// The next records (up to `max.poll.records`), waiting up to `timeoutMs` for some; empty
    /// when none came. Throws what went wrong since the last call (a partition out of range
    /// with `auto.offset.reset=none`, a refused fetch, a damaged batch).
    public func poll(timeoutMs: Int64 = 1000) async throws -> [ConsumedRecord] {
        guard !closed else { throw ConsumeError(nil, "the consumer is closed") }
        let deadline = nowMs() + max(0, timeoutMs)
        polling += 1
        lastPollMs = nowMs()
        defer {
            polling -= 1
            lastPollMs = nowMs()
        }
        rejoinIfStale()
        while true {
            if let failure {
                self.failure = nil
                throw failure
            }
            autoCommitIfDue()
            let records = positions.drain(max: config.maxPollRecords)
            kick()
            if !records.isEmpty { return records }
            guard !closed, nowMs() < deadline else { return [] }
            await wait(untilMs: deadline)
        }
    }

    /// Every record, as they come (ends when the consumer is closed).
    public nonisolated var records: ConsumerRecords { ConsumerRecords(consumer: self) }

    // MARK: commits

    /// Commits the positions of every started partition to the group (`group.id`).
    public func commit() async throws {
        try await commit(positions.positions)
    }

    /// Commits `offsets` (the next record to read, per partition) to the group, after the
    /// `commitAsync` calls made before it.
    public func commit(_ offsets: [TopicPartition: Offset]) async throws {
        await asyncCommitting?.value
        try await commitNow(offsets)
    }

    /// What a `commitAsync` call is told: the offsets committed, or why not.
    public typealias CommitCompletion = @Sendable (Result<[TopicPartition: Offset], any Error>) -> Void

    /// Commits without waiting (the Java client's commitAsync): `offsets` (nil: the positions of
    /// every started partition) are committed in the background, after the commits asked
    /// before, and `completion` is told how it went. Calls made while a commit is under way
    /// are merged into the next one (a partition's later offset wins), so at most two are
    /// held. `commit` and `close` wait for them first.
    public func commitAsync(_ offsets: [TopicPartition: Offset]? = nil, completion: CommitCompletion? = nil) {
        let offsets = offsets ?? positions.positions
        var next = nextAsyncCommit ?? (offsets: [:], completions: [])
        next.offsets.merge(offsets) { _, later in later }
        if let completion { next.completions.append(completion) }
        nextAsyncCommit = next
        guard asyncCommitting == nil else { return }
        asyncCommitting = Task {
            while let (offsets, completions) = self.takeNextAsyncCommit() {
                let outcome: Result<[TopicPartition: Offset], any Error>
                do {
                    try await self.commitNow(offsets)
                    outcome = .success(offsets)
                } catch {
                    outcome = .failure(error)
                }
                for completion in completions { completion(outcome) }
            }
        }
    }

    /// The next async commit, or nil (and the runner ends) when none is asked.
    func takeNextAsyncCommit() -> (offsets: [TopicPartition: Offset], completions: [CommitCompletion])? {
        guard let next = nextAsyncCommit else {
            asyncCommitting = nil
            return nil
        }
        nextAsyncCommit = nil
        return next
    }

    func commitNow(_ offsets: [TopicPartition: Offset]) async throws {
        guard let group = config.groupID else { throw ConsumeError(.invalidGroupID, "commits need group.id") }
        try await cluster.commitOffsets(offsets, group: group, timeoutMs: config.requestTimeoutMs, backoffMs: config.retryBackoffMs) {
            // A member commits under its current epoch (a heartbeat may have moved it).
            await self.member()
        }
    }

    func member() -> GroupMember? {
        if config.groupProtocol == .classic {
            guard classic.phase == .active && classic.generation >= 0 && !classic.memberID.isEmpty else { return nil }
            return GroupMember(id: classic.memberID, epoch: classic.generation, instanceID: config.groupInstanceID)
        }
        guard membership.phase == .active && membership.memberEpoch > 0 else { return nil }
        return GroupMember(id: membership.memberID, epoch: membership.memberEpoch, instanceID: config.groupInstanceID)
    }

    /// The group's committed offsets of `partitions` (a partition without one is left out).
    public func committed(_ partitions: [TopicPartition]) async throws -> [TopicPartition: Offset] {
        guard let group = config.groupID else { throw ConsumeError(.invalidGroupID, "committed offsets need group.id") }
        return try await cluster.committedOffsets(partitions, group: group, timeoutMs: config.requestTimeoutMs, backoffMs: config.retryBackoffMs)
    }

    func autoCommitIfDue() {
        guard config.autoCommit, config.groupID != nil else { return }
        let now = nowMs()
        guard now - lastAutoCommitMs >= config.autoCommitIntervalMs else { return }
        lastAutoCommitMs = now
        guard autoCommitting == nil else { return }
        let snapshot = positions.positions
        // In the background, as the Java client's, one at a time: a failed one is tried at the
        // next interval.
        autoCommitting = Task {
            try? await self.commitNow(snapshot)
            self.autoCommitting = nil
        }
    }

    /// Commits the positions (with `enable.auto.commit` and a group) and closes the
    /// connections; a `poll` waiting returns.
    public func close() async {
        guard !closed else { return }
        // Nothing more is returned while the positions are committed.
        for partition in positions.assigned { positions.block(partition) }
        await autoCommitting?.value
        await asyncCommitting?.value
        if config.autoCommit, config.groupID != nil { try? await commit() }
        if groupPhase == .active {
            let owned = positions.assigned
            if let listener, !owned.isEmpty { await tell { await listener.revoked(owned) } }
            if config.groupProtocol == .classic { await leaveClassic() }
            else if let beat = membership.leave(staticMember: config.groupInstanceID != nil), let group = config.groupID {
                await sendLeave(heartbeatRequest(beat, group: group), group: group, through: cluster, tries: 3, errorCode: \.errorCode)
            }
        }
        closed = true
        membershipTask?.cancel()
        ringMembership()
        wake()
        await closeFetchSessions()
        await cluster.close()
        await groupCluster.close()
    }

    /// Tells each broker holding a fetch session of this consumer to drop it (a fetch at epoch
    /// -1, as the Java client sends at close), so that its slot in the broker's session cache
    /// is free at once rather than when it expires. Best effort, all at once, briefly. (A
    /// session whose first answer has not come yet is not known here, as in the Java client:
    /// the broker's cache lets it expire.)
    func closeFetchSessions() async {
        var closing: [(NodeID, FetchSession.Request)] = []
        for node in Array(fetchSessions.keys) {
            if let request = fetchSessions[node]?.close() { closing.append((node, request)) }
        }
        guard !closing.isEmpty else { return }
        let timeoutMs = min(config.requestTimeoutMs, Self.sessionCloseTimeoutMs)
        await withTaskGroup(of: Void.self) { group in
            for (node, session) in closing {
                var request = Self.fetchRequest(session, config: config)
                request.maxWaitMs = 0
                request.minBytes = 0
                group.addTask { [cluster] in _ = try? await cluster.send(request, toNode: node, timeoutMs: timeoutMs) }
            }
        }
    }

    static let sessionCloseTimeoutMs: Int64 = 1000

    // MARK: starts and metadata

    /// Offsets of `partitions` at `spec`, from their leaders.
    func listOffsets(_ partitions: [TopicPartition], _ spec: OffsetSpec) async throws -> [TopicPartition: Offset] {
        let timestamp: Int64
        switch spec {
        case .earliest: timestamp = -2
        case .latest: timestamp = -1
        case .timestamp(let ms): timestamp = ms
        case .offset(let offset): return Dictionary(uniqueKeysWithValues: partitions.map { ($0, offset) })
        }
        let deadline = nowMs() + config.requestTimeoutMs
        var found: [TopicPartition: Offset] = [:]
        while true {
            for (topic, members) in Dictionary(grouping: partitions.filter { found[$0] == nil }, by: \.topic) {
                let leaders = Dictionary(uniqueKeysWithValues: members.compactMap { p in leader(of: p).map { (p.partition, $0) } })
                guard !leaders.isEmpty else { continue }
                for (partition, offset) in try await cluster.listOffsets(topic: topic, leaders: leaders, timestamp: timestamp,
                                                                         readCommitted: config.readCommitted) {
                    found[TopicPartition(topic, partition)] = offset
                }
            }
            if case .timestamp = spec {
                // No record that late: the end.
                let past = found.filter { $0.value.value < 0 }.map(\.key)
                if !past.isEmpty {
                    for (partition, end) in try await listOffsets(past, .latest) { found[partition] = end }
                }
            }
            if found.count == partitions.count || nowMs() >= deadline { return found }
            try? await refresh()
            try await Task.sleep(for: .milliseconds(max(config.retryBackoffMs, 10)))
        }
    }

    /// Finds where the partitions without a position start: the group's committed offset, or
    /// `auto.offset.reset`. What cannot be found now is tried again after `retry.backoff.ms`.
    func findStarts(_ unstarted: [(partition: TopicPartition, epoch: UInt64, byPolicy: Bool)]) async {
        func later() {
            startsRetryAtMs = nowMs() + max(config.retryBackoffMs, 10)
            scheduleKick(atMs: startsRetryAtMs)
        }
        var committed: [TopicPartition: Offset] = [:]
        let asked = unstarted.filter { !$0.byPolicy }.map(\.partition)
        if config.groupID != nil && !asked.isEmpty {
            do { committed = try await self.committed(asked) } catch {
                // Not the reset policy's start instead of a committed offset that exists.
                if let refused = error as? ConsumeError, let code = refused.code, !ClusterClient.coordinatorMoved.contains(code) {
                    failure = refused
                    wake()
                }
                return later()
            }
        }
        var rest: [(TopicPartition, UInt64)] = []
        for (partition, epoch, _) in unstarted {
            if let offset = committed[partition] { positions.start(partition, at: offset, epoch: epoch) } else { rest.append((partition, epoch)) }
        }
        guard !rest.isEmpty else { return }
        let spec: OffsetSpec
        switch config.offsetReset {
        case .earliest: spec = .earliest
        case .latest: spec = .latest
        case .none:
            failure = ConsumeError(.offsetOutOfRange, "no committed offset for \(rest.map { "\($0.0)" }.joined(separator: ", ")) and auto.offset.reset=none")
            for (partition, _) in rest { positions.block(partition) }
            wake()
            return
        }
        let found = (try? await listOffsets(rest.map(\.0), spec)) ?? [:]
        for (partition, epoch) in rest {
            if let offset = found[partition], offset.value >= 0 { positions.start(partition, at: offset, epoch: epoch) }
        }
        if rest.contains(where: { found[$0.0] == nil }) { later() }
    }

    /// Metadata of the assigned topics: their partitions' leaders and topic ids.
    func refresh() async throws {
        lastRefreshMs = nowMs()
        let names = Array(Set(positions.assigned.map(\.topic) + groupSubscription)).sorted()
        guard !names.isEmpty else { return }
        let answer = try await cluster.metadata(topics: names)
        for topic in answer.topics {
            guard let name = topic.name, topic.errorCode == 0 else { continue }
            let count = Int(topic.partitions.map(\.partitionIndex).max() ?? -1) + 1
            var leaders = [NodeID?](repeating: nil, count: count)
            for p in topic.partitions where p.partitionIndex >= 0 && p.leaderId.value >= 0 && p.errorCode == 0 {
                leaders[Int(p.partitionIndex)] = p.leaderId
            }
            topics[name] = TopicMeta(leaders: leaders, id: topic.topicId, fetchedMs: nowMs())
        }
    }

    func leader(of partition: TopicPartition) -> NodeID? {
        topics[partition.topic].flatMap { $0.leader(of: partition.partition) }
    }

    /// Where `partition` is fetched from: the replica its leader named (KIP-392) while that
    /// holds, else its leader.
    func fetchNode(of partition: TopicPartition, nowMs now: Int64) -> NodeID? {
        guard let meta = topics[partition.topic] else { return nil }
        return fetchNode(of: partition, in: meta, nowMs: now)
    }

    /// `fetchNode(of:nowMs:)` with the partition's topic's metadata at hand.
    func fetchNode(of partition: TopicPartition, in meta: TopicMeta, nowMs now: Int64) -> NodeID? {
        if !readReplicas.isEmpty, let replica = readReplicas[partition] {
            if replica.untilMs > now { return replica.node }
            readReplicas[partition] = nil
        }
        return meta.leader(of: partition.partition)
    }

    /// `partition`'s leader is unknown until the next metadata, or is `hint` (KIP-951).
    func forgetLeader(of partition: TopicPartition, hint: NodeID?) {
        guard var meta = topics[partition.topic], partition.partition >= 0, partition.partition < meta.leaders.count else { return }
        meta.leaders[Int(partition.partition)] = hint.flatMap { $0.value >= 0 ? $0 : nil }
        topics[partition.topic] = meta
    }

    // MARK: fetching

    /// Starts what can start now: finding positions, metadata for partitions without a leader,
    /// a fetch to each broker leading fetchable partitions and not fetched from already.
    func kick() {
        guard !closed else { return }
        let now = nowMs()
        let unstarted = positions.unstarted
        if !unstarted.isEmpty && !findingStarts && now < startsRetryAtMs {
            scheduleKick(atMs: startsRetryAtMs)
        } else if !unstarted.isEmpty && !findingStarts {
            findingStarts = true
            Task {
                await self.findStarts(unstarted)
                self.findingStarts = false
                self.kick()
            }
        }
        // One pass over the fetchable partitions by slot; a topic's metadata is looked up once
        // per run of its partitions, not per partition (see `FetchPositions`).
        var byLeader: [NodeID: [Candidate]] = [:]
        var leaderless = false
        var soonest: Int64?
        var lastTopic: (name: String, meta: TopicMeta?)?
        func meta(_ topic: String) -> TopicMeta? {
            if let lastTopic, lastTopic.name == topic { return lastTopic.meta }
            let found = topics[topic]
            lastTopic = (topic, found)
            return found
        }
        for fetchable in positions.fetchableSlots {
            let partition = positions.order[fetchable.slot]
            guard let topic = meta(partition.topic), let leader = fetchNode(of: partition, in: topic, nowMs: now) else {
                leaderless = true
                continue
            }
            if let until = backoffUntilMs[leader], until > now {
                soonest = min(soonest ?? until, until)
                continue
            }
            if !fetchingFrom.contains(leader) {
                byLeader[leader, default: []].append(Candidate(slot: fetchable.slot, partition: partition, offset: fetchable.offset,
                                                               topicID: topic.id, caughtUp: fetchable.highWatermark.map { fetchable.offset >= $0 } ?? false))
            }
        }
        let stale = positions.assigned.contains { meta($0.topic).map { now - $0.fetchedMs >= config.metadataMaxAgeMs } ?? true }
        if (leaderless || stale) && !refreshing {
            let at = lastRefreshMs + max(config.retryBackoffMs, 10)
            if at <= now {
                refreshing = true
                Task {
                    try? await self.refresh()
                    self.refreshing = false
                    self.kick()
                }
            } else {
                soonest = min(soonest ?? at, at)
            }
        }
        if let soonest { scheduleKick(atMs: soonest) }
        holdBackIdleFetches(&byLeader, nowMs: now)
        for (node, members) in byLeader {
            backoffUntilMs[node] = nil
            fetchingFrom.insert(node)
            fetchNumber += 1
            let number = fetchNumber
            let sent = members.map { member in
                SentPartition(partition: member.partition, offset: member.offset, epoch: positions.sent(slot: member.slot, fetch: number),
                              topicID: member.topicID, fromReplica: !readReplicas.isEmpty && readReplicas[member.partition] != nil)
            }
            let request = fetchSessions[node, default: FetchSession()].build(sent.map { ($0.partition, FetchSession.Wanted(offset: $0.offset, topicID: $0.topicID)) })
            Task {
                let result = await self.fetch(sent, request, from: node)
                self.fetched(sent, number: number, from: node, result)
            }
        }
    }

    /// A partition a fetch may carry, as `kick` found it.
    struct Candidate {
        var slot: Int
        var partition: TopicPartition
        var offset: Offset
        var topicID: KafkaUUID
        /// At the high watermark its last answer gave.
        var caughtUp: Bool
    }

    /// A partition whose records wait for `poll` is left out of its broker's next fetch (as
    /// in the Java client). When every partition that fetch would carry was at its high
    /// watermark when last answered, the fetch would only long-poll (`fetch.max.wait.ms`), and
    /// hold the waiting partition's next fetch back as long: a partition fed a trickle of
    /// records among idle ones would be fetched a few times a second. Such a fetch waits for the
    /// poll that takes the waiting records instead, and then goes with them.
    func holdBackIdleFetches(_ byLeader: inout [NodeID: [Candidate]], nowMs now: Int64) {
        guard positions.bufferedCount > 0, !byLeader.isEmpty else { return }
        var waitingOn: Set<NodeID> = []
        for partition in positions.waitingForPoll {
            if let node = fetchNode(of: partition, nowMs: now) { waitingOn.insert(node) }
        }
        for node in waitingOn where byLeader[node]?.allSatisfy(\.caughtUp) ?? false {
            byLeader[node] = nil
        }
    }

    struct SentPartition: Sendable {
        var partition: TopicPartition
        var offset: Offset
        var epoch: UInt64
        var topicID: KafkaUUID
        /// Fetched from the replica its leader named (KIP-392), not from its leader.
        var fromReplica: Bool
    }

    enum Outcome: Sendable {
        case fetched(FetchedRecords, highWatermark: Offset)
        /// The leader names a replica in this consumer's rack to fetch from (KIP-392).
        case readFrom(NodeID)
        case refused(ErrorCode, leaderHint: NodeID?, logStart: Offset)
        case damaged(String)
    }

    /// A fetch's answer: each partition's outcome (a partition of the session not in it had
    /// nothing new), and the session id the broker gave.
    struct Fetched: Sendable {
        /// In the answer's order, each with the partition as sent.
        var outcomes: [(sent: SentPartition, outcome: Outcome)]
        var sessionID: Int32
    }

    /// The Fetch request that carries `session` (what it names and forgets, its id and epoch).
    static func fetchRequest(_ session: FetchSession.Request, config: ConsumerConfig) -> FetchRequest {
        func byTopic<T>(_ items: [T], _ partition: (T) -> TopicPartition) -> [(String, [T])] {
            Dictionary(grouping: items) { partition($0).topic }.sorted { $0.key < $1.key }
        }
        return FetchRequest(
            replicaId: NodeID(-1), maxWaitMs: config.fetchMaxWaitMs, minBytes: config.fetchMinBytes, maxBytes: config.fetchMaxBytes,
            isolationLevel: config.readCommitted ? 1 : 0, sessionId: session.sessionID, sessionEpoch: session.epoch,
            topics: byTopic(session.send, \.partition).map { topic, members in
                .init(topic: topic, topicId: members[0].wanted.topicID, partitions: members.map {
                    .init(partition: $0.partition.partition, fetchOffset: $0.wanted.offset, partitionMaxBytes: config.partitionFetchMaxBytes)
                })
            },
            forgottenTopicsData: byTopic(session.forget, \.partition).map { topic, members in
                .init(topic: topic, topicId: members[0].topicID, partitions: members.map(\.partition.partition))
            },
            rackId: config.rack ?? "")
    }

    /// Top-level answers that only say the broker's session and ours differ: the next fetch
    /// starts a new one, and nothing is wrong with the partitions.
    static let sessionOutOfStep: Set<ErrorCode> = [.fetchSessionIDNotFound, .invalidFetchSessionEpoch, .fetchSessionTopicIDError]

    /// One fetch from `node` (`session`: what it names), its answer decoded here, off the actor.
    /// `sent` is every partition the fetch reads (those of the session).
    nonisolated func fetch(_ sent: [SentPartition], _ session: FetchSession.Request, from node: NodeID) async -> Result<Fetched, any Error> {
        let request = Self.fetchRequest(session, config: config)
        let answer: FetchResponse
        do {
            answer = try await cluster.send(request, toNode: node, timeoutMs: config.requestTimeoutMs + Int64(config.fetchMaxWaitMs))
        } catch { return .failure(error) }
        guard answer.errorCode == 0 else { return .failure(ConsumeError(ErrorCode(rawValue: answer.errorCode), "fetch from broker \(node)")) }
        // Topic names by id (v13 answers name topics by id), one entry per run of a topic.
        var names: [KafkaUUID: String] = [:]
        var lastTopic: String?
        for s in sent where s.partition.topic != lastTopic {
            lastTopic = s.partition.topic
            names[s.topicID] = s.partition.topic
        }
        // An incremental session's answer names the few partitions with news: those are found
        // by a scan; a table is made only for an answer of many.
        let answered = answer.responses.reduce(0) { $0 + $1.partitions.count }
        let table = answered > Self.scanMax ? Dictionary(sent.map { ($0.partition, $0) }) { a, _ in a } : nil
        func find(_ partition: TopicPartition) -> SentPartition? {
            if let table { return table[partition] }
            return sent.first { $0.partition == partition }
        }
        var outcomes: [(sent: SentPartition, outcome: Outcome)] = []
        outcomes.reserveCapacity(answered)
        var seen = Set<TopicPartition>()
        for response in answer.responses {
            guard let topic = response.topic.isEmpty ? names[response.topicId] : response.topic else { continue }
            for p in response.partitions {
                let partition = TopicPartition(topic, p.partitionIndex)
                // A partition not asked for, or named twice, is ignored.
                guard let s = find(partition), seen.insert(partition).inserted else { continue }
                let code = ErrorCode(rawValue: p.errorCode)
                guard code == .none else {
                    outcomes.append((s, .refused(code, leaderHint: p.currentLeader.leaderId.value >= 0 ? p.currentLeader.leaderId : nil,
                                                 logStart: p.logStartOffset)))
                    continue
                }
                if p.preferredReadReplica.value >= 0 && p.preferredReadReplica != node {
                    outcomes.append((s, .readFrom(p.preferredReadReplica)))
                    continue
                }
                guard case .bytes(let bytes)? = p.records, bytes.readableBytes > 0 else {
                    outcomes.append((s, .fetched(FetchedRecords(records: [], nextOffset: s.offset), highWatermark: p.highWatermark)))
                    continue
                }
                do {
                    let aborted = config.readCommitted ? (p.abortedTransactions ?? []).map { (producer: $0.producerId, firstOffset: $0.firstOffset) } : nil
                    let fetched = try RecordDecoding.decode(bytes, topic: topic, partition: p.partitionIndex, from: s.offset,
                                                            aborted: aborted, verifyingCRC: config.checkCRCs)
                    outcomes.append((s, .fetched(fetched, highWatermark: p.highWatermark)))
                } catch {
                    outcomes.append((s, .damaged("\(error)")))
                }
            }
        }
        return .success(Fetched(outcomes: outcomes, sessionID: answer.sessionId))
    }

    /// A fetch's outcome: records kept for `poll`, errors handled or kept for it, and the next
    /// fetches started.
    /// An answer naming at most this many partitions finds them among those sent by a scan.
    static let scanMax = 16

    func fetched(_ sent: [SentPartition], number: UInt64, from node: NodeID, _ result: Result<Fetched, any Error>) {
        fetchingFrom.remove(node)
        var backoff = false
        switch result {
        case .failure(let error as ConsumeError) where error.code.map(Self.sessionOutOfStep.contains) ?? false:
            // Only the session: the next fetch opens a new one, at once.
            fetchSessions[node]?.failed()
            for s in sent { positions.failed(s.partition, epoch: s.epoch) }
        case .failure(let error):
            fetchSessions[node]?.failed()
            for s in sent {
                positions.failed(s.partition, epoch: s.epoch)
                // A replica that fails is left for the leader; a leader that fails is looked up again.
                if s.fromReplica { readReplicas[s.partition] = nil } else { forgetLeader(of: s.partition, hint: nil) }
            }
            if let refused = error as? ConsumeError, let code = refused.code, !Self.leaderMoved.contains(code) { failure = refused }
            backoff = true
        case .success(let fetched):
            fetchSessions[node]?.answered(sessionID: fetched.sessionID)
            for (s, outcome) in fetched.outcomes {
                switch outcome {
                case .fetched(let records, let highWatermark):
                    positions.received(s.partition, epoch: s.epoch, records, highWatermark: highWatermark)
                case .readFrom(let replica):
                    positions.failed(s.partition, epoch: s.epoch)
                    readReplicas[s.partition] = (replica, nowMs() + config.metadataMaxAgeMs)
                case .refused(let code, let hint, let logStart):
                    positions.failed(s.partition, epoch: s.epoch)
                    backoff = true
                    // A replica that refuses (behind the leader, no longer in sync, gone): the
                    // partition is fetched from its leader again, its position kept; but one
                    // below the replica's log start is out of range anywhere (the reset applies).
                    if s.fromReplica { readReplicas[s.partition] = nil }
                    let belowStart = code == .offsetOutOfRange && logStart.value >= 0 && s.offset < logStart
                    if s.fromReplica && !belowStart {
                        continue
                    } else if code == .offsetOutOfRange {
                        guard positions.state(s.partition)?.epoch == s.epoch else { continue }
                        if config.offsetReset == .none {
                            failure = ConsumeError(code, "\(s.partition) at \(s.offset) (log start \(logStart)) and auto.offset.reset=none")
                            positions.block(s.partition)
                        } else {
                            // By auto.offset.reset, not the committed offset (which may be the one out of range).
                            positions.seek(s.partition, to: nil, byPolicy: true)
                        }
                    } else if Self.leaderMoved.contains(code) {
                        forgetLeader(of: s.partition, hint: hint)
                    } else {
                        failure = ConsumeError(code, "fetch of \(s.partition) from broker \(node)")
                    }
                case .damaged(let why):
                    positions.failed(s.partition, epoch: s.epoch)
                    failure = ConsumeError(.corruptMessage, why)
                    positions.block(s.partition)
                }
            }
            // The rest were not in the answer: nothing new (a session's partitions), fetched
            // again next time.
            positions.ended(fetch: number)
        }
        if backoff { backoffUntilMs[node] = nowMs() + max(config.retryBackoffMs, 10) }
        wake()
        kick()
    }

    /// Codes after which a partition's leader is asked again (the Java client's).
    static let leaderMoved: Set<ErrorCode> = [
        .notLeaderOrFollower, .leaderNotAvailable, .fencedLeaderEpoch, .unknownLeaderEpoch, .unknownTopicOrPartition,
        .unknownTopicID, .inconsistentTopicID, .kafkaStorageError, .offsetNotAvailable, .replicaNotAvailable, .networkException,
        .requestTimedOut,
    ]

    // MARK: group membership (KIP-848)

    /// Joins `group.id` as a member subscribed to `topics`: the broker assigns the partitions,
    /// and `listener` hears of each change (revoked partitions are committed first with
    /// `enable.auto.commit`). Subscribing again changes the subscription.
    public func subscribe(_ topics: [String], listener: RebalanceListener? = nil) async throws {
        try startMembership(listener)
        pattern = nil
        subscribeGroup(topics)
        try? await refresh()
        ringMembership()
    }

    /// As `subscribe(_:listener:)`, to every topic whose whole name matches the regular
    /// expression `pattern` (matched again every `metadata.max.age.ms`; internal topics
    /// left out).
    public func subscribe(matching pattern: String, listener: RebalanceListener? = nil) async throws {
        do { _ = try Regex(pattern) } catch { throw ConsumeError(.invalidRequest, "subscription pattern \(pattern): \(error)") }
        try startMembership(listener)
        self.pattern = pattern
        try await matchPattern()
        ringMembership()
    }

    func startMembership(_ listener: RebalanceListener?) throws {
        guard !closed else { throw ConsumeError(nil, "the consumer is closed") }
        guard config.groupID != nil else { throw ConsumeError(.invalidGroupID, "subscribe needs group.id") }
        guard groupPhase != .left else { throw ConsumeError(nil, "this consumer's membership ended (see the error poll threw): make a new consumer") }
        guard groupPhase == .active || positions.assigned.isEmpty else {
            throw ConsumeError(nil, "a consumer with assigned partitions does not subscribe (assign([]) first)")
        }
        self.listener = listener
        // The poll timeout counts from the subscription until the first poll.
        if polling == 0 { lastPollMs = nowMs() }
        if membershipTask == nil {
            membershipTask = config.groupProtocol == .classic ? Task { await self.runClassicMembership() } : Task { await self.runMembership() }
        }
    }

    /// Subscribes to the topics the pattern matches now.
    func matchPattern() async throws {
        guard let pattern else { return }
        let regex = try Regex(pattern)
        patternMatchedMs = nowMs()
        let answer = try await cluster.metadata(topics: nil)
        let names = answer.topics.compactMap { topic -> String? in
            guard let name = topic.name, topic.errorCode == 0, !topic.isInternal, !name.hasPrefix("__") else { return nil }
            return (try? regex.wholeMatch(in: name)) != nil ? name : nil
        }
        // A subscription made meanwhile wins.
        guard self.pattern == pattern, groupPhase != .left else { return }
        subscribeGroup(names)
        if !names.isEmpty { try? await refresh() }
    }

    // MARK: max.poll.interval.ms

    /// The application has not polled for `max.poll.interval.ms` (and is not polling now).
    var pollTimedOut: Bool { polling == 0 && nowMs() - lastPollMs > Int64(config.maxPollIntervalMs) }

    /// When the poll timeout passes if nothing polls before (nil: a poll is under way).
    var pollTimeoutAtMs: Int64? { polling == 0 ? lastPollMs + Int64(config.maxPollIntervalMs) + 1 : nil }

    /// A member that left the group for not polling joins again.
    func rejoinIfStale() {
        if classic.phase == .stale {
            classic.rejoin()
            ringMembership()
        } else if membership.phase == .stale {
            membership.rejoin()
            ringMembership()
        }
    }

    /// The application stopped polling: the member leaves the group (its partitions, lost, go
    /// to members that poll), as the Java client's, until it polls again. A static member
    /// sends epoch -2 (KIP-848) or no LeaveGroup (classic), as the Java client does.
    func leaveForPollTimeout() async {
        guard let group = config.groupID else { return }
        let lost: Set<TopicPartition>
        if config.groupProtocol == .classic {
            let left = classic.leaveStale()
            lost = left.lost
            if let memberID = left.memberID, config.groupInstanceID == nil {
                // Once: the partitions are given up only after it (a poll meanwhile must not
                // return their records).
                await sendLeave(LeaveGroupRequest(groupId: group, memberId: memberID, members: [.init(memberId: memberID, groupInstanceId: nil)]),
                                group: group, through: groupCluster, tries: 1, errorCode: \.errorCode)
            }
        } else {
            let left = membership.leaveStale(staticMember: config.groupInstanceID != nil)
            lost = left.lost
            if let beat = left.heartbeat {
                await sendLeave(heartbeatRequest(beat, group: group), group: group, through: cluster, tries: 1, errorCode: \.errorCode)
            }
        }
        positions.assign([])
        if let listener, !lost.isEmpty { await tell { await listener.lost(lost.sorted()) } }
        // A poll that came meanwhile finds the member stale: it joins again now.
        if polling > 0 { rejoinIfStale() }
    }

    /// Sends a member's leave (a LeaveGroup, or a heartbeat at epoch -1 or -2) to `group`'s
    /// coordinator through `client`, up to `tries` times while the coordinator moves; else the
    /// broker ends the member when its session times out.
    func sendLeave<R: KafkaRequest>(_ request: R, group: String, through client: ClusterClient, tries: Int,
                                    errorCode: (R.Response) -> Int16) async {
        precondition(tries > 0, "a leave is sent at least once")
        for attempt in 1...tries {
            if let node = try? await client.coordinator(ofGroup: group),
               let answer = try? await client.send(request, toNode: node, timeoutMs: config.requestTimeoutMs),
               !ClusterClient.coordinatorMoved.contains(ErrorCode(rawValue: errorCode(answer))) { return }
            if attempt < tries { try? await Task.sleep(for: .milliseconds(max(config.retryBackoffMs, 10))) }
        }
    }

    /// The membership's loop: a heartbeat when one is due, each answer carried out.
    func runMembership() async {
        // Idle until the first subscription is made (a pattern's is matched first).
        while membership.phase != .left && !closed && !Task.isCancelled {
            if membership.phase == .active && membership.memberEpoch > 0 && pollTimedOut {
                await leaveForPollTimeout()
                continue
            }
            guard let at = membership.nextHeartbeatAtMs() else {
                await sleepMembership(untilMs: nowMs() + max(config.retryBackoffMs, 10))
                continue
            }
            if at > nowMs() {
                let pollDeadline = membership.memberEpoch > 0 ? pollTimeoutAtMs : nil
                await sleepMembership(untilMs: min(at, pollDeadline ?? .max))
                continue
            }
            if pattern != nil, nowMs() - patternMatchedMs >= config.metadataMaxAgeMs { try? await matchPattern() }
            guard let group = config.groupID, membership.phase == .active, !closed else { break }
            let request = heartbeatRequest(membership.send(), group: group)
            let answer: ConsumerGroupHeartbeatResponse
            do {
                let node: NodeID
                if let known = coordinatorNode { node = known } else { node = try await cluster.coordinator(ofGroup: group) }
                coordinatorNode = node
                answer = try await cluster.send(request, toNode: node, timeoutMs: config.requestTimeoutMs)
            } catch let error as KafkaError where error.code == .unsupportedVersion {
                // A broker without KIP-848 groups: the classic protocol is not built.
                await heartbeatFailed(.unsupportedVersion, "\(error.message) (KIP-848 consumer groups: group.protocol=classic joins its classic groups)")
                continue
            } catch {
                await heartbeatFailed(.networkException, "\(error)")
                continue
            }
            let code = ErrorCode(rawValue: answer.errorCode)
            guard code == .none else {
                await heartbeatFailed(code, answer.errorMessage ?? "")
                continue
            }
            var assignment: Set<TopicPartition>?
            if let given = answer.assignment {
                assignment = await resolve(given.topicPartitions.map { ($0.topicId, $0.partitions) })
            }
            let change = membership.answered(memberID: answer.memberId, epoch: answer.memberEpoch, intervalMs: answer.heartbeatIntervalMs,
                                             assignment: assignment, nowMs: nowMs())
            if !change.isEmpty { startReconciliation(change) }
        }
    }

    /// The heartbeat to send, topic ids from the metadata.
    func heartbeatRequest(_ beat: ConsumerMembership.Heartbeat, group: String) -> ConsumerGroupHeartbeatRequest {
        var request = ConsumerGroupHeartbeatRequest(groupId: group, memberId: beat.memberID, memberEpoch: beat.memberEpoch,
                                                    instanceId: config.groupInstanceID)
        if beat.memberEpoch == 0 {
            request.rackId = config.rack
            request.rebalanceTimeoutMs = config.maxPollIntervalMs
            request.serverAssignor = config.remoteAssignor
        }
        request.subscribedTopicNames = beat.subscription
        request.topicPartitions = beat.owned.map { owned in
            Dictionary(grouping: owned, by: \.topic).sorted { $0.key < $1.key }.compactMap { topic, partitions in
                topics[topic].map { .init(topicId: $0.id, partitions: partitions.map(\.partition).sorted()) }
            }
        }
        return request
    }

    /// An assignment's topic ids as names (the metadata asked again for ids not known).
    func resolve(_ given: [(KafkaUUID, [Int32])]) async -> Set<TopicPartition> {
        func names() -> [KafkaUUID: String] {
            Dictionary(topics.map { ($0.value.id, $0.key) }) { a, _ in a }
        }
        var known = names()
        if given.contains(where: { known[$0.0] == nil }) {
            try? await refresh()
            known = names()
        }
        var out: Set<TopicPartition> = []
        for (id, partitions) in given {
            guard let name = known[id] else { continue }
            for partition in partitions { out.insert(TopicPartition(name, partition)) }
        }
        return out
    }

    /// Carries out reconciliation `number` in its own task, so heartbeats go on meanwhile
    /// (a revocation callback may outlast the session timeout), then each one toward an
    /// assignment answered meanwhile. A reconciliation the member abandoned (fenced, stale,
    /// closed) stops where it is: what it gave up stays given up, it takes nothing.
    func startReconciliation(_ change: ConsumerMembership.Reconciliation) {
        guard let number = membership.reconciling else { preconditionFailure("a reconciliation begun") }
        Task { await self.reconcile(change, number: number) }
    }

    func reconcile(_ change: ConsumerMembership.Reconciliation, number: Int) async {
        var change = change
        var number = number
        while true {
            let current = number
            if !change.revoke.isEmpty { await giveUp(change.revoke) { self.membership.reconciling == current } }
            guard membership.reconciling == number else { return }
            let owning = Set(positions.assigned).subtracting(change.revoke).union(change.assign)
            positions.assign(owning.sorted())
            // The core owns what the positions hold before the listener is told (a member
            // fenced meanwhile loses exactly these).
            let next = membership.reconciled(number, owning: owning)
            // (Taken now: while the listener runs, this one may be abandoned and another begun.)
            let following = membership.reconciling
            ringMembership()
            let assigned = change.assign.sorted()
            if !assigned.isEmpty, let listener { await tell { await listener.assigned(assigned) } }
            kick()
            guard !next.isEmpty, let following, membership.reconciling == following else { return }
            change = next
            number = following
        }
    }

    /// Gives up `revoke`: nothing more of them is returned or fetched, they are committed
    /// (auto commit) and the listener is told, each step only while `stillWanted` (a KIP-848
    /// reconciliation abandoned meanwhile stops); the caller then drops them from the positions.
    func giveUp(_ revoke: Set<TopicPartition>, while stillWanted: () -> Bool = { true }) async {
        let revoked = revoke.sorted()
        for partition in revoked { positions.block(partition) }
        if config.autoCommit, stillWanted() {
            let offsets = positions.positions.filter { revoke.contains($0.key) }
            try? await commit(offsets)
        }
        if let listener, stillWanted() { await tell { await listener.revoked(revoked) } }
    }

    /// Runs the listener's calls one at a time, in the order they are made (a reconciliation's
    /// task, a fence, a poll timeout and a close may each tell it something): the application
    /// never sees two at once, nor a partition's `assigned` after a later `revoked`.
    func tell(_ call: @escaping @Sendable () async -> Void) async {
        let previous = listenerTail
        let mine = Task {
            await previous?.value
            await call()
        }
        listenerTail = mine
        await mine.value
    }

    /// Gives up `revoke` (see `giveUp`) and takes `assign`, telling the listener (the classic
    /// protocol's steps); returns the partitions now owned.
    func carryOut(revoke: Set<TopicPartition>, assign: Set<TopicPartition>) async -> Set<TopicPartition> {
        if !revoke.isEmpty { await giveUp(revoke) }
        let owning = Set(positions.assigned).subtracting(revoke).union(assign)
        positions.assign(owning.sorted())
        if !assign.isEmpty, let listener { await tell { await listener.assigned(assign.sorted()) } }
        kick()
        return owning
    }

    func heartbeatFailed(_ code: ErrorCode, _ message: String) async {
        switch membership.failed(code) {
        case .fenced(let lost):
            positions.assign([])
            if let listener, !lost.isEmpty { await tell { await listener.lost(lost.sorted()) } }
        case .coordinator:
            coordinatorNode = nil
            await sleepMembership(untilMs: nowMs() + max(config.retryBackoffMs, 10))
        case .fatal:
            failure = ConsumeError(code, "group \(config.groupID ?? ""): \(message)")
            positions.assign([])
            wake()
        }
    }

    func sleepMembership(untilMs deadline: Int64) async {
        let timer = Task {
            try? await Task.sleep(for: .milliseconds(max(0, deadline - self.nowMs())))
            self.ringMembership()
        }
        await withCheckedContinuation { membershipSleeper = $0 }
        timer.cancel()
    }

    func ringMembership() {
        membershipSleeper?.resume()
        membershipSleeper = nil
    }

    // MARK: waking

    func wait(untilMs deadline: Int64) async {
        nextWaiter += 1
        let id = nextWaiter
        let timer = Task {
            try? await Task.sleep(for: .milliseconds(max(0, deadline - self.nowMs())))
            self.endWait(id)
        }
        await withCheckedContinuation { waiters[id] = $0 }
        timer.cancel()
    }

    func endWait(_ id: UInt64) {
        waiters.removeValue(forKey: id)?.resume()
    }

    func wake() {
        let woken = waiters.values
        waiters.removeAll()
        for waiter in woken { waiter.resume() }
    }

    /// `kick` again at `atMs` (one timer at a time: the earliest).
    func scheduleKick(atMs: Int64) {
        guard atMs < (timerAtMs ?? .max) else { return }
        timerAtMs = atMs
        Task {
            try? await Task.sleep(for: .milliseconds(max(0, atMs - self.nowMs())))
            if self.timerAtMs == atMs { self.timerAtMs = nil }
            self.kick()
        }
    }
}

/// A consumer's records one at a time: `poll` underneath; the sequence ends when the consumer
/// is closed, and throws what `poll` throws.
public struct ConsumerRecords: AsyncSequence, Sendable {
    public typealias Element = ConsumedRecord
    let consumer: KafkaConsumer

    public struct AsyncIterator: AsyncIteratorProtocol {
        let consumer: KafkaConsumer
        var buffered: ArraySlice<ConsumedRecord> = []

        public mutating func next() async throws -> ConsumedRecord? {
            while buffered.isEmpty {
                if Task.isCancelled { return nil }
                guard let got = try await consumer.pollUnlessClosed() else { return nil }
                buffered = got[...]
            }
            return buffered.popFirst()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(consumer: consumer) }
}

extension KafkaConsumer {
    /// `poll`, or nil once the consumer is closed.
    func pollUnlessClosed() async throws -> [ConsumedRecord]? {
        guard !closed else { return nil }
        let got = try await poll(timeoutMs: 1000)
        return got.isEmpty && closed ? nil : got
    }
}
