import BrookBroker
import BrookClient
import BrookCluster
import BrookCore
import BrookProtocol
import BrookStorage
import Logging
import NIOCore
import Synchronization

/// A follower's fetching, in a cluster: for every partition this broker follows (a replica of
/// it whose leader is another broker), Fetch requests to that leader with this broker's id as
/// the replica id, each partition's log end as the fetch offset and its last epoch (KIP-320).
/// The answer's records are appended with the leader's offsets and epochs; a diverging epoch
/// cuts the log there first; the leader's high watermark is taken. One connection per leader,
/// two loops of one round at a time each (hot and cold, see `follow`).
public final class ReplicaFetcher: Sendable {
    let broker: Broker
    let node: NodeID
    let logger: Logger
    let stopped = Atomic<Bool>(false)
    /// Failures in a row, by leader or partition: a few are a failover, many are a replica that
    /// cannot catch up, worth a notice (the single failures stay at debug). With when the run
    /// began and when it was last said.
    let failures = Mutex<[String: (count: Int, sinceMs: Int64, saidMs: Int64)]>([:])
    /// A run of failures is said again this often while it lasts.
    static let noticeEveryMs: Int64 = 30_000

    /// How many keys `failures` holds: a success with none in a run costs nothing (no key made,
    /// no lock), which is every partition of every round in a healthy cluster.
    let failing = Atomic<Int>(0)

    /// Counts a failure of `key` (nil: a success, which ends the run) and says it at the 10th
    /// in a row and every 30 s after.
    func note(_ key: @autoclosure () -> String, _ failure: String?) {
        guard failure != nil || failing.load(ordering: .relaxed) > 0 else { return }
        let key = key()
        let now = broker.clock.monotonicMs()
        let run = failures.withLock { f -> (count: Int, sinceMs: Int64)? in
            defer { failing.store(f.count, ordering: .relaxed) }
            guard failure != nil else { f[key] = nil; return nil }
            var entry = f[key] ?? (0, now, now)
            entry.count += 1
            let say = entry.count == 10 || (entry.count > 10 && now - entry.saidMs >= Self.noticeEveryMs)
            if say { entry.saidMs = now }
            f[key] = entry
            return say ? (entry.count, entry.sinceMs) : nil
        }
        if let failure, let run {
            logger.notice("\(key): \(run.count) failures in a row over \((now - run.sinceMs) / 1000) s, the last: \(failure)")
        }
    }

    /// By partition: its fetch position, since when it has stood there below the leader's HW,
    /// and when that was last said. A follower whose fetches succeed but whose position does
    /// not move never rejoins the ISR, and said nothing of it (docs/reliability.md).
    let standing = Mutex<[String: (position: Offset, sinceMs: Int64, saidMs: Int64)]>([:])
    /// How many partitions `standing` holds (none: a caught-up partition costs no lookup).
    let standingCount = Atomic<Int>(0)

    /// After a good answer for `partition`: says (every 30 s) when its position has not moved
    /// for 30 s while the leader's HW is past it.
    func noteProgress(_ partition: Partition, leaderHighWatermark: Offset) {
        let position = partition.followerPosition.fetchOffset
        guard position < leaderHighWatermark || standingCount.load(ordering: .relaxed) > 0 else { return }
        let now = broker.clock.monotonicMs()
        let stuck = standing.withLock { all -> Int64? in
            defer { standingCount.store(all.count, ordering: .relaxed) }
            guard position < leaderHighWatermark else { all[partition.name] = nil; return nil }
            var entry = all[partition.name] ?? (position, now, now)
            if entry.position != position { entry = (position, now, now) }
            let say = now - entry.sinceMs >= Self.noticeEveryMs && now - entry.saidMs >= Self.noticeEveryMs
            if say { entry.saidMs = now }
            all[partition.name] = entry
            return say ? now - entry.sinceMs : nil
        }
        if let stuck {
            logger.notice("\(partition.name): fetched from \(position) for \(stuck / 1000) s without moving, the leader's HW at \(leaderHighWatermark)")
        }
    }
    let task = Mutex<Task<Void, Never>?>(nil)
    static let partitionBytesMax: Int32 = 1 << 20
    static let responseBytesMax: Int32 = 16 << 20
    static let idleMs: UInt64 = 100

