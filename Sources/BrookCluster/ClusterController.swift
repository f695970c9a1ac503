import BrookCore
import BrookProtocol

/// The active controller's settings (Kafka's names).
public struct ControllerConfig: Equatable, Sendable {
    /// `broker.session.timeout.ms`: a broker that has not heartbeated for this long is fenced.
    public var sessionTimeoutMs: Int64 = 9000
    /// `default.replication.factor` and `num.partitions` for topics created without them.
    public var defaultReplicationFactor = 1
    public var defaultPartitions = 1
    /// `unclean.leader.election.enable`, cluster-wide (a topic's config overrides it).
    public var uncleanLeaderElection = false
    /// `min.insync.replicas`, cluster-wide (a topic's config overrides it): the eligible leader
    /// replicas (KIP-966) follow it.
    public var minInSyncReplicas = 1
    /// Producer ids are handed to brokers in blocks of this many.
    public var producerIDBlockSize: Int64 = 1000
    /// At most this many records in one metadata log entry (Kafka's MAX_RECORDS_PER_USER_OP);
    /// larger repairs continue at the next tick.
    public var recordsPerEntryMax = 10_000
    /// `cluster.id` when the operator set one; otherwise the first controller draws one.
    public var clusterID: String?
    /// `auto.leader.rebalance.enable`, `leader.imbalance.check.interval.seconds` (in ms here) and
    /// `leader.imbalance.per.broker.percentage`, Kafka's defaults.
    public var autoLeaderRebalance = true
    public var leaderImbalanceCheckIntervalMs: Int64 = 300_000
    public var leaderImbalancePerBrokerPercentage = 10
    /// A single node's data, written into the log by the controller that starts it (Takeover).
    public var takeover: SingleNodeData?
    /// Records written once, in the metadata log's first entry beside the cluster id, by the
    /// controller that starts the cluster (`brook serve --add-scram`, as Kafka's format does);
    /// ignored once the cluster exists. Few: they share the entry's record budget.
    public var bootstrapRecords: [MetadataRecord] = [] {
        didSet { precondition(bootstrapRecords.count <= 1000, "too many bootstrap records") }
    }
    public init() {}
}

/// What a broker sends at start (BrokerRegistration).
public struct BrokerRegistrationRequest: Equatable, Sendable {
    public var id: NodeID
    public var incarnation: KafkaUUID
    public var endpoints: [BrokerInfo.Endpoint]
    public var rack: String?
    /// Whether the broker's previous run stopped cleanly: if not, its logs may lack what it
    /// had acknowledged (a power loss), and it leaves every ELR (KIP-966).
    public var cleanShutdown: Bool
    public init(id: NodeID, incarnation: KafkaUUID, endpoints: [BrokerInfo.Endpoint], rack: String? = nil, cleanShutdown: Bool = true) {
        self.id = id
        self.incarnation = incarnation
        self.endpoints = endpoints
        self.rack = rack
        self.cleanShutdown = cleanShutdown
    }
}

/// What a broker sends every heartbeat interval (BrokerHeartbeat).
public struct BrokerHeartbeatRequest: Equatable, Sendable {
    public var id: NodeID
    public var epoch: BrokerEpoch
    /// The metadata offset the broker has applied.
    public var metadataOffset: MetadataOffset
    public var wantFence: Bool
    public var wantShutdown: Bool
    /// The replicas this broker cannot host: their log directory failed (Kafka's
    /// OfflineLogDirs, per replica here). Repeated in every heartbeat, at most
    /// `offlineReplicasMax`: a broker that loses more shuts down instead.
    public var offlineReplicas: [TopicIDPartition]
    public static let offlineReplicasMax = 4096
    public init(id: NodeID, epoch: BrokerEpoch, metadataOffset: MetadataOffset, wantFence: Bool = false, wantShutdown: Bool = false,
                offlineReplicas: [TopicIDPartition] = []) {
        precondition(offlineReplicas.count <= Self.offlineReplicasMax, "too many offline replicas for a heartbeat")
        self.id = id
        self.epoch = epoch
        self.metadataOffset = metadataOffset
        self.wantFence = wantFence
        self.wantShutdown = wantShutdown
        self.offlineReplicas = offlineReplicas
    }
}

