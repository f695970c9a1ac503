import BrookCluster
import BrookCore
import BrookProtocol
import BrookStorage
import Dispatch
import Logging
import Synchronization

/// In a cluster, keeps this broker's topics in line with the metadata image it follows, one
/// image at a time on its own queue (topic changes do file work):
/// - every topic of the image is known here with the image's topic id, partition count and
///   configs, and the partitions the image places on this broker are hosted (opened, and
///   created empty to catch up from their leader when new); a replica moved away by a
///   reassignment is closed and its files deleted;
/// - a topic this manager made is deleted when the image drops it or names another topic id;
///   a topic it did not make (a single node's data from before the cluster) is left alone and
///   not served, with a warning, until the image names it with its own id (the controller took
///   it over): from then on it is the cluster's, as if made here;
/// - each partition's role (leader or follower, and the leader epoch) follows the image.
/// The ids of the topics it made are kept in `cluster-topics` in the first log directory.
public final class ReplicaManager: Sendable {
    let broker: Broker
    let node: NodeID
    let queue = DispatchQueue(label: "brook.replica-manager")
    let made: Mutex<Set<KafkaUUID>>
    let warned = Mutex<Set<String>>([])
    let path: String
    let lastOffset = Mutex<MetadataOffset?>(nil)
    let latest = Mutex<MetadataImage?>(nil)
    let stopped = Mutex(false)
    /// How often leaders look for ISR changes to propose: a thirtieth of
    /// replica.lag.time.max.ms, between 250 ms and 1 s (1 s by default; Kafka looks every half
    /// of it). A follower that stopped leaves the ISR at most this late; one that caught up is
    /// proposed at its fetch, and a broker that became eligible is looked at when its image is
    /// applied (`eligibleBrokers`). Each pass visits every partition led here: at 250 ms, it was a
    /// third of an idle node's CPU.
    var proposalIntervalMs: Int { Int(max(250, min(1000, broker.config.replicaLagTimeMaxMs / 30))) }
    /// ISR changes the controller did not take, said at info and rate-limited: a node that
    /// rejoins thousands of partitions has most of its first proposals refused (158,000 lines
    /// in one restart of 3,000 partitions, scripts/cluster-scale-check.py).
    static let refusedProposals = RateLimitedLog(perWindowMax: 100)
    /// How often the partitions' HWs are written to `replication-offset-checkpoint` (and at
    /// stop), after a proposal pass (Kafka's replica.high.watermark.checkpoint.interval.ms).
    static let checkpointEveryMs: Int64 = 5000
    /// When (monotonic ms) the HWs were last checkpointed by the passes (at first: when the
    /// manager was made, so the first pass's checkpoint comes a period later).
    let checkpointedMs: Mutex<Int64>
    /// The brokers that may join an ISR (registered, unfenced, not shutting down) in the last
    /// image applied: when they change, the leaders look for expansions at once.
    let eligibleBrokers = Mutex<Set<NodeID>>([])
    /// The checkpointed HWs read at start, restored to each partition before its first role.
    let restoring: Mutex<[String: Offset]>
    /// The offset of the last image applied, and who waits for a later one (on `queue`).
    let applied = Mutex(MetadataOffset.zero)
    /// Counts the changes of roles and hosted replicas made here (an image applied, a replica
    /// moved between dirs): what the replica fetchers' list of followed partitions is kept by.
    public let generation = Atomic<UInt64>(0)
    let appliedWaiters = Mutex(AppliedWaiters())
    struct AppliedWaiters {
        var next = 0
        var waiting: [Int: (offset: MetadataOffset, body: @Sendable () -> Void)] = [:]
    }
    static let appliedWaitersMax = 10_000