    /// `generation` counts the changes of roles and hosted replicas (ReplicaManager's): the
    /// list of followed partitions is made again when it moves.
    public init(broker: Broker, node: NodeID, peers: InterBrokerClient, logger: Logger, generation: @escaping @Sendable () -> UInt64 = { 0 }) {
        self.broker = broker
        self.peers = peers
        self.node = node
        self.logger = logger
        self.generation = generation
    }
    let generation: @Sendable () -> UInt64
    /// How the leaders are reached (inter.broker.listener.name's security).
    let peers: InterBrokerClient

    public func start() {
        task.withLock { $0 = Task { await self.run() } }
    }

    public func stop() {
        stopped.store(true, ordering: .sequentiallyConsistent)
        task.withLock { $0?.cancel() }
    }

    struct Followed {
        let topic: String
        let index: Int32
        let partition: Partition
        let epoch: LeaderEpoch
        /// Named in the topic's follower.replication.throttled.replicas and out of the ISR.
        let throttled: Bool
    }

    /// Supervises one fetch loop per leader: each runs on its own, so a leader with nothing
    /// new (its fetch long-polls) or a slow one never holds back the copies from the others (a
    /// follower held back never reaches the HW, and so never rejoins the ISR under load).
    func run() async {
        var loops: [NodeID: Task<Void, Never>] = [:]
        while !stopped.load(ordering: .sequentiallyConsistent) && !Task.isCancelled {
            let leaders = Set(followed().keys)
            for (leader, task) in loops where task.isCancelled || !leaders.contains(leader) {
                task.cancel()
                loops[leader] = nil
                forget(leader)
            }
            for leader in leaders where loops[leader] != nil {
                await interruptColdIfStale(leader)
            }
            for leader in leaders where loops[leader] == nil {
                loops[leader] = Task {
                    await withTaskGroup(of: Void.self) { group in
                        group.addTask { await self.follow(leader, hot: false) }
                        group.addTask { await self.follow(leader, hot: true) }
                    }
                }
            }
            try? await Task.sleep(nanoseconds: Self.idleMs * 1_000_000)
        }
        for task in loops.values { task.cancel() }
    }

    /// Fetches from `leader` until the supervisor ends it, in one of two loops, each with its
    /// own connection:
    /// - the hot loop fetches the partitions that got records lately (`hot`);
    /// - the cold loop fetches all the others.
    /// A leader answers a parked fetch at the first append to any of its partitions, and every
    /// round visits every partition of the fetch on both sides. With one loop, a few busy
    /// partitions made every round cost as much as all the partitions followed: 500 records/s
    /// to one partition of 10,000 took both cores of this machine. Split, the busy partitions
    /// go round in a small fetch, and the large cold one waits out its `coldMaxWaitMs`.
    func follow(_ leader: NodeID, hot: Bool) async {
        var connection: BrokerConnection?
        while !stopped.load(ordering: .sequentiallyConsistent) && !Task.isCancelled {
            let partitions = hot ? await hotPartitions(from: leader) : coldPartitions(from: leader)
            guard !partitions.isEmpty else {
                // The hot loop waits for the cold loop to find a partition busy (or for the end).
                if hot { await hotBell(leader).wait() } else { try? await Task.sleep(nanoseconds: Self.idleMs * 1_000_000) }
                continue
            }
            connection = await fetch(from: leader, partitions, connection: connection, hot: hot)
        }
        await connection?.close()
    }

    /// A partition fetched by the hot loop: as it was followed when it became hot, and when it
    /// last got records.
    struct Hot {
        let followed: Followed
        var lastRecordsMs: Int64
    }