public struct BrokerHeartbeatAnswer: Equatable, Sendable {
    public var error: ErrorCode = .none
    public var isCaughtUp = false
    public var isFenced = true
    public var shouldShutDown = false
}

/// A leader's ISR change request (AlterPartition), for one partition.
public struct AlterPartitionRequest: Equatable, Sendable {
    public var broker: NodeID
    public var brokerEpoch: BrokerEpoch
    public var partition: TopicIDPartition
    public var proposal: ISRProposal
    public init(broker: NodeID, brokerEpoch: BrokerEpoch, partition: TopicIDPartition, proposal: ISRProposal) {
        self.broker = broker
        self.brokerEpoch = brokerEpoch
        self.partition = partition
        self.proposal = proposal
    }
    /// Partitions in one request, at most: a leader sends more in several. Each makes at most
    /// two records, so one request's changes always fit one entry (`recordsPerEntryMax`).
    public static let partitionsMax = 2000
}

/// What the controller committed for a partition's ISR change: the ISR, the eligible leader
/// replicas and the partition epoch they make.
public typealias CommittedISR = (isr: [NodeID], elr: [NodeID], partitionEpoch: PartitionEpoch)

/// A topic to create: a partition count and replication factor (nil: the defaults), or
/// explicit replica lists.
public struct NewTopic: Equatable, Sendable {
    public var name: String
    public var partitions: Int?
    public var replicationFactor: Int?
    public var assignments: [[NodeID]]?
    public var configs: [String: String]
    public init(name: String, partitions: Int? = nil, replicationFactor: Int? = nil, assignments: [[NodeID]]? = nil, configs: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.assignments = assignments
        self.configs = configs
    }
}

/// The records a decision appends (as one metadata log entry, all or none) and the answer to
/// give once they are committed. An answer with an error appends nothing.
public struct Decision<Answer: Sendable>: Sendable {
    public var records: [MetadataRecord]
    public var answer: Answer
}

/// The active controller's decisions, as a pure state machine over the metadata image.
///
/// Requests and time go in; records to append and answers come out. The controller applies its
/// own records to `image` at once (so the next decision sees them) and keeps them `pending`
/// until the metadata log commits them (`replay`). The driver appends each decision's records
/// as one entry and answers only once that entry is committed; if it loses the quorum's
/// leadership it drops this controller and builds a new one from the committed image when it
/// leads again. Sessions (heartbeat times) are soft state: a new controller gives every broker
/// a full session.
public struct ClusterController: Sendable {
    public let config: ControllerConfig
    /// The image of the committed log.
    public private(set) var committed: MetadataImage
    /// `committed` with the pending entries applied.
    public private(set) var image: MetadataImage
    /// Entries appended but not committed, oldest first.
    public private(set) var pending: [[MetadataRecord]] = []
    var sessions: [NodeID: Int64] = [:]
    /// When `tick` last ran: a controller whose ticks come late was not running (a paused or
    /// starved process), and a broker's heartbeats it could not read meanwhile are not the
    /// broker's silence.
    var lastTickMs: Int64?
    /// Brokers this controller heard from (a registration or a heartbeat) since it became active.
    /// A registered incarnation it never heard from may be replaced at once by a new one: a
    /// combined node restarting (its controller too) is not kept waiting a session timeout.
    var heard: Set<NodeID> = []
    /// Brokers whose liveness changed: their partitions are repaired, a bounded number per entry.
    var dirty: Set<NodeID> = []
    /// Brokers that registered after an unclean shutdown, until the repairs their registration
    /// needs are all written: none of those repairs may make them eligible leaders (KIP-966).
    var uncleanPending: Set<NodeID> = []
    var random: SeededRandom
    /// When leadership balance was last checked (soft state, as sessions).
    var lastRebalanceCheckMs: Int64
    /// The replicas each broker reported offline in its last heartbeat (a failed log
    /// directory): soft state, as sessions, since every heartbeat says it again.
    var offline: [NodeID: Set<TopicIDPartition>] = [:]