    public init(broker: Broker, node: NodeID) {
        self.broker = broker
        self.node = node
        checkpointedMs = Mutex(broker.clock.monotonicMs())
        path = broker.config.logDirs[0] + "/cluster-topics"
        let text = (try? FileSystem.readFile(path)) ?? nil
        made = Mutex(Set((text ?? "").split(separator: "\n").compactMap { KafkaUUID(String($0)) }))
        let marks = (try? ReplicaCheckpoints.readHighWatermarks(logDirectory: broker.config.logDirs[0])) ?? []
        restoring = Mutex(Dictionary(marks.map { ("\($0.topic)-\($0.partition)", $0.offset) }, uniquingKeysWith: max))
        // The coordinators of replicas lost with a failed log directory stop where they led.
        broker.topics.health.onFailure { [weak self] failure in
            guard let self else { return }
            generation.add(1, ordering: .sequentiallyConsistent)
            queue.async {
                for replica in failure.replicas where replica.wasLeading {
                    self.coordinatorsFollow(replica.topic, Int(replica.index), from: .leader(.none), to: .follower(leader: nil, epoch: .none))
                }
            }
        }
    }

    /// Writes every replicating partition's HW to `replication-offset-checkpoint` in the first
    /// log directory.
    func checkpointHighWatermarks() {
        var marks: [ReplicaCheckpoints.HighWatermark] = []
        for topic in broker.topics.allTopics() {
            for partition in topic.hosted {
                if let high = partition.checkpointHighWatermark {
                    marks.append(.init(topic: topic.name, partition: partition.index, offset: high))
                }
            }
        }
        do { try ReplicaCheckpoints.writeHighWatermarks(marks, logDirectory: broker.config.logDirs[0]) } catch {
            broker.logger.warning("cannot write the high watermark checkpoint: \(error)")
        }
    }

    /// The broker's image moved; only an image holding this broker's current registration is
    /// acted on (before that it may lag far behind).
    public func imageChanged(_ image: MetadataImage) {
        let moved = lastOffset.withLock { last in
            defer { last = image.offset }
            return last != image.offset
        }
        latest.withLock { $0 = image }
        if moved { queue.async { self.apply(image) } }
    }

    /// Starts the leaders' ISR proposals (AlterPartition), every `proposalIntervalMs`.
    public func start() { scheduleProposals() }

    public func stop() {
        stopped.withLock { $0 = true }
        queue.sync { checkpointHighWatermarks() }
    }

    func scheduleProposals() {
        queue.asyncAfter(deadline: .now() + .milliseconds(proposalIntervalMs)) { [self] in
            guard !stopped.withLock({ $0 }) else { return }
            proposeISRChanges()
            let now = broker.clock.monotonicMs()
            let due = checkpointedMs.withLock { last -> Bool in
                guard now - last >= Self.checkpointEveryMs || now < last else { return false }
                last = now
                return true
            }
            if due { checkpointHighWatermarks() }
            scheduleProposals()
        }
    }

    /// Each partition led here whose ISR should change asks the controller, many in one
    /// request (as Kafka's AlterPartition); the answer (or a later image) settles each.
    func proposeISRChanges() {
        guard let image = latest.withLock({ $0 }) else { return }
        // Replica lag is a duration: the monotonic clock, which no wall-clock step moves.
        let now = broker.clock.monotonicMs()
        let eligible: (NodeID) -> Bool = { image.brokers[$0]?.isActive ?? false }
        var changes: [ISRChangeToSend] = []
        for topic in image.topics.values {
            guard let local = broker.topics.topic(topic.name), local.id == topic.id else { continue }
            for (index, hosted) in local.partitions.enumerated() where index < topic.partitions.count && topic.partitions[index].leader == node {
                guard let partition = hosted, partition.isLeader else { continue }
                if let stalled = partition.outOfSyncNotice(nowMs: now, eligible: eligible) {
                    broker.logger.notice("\(partition.name): out of the ISR for over 30 s though eligible: \(stalled)")
                }
                guard let proposal = partition.isrProposalToResend(nowMs: now) ?? partition.isrProposal(nowMs: now, eligible: eligible) else { continue }
                changes.append(ISRChangeToSend(key: TopicIDPartition(topic.id, Int32(index)), proposal: proposal, partition: partition))
            }
        }
        Self.send(changes, broker: broker)
    }