    /// By leader, the partitions its hot loop fetches, by partition object. A partition is in
    /// exactly one loop's fetches: the cold loop adds one here (between its rounds, after one
    /// brought records), the hot loop takes one out (between its rounds); each loop builds its
    /// next fetch from this, so no partition is ever in both loops' fetches at once.
    let hot = Mutex<[NodeID: [ObjectIdentifier: Hot]]>([:])
    /// By leader, when the list of followed partitions the hot partitions were last checked
    /// against was made (`kept`'s time).
    let hotCheckedAt = Mutex<[NodeID: Int64]>([:])
    /// A hot partition with no records for this long goes back to the cold loop. The move cuts
    /// the cold loop's round short (`interruptCold`): its fetch in flight was made without it.
    static let hotForMs: Int64 = 30_000
    /// The hot loop's long poll: short, so that a partition the cold loop just made hot is in
    /// the hot loop's next fetch soon even when the hot partitions are quiet.
    static let hotMaxWaitMs: Int32 = 100
    /// By leader, what wakes its hot loop when it has no partitions: the cold loop's finding
    /// one busy. (It looked every 5 ms before: two thirds of an idle node's CPU were those
    /// wake-ups and their timers.)
    let hotBells = Mutex<[NodeID: Doorbell]>([:])
    func hotBell(_ leader: NodeID) -> Doorbell {
        hotBells.withLock { bells in
            if let bell = bells[leader] { return bell }
            let bell = Doorbell()
            bells[leader] = bell
            return bell
        }
    }
    /// At most this many partitions are hot at once, by leader (the rest stay cold).
    static let hotMax = 1000

    /// The cold loop's long poll: long, since its partitions have had no records lately and an
    /// append to any of them answers it at once. Its rounds tell the leader that this follower
    /// is still caught up, so it is a sixth of replica.lag.time.max.ms at most (5 s by default).
    var coldMaxWaitMs: Int32 { Int32(max(10, min(5000, broker.config.replicaLagTimeMaxMs / 6))) }

    /// By leader, the cold loop's round: the print of the followed list its fetch was made
    /// from, its connection while the fetch is in flight, and whether it was cut short.
    struct ColdRound {
        var print: UInt64
        var connection: BrokerConnection?
        var interrupted = false
    }
    let cold = Mutex<[NodeID: ColdRound]>([:])
    /// By leader, when the cold loop's round was last cut short. Each cut costs a new
    /// connection and a round over all its partitions on both sides, so there is one a second
    /// at most: while topics are created by the thousand, the followed list changes at every
    /// look (the supervisor's 100 ms), and a cut at each made the creation three times slower.
    let coldCutAt = Mutex<[NodeID: Int64]>([:])
    /// The cold loop's round is cut short at most this often (the first cut after a quiet
    /// second is at once).
    static let coldCutEveryMs: Int64 = 1000

    /// Whether the cold loop's round may be cut short now (`coldCutEveryMs`).
    func mayCutCold(_ leader: NodeID, nowMs: Int64) -> Bool {
        coldCutAt.withLock { nowMs - ($0[leader] ?? .min / 2) >= Self.coldCutEveryMs }
    }

    /// The cold loop's partitions: those followed from `leader` that are not hot. Records the
    /// round's print, so that a change of the followed list cuts the round short.
    func coldPartitions(from leader: NodeID) -> [Followed] {
        let (lists, prints) = followedAndPrints()
        let all = Self.stillFollowed(lists[leader] ?? [], from: leader)
        cold.withLock { $0[leader] = ColdRound(print: prints[leader] ?? 0) }
        let hotNow = hot.withLock { $0[leader] ?? [:] }
        return hotNow.isEmpty ? all : all.filter { hotNow[ObjectIdentifier($0.partition)] == nil }
    }

    /// A leader no longer followed: what was kept for its loops goes (its cancelled loops may
    /// still finish a round; a hot loop cancelled while it waits is woken by the cancellation,
    /// and a later loop for the same leader starts with fresh state).
    func forget(_ leader: NodeID) {
        cold.withLock { $0[leader] = nil }
        hot.withLock { $0[leader] = nil }
        hotCheckedAt.withLock { $0[leader] = nil }
        hotBells.withLock { $0[leader] = nil }
        coldCutAt.withLock { $0[leader] = nil }
    }