    public init(committed: MetadataImage, config: ControllerConfig = ControllerConfig(), nowMs: Int64, randomSeed: UInt64) {
        self.config = config
        self.committed = committed
        image = committed
        random = SeededRandom(seed: randomSeed)
        lastRebalanceCheckMs = nowMs
        for id in committed.brokers.keys { sessions[id] = nowMs }
        // A controller may have died half-way through a repair: look at every broker once.
        dirty = Set(committed.brokers.keys)
    }

    // MARK: the log

    /// The metadata log committed `records` at `offset` (every entry, in order, this
    /// controller's or not).
    public mutating func replay(_ records: [MetadataRecord], at offset: MetadataOffset) throws(MetadataError) {
        try committed.apply(records, at: offset)
        if let first = pending.first, first == records {
            pending.removeFirst()
        } else if !pending.isEmpty {
            // Another controller's entry: ours will never commit in this order.
            pending.removeAll()
        }
        rebuildImage()
    }

    mutating func rebuildImage() {
        image = committed
        for (i, entry) in pending.enumerated() {
            do {
                try image.apply(entry, at: MetadataOffset(committed.offset.value + Int64(i) + 1))
            } catch {
                preconditionFailure("a pending entry no longer applies: \(error)")
            }
        }
    }

    /// Appends `records` as one pending entry and returns the decision.
    mutating func decide<Answer>(_ records: [MetadataRecord], _ answer: Answer) -> Decision<Answer> {
        guard !records.isEmpty else { return Decision(records: [], answer: answer) }
        precondition(records.count <= config.recordsPerEntryMax, "\(records.count) records in one entry")
        do {
            try image.apply(records, at: MetadataOffset(image.offset.value + 1))
        } catch {
            preconditionFailure("the controller made records that do not apply: \(error)")
        }
        pending.append(records)
        return Decision(records: records, answer: answer)
    }

    // MARK: brokers

    public mutating func register(_ request: BrokerRegistrationRequest, nowMs: Int64) -> Decision<(ErrorCode, BrokerEpoch)> {
        if let existing = image.brokers[request.id], existing.incarnation != request.incarnation, !existing.fenced,
           heard.contains(request.id), let last = sessions[request.id], nowMs - last <= config.sessionTimeoutMs {
            return Decision(records: [], answer: (.duplicateBrokerRegistration, .none))
        }
        let epoch = BrokerEpoch(image.highestBrokerEpoch.value + 1)
        var record = RegisterBrokerRecord()
        record.brokerId = request.id
        record.incarnationId = request.incarnation
        record.brokerEpoch = epoch.value
        record.endPoints = request.endpoints.map {
            RegisterBrokerRecord.BrokerEndpoint(name: $0.name, host: $0.host, port: UInt16(clamping: $0.port), securityProtocol: $0.securityProtocol)
        }
        record.rack = request.rack
        record.fenced = true
        sessions[request.id] = nowMs
        heard.insert(request.id)
        // A new incarnation says again what it cannot host.
        offline[request.id] = nil
        var records: [MetadataRecord] = [.registerBroker(record)]
        if !request.cleanShutdown {
            records += leavingEveryELR(request.id)
            // Nor may the repairs below put it back (it leaves the ISR in them when it was there).
            uncleanPending.insert(request.id)
        }
        // A new incarnation: the old one's leaderships and ISR places go in the same entry.
        return decideWithRepairs(records, affecting: request.id, (.none, epoch))
    }