    /// A leader's ISR change on its way to the controller.
    struct ISRChangeToSend {
        var key: TopicIDPartition
        var proposal: ISRProposal
        var partition: Partition
    }

    /// Sends ISR changes to the controller, `AlterPartitionRequest.partitionsMax` to a request;
    /// each answer settles its partition's proposal.
    static func send(_ changes: [ISRChangeToSend], broker: Broker) {
        let logger = broker.logger
        var start = 0
        while start < changes.count {
            let batch = Array(changes[start..<min(start + AlterPartitionRequest.partitionsMax, changes.count)])
            start += batch.count
            if batch.count <= Self.proposalsLoggedEach {
                for change in batch { logger.info("\(change.partition.name): asking the controller for \(change.proposal)") }
            } else {
                logger.info("asking the controller for the ISR changes of \(batch.count) partitions")
            }
            broker.cluster.alterPartitions(batch.map { ($0.key, $0.proposal) }) { answers in
                precondition(answers.count == batch.count, "\(answers.count) answers to \(batch.count) ISR changes")
                for (change, (code, committed)) in zip(batch, answers) {
                    if let committed {
                        let before = change.partition.leaderHealth?.isr
                        change.partition.isrProposalCommitted(committed.isr, elr: committed.elr, partitionEpoch: committed.partitionEpoch)
                        if let before, committed.isr.count != before {
                            (committed.isr.count < before ? broker.cluster.isrShrinks : broker.cluster.isrExpands).add(1)
                        }
                    } else {
                        ReplicaManager.refusedProposals.log(logger, .info, "\(change.partition.name): the controller did not take \(change.proposal): \(code)")
                        change.partition.isrProposalFailed(change.proposal, code)
                    }
                }
            }
        }
    }

    /// Requests with at most this many ISR changes name each in the log; larger ones are one line.
    static let proposalsLoggedEach = 8

    /// Runs `body` once an image at `offset` or later is applied here (topics made, roles taken),
    /// or after `timeoutMs` if none comes: an admin request is answered when this broker sees
    /// what the controller committed for it.
    public func whenApplied(_ offset: MetadataOffset, timeoutMs: Int = 5000, _ body: @escaping @Sendable () -> Void) {
        guard applied.withLock({ $0 }) < offset else { return body() }
        let added = appliedWaiters.withLock { w -> Int? in
            guard w.waiting.count < Self.appliedWaitersMax else { return nil }
            defer { w.next += 1 }
            w.waiting[w.next] = (offset, body)
            return w.next
        }
        guard let id = added else { return body() }
        // Applied in between: answered by the queue's next look.
        queue.async { self.releaseWaiters() }
        queue.asyncAfter(deadline: .now() + .milliseconds(timeoutMs)) { [self] in
            appliedWaiters.withLock { $0.waiting.removeValue(forKey: id) }?.body()
        }
    }

    func releaseWaiters() {
        let now = applied.withLock { $0 }
        let due = appliedWaiters.withLock { w -> [@Sendable () -> Void] in
            let ready = w.waiting.filter { $0.value.offset <= now }
            for id in ready.keys { w.waiting[id] = nil }
            return ready.values.map(\.body)
        }
        for body in due { body() }
    }

    /// Runs queued work to its end (tests, shutdown).
    public func drain() { queue.sync {} }

