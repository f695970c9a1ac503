import BrookCluster
import BrookCore
import BrookProtocol
import BrookStorage

public struct ClusterSimulationOptions: Sendable {
    /// Brokers in the cluster (3 to 5); nil draws it from the seed.
    public var brokerCount: Int?
    public var partitions = 3
    public var replicationFactor = 3
    public var minInSyncReplicas = 2
    /// How long faults are injected, in simulated milliseconds.
    public var faultsMs: Int64 = 20_000
    /// After faults stop, every partition must be fully replicated again within this.
    public var livenessMs: Int64 = 20_000
    public var bug: ClusterBug?
    public var trace = false
    public init() {}
}

/// A bug the simulator can plant in its own broker, to show that the checks catch it.
public enum ClusterBug: String, Sendable, CaseIterable {
    /// The high watermark counts only the followers that fetched, not the whole ISR.
    case hwIgnoresISR = "hw-ignores-isr"
    /// A returning follower keeps its log instead of truncating where the leader's diverges.
    case noTruncation = "no-truncation"
    /// Leaders are not told the eligible leader replicas (KIP-966): the HW moves on below min
    /// ISR, so an eligible replica the controller elects may lack what was acknowledged meanwhile.
    case hwIgnoresELR = "hw-ignores-elr"
}

public struct ClusterSimulationReport: Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var brokers: Int
    public var steps = 0
    public var timeMs: Int64 = 0
    public var acknowledged = 0
    public var produceRefused = 0
    public var crashes = 0
    public var controllerFailovers = 0
    public var partitionsCut = 0
    public var elections = 0
    /// Clean elections of an eligible leader replica (KIP-966), no ISR member being active.
    public var eligibleLeaderElections = 0
    public var isrChanges = 0
    public var truncations = 0
    public var dropped = 0
    public var description: String {
        "seed \(seed): ok, \(brokers) brokers, \(steps) steps, \(timeMs) ms simulated, \(acknowledged) records acknowledged "
            + "(\(produceRefused) produces refused), \(crashes) crashes, \(controllerFailovers) controller failovers, "
            + "\(partitionsCut) network cuts, \(elections) leader elections (\(eligibleLeaderElections) from the ELR), \(isrChanges) ISR changes, "
            + "\(truncations) truncations, \(dropped) messages dropped"
    }
}

/// The replicated cluster on one thread from a seed: the controller's decisions
/// (ClusterController) over a metadata log, brokers that follow it, lead and follow partitions
/// through PartitionReplication and LeaderEpochCache, producers with acks=all. Faults: broker
/// crashes and restarts, controller failovers (uncommitted entries lost), message loss and
/// delay, brokers cut off from everyone. After every step it checks:
/// - at most one broker leads a partition in one leader epoch;
/// - every acknowledged record is in the log of every broker that becomes leader, at its offset;
/// - replicas agree below their high watermarks (the committed prefix never changes);
/// and once faults stop, that every partition is led, fully in sync and accepts writes.
/// Logs are durable here (what a broker wrote survives its crash): the check is of the
/// replication protocol, not of fsync.
public final class ClusterSimulation {
    public static let tickMs: Int64 = 50
    static let heartbeatMs: Int64 = 250
    static let metadataCommitMs: Int64 = 20

    enum Event {
        case tick(Int)
        case controllerTick
        case commit
        case deliver(Int, Packet)
        case produce
        case crash
        case restart(Int)
        case cut
        case heal
        case controllerFail
        case controllerBack
        case endFaults
    }

    /// What travels between brokers and the controller. Index -1 is the controller.
    enum Packet {
        case register(BrokerRegistrationRequest, incarnation: Int)
        case registered(ErrorCode, BrokerEpoch, incarnation: Int)
        case heartbeat(BrokerHeartbeatRequest)
        case heartbeatAnswer(BrokerHeartbeatAnswer, epoch: BrokerEpoch)
        /// A broker's ISR changes of one tick, in one request (as the broker's ReplicaManager).
        case alterPartitions([AlterPartitionRequest])
        case alterPartitionAnswer(TopicIDPartition, LeaderEpoch, ErrorCode, PartitionInfo?, ISRProposal)
        case fetch(from: NodeID, TopicIDPartition, leaderEpoch: LeaderEpoch, offset: Offset, lastEpoch: LeaderEpoch?)
        case fetchAnswer(TopicIDPartition, leaderEpoch: LeaderEpoch, FetchResult)
    }