    /// UnregisterBroker: the broker's registration goes, and in the same entry its leaderships
    /// and ISR places (as for a fenced broker) and its ELR places (its data is given up). Its
    /// replicas stay listed, offline, until a reassignment moves them. A broker still running
    /// registers again, as Kafka's does: stop it first.
    public mutating func unregisterBroker(_ id: NodeID) -> Decision<ErrorCode> {
        guard let broker = image.brokers[id] else { return Decision(records: [], answer: .brokerIDNotRegistered) }
        sessions[id] = nil
        let records: [MetadataRecord] = [.unregisterBroker(UnregisterBrokerRecord(brokerId: id, brokerEpoch: broker.epoch.value))]
            + leavingEveryELR(id)
        return decideWithRepairs(records, affecting: id, .none)
    }

    /// The changes that take `broker` out of every ELR it is in (after an unclean shutdown it
    /// may have lost records it had; Kafka does the same at such a registration), or out of
    /// those of `only` (replicas it lost with their log directory).
    func leavingEveryELR(_ broker: NodeID, only: Set<TopicIDPartition>? = nil) -> [MetadataRecord] {
        var records: [MetadataRecord] = []
        for (id, topic) in image.topics.sorted(by: { $0.value.name < $1.value.name }) {
            for (index, partition) in topic.partitions.enumerated() where partition.elr.contains(broker)
                && only.map({ $0.contains(TopicIDPartition(id, Int32(index))) }) ?? true {
                records.append(PartitionChanges.record(TopicIDPartition(id, Int32(index)), from: partition, leader: partition.leader,
                                                       isr: partition.isr, minISR: 1, elr: partition.elr.filter { $0 != broker }))
            }
        }
        return records
    }

    public mutating func heartbeat(_ request: BrokerHeartbeatRequest, nowMs: Int64) -> Decision<BrokerHeartbeatAnswer> {
        var answer = BrokerHeartbeatAnswer()
        guard let broker = image.brokers[request.id] else {
            answer.error = .brokerIDNotRegistered
            return Decision(records: [], answer: answer)
        }
        guard broker.epoch == request.epoch else {
            answer.error = .staleBrokerEpoch
            return Decision(records: [], answer: answer)
        }
        sessions[request.id] = nowMs
        heard.insert(request.id)
        // Caught up: it applied the log up to its own registration, as committed.
        let registeredAt = committed.brokers[request.id].flatMap { $0.epoch == broker.epoch ? $0.registeredAt : nil }
        answer.isCaughtUp = registeredAt.map { request.metadataOffset >= $0 } ?? false
        var records: [MetadataRecord] = []
        if request.wantShutdown {
            // Controlled shutdown, in two steps: leave (leaderships and ISR places move in the
            // same entry), then, leading nothing, be fenced; that answer lets the broker stop.
            if !broker.fenced && !broker.inControlledShutdown {
                var change = BrokerRegistrationChangeRecord()
                change.brokerId = request.id
                change.brokerEpoch = broker.epoch.value
                change.inControlledShutdown = 1
                records.append(.brokerRegistrationChange(change))
            } else if !broker.fenced && !leadsAnything(request.id) {
                records.append(.fenceBroker(FenceBrokerRecord(id: request.id, epoch: broker.epoch.value)))
            }
        } else if broker.fenced && !request.wantFence && answer.isCaughtUp {
            records.append(.unfenceBroker(UnfenceBrokerRecord(id: request.id, epoch: broker.epoch.value)))
        } else if !broker.fenced && request.wantFence {
            records.append(.fenceBroker(FenceBrokerRecord(id: request.id, epoch: broker.epoch.value)))
        }
        // Replicas lost with a failed log directory: they leave the ISR and ELR, and any they led
        // gets another leader, in the repairs of this entry.
        let reported = Set(request.offlineReplicas)
        let lostNow = reported != (offline[request.id] ?? [])
        if lostNow {
            records += leavingEveryELR(request.id, only: reported.subtracting(offline[request.id] ?? []))
            offline[request.id] = reported.isEmpty ? nil : reported
        }
        var decision = records.isEmpty && !lostNow ? decide(records, answer) : decideWithRepairs(records, affecting: request.id, answer)
        let now = image.brokers[request.id]!
        decision.answer.isFenced = now.fenced
        decision.answer.shouldShutDown = request.wantShutdown && now.fenced
        return decision
    }