    /// Moves this broker's replica of `name`-`index` to log dir `dir` (AlterReplicaLogDirs; on
    /// the moves queue, to the move's end): the copy catches up while the replica serves
    /// (TopicRegistry.copyForMove); the swap runs on this manager's queue, between images: the
    /// replica's coordinators (if it led one) stop and its waiting produces are released, as
    /// when leadership moves, then the replica in its place (moved, or back where it was) takes
    /// its role from the image again, with its high watermark.
    public func moveReplica(_ name: String, _ index: Int32, to dir: String, ticket: UInt64) {
        let topics = broker.topics
        let base = "\(name)-\(index)"
        let prepared: TopicRegistry.PreparedMove
        do throws(TopicError) {
            guard let ready = try topics.copyForMove(name: name, index: index, to: dir, proceed: { topics.moves.isCurrent(base, ticket) })
            else { return }
            prepared = ready
        } catch {
            broker.logger.error("cannot move the replica of \(base) to \(dir): \(error)")
            return
        }
        queue.sync {
            // However it ends, the hosted replica changed: the fetchers make their list again.
            defer { generation.add(1, ordering: .sequentiallyConsistent) }
            let before = prepared.old
            let role = before.isReplicating ? before.role : nil
            coordinatorsFollow(name, Int(index), from: role, to: .follower(leader: nil, epoch: .none))
            before.becomeFollower(leader: nil, epoch: before.leaderEpoch)
            let high = before.checkpointHighWatermark
            let result = topics.completeMove(prepared)
            if let error = result.error { broker.logger.error("cannot move the replica of \(base) to \(dir): \(error)") }
            // The replica this move left in place (moved, or where it was) takes its role from
            // the image again; none: it went meanwhile, or is offline with a failed dir.
            guard let partition = result.replica else { return }
            if let high, partition !== before { partition.restoreHighWatermark(high) }
            guard let image = latest.withLock({ $0 }), let topic = image.topic(named: name), topic.id == topics.topic(name)?.id,
                  Int(index) < topic.partitions.count else { return }
            let configs = image.configs[BrookCluster.ConfigResource(.topic, name)] ?? [:]
            update(partition, to: topic.partitions[Int(index)], replicationConfig(configs))
            coordinatorsFollow(name, Int(index), from: .follower(leader: nil, epoch: .none), to: partition.role)
        }
    }

    func apply(_ image: MetadataImage) {
        let topics = broker.topics
        // Leaderships taken in this image: in force once their epoch checkpoints are durable.
        var taken: [(Leadership, String, Int, Partition.Role?)] = []
        topics.setBrokerDefaults(DynamicBrokerConfigs.topicDefaults(base: broker.config.topicDefaults, node: node, image: image))
        for local in topics.allTopics() {
            let wanted = image.topicIDs[local.name]
            guard wanted != local.id else { continue }
            if made.withLock({ $0.contains(local.id) }) {
                do { _ = try topics.delete(name: local.name) } catch { broker.logger.warning("cannot delete topic \(local.name): \(error)") }
                forget(local.id)
            } else if warned.withLock({ $0.insert(local.name).inserted }) {
                broker.logger.warning("topic \(local.name) (\(local.id)) is in this broker's data but not in the cluster's metadata: kept, not served")
            }
        }
        for topic in image.topics.values.sorted(by: { $0.name < $1.name }) {
            let configs = image.configs[BrookCluster.ConfigResource(.topic, topic.name)] ?? [:]
            let holds: (Int32) -> Bool = { [node] index in topic.partitions[Int(index)].replicas.contains(node) }
            do throws(TopicError) {
                var local = topics.topic(topic.name)
                if local == nil {
                    remember(topic.id)
                    local = try topics.create(name: topic.name, partitions: Int32(topic.partitions.count), configs: configs,
                                              id: topic.id, hosting: holds)
                }
                guard var hosted = local, hosted.id == topic.id else { continue }
                // The cluster's now (a single node's data taken over): deleted with it.
                if !made.withLock({ $0.contains(topic.id) }) { remember(topic.id) }
                if hosted.partitions.count < topic.partitions.count {
                    try topics.addPartitions(name: topic.name, totalCount: Int32(topic.partitions.count), validateOnly: false, hosting: holds)
                    hosted = topics.topic(topic.name) ?? hosted
                }
                if hosted.overrides != configs { try topics.setConfigs(name: topic.name, overrides: configs, validateOnly: false) }
                let replication = replicationConfig(configs)
                for (index, info) in topic.partitions.enumerated() where index < hosted.partitions.count {
                    guard let partition = replica(of: hosted, index, holding: holds(Int32(index)), info) else { continue }
                    if let high = restoring.withLock({ $0.removeValue(forKey: partition.name) }) { partition.restoreHighWatermark(high) }
                    let before = partition.isReplicating ? partition.role : nil
                    if let leadership = update(partition, to: info, replication, deferring: true) {
                        taken.append((leadership, topic.name, index, before))
                        continue
                    }
                    coordinatorsFollow(topic.name, index, from: before, to: partition.role)
                }
            } catch {
                broker.logger.error("cannot host topic \(topic.name) of the cluster's metadata: \(error)")
            }
        }
        let began = broker.clock.monotonicMs()
        prepare(taken.map(\.0))
        for (leadership, topic, index, before) in taken {
            leadership.partition.finishLeadership(leadership.info)
            coordinatorsFollow(topic, index, from: before, to: leadership.partition.role)
        }
        if taken.count > Self.leadershipsLoggedMin {
            broker.logger.info("took \(taken.count) leaderships at metadata offset \(image.offset) in \(broker.clock.monotonicMs() - began) ms")
        }
        applied.withLock { $0 = max($0, image.offset) }
        generation.add(1, ordering: .sequentiallyConsistent)
        releaseWaiters()
        // A broker that became eligible (registered, unfenced) may join the ISRs it is caught up
        // in: looked for now, not at the next pass (a restarted node's replicas rejoin sooner).
        let eligible = Set(image.brokers.filter { $0.value.isActive }.keys)
        if eligibleBrokers.withLock({ now in defer { now = eligible }; return !eligible.isSubset(of: now) }), !stopped.withLock({ $0 }) {
            proposeISRChanges()
        }
    }