    enum FetchResult {
        case records(from: Offset, [SimRecord], highWatermark: Offset)
        case diverging(LeaderEpoch, Offset)
        case undefinedDivergence
        case refused
    }

    struct SimRecord: Equatable {
        var epoch: LeaderEpoch
        var value: Int
    }

    struct Replica {
        var log: [SimRecord] = []
        var cache = LeaderEpochCache()
        var highWatermark = Offset.zero
        /// Set while this broker leads the partition.
        var leading: PartitionReplication?
        /// (end offset, value) of produces waiting for the HW.
        var waitingAcks: [(end: Offset, values: [Int])] = []
        var proposalSentMs: Int64?
        /// The leader and epoch this replica follows, from the broker's image.
        var leader: NodeID?
        var leaderEpoch = LeaderEpoch.none
        var fetchInFlightSinceMs: Int64?
        var logEnd: Offset { Offset(Int64(log.count)) }
    }

    struct Broker {
        let id: NodeID
        var up = true
        var incarnation = 0
        var epoch = BrokerEpoch.none
        var image = MetadataImage()
        /// The image the replicas were last brought in line with: a broker acts on metadata only
        /// once its image holds its current registration (as a Kafka broker waits to catch up).
        var actedImage = MetadataImage()
        /// How many committed metadata entries this broker has applied.
        var applied = 0
        var replicas: [TopicIDPartition: Replica] = [:]
        var lastHeartbeatMs: Int64 = -1_000_000
        var registering = false
        var fenced = true
    }

    let seed: UInt64
    let options: ClusterSimulationOptions
    var random: SeededRandom
    var queue = EventQueue<Event>()
    var now: Int64 = 0
    var faultsActive = true
    var faultsEndedAt: Int64?
    var brokers: [Broker] = []
    var controller: ClusterController?
    /// The committed metadata log: one entry per decision.
    var metadataLog: [[MetadataRecord]] = []
    var committedImage = MetadataImage()
    /// Decisions appended but not committed; each carries what to answer on commit.
    var uncommitted: [(records: [MetadataRecord], onCommit: () -> Void)] = []
    /// The broker cut off from the network: from everyone, or only from the controller (it
    /// still talks to brokers and clients, but its heartbeats and metadata do not get through).
    var cutOff: Int?
    var cutFromControllerOnly = false
    var report: ClusterSimulationReport
    var nextValue = 0
    let lossPercent: UInt64
    let delayMaxMs: Int64
    let crashEveryMs: Int64
    let controllerFailEveryMs: Int64
    let cutEveryMs: Int64
    let replication: ReplicationConfig

    // The checks' memory.
    var leaders: [TopicIDPartition: [LeaderEpoch: NodeID]] = [:]
    var acknowledged: [TopicIDPartition: [Offset: SimRecord]] = [:]
    var committedPrefix: [TopicIDPartition: [SimRecord]] = [:]
    /// Partitions that acknowledged a record after faults stopped.
    var acknowledgedAfterFaults: Set<TopicIDPartition> = []
    /// Set once every partition is fully in sync and took writes again: producers stop, and the
    /// run ends when every replica holds the same log.
    var draining = false

    static let stepsMax = 20_000_000

    public init(seed: UInt64, options: ClusterSimulationOptions = ClusterSimulationOptions()) {
        self.seed = seed
        self.options = options
        var random = SeededRandom(seed: seed)
        let count = options.brokerCount ?? 3 + Int(random.next() % 3)
        precondition(count >= options.replicationFactor && count <= 9, "the simulation runs from RF to 9 brokers")
        lossPercent = random.next() % 15
        delayMaxMs = 1 + Int64(random.next() % 40)
        crashEveryMs = 1000 + Int64(random.next() % 4000)
        controllerFailEveryMs = 2000 + Int64(random.next() % 6000)
        cutEveryMs = 1000 + Int64(random.next() % 5000)
        replication = ReplicationConfig(replicaLagTimeMaxMs: 1000 + Int64(random.next() % 2000),
                                        minInSyncReplicas: options.minInSyncReplicas)
        self.random = random
        report = ClusterSimulationReport(seed: seed, brokers: count)
        brokers = (1...count).map { Broker(id: NodeID(Int32($0))) }
    }

    /// The eligible leader replicas a leader is told (none with the planted bug).
    func eligible(_ info: PartitionInfo) -> [NodeID] { options.bug == .hwIgnoresELR ? [] : info.elr }

    var controllerConfig: ControllerConfig {
        var config = ControllerConfig()
        config.sessionTimeoutMs = 1500
        config.minInSyncReplicas = options.minInSyncReplicas
        return config
    }