    /// A cold round's fetch long-polls for seconds: a partition that joins the cold loop while
    /// it is in flight (handed back by the hot loop, newly followed, a new leader epoch) would
    /// wait for its end. So such a change cuts the round short: its connection is closed (which
    /// ends the leader's parked fetch too) and the next round starts at once with the new list.
    func interruptCold(_ leader: NodeID) async {
        let now = broker.clock.monotonicMs()
        coldCutAt.withLock { $0[leader] = now }
        let connection = cold.withLock { all -> BrokerConnection? in
            guard var round = all[leader], !round.interrupted else { return nil }
            round.interrupted = true
            defer { round.connection = nil; all[leader] = round }
            return round.connection
        }
        await connection?.close()
    }

    /// Cuts the cold round short when the list of partitions followed from `leader` is not the
    /// one it was made from (once a second at most; until then the supervisor looks again).
    func interruptColdIfStale(_ leader: NodeID) async {
        guard mayCutCold(leader, nowMs: broker.clock.monotonicMs()) else { return }
        let current = followedAndPrints().prints[leader] ?? 0
        guard cold.withLock({ all in all[leader].map { $0.print != current && !$0.interrupted } ?? false }) else { return }
        await interruptCold(leader)
    }

    /// The cold round's fetch is about to be sent on `connection`: false when the round was
    /// cut short already (its list is stale: nothing is sent, the next round starts at once).
    func coldSending(_ leader: NodeID, on connection: BrokerConnection) -> Bool {
        cold.withLock { all in
            guard var round = all[leader], !round.interrupted else { return false }
            round.connection = connection
            all[leader] = round
            return true
        }
    }

    /// The cold round's fetch ended: true when it was cut short (its connection is being closed).
    func coldSent(_ leader: NodeID) -> Bool {
        cold.withLock { all in
            guard var round = all[leader] else { return false }
            round.connection = nil
            all[leader] = round
            return round.interrupted
        }
    }

    /// The hot loop's partitions; a hot one whose role changed since it became hot (a new
    /// leader or epoch) or that has had no records for `hotForMs` goes back to the cold loop.
    func hotPartitions(from leader: NodeID) async -> [Followed] {
        let now = broker.clock.monotonicMs()
        guard hot.withLock({ !($0[leader]?.isEmpty ?? true) }) else { return [] }
        // Whenever the list of followed partitions is made again (the image, the roles or the
        // hosted replicas changed; ten seconds at most), hot partitions no longer in it go: moved
        // away, offline with a failed dir, or replaced by a replica moved between dirs.
        let listed = followed()[leader] ?? []
        let made = kept.withLock { $0?.madeMs ?? 0 }
        let checked = hotCheckedAt.withLock { at in defer { at[leader] = made }; return at[leader] == made }
        let stillListed = checked ? nil : Set(listed.map { ObjectIdentifier($0.partition) })
        // Idle ones are handed back together, when the cold loop's round may be cut short.
        let mayDemote = mayCutCold(leader, nowMs: now)
        var demoted = false
        let partitions = hot.withLock { all -> [Followed] in
            guard var mine = all[leader], !mine.isEmpty else { return [] }
            mine = mine.filter { key, entry in
                if let stillListed, !stillListed.contains(key) { return false }
                guard case .follower(let current?, let epoch) = entry.followed.partition.role, current == leader,
                      epoch == entry.followed.epoch else { return false }
                guard mayDemote, now - entry.lastRecordsMs >= Self.hotForMs else { return true }
                demoted = true
                return false
            }
            all[leader] = mine
            // Each topic's partitions together, as the request is built.
            return mine.values.map(\.followed).sorted { ($0.topic, $0.index) < ($1.topic, $1.index) }
        }
        if demoted { await interruptCold(leader) }
        return partitions
    }

    /// After a round: the partitions that got records are hot from now (the cold loop's move to
    /// the hot loop, or a hot one staying).
    func gotRecords(_ partitions: [Followed], from leader: NodeID) {
        guard !partitions.isEmpty else { return }
        let now = broker.clock.monotonicMs()
        hot.withLock { all in
            var mine = all[leader] ?? [:]
            for followed in partitions {
                let key = ObjectIdentifier(followed.partition)
                if mine[key] != nil {
                    mine[key]!.lastRecordsMs = now
                } else if mine.count < Self.hotMax {
                    mine[key] = Hot(followed: followed, lastRecordsMs: now)
                }
            }
            all[leader] = mine
        }
        hotBell(leader).ring()
    }