    /// This broker's replica of `topic`-`index` when the image places one here (opened if new),
    /// or nil: a replica it no longer holds (moved away by a reassignment) is closed and its files
    /// deleted, after its coordinators (if it led one) stop.
    func replica(of topic: Topic, _ index: Int, holding: Bool, _ info: PartitionInfo) -> Partition? {
        let current = topic.partitions[index]
        switch (holding, current) {
        case (true, let partition?):
            return partition
        case (true, nil):
            // Lost with a failed log directory: offline until the broker restarts.
            guard !broker.topics.health.isOffline(topic.name, Int32(index)) else { return nil }
            do throws(TopicError) { try broker.topics.host(name: topic.name, index: Int32(index)) } catch {
                broker.logger.error("cannot host a replica of \(topic.name)-\(index): \(error)")
            }
            return broker.topics.partition(topic.name, Int32(index))
        case (false, let partition?):
            let before = partition.isReplicating ? partition.role : nil
            partition.becomeFollower(leader: info.leader, epoch: info.leaderEpoch)
            coordinatorsFollow(topic.name, index, from: before, to: partition.role)
            broker.topics.unhost(name: topic.name, index: Int32(index))
            return nil
        case (false, nil):
            return nil
        }
    }

    /// The group and transaction coordinators move with the leadership of their partitions of
    /// `__consumer_offsets` and `__transaction_state`: loaded when this broker comes to lead one
    /// (or leads it again in a new epoch), dropped when it stops.
    func coordinatorsFollow(_ topic: String, _ index: Int, from before: Partition.Role?, to after: Partition.Role) {
        var was: LeaderEpoch?
        if case .leader(let epoch)? = before { was = epoch }
        var now: LeaderEpoch?
        if case .leader(let epoch) = after { now = epoch }
        guard was != now else { return }
        switch topic {
        case GroupService.offsetsTopic:
            if was != nil { broker.groups.stoppedLeading(partition: index) }
            if now != nil { broker.groups.becameLeader(ofPartition: index) }
        case TxnService.stateTopic:
            if was != nil { broker.transactions.stoppedLeading(partition: index) }
            if let now { broker.transactions.becameLeader(ofPartition: index, epoch: now) }
        default:
            break
        }
    }