    /// Whether `broker` may lead `key` or be in its ISR: active, its replica not offline.
    func canHost(_ broker: NodeID, _ key: TopicIDPartition) -> Bool {
        (image.brokers[broker]?.isActive ?? false) && !(offline[broker]?.contains(key) ?? false)
    }

    /// The ELR `partition` gets with `isr` (KIP-966), without the replicas lost with their log
    /// directory: they no longer hold what the ELR vouches for.
    func eligibleLeaders(_ key: TopicIDPartition, _ partition: PartitionInfo, isr: [NodeID]) -> [NodeID] {
        PartitionChanges.eligibleLeaders(partition, isr: isr, minISR: minInSyncReplicas(of: key.topicID))
            .filter { !(offline[$0]?.contains(key) ?? false) }
    }

    /// Leads a partition that another replica could lead (one it alone holds cannot move).
    func leadsAnything(_ broker: NodeID) -> Bool {
        image.topics.values.contains { $0.partitions.contains { $0.leader == broker && $0.replicas.count > 1 && $0.isr.count > 1 } }
    }

    /// Time passed: fences brokers whose sessions lapsed, moving their leaderships in the same
    /// entry, and goes on with repairs an earlier entry had no room for.
    public mutating func tick(nowMs: Int64) -> Decision<Void> {
        if image.clusterID == nil {
            // The cluster's id is agreed once, by the first controller, in the log.
            // A single node's data is taken over in the same entry (and the next, if it is large).
            let id = config.clusterID ?? KafkaUUID.random(using: &random).description
            // With the records a new cluster starts with (credentials given at first start).
            let first: [MetadataRecord] = [.config(ConfigRecord(resourceType: ConfigResource.Kind.broker.rawValue, resourceName: "",
                                                                name: MetadataImage.clusterIDConfig, value: id))]
            return decide(takeoverEntry(after: first + config.bootstrapRecords), ())
        }
        if image.takeoverPending {
            let entry = takeoverEntry(after: [])
            if !entry.isEmpty { return decide(entry, ()) }
        }
        excuseStall(nowMs: nowMs)
        var fences: [MetadataRecord] = []
        var lapsed: Set<NodeID> = []
        for (id, broker) in image.brokers.sorted(by: { $0.key < $1.key }) where !broker.fenced {
            guard nowMs - (sessions[id] ?? nowMs) > config.sessionTimeoutMs else { continue }
            fences.append(.fenceBroker(FenceBrokerRecord(id: id, epoch: broker.epoch.value)))
            lapsed.insert(id)
        }
        if fences.isEmpty && dirty.isEmpty {
            let moves = rebalanceLeaders(nowMs: nowMs)
            if !moves.isEmpty { return decide(moves, ()) }
        }
        return decideWithRepairs(fences, affecting: lapsed, ())
    }

    /// Ticks further apart than a quarter of a session mean this controller stood still (its
    /// process paused, its thread starved, as on a node restarting beside it): every session
    /// is moved on by the gap beyond that quarter, so that no broker is fenced for heartbeats
    /// this controller was not there to read. (Only the excess: a controller whose ticks are
    /// always somewhat late still fences a broker that stopped, a little later.) Found by the fault campaign (seed 77001): a controller that became
    /// active on a node just restarted fenced all three brokers at its first decision, every
    /// partition lost its leader, and one broker then stayed out of the ISRs.
    mutating func excuseStall(nowMs: Int64) {
        defer { lastTickMs = nowMs }
        guard let last = lastTickMs else { return }
        let excess = nowMs - last - config.sessionTimeoutMs / 4
        guard excess > 0 else { return }
        for (id, seen) in sessions { sessions[id] = min(nowMs, seen + excess) }
    }