    /// The partitions followed from `leader`: the kept list, less those whose role has changed
    /// since it was made (a failed log dir's, which no image brings).
    func followed(from leader: NodeID) -> [Followed] {
        Self.stillFollowed(followed()[leader] ?? [], from: leader)
    }

    static func stillFollowed(_ listed: [Followed], from leader: NodeID) -> [Followed] {
        listed.filter { entry in
            guard case .follower(let now?, let epoch) = entry.partition.role else { return false }
            return now == leader && epoch == entry.epoch
        }
    }

    /// The list of followed partitions is made again when the image or the roles change, and
    /// at least this often. Every change of a role or a hosted replica moves the generation
    /// (an image applied, a failed log dir, a replica moved between dirs), so this is only a
    /// safety net; each making walks every partition of the image (at 100,000 partitions, a
    /// few per cent of a core when it was every second).
    static let followedAgeMaxMs: Int64 = 10_000

    /// The last list of followed partitions, with the image offset, generation and time it was
    /// made at. Making it walks every partition of the image; the loops ask for it every round.
    /// With each leader's print (`print(of:)`).
    let kept = Mutex<(offset: MetadataOffset, generation: UInt64, madeMs: Int64, followed: [NodeID: [Followed]], prints: [NodeID: UInt64])?>(nil)

    /// The partitions this broker follows, by leader, as its metadata image and roles say.
    func followed() -> [NodeID: [Followed]] { followedAndPrints().followed }

    func followedAndPrints() -> (followed: [NodeID: [Followed]], prints: [NodeID: UInt64]) {
        guard let image = broker.cluster.current?.image else { return ([:], [:]) }
        let generation = generation()
        let now = broker.clock.monotonicMs()
        if let kept = kept.withLock({ $0 }), kept.offset == image.offset, kept.generation == generation,
           now - kept.madeMs < Self.followedAgeMaxMs, now >= kept.madeMs {
            return (kept.followed, kept.prints)
        }
        let made = Self.followed(in: image, broker: broker, node: node)
        let prints = made.mapValues(Self.print(of:))
        kept.withLock { $0 = (image.offset, generation, now, made, prints) }
        return (made, prints)
    }

    /// A print of a list of followed partitions that changes, but for a one in 2^64 chance,
    /// when a partition or a leader epoch joins or leaves it (the order does not count).
    static func print(of list: [Followed]) -> UInt64 {
        var sum = UInt64(list.count)
        for entry in list {
            var x = UInt64(UInt(bitPattern: ObjectIdentifier(entry.partition).hashValue)) ^ (UInt64(UInt32(bitPattern: entry.epoch.value)) << 32)
            // splitmix64's finalizer: neighbouring objects and epochs land far apart.
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            sum &+= x ^ (x >> 31)
        }
        return sum
    }

    static func followed(in image: MetadataImage, broker: Broker, node: NodeID) -> [NodeID: [Followed]] {
        var out: [NodeID: [Followed]] = [:]
        for topic in image.topics.values {
            guard let local = broker.topics.topic(topic.name), local.id == topic.id else { continue }
            for (index, info) in topic.partitions.enumerated() where index < local.partitions.count && info.replicas.contains(node) {
                guard let partition = local.partitions[index], case .follower(let leader?, let epoch) = partition.role, leader != node, info.leader == leader,
                      partition.isReplicating else { continue }
                let throttled = ReplicationThrottles.followerThrottled(local.overrides, partition: Int32(index), node: node,
                                                                       inSync: info.isr.contains(node))
                out[leader, default: []].append(Followed(topic: topic.name, index: Int32(index), partition: partition, epoch: epoch,
                                                         throttled: throttled))
            }
        }
        return out
    }