    /// A leadership taken by an image, to prepare (`Partition.prepareLeadership`) and finish.
    final class Leadership: Sendable {
        let partition: Partition
        let info: PartitionInfo
        let replication: ReplicationConfig
        let nowMs: Int64
        init(partition: Partition, info: PartitionInfo, replication: ReplicationConfig, nowMs: Int64) {
            self.partition = partition
            self.info = info
            self.replication = replication
            self.nowMs = nowMs
        }
    }

    /// Prepares `leaderships` side by side on the broker's recovery threads (a replica's first
    /// leadership since its start reads its epoch checkpoint and, after a crash, its log's tail).
    func prepare(_ leaderships: [Leadership]) {
        let node = self.node
        let threads = max(1, min(broker.topics.recoveryThreads, leaderships.count))
        DispatchQueue.concurrentPerform(iterations: threads) { worker in
            for i in stride(from: worker, to: leaderships.count, by: threads) {
                let l = leaderships[i]
                l.partition.prepareLeadership(l.info, config: l.replication, nowMs: l.nowMs, node: node)
            }
        }
    }

    /// Images taking more leaderships than this say how long they took.
    static let leadershipsLoggedMin = 32

    /// Brings one partition's role in line with the image: a new leadership (or epoch) starts
    /// the leader's tracking of its followers; the same leadership only takes the ISR. With
    /// `deferring`, a new leadership is only returned: the caller prepares it (many side by
    /// side), then finishes it.
    @discardableResult
    func update(_ partition: Partition, to info: PartitionInfo, _ replication: ReplicationConfig, deferring: Bool = false) -> Leadership? {
        let now = broker.clock.monotonicMs()
        switch (partition.role, info.leader == node) {
        case (.leader(let epoch), true) where epoch == info.leaderEpoch && partition.isReplicating:
            partition.isrCommitted(info.isr, elr: info.elr, partitionEpoch: info.partitionEpoch)
            partition.replicationConfigChanged(replication)
        case (_, true):
            broker.logger.info("\(partition.name): leading in epoch \(info.leaderEpoch), replicas \(info.replicas), ISR \(info.isr)")
            guard deferring else {
                partition.becomeLeader(info, config: replication, nowMs: now, node: node)
                return nil
            }
            return Leadership(partition: partition, info: info, replication: replication, nowMs: now)
        case (.follower(let leader, let epoch), false) where leader == info.leader && epoch == info.leaderEpoch && partition.isReplicating:
            break
        case (_, false):
            broker.logger.info("\(partition.name): following \(info.leader.map { "broker \($0)" } ?? "no leader") in epoch \(info.leaderEpoch)")
            partition.becomeFollower(leader: info.leader, epoch: info.leaderEpoch)
        }
        return nil
    }

    /// min.insync.replicas of the topic (or the broker's default), replica.lag.time.max.ms.
    func replicationConfig(_ configs: [String: String]) -> ReplicationConfig {
        let minISR = Int(configs["min.insync.replicas"] ?? broker.config.topicDefaults["min.insync.replicas"] ?? "1") ?? 1
        return ReplicationConfig(replicaLagTimeMaxMs: broker.config.replicaLagTimeMaxMs, minInSyncReplicas: max(1, minISR))
    }

    func remember(_ id: KafkaUUID) { save(made.withLock { $0.insert(id); return $0 }) }
    func forget(_ id: KafkaUUID) { save(made.withLock { $0.remove(id); return $0 }) }

    func save(_ ids: Set<KafkaUUID>) {
        let text = ids.map(\.description).sorted().joined(separator: "\n") + "\n"
        do { try FileSystem.writeAtomically(path, contents: text, durable: true) } catch {
            broker.logger.error("cannot write \(path): \(error)")
        }
    }
}