    /// `records`, followed in the same entry by the partition changes they make necessary for
    /// the brokers in `affected` (and any left over from before), as many as fit.
    mutating func decideWithRepairs<Answer>(_ records: [MetadataRecord], affecting affected: Set<NodeID>, _ answer: Answer) -> Decision<Answer> {
        dirty.formUnion(affected)
        guard !dirty.isEmpty else { return decide(records, answer) }
        var scratch = image
        do {
            try scratch.apply(records, at: MetadataOffset(image.offset.value + 1))
        } catch {
            preconditionFailure("the controller made records that do not apply: \(error)")
        }
        let (fixes, complete) = Self.repairs(for: dirty, in: scratch, budget: config.recordsPerEntryMax - records.count,
                                             uncleanDefault: config.uncleanLeaderElection, minISRDefault: config.minInSyncReplicas,
                                             notEligible: uncleanPending, offline: offline)
        if complete {
            dirty.removeAll()
            uncleanPending.removeAll()
        }
        return decide(records + fixes, answer)
    }

    mutating func decideWithRepairs<Answer>(_ records: [MetadataRecord], affecting broker: NodeID, _ answer: Answer) -> Decision<Answer> {
        decideWithRepairs(records, affecting: [broker], answer)
    }

    /// The partition changes `image` needs for the partitions that have a replica on `brokers`,
    /// at most `budget`; `complete` is false when some had to wait.
    static func repairs(for brokers: Set<NodeID>, in image: MetadataImage, budget: Int, uncleanDefault: Bool,
                        minISRDefault: Int, notEligible: Set<NodeID> = [],
                        offline: [NodeID: Set<TopicIDPartition>] = [:]) -> (records: [MetadataRecord], complete: Bool) {
        var records: [MetadataRecord] = []
        for topicID in image.topics.keys.sorted(by: { ($0.high, $0.low) < ($1.high, $1.low) }) {
            let topic = image.topics[topicID]!
            let unclean = image.config(ConfigResource(.topic, topic.name), "unclean.leader.election.enable").map { $0 == "true" } ?? uncleanDefault
            let minISR = minInSyncReplicas(of: topic.name, in: image, default: minISRDefault)
            for (index, partition) in topic.partitions.enumerated() where !brokers.isDisjoint(with: partition.replicas) {
                let key = TopicIDPartition(topicID, Int32(index))
                // A replica whose log directory failed counts as a fenced broker's, for this partition.
                let lost: (NodeID) -> Bool = { offline[$0]?.contains(key) ?? false }
                let isActive: (NodeID) -> Bool = { (image.brokers[$0]?.isActive ?? false) && !lost($0) }
                guard let fix = PartitionChanges.repair(partition, isActive: isActive, unclean: unclean, minISR: minISR) else { continue }
                guard records.count < budget else { return (records, false) }
                // An unregistered broker's data is given up, one back from an unclean shutdown
                // may have lost some, and a lost replica has none: none of them is eligible.
                let elr = fix.elr.filter { image.brokers[$0] != nil && !notEligible.contains($0) && !lost($0) }
                records.append(PartitionChanges.record(key, from: partition, leader: fix.leader,
                                                       isr: fix.isr, minISR: minISR, elr: elr))
            }
        }
        return (records, true)
    }

    /// A topic's min.insync.replicas: its own config, else the cluster's.
    static func minInSyncReplicas(of topic: String, in image: MetadataImage, default value: Int) -> Int {
        image.config(ConfigResource(.topic, topic), "min.insync.replicas").flatMap { Int($0) } ?? value
    }

    func minInSyncReplicas(of topicID: KafkaUUID) -> Int {
        image.topics[topicID].map { Self.minInSyncReplicas(of: $0.name, in: image, default: config.minInSyncReplicas) } ?? config.minInSyncReplicas
    }
}