    /// One Fetch to `leader` for `partitions`; returns the connection to keep (nil after a failure).
    /// Throttled partitions are left out while this follower's throttled copying is over its
    /// `follower.replication.throttled.rate` (KIP-73).
    func fetch(from leader: NodeID, _ followed: [Followed], connection existing: BrokerConnection?, hot: Bool) async -> BrokerConnection? {
        let rate = DynamicBrokerConfigs.rate(DynamicBrokerConfigs.followerRate, node: node, image: broker.cluster.current?.image)
        let overRate = broker.throttles.followerOverRate(rate, nowMs: broker.clock.monotonicMs())
        let partitions = overRate ? followed.filter { !$0.throttled } : followed
        guard !partitions.isEmpty else {
            try? await Task.sleep(nanoseconds: Self.idleMs * 1_000_000)
            return existing
        }
        let connection: BrokerConnection
        if let existing {
            connection = existing
        } else {
            guard let address = broker.address(of: leader) else {
                try? await Task.sleep(nanoseconds: Self.idleMs * 1_000_000)
                return nil
            }
            do {
                connection = try await Self.withTimeout(ms: Self.requestTimeoutMs) {
                    try await self.peers.connect(address, clientID: "brook-replica-\(self.node)", timeoutMs: 2000)
                }
            } catch {
                logger.debug("broker \(node) cannot reach leader \(leader) at \(address): \(error)")
                note("fetching from broker \(leader)", "cannot connect to \(address): \(error)")
                try? await Task.sleep(nanoseconds: Self.idleMs * 2_000_000)
                return nil
            }
        }
        var request = FetchRequest()
        request.replicaId = node
        request.maxWaitMs = hot ? Self.hotMaxWaitMs : coldMaxWaitMs
        request.minBytes = 1
        request.maxBytes = Self.responseBytesMax
        request.sessionEpoch = -1
        // The list holds each topic's partitions together (`followed(in:)`): one entry per run
        // of a topic, no dictionaries. The leader answers in the request's order.
        var asked: [[Followed]] = []
        for followed in partitions {
            let position = followed.partition.followerPosition
            let entry = FetchRequest.FetchTopic.FetchPartition(partition: followed.index, currentLeaderEpoch: followed.epoch,
                                                               fetchOffset: position.fetchOffset, lastFetchedEpoch: position.lastEpoch,
                                                               partitionMaxBytes: Self.partitionBytesMax)
            if let last = request.topics.indices.last, request.topics[last].topic == followed.topic {
                request.topics[last].partitions.append(entry)
                asked[last].append(followed)
            } else {
                request.topics.append(.init(topic: followed.topic, partitions: [entry]))
                asked.append([followed])
            }
        }
        let response: FetchResponse
        let sending = request
        if !hot {
            guard coldSending(leader, on: connection) else { return connection }
        }
        do {
            response = try await Self.withTimeout(ms: Self.requestTimeoutMs, onTimeout: { await connection.close() }) {
                try await connection.send(sending, version: 12)
            }
            if !hot, coldSent(leader) {
                // Cut short as the answer came: it is good, but `interruptCold` closes its connection.
                _ = apply(response, asked: asked, from: leader)
                return nil
            }
        } catch {
            if !hot, coldSent(leader) {
                // Cut short (`interruptCold`, which closes the connection): not a failure.
                return nil
            }
            logger.debug("broker \(node) fetching from \(leader): \(error)")
            note("fetching from broker \(leader)", "\(error)")
            await connection.close()
            return nil
        }
        note("fetching from broker \(leader)", nil)
        if apply(response, asked: asked, from: leader) { try? await Task.sleep(nanoseconds: Self.idleMs * 1_000_000) }
        return connection
    }

    /// Takes a round's answer (`asked` as the request was built); true when an error says to
    /// wait a little before the next round.
    func apply(_ response: FetchResponse, asked: [[Followed]], from leader: NodeID) -> Bool {
        var backOff = false
        var throttledBytes = 0
        var busy: [Followed] = []
        defer { gotRecords(busy, from: leader) }
        for (t, topic) in response.responses.enumerated() {
            guard let group = t < asked.count && asked[t].first?.topic == topic.topic ? asked[t]
                    : asked.first(where: { $0.first?.topic == topic.topic }) else { continue }
            for (p, data) in topic.partitions.enumerated() {
                guard let followed = p < group.count && group[p].index == data.partitionIndex ? group[p]
                        : group.first(where: { $0.index == data.partitionIndex }) else { continue }
                if case .bytes(let bytes)? = data.records, bytes.readableBytes > 0 {
                    if followed.throttled { throttledBytes += bytes.readableBytes }
                    busy.append(followed)
                }
                backOff = !apply(data, to: followed.partition) || backOff
            }
        }
        if throttledBytes > 0 { broker.throttles.followerFetched(throttledBytes, nowMs: broker.clock.monotonicMs()) }
        return backOff
    }