    public static func run(seed: UInt64, options: ClusterSimulationOptions = ClusterSimulationOptions()) -> Result<ClusterSimulationReport, SimulationFailure> {
        ClusterSimulation(seed: seed, options: options).run()
    }

    public func run() -> Result<ClusterSimulationReport, SimulationFailure> {
        controller = ClusterController(committed: committedImage, config: controllerConfig, nowMs: 0, randomSeed: seed)
        for i in brokers.indices { startBroker(i) }
        queue.push(.controllerTick, at: Self.tickMs)
        queue.push(.produce, at: 500)
        queue.push(.crash, at: crashEveryMs)
        queue.push(.controllerFail, at: controllerFailEveryMs)
        queue.push(.cut, at: cutEveryMs)
        queue.push(.endFaults, at: options.faultsMs)
        var nextCreateMs: Int64 = 0
        do {
            while let (time, event) = queue.pop() {
                now = time
                report.steps += 1
                guard report.steps < Self.stepsMax else { throw fail("step limit reached: livelock") }
                if options.trace { print("t=\(now) \(event)") }
                try handle(event)
                // Asked again until the topic is committed: a controller failover may lose the entry.
                if topicID == nil, now >= nextCreateMs, committedImage.brokers.values.filter({ !$0.fenced }).count >= options.replicationFactor {
                    if createTopic() { nextCreateMs = now + 1000 }
                }
                if let endedAt = faultsEndedAt {
                    if try healthy() { break }
                    if now - endedAt > options.livenessMs { throw fail("not fully replicated \(options.livenessMs) ms after faults stopped: \(describeState())") }
                }
            }
            try checkAgreement()
        } catch let failure as SimulationFailure {
            return .failure(failure)
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
        report.timeMs = now
        return .success(report)
    }

    func fail(_ message: String) -> SimulationFailure {
        var failure = SimulationFailure(seed: seed, timeMs: now, step: report.steps, message: message)
        failure.replay = "brook-sim --cluster"
        return failure
    }
    func percent(_ p: UInt64) -> Bool { random.next() % 100 < p }
    func randomMs(_ upTo: Int64) -> Int64 { Int64(random.next() % UInt64(max(1, upTo))) }
    var topicID: KafkaUUID? { committedImage.topicIDs["sim"] }

    // MARK: events

    func handle(_ event: Event) throws {
        switch event {
        case .tick(let i):
            guard brokers[i].up else { return }
            try tickBroker(i)
            queue.push(.tick(i), at: now + Self.tickMs)
        case .controllerTick:
            queue.push(.controllerTick, at: now + Self.tickMs)
            guard controller != nil else { return }
            let decision = controller!.tick(nowMs: now)
            append(decision.records) {}
        case .commit:
            try commit()
        case .deliver(let to, let packet):
            try deliver(packet, to: to)
        case .produce:
            queue.push(.produce, at: now + 20 + randomMs(80))
            if !draining { try produce() }
        case .crash:
            guard faultsActive else { return }
            queue.push(.crash, at: now + crashEveryMs)
            let i = Int(random.next() % UInt64(brokers.count))
            guard brokers[i].up else { return }
            crashBroker(i)
            queue.push(.restart(i), at: now + 200 + randomMs(3000))
        case .restart(let i):
            startBroker(i)
        case .cut:
            guard faultsActive else { return }
            queue.push(.cut, at: now + cutEveryMs)
            guard cutOff == nil else { return }
            cutOff = Int(random.next() % UInt64(brokers.count))
            cutFromControllerOnly = random.next() % 2 == 0
            report.partitionsCut += 1
            queue.push(.heal, at: now + 300 + randomMs(3000))
        case .heal:
            cutOff = nil
        case .controllerFail:
            guard faultsActive else { return }
            queue.push(.controllerFail, at: now + controllerFailEveryMs)
            guard controller != nil else { return }
            controller = nil
            uncommitted.removeAll()
            report.controllerFailovers += 1
            queue.push(.controllerBack, at: now + 100 + randomMs(1500))
        case .controllerBack:
            guard controller == nil else { return }
            controller = ClusterController(committed: committedImage, config: controllerConfig, nowMs: now, randomSeed: seed &+ UInt64(now))
        case .endFaults:
            faultsActive = false
            faultsEndedAt = now
            cutOff = nil
            if controller == nil { queue.push(.controllerBack, at: now) }
            for i in brokers.indices where !brokers[i].up { queue.push(.restart(i), at: now) }
        }
    }

    // MARK: the metadata log

    /// Appends a decision's records; they commit after a short delay unless the controller
    /// fails first. `onCommit` answers the request.
    func append(_ records: [MetadataRecord], onCommit: @escaping () -> Void) {
        guard !records.isEmpty else { return onCommit() }
        uncommitted.append((records, onCommit))
        queue.push(.commit, at: now + Self.metadataCommitMs)
    }

    func commit() throws {
        // Entries commit in order; a failover in between dropped them.
        guard let first = uncommitted.first else { return }
        uncommitted.removeFirst()
        metadataLog.append(first.records)
        let offset = MetadataOffset(Int64(metadataLog.count))
        let before = committedImage
        do {
            try committedImage.apply(first.records, at: offset)
            try controller?.replay(first.records, at: offset)
        } catch {
            throw fail("a committed entry does not apply: \(error)")
        }
        for record in first.records {
            if case .partitionChange(let change) = record {
                if change.leader.value != -2 { report.elections += 1 } else { report.isrChanges += 1 }
                if change.leader.value >= 0, before.partition(TopicIDPartition(change.topicId, change.partitionId))?.elr.contains(change.leader) == true {
                    report.eligibleLeaderElections += 1
                }
            }
        }
        first.onCommit()
    }

    func createTopic() -> Bool {
        guard controller != nil else { return false }
        let decision = controller!.createTopic(NewTopic(name: "sim", partitions: options.partitions, replicationFactor: options.replicationFactor))
        guard decision.answer.0 == .none else { return false }
        append(decision.records) {}
        return true
    }

    // MARK: the network

    func send(_ packet: Packet, from: Int, to: Int) {
        if isCut(from, to) {
            report.dropped += 1
            return
        }
        if faultsActive && percent(lossPercent) {
            report.dropped += 1
            return
        }
        queue.push(.deliver(to, packet), at: now + 1 + randomMs(delayMaxMs))
    }

    func isCut(_ from: Int, _ to: Int) -> Bool {
        guard faultsActive, let cut = cutOff, cut == from || cut == to else { return false }
        return !cutFromControllerOnly || from == -1 || to == -1
    }

    func deliver(_ packet: Packet, to: Int) throws {
        if to == -1 { return controllerReceive(packet) }
        guard brokers[to].up else { return }
        switch packet {
        case .registered(let code, let epoch, let incarnation):
            guard incarnation == brokers[to].incarnation, brokers[to].registering else { return }
            brokers[to].registering = false
            if code == .none { brokers[to].epoch = epoch }
        case .heartbeatAnswer(let answer, let epoch):
            if epoch != .none, epoch == brokers[to].epoch {
                brokers[to].fenced = answer.isFenced
                if answer.error == .staleBrokerEpoch || answer.error == .brokerIDNotRegistered { brokers[to].epoch = .none }
            }
            try catchUpMetadata(to)
        case .alterPartitionAnswer(let key, let leaderEpoch, let code, let info, let proposal):
            guard var replica = brokers[to].replicas[key], var leading = replica.leading, leading.leaderEpoch == leaderEpoch else { return }
            if code == .none, let info, info.leaderEpoch == leaderEpoch, info.leader == brokers[to].id {
                leading.proposalCommitted(info.isr, elr: eligible(info), partitionEpoch: info.partitionEpoch)
            } else if PartitionReplication.refusesForGood(code) {
                leading.proposalRefused(proposal)
            }
            replica.proposalSentMs = nil
            replica.leading = leading
            brokers[to].replicas[key] = replica
            try acknowledge(to, key)
        case .fetch(let from, let key, let epoch, let offset, let lastEpoch):
            let answer = try serveFetch(to, key, from: from, leaderEpoch: epoch, offset: offset, lastEpoch: lastEpoch)
            send(.fetchAnswer(key, leaderEpoch: epoch, answer), from: to, to: Int(from.value) - 1)
        case .fetchAnswer(let key, let epoch, let result):
            try followerReceived(to, key, leaderEpoch: epoch, result)
        default:
            preconditionFailure("a broker got a controller's packet")
        }
    }

    func controllerReceive(_ packet: Packet) {
        guard controller != nil else { return }
        switch packet {
        case .register(let request, let incarnation):
            let decision = controller!.register(request, nowMs: now)
            let from = Int(request.id.value) - 1
            append(decision.records) { [self] in
                send(.registered(decision.answer.0, decision.answer.1, incarnation: incarnation), from: -1, to: from)
            }
        case .heartbeat(let request):
            let decision = controller!.heartbeat(request, nowMs: now)
            let from = Int(request.id.value) - 1
            append(decision.records) { [self] in
                send(.heartbeatAnswer(decision.answer, epoch: request.epoch), from: -1, to: from)
            }
        case .alterPartitions(let requests):
            let decision = controller!.alterPartitions(requests)
            let from = Int(requests[0].broker.value) - 1
            append(decision.records) { [self] in
                for (request, answer) in zip(requests, decision.answer) {
                    send(.alterPartitionAnswer(request.partition, request.proposal.leaderEpoch, answer.0, answer.1, request.proposal),
                         from: -1, to: from)
                }
            }
        default:
            preconditionFailure("the controller got a broker's packet")
        }
    }

    // MARK: brokers

    func startBroker(_ i: Int) {
        brokers[i].up = true
        brokers[i].incarnation += 1
        brokers[i].epoch = .none
        brokers[i].fenced = true
        brokers[i].registering = false
        // The image is rebuilt from the log; logs, caches and HW checkpoints survive.
        brokers[i].image = MetadataImage()
        brokers[i].actedImage = MetadataImage()
        brokers[i].applied = 0
        for key in brokers[i].replicas.keys {
            brokers[i].replicas[key]!.leading = nil
            brokers[i].replicas[key]!.waitingAcks = []
            brokers[i].replicas[key]!.leader = nil
            brokers[i].replicas[key]!.leaderEpoch = .none
            brokers[i].replicas[key]!.fetchInFlightSinceMs = nil
            brokers[i].replicas[key]!.proposalSentMs = nil
        }
        queue.push(.tick(i), at: now + Self.tickMs)
    }

    func crashBroker(_ i: Int) {
        brokers[i].up = false
        report.crashes += 1
        if options.trace { print("t=\(now) broker \(brokers[i].id) crashed") }
    }

    func tickBroker(_ i: Int) throws {
        let id = brokers[i].id
        if brokers[i].epoch == .none {
            if !brokers[i].registering || now - brokers[i].lastHeartbeatMs > 1000 {
                brokers[i].registering = true
                brokers[i].lastHeartbeatMs = now
                let request = BrokerRegistrationRequest(
                    id: id, incarnation: KafkaUUID(high: UInt64(i + 1), low: UInt64(brokers[i].incarnation)),
                    endpoints: [.init(name: "PLAINTEXT", host: "sim", port: 9092)],
                    // Every restart follows a crash: an unclean shutdown, out of every ELR.
                    cleanShutdown: brokers[i].incarnation == 1)
                send(.register(request, incarnation: brokers[i].incarnation), from: i, to: -1)
            }
        } else if now - brokers[i].lastHeartbeatMs >= Self.heartbeatMs {
            brokers[i].lastHeartbeatMs = now
            let request = BrokerHeartbeatRequest(id: id, epoch: brokers[i].epoch, metadataOffset: brokers[i].image.offset)
            send(.heartbeat(request), from: i, to: -1)
        }
        try catchUpMetadata(i)
        var changes: [AlterPartitionRequest] = []
        for key in brokers[i].replicas.keys.sorted(by: { $0.partition < $1.partition }) {
            try tickReplica(i, key, changes: &changes)
        }
        if !changes.isEmpty { send(.alterPartitions(changes), from: i, to: -1) }
    }

    /// Applies the committed metadata entries this broker has not seen, then its own replicas'
    /// changes (what the replica manager does).
    func catchUpMetadata(_ i: Int) throws {
        // The metadata log comes from the quorum, which a cut-off broker cannot reach.
        guard brokers[i].applied < metadataLog.count, !isCut(i, -1) else { return }
        var image = brokers[i].image
        while brokers[i].applied < metadataLog.count {
            brokers[i].applied += 1
            do { try image.apply(metadataLog[brokers[i].applied - 1], at: MetadataOffset(Int64(brokers[i].applied))) } catch {
                throw fail("broker \(brokers[i].id) cannot apply entry \(brokers[i].applied): \(error)")
            }
        }
        brokers[i].image = image
        guard brokers[i].epoch != .none, image.brokers[brokers[i].id]?.epoch == brokers[i].epoch else { return }
        for change in LocalReplicaChange.between(brokers[i].actedImage, image, broker: brokers[i].id) {
            try applyLocal(change, i)
        }
        brokers[i].actedImage = image
    }

    func applyLocal(_ change: LocalReplicaChange, _ i: Int) throws {
        let id = brokers[i].id
        if options.trace { print("t=\(now) broker \(id): \(change)") }
        switch change {
        case .lead(let key, let info):
            var replica = brokers[i].replicas[key] ?? Replica()
            try checkLeader(key, epoch: info.leaderEpoch, broker: id, log: replica.log)
            replica.cache.assign(info.leaderEpoch, startOffset: replica.logEnd)
            replica.leader = id
            replica.leaderEpoch = info.leaderEpoch
            replica.waitingAcks = []
            replica.proposalSentMs = nil
            replica.leading = PartitionReplication(
                leader: id, leaderEpoch: info.leaderEpoch, partitionEpoch: info.partitionEpoch, replicas: info.replicas, isr: info.isr,
                elr: eligible(info), logEndOffset: replica.logEnd, highWatermark: min(replica.highWatermark, replica.logEnd), config: replication, nowMs: now)
            brokers[i].replicas[key] = replica
        case .isrChanged(let key, let info):
            guard var replica = brokers[i].replicas[key], var leading = replica.leading else { return }
            leading.isrCommitted(info.isr, elr: eligible(info), partitionEpoch: info.partitionEpoch)
            replica.leading = leading
            brokers[i].replicas[key] = replica
            try acknowledge(i, key)
        case .follow(let key, let info):
            var replica = brokers[i].replicas[key] ?? Replica()
            replica.leading = nil
            replica.waitingAcks = []
            replica.leader = info.leader
            replica.leaderEpoch = info.leaderEpoch
            replica.fetchInFlightSinceMs = nil
            brokers[i].replicas[key] = replica
        case .remove(let key):
            brokers[i].replicas[key] = nil
        }
    }

    func tickReplica(_ i: Int, _ key: TopicIDPartition, changes: inout [AlterPartitionRequest]) throws {
        guard var replica = brokers[i].replicas[key] else { return }
        if var leading = replica.leading {
            // No answer in time: the outcome is unknown, so the proposal stays in flight and is
            // sent again (it may have been committed; metadata will tell).
            if let sent = replica.proposalSentMs, now - sent > 2000 { replica.proposalSentMs = nil }
            let image = brokers[i].image
            let pending = replica.proposalSentMs == nil ? leading.inFlight : nil
            if let proposal = pending ?? leading.proposal(nowMs: now, eligible: { image.brokers[$0]?.isActive ?? false }) {
                replica.proposalSentMs = now
                changes.append(AlterPartitionRequest(broker: brokers[i].id, brokerEpoch: brokers[i].epoch, partition: key, proposal: proposal))
            }
            replica.leading = leading
            brokers[i].replicas[key] = replica
            return
        }
        guard let leader = replica.leader, leader != brokers[i].id else { return }
        if let since = replica.fetchInFlightSinceMs, now - since < 500 { return }
        replica.fetchInFlightSinceMs = now
        brokers[i].replicas[key] = replica
        send(.fetch(from: brokers[i].id, key, leaderEpoch: replica.leaderEpoch, offset: replica.logEnd, lastEpoch: replica.cache.latestEpoch),
             from: i, to: Int(leader.value) - 1)
    }

    // MARK: replication

    func serveFetch(_ i: Int, _ key: TopicIDPartition, from follower: NodeID, leaderEpoch: LeaderEpoch, offset: Offset,
                    lastEpoch: LeaderEpoch?) throws -> FetchResult {
        guard var replica = brokers[i].replicas[key], var leading = replica.leading, leading.leaderEpoch == leaderEpoch else { return .refused }
        if let lastEpoch, options.bug != .noTruncation {
            guard let end = replica.cache.endOffset(for: lastEpoch, logEnd: replica.logEnd) else { return .undefinedDivergence }
            if end.epoch < lastEpoch || end.endOffset < offset { return .diverging(end.epoch, end.endOffset) }
        }
        guard offset <= replica.logEnd else { return .refused }
        leading.followerFetched(follower, fetchOffset: offset, nowMs: now)
        let records = Array(replica.log[Int(offset.value)..<min(replica.log.count, Int(offset.value) + 8)])
        replica.leading = leading
        replica.highWatermark = leading.highWatermark
        if options.bug == .hwIgnoresISR { replica.highWatermark = max(replica.highWatermark, offset) }
        brokers[i].replicas[key] = replica
        try recordCommitted(key, log: replica.log, highWatermark: replica.highWatermark, broker: brokers[i].id)
        try acknowledge(i, key)
        return .records(from: offset, records, highWatermark: replica.highWatermark)
    }

    func followerReceived(_ i: Int, _ key: TopicIDPartition, leaderEpoch: LeaderEpoch, _ result: FetchResult) throws {
        guard var replica = brokers[i].replicas[key], replica.leading == nil, replica.leaderEpoch == leaderEpoch else { return }
        replica.fetchInFlightSinceMs = nil
        let hwBefore = replica.highWatermark
        switch result {
        case .refused:
            break
        case .diverging(let epoch, let end):
            truncate(&replica, to: replica.cache.truncationOffset(leaderAnswer: (epoch, end), logEnd: replica.logEnd, highWatermark: replica.highWatermark))
        case .undefinedDivergence:
            truncate(&replica, to: replica.cache.truncationOffset(leaderAnswer: nil, logEnd: replica.logEnd, highWatermark: replica.highWatermark))
        case .records(let from, let records, let leaderHW):
            guard from == replica.logEnd else { break }
            for record in records {
                // The follower append refuses a batch older than its latest epoch: the logs
                // diverged and the follower did not truncate.
                if let latest = replica.cache.latestEpoch, record.epoch < latest {
                    throw fail("broker \(brokers[i].id) would append epoch \(record.epoch) after epoch \(latest) to \(key): its log diverged from the leader's")
                }
                replica.cache.assign(record.epoch, startOffset: replica.logEnd)
                replica.log.append(record)
            }
            replica.highWatermark = max(replica.highWatermark, min(leaderHW, replica.logEnd))
        }
        brokers[i].replicas[key] = replica
        try checkPrefix(key, replica, from: min(hwBefore, replica.logEnd), broker: brokers[i].id)
    }

    func truncate(_ replica: inout Replica, to offset: Offset) {
        // Even at the log's end: an epoch this broker began as leader but wrote nothing in
        // must go, or the next fetch would claim it again.
        replica.cache.truncate(from: min(offset, replica.logEnd))
        guard offset < replica.logEnd else { return }
        if options.trace { print("t=\(now) truncate from \(replica.logEnd) to \(offset), epochs \(replica.cache.entries)") }
        report.truncations += 1
        replica.log.removeLast(replica.log.count - Int(offset.value))
        replica.highWatermark = min(replica.highWatermark, offset)
    }

    func produce() throws {
        guard let topicID else { return }
        let key = TopicIDPartition(topicID, Int32(random.next() % UInt64(options.partitions)))
        // The producer finds the leader in some broker's metadata, which may be stale, as a
        // client's is; it may sit on the same side of a cut as the leader.
        let asked = brokers[Int(random.next() % UInt64(brokers.count))]
        guard asked.up, let leader = asked.image.partition(key)?.leader else { return }
        let i = Int(leader.value) - 1
        guard brokers[i].up, !isCut(i, -2) || random.next() % 2 == 0, var replica = brokers[i].replicas[key], var leading = replica.leading else { return }
        guard leading.hasEnoughReplicas else {
            report.produceRefused += 1
            return
        }
        var values: [Int] = []
        for _ in 0...(random.next() % 3) {
            nextValue += 1
            values.append(nextValue)
            replica.log.append(SimRecord(epoch: leading.leaderEpoch, value: nextValue))
        }
        leading.leaderAppended(logEnd: replica.logEnd)
        replica.highWatermark = leading.highWatermark
        replica.waitingAcks.append((replica.logEnd, values))
        replica.leading = leading
        brokers[i].replicas[key] = replica
        try acknowledge(i, key)
    }

    /// Answers the produces the leader's HW passed: those records are acknowledged.
    func acknowledge(_ i: Int, _ key: TopicIDPartition) throws {
        guard var replica = brokers[i].replicas[key], let leading = replica.leading else { return }
        replica.highWatermark = max(replica.highWatermark, leading.highWatermark)
        try recordCommitted(key, log: replica.log, highWatermark: replica.highWatermark, broker: brokers[i].id)
        while let first = replica.waitingAcks.first, first.end <= replica.highWatermark {
            replica.waitingAcks.removeFirst()
            let start = Int(first.end.value) - first.values.count
            for (n, value) in first.values.enumerated() {
                let offset = Offset(Int64(start + n))
                acknowledged[key, default: [:]][offset] = replica.log[start + n]
                precondition(replica.log[start + n].value == value, "the leader's log changed under a waiting produce")
                report.acknowledged += 1
            }
            if !faultsActive { acknowledgedAfterFaults.insert(key) }
        }
        brokers[i].replicas[key] = replica
    }

    // MARK: checks

    func checkLeader(_ key: TopicIDPartition, epoch: LeaderEpoch, broker: NodeID, log: [SimRecord]) throws {
        if let other = leaders[key]?[epoch], other != broker {
            throw fail("two leaders of \(key) in epoch \(epoch): \(other) and \(broker)")
        }
        leaders[key, default: [:]][epoch] = broker
        let prefix = committedPrefix[key] ?? []
        for n in 0..<min(prefix.count, log.count) where log[n] != prefix[n] {
            throw fail("broker \(broker) leads \(key) in epoch \(epoch) with \(log[n].value)@e\(log[n].epoch) at committed offset \(n), committed was \(prefix[n].value)@e\(prefix[n].epoch)")
        }
        for (offset, record) in acknowledged[key] ?? [:] {
            guard Int(offset.value) < log.count, log[Int(offset.value)] == record else {
                throw fail("broker \(broker) leads \(key) in epoch \(epoch) without acknowledged record \(record.value) at \(offset) (log end \(log.count))")
            }
        }
    }

    /// The leader's log below its HW is committed: it must extend what was committed before.
    func recordCommitted(_ key: TopicIDPartition, log: [SimRecord], highWatermark: Offset, broker: NodeID) throws {
        var prefix = committedPrefix[key] ?? []
        let upTo = Int(highWatermark.value)
        // Below prefix.count this leader's log was checked when it took over (it never
        // truncates while it leads): only the newly committed part is new.
        if upTo > prefix.count {
            prefix.append(contentsOf: log[prefix.count..<upTo])
            committedPrefix[key] = prefix
        }
    }

    /// A replica's log below its own HW matches the committed prefix.
    func checkPrefix(_ key: TopicIDPartition, _ replica: Replica, from start: Offset, broker: NodeID) throws {
        let prefix = committedPrefix[key] ?? []
        let end = min(Int(replica.highWatermark.value), prefix.count, replica.log.count)
        for n in min(Int(start.value), end)..<end where replica.log[n] != prefix[n] {
            throw fail("broker \(broker)'s replica of \(key) differs from the committed log at \(n), below its HW \(replica.highWatermark)")
        }
    }

    /// After faults: every partition led with its full ISR and taking writes; then, with
    /// producers stopped, every replica's log equal to its leader's.
    func healthy() throws -> Bool {
        guard let topicID, let topic = committedImage.topics[topicID] else { return false }
        for (index, partition) in topic.partitions.enumerated() {
            let key = TopicIDPartition(topicID, Int32(index))
            guard let leader = partition.leader, partition.isr.count == partition.replicas.count,
                  let leading = brokers[Int(leader.value) - 1].replicas[key] else { return false }
            guard draining else {
                if !acknowledgedAfterFaults.contains(key) { return false }
                continue
            }
            for replica in partition.replicas {
                guard let copy = brokers[Int(replica.value) - 1].replicas[key], copy.log == leading.log else { return false }
            }
        }
        if draining { return true }
        draining = true
        return false
    }

    func checkAgreement() throws {
        for (key, prefix) in committedPrefix {
            for broker in brokers {
                guard let replica = broker.replicas[key] else { continue }
                for n in 0..<min(prefix.count, replica.log.count, Int(replica.highWatermark.value)) where replica.log[n] != prefix[n] {
                    throw fail("broker \(broker.id) disagrees with the committed log of \(key) at \(n)")
                }
            }
        }
        for (key, records) in acknowledged {
            guard let leader = committedImage.partition(key)?.leader, let log = brokers[Int(leader.value) - 1].replicas[key]?.log else {
                throw fail("no leader for \(key) at the end")
            }
            for (offset, record) in records where Int(offset.value) >= log.count || log[Int(offset.value)] != record {
                throw fail("acknowledged record \(record.value) at \(offset) of \(key) is gone from the final leader \(leader)")
            }
        }
    }

    func describeState() -> String {
        guard let topicID, let topic = committedImage.topics[topicID] else { return "no topic" }
        var parts: [String] = []
        for (index, partition) in topic.partitions.enumerated() {
            let key = TopicIDPartition(topicID, Int32(index))
            let ends = partition.replicas.map { "\($0):\(brokers[Int($0.value) - 1].replicas[key]?.log.count ?? -1)" }
            parts.append("p\(index) leader \(partition.leader.map(\.description) ?? "none") epoch \(partition.leaderEpoch) isr \(partition.isr) ends \(ends)")
        }
        let fenced = committedImage.brokers.values.filter(\.fenced).map(\.id).sorted()
        return parts.joined(separator: "; ") + "; fenced \(fenced)"
    }
}