    /// Takes one partition's answer; false when it was an error to wait on (a newer leader epoch
    /// the metadata has not brought yet, and the like).
    func apply(_ data: FetchResponse.FetchableTopicResponse.PartitionData, to partition: Partition) -> Bool {
        if data.errorCode == ErrorCode.offsetOutOfRange.rawValue, data.logStartOffset > partition.followerPosition.fetchOffset {
            do throws(StorageError) {
                try partition.restartAtLeaderLogStart(data.logStartOffset)
                logger.notice("\(partition.name): the leader's log starts at \(data.logStartOffset), past this replica's end; starting again there")
                return true
            } catch {
                logger.error("\(partition.name): cannot start again at the leader's log start \(data.logStartOffset): \(error)")
                return false
            }
        }
        guard data.errorCode == 0 else {
            logger.debug("\(partition.name): the leader answered \(ErrorCode(rawValue: data.errorCode))")
            note("\(partition.name) from its leader", "\(ErrorCode(rawValue: data.errorCode))")
            return false
        }
        note("\(partition.name) from its leader", nil)
        do throws(StorageError) {
            if data.divergingEpoch.epoch != .none || data.divergingEpoch.endOffset != Offset(-1) {
                let end = try partition.truncateToLeader(epoch: data.divergingEpoch.epoch, endOffset: data.divergingEpoch.endOffset)
                logger.notice("\(partition.name): log diverged from the leader's at epoch \(data.divergingEpoch.epoch); truncated to \(end)")
                return true
            }
            var records = ByteBuffer()
            if case .bytes(let bytes)? = data.records { records = bytes }
            try partition.appendFromLeader(records, leaderHighWatermark: data.highWatermark)
            if data.logStartOffset >= .zero { try partition.followLeaderLogStart(data.logStartOffset) }
            noteProgress(partition, leaderHighWatermark: data.highWatermark)
            return true
        } catch {
            logger.error("\(partition.name): cannot write what the leader sent: \(error)")
            return false
        }
    }

    /// A fetch (long-polled for maxWaitMs) with no answer in this long is given up and its
    /// connection closed: a leader that stopped answering (paused, cut off) must not hold the
    /// follower forever.
    static let requestTimeoutMs: UInt64 = 10_000

    struct TimedOut: Error {}

    /// `body`, or TimedOut after `ms`. A task group waits for every child, and a request waiting
    /// on a connection does not end when cancelled: `onTimeout` must end it (close the
    /// connection, which fails what waits on it). Found by the fault campaign: without that, a
    /// follower whose connection to its leader went quiet in a network partition waited for TCP
    /// to give up (many minutes) instead of 10 s, and never rejoined the ISR.
    static func withTimeout<T: Sendable>(ms: UInt64, onTimeout: @escaping @Sendable () async -> Void = {},
                                         _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(nanoseconds: ms * 1_000_000)
                await onTimeout()
                throw TimedOut()
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw TimedOut() }
            return first
        }
    }
}

/// Wakes one waiting task: `ring` before `wait` is kept (the wait returns at once), rings in
/// between are one. Cancelling the waiting task rings.
final class Doorbell: Sendable {
    let state = Mutex<(rung: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func ring() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let waiter = s.waiter else {
                s.rung = true
                return nil
            }
            s.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns at the next ring (or at once if it rang since the last wait), or when the task
    /// is cancelled. One waiter at a time.
    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    precondition(s.waiter == nil, "a doorbell has one waiter at a time")
                    if s.rung || Task.isCancelled {
                        s.rung = false
                        return true
                    }
                    s.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            ring()
        }
    }
}
