import BrookCluster
import BrookCore
import BrookProtocol
import BrookRaft
import BrookStorage
import Logging
import NIOCore
import NIOPosix

/// Runs one Raft core over real time and TCP: a tick every electionTimeoutMs/10 (a few a wake
/// while it leads alone, see `ticksPerWake`), each Ready persisted and fsynced (RaftStore)
/// before its messages go out, committed entries applied to the state machine. Everything runs
/// on one event loop, so the core needs no lock; fsyncs block that loop, which a controller's
/// small write rate allows.
///
/// The state machine is the metadata image (BrookCluster): committed entries of records are
/// applied to it, and its snapshot is the records that rebuild it. While this node leads the
/// quorum and has applied its whole log, it is the active controller: a ClusterController
/// decides on brokers' requests and time, its records are proposed as one entry per decision,
/// and each answer waits for its entry to commit. Brokers read the committed log from any
/// controller (as Kafka's observers do).
public final class QuorumDriver: @unchecked Sendable {
    /// How a request is answered: key=value text, or bytes (metadata for a broker).
    enum Reply {
        case text(ok: Bool, String)
        case data([UInt8])
    }

    public let options: QuorumOptions
    /// Term, leader, log indexes, for the server's metrics.
    public let stats = QuorumStats()
    let loop: EventLoop
    let logger: Logger
    let store: RaftStore
    var raft: Raft
    var peers: [NodeID: Peer] = [:]
    var serverChannel: Channel?
    var ticker: RepeatedTask?
    /// Proposals waiting to be applied: told true once their entry commits, false if another
    /// entry took their place or leadership was lost.
    var waiting: [LogIndex: (term: Term, done: (Bool) -> Void)] = [:]
    var image = MetadataImage()
    /// The active controller, while this node leads and has applied its log.
    var controller: ClusterController?
    var lastSnapshot: Snapshot?
    /// A Ready whose save failed for want of descriptors or space, tried again at each tick.
    var unsaved: Ready?
    var saveStalled = false
    /// Brokers waiting for metadata past an offset, answered when it commits or at the deadline.
    var metadataWaiters: [(after: MetadataOffset, deadline: NIODeadline, reply: (Reply) -> Void)] = []
    var lastReported: (Role, NodeID?, Term)?
    /// Whether the driver is at work on one input (a message, a request, a tick). A write it
    /// makes meanwhile (a reply, a message to a peer) may make NIO read that socket at once,
    /// and the frame read would reach the driver in the middle of its work: a proposal while a
    /// Ready was being handled stopped a controller that way (`appendAsLeader`'s precondition,
    /// found with 3,000 partitions in scripts/cluster-scale-check.py). Such input waits in
    /// `queuedInput` and is taken up, in order, when the work ends.
    var working = false
    var queuedInput: [() -> Void] = []
    /// While leading: each voter's answers and each broker's heartbeats, for DescribeQuorum's
    /// times. Cleared when the term changes.
    var contacts = ReplicaContacts()
    var contactsTerm = Term(0)
    static let queuedInputMax = 65_536
    var droppedInput = 0
    /// A drive is due once the input under way is taken up (`driveSoon`).
    var driveQueued = false
    /// Set by `shutdown` on the loop before the Raft log is closed: input that comes later (a
    /// broker's request on a connection still open, a drive queued before) is dropped, since a
    /// save to the closed log would stop the process (SIGTERM once ended so, in CI).
    var stopped = false

    static let waitingMax = 10_000
    static let metadataWaitersMax = 10_000
    /// One metadata answer carries at most this many entries and about this many bytes.
    static let metadataEntriesPerAnswerMax = 1000
    static let metadataBytesPerAnswerMax = 4 << 20

    /// The port the controller listens on (the voter's, or the one the system chose for port 0).
    public var boundPort: Int? { serverChannel?.localAddress?.port }

    /// A node outside `options.voters` starts as an observer that may be added to the voters
    /// later (`brook cluster add-controller`); it needs its own listener then.
    public static func start(_ options: QuorumOptions, group: EventLoopGroup, logger: Logger) throws -> QuorumDriver {
        let founder = options.voters.first(where: { $0.id == options.nodeID })
        guard let me = founder ?? options.listenPort.map({ VoterAddress(id: options.nodeID, host: options.listenHost ?? "127.0.0.1", port: $0) }) else {
            throw QuorumError.notAVoter(options.nodeID)
        }
        let loop = group.next()
        let driver = try loop.submit { () throws -> QuorumDriver in try QuorumDriver(options, loop: loop, logger: logger) }.wait()
        let bootstrap = ServerBootstrap(group: loop)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try options.transport.secureAccepted(channel)
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(InboundHandler(driver: driver))
                }
            }
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
        driver.serverChannel = try bootstrap.bind(host: options.listenHost ?? me.host, port: options.listenPort ?? me.port).wait()
        try loop.submit { driver.startTicking() }.wait()
        logger.notice("controller \(options.nodeID) listening on \(me.host):\(driver.boundPort ?? me.port)\(founder == nil ? " (not a founding voter: it votes once added)" : ""), voters \(options.voters.map { "\($0.id)@\($0.host):\($0.port)" }.joined(separator: ",")), data in \(options.dataDirectory)")
        return driver
    }

    init(_ options: QuorumOptions, loop: EventLoop, logger: Logger) throws {
        self.options = options
        self.loop = loop
        self.logger = logger
        store = try RaftStore(directory: options.dataDirectory, logger: logger)
        let state = try store.load()
        var config = RaftConfig()
        config.electionTicks = Self.electionTicks
        config.heartbeatTicks = 1
        var seed = SystemRandomNumberGenerator()
        // A node joining a running quorum starts with no voters: the log it is sent holds them.
        let founding = options.voters.contains { $0.id == options.nodeID }
        raft = Raft(id: options.nodeID, config: config, restoring: state,
                    bootstrap: founding ? Configuration(voters: options.voters.map(\.id)) : .empty, randomSeed: seed.next())
        lastSnapshot = state.snapshot
        if let snapshot = state.snapshot { image = try Self.image(from: snapshot) }
        for voter in options.voters where voter.id != options.nodeID {
            peers[voter.id] = Peer(address: voter, transport: options.transport, loop: loop, logger: logger)
        }
        syncPeers()
        for peer in peers.values { peer.connect() }
        logger.info("controller \(options.nodeID) restored term \(state.hardState.term), \(state.entries.count) entries after snapshot \(state.snapshot?.index ?? .zero)")
    }

    /// A Raft tick: a tenth of the election timeout (`electionTicks` ticks make one).
    var tickMs: Int64 { max(1, options.electionTimeoutMs / Int64(Self.electionTicks)) }
    static let electionTicks = 10

    /// How many ticks the driver takes at each wake: one, or while it leads a quorum of itself
    /// alone with no peer (a single node's `brook serve`, whose 200 ms election timeout makes
    /// ticks of 20 ms) as many as make `aloneWakeMs`, at most half an election timeout. Alone,
    /// nothing needs a tick's resolution (no peer waits for a heartbeat, no election can
    /// start), so the same ticks are taken a few at a time: the Raft core sees the same time
    /// pass, and an idle single node wakes 10 times a second instead of 50. A voter added or
    /// leadership lost puts it back to one tick a wake at once (`drive`); the ticks of the
    /// wake under way are then lost, which only makes the core's time run late, never early.
    var ticksPerWake = 1
    static let aloneWakeMs: Int64 = 100

    /// The ticks a wake takes (see `ticksPerWake`). Half an election timeout at most, so that
    /// one wake never holds two check-quorum rounds: a leader with a voter just added could
    /// otherwise find it silent in the second and step down.
    static func wakeTicks(alone: Bool, tickMs: Int64) -> Int {
        alone ? max(1, min(Int(aloneWakeMs / max(1, tickMs)), electionTicks / 2)) : 1
    }

    var leadsAlone: Bool {
        raft.role == .leader && raft.configuration.voters == [options.nodeID] && peers.isEmpty
    }

    func startTicking() {
        scheduleTicks(every: 1)
        input { [self] in drive() }
    }

    func scheduleTicks(every ticks: Int) {
        precondition(ticks >= 1, "a wake takes at least one tick")
        ticker?.cancel()
        ticksPerWake = ticks
        let period = TimeAmount.milliseconds(tickMs * Int64(ticks))
        ticker = loop.scheduleRepeatedTask(initialDelay: period, delay: period) { [self] _ in
            input { [self] in
                for _ in 0..<ticksPerWake { raft.tick() }
                drive()
                if controller != nil {
                    let decision = controller!.tick(nowMs: Self.nowMs())
                    propose(decision.records) { _ in }
                }
                answerExpiredMetadataWaiters()
                let wanted = Self.wakeTicks(alone: leadsAlone, tickMs: tickMs)
                if wanted != ticksPerWake, !stopped { scheduleTicks(every: wanted) }
            }
        }
    }

    /// Runs `body`, one input's work, now, or after the work under way if it came during it
    /// (see `working`).
    func input(_ body: @escaping () -> Void) {
        loop.preconditionInEventLoop()
        guard !stopped else { return }
        guard !working else {
            // Bounded by what the reads during one input bring; past the bound the input is
            // dropped (a Raft message is sent again, a request times out and is retried).
            guard queuedInput.count < Self.queuedInputMax else {
                droppedInput += 1
                if droppedInput == 1 || droppedInput % 10_000 == 0 {
                    logger.warning("controller input dropped while busy (\(droppedInput) so far): over \(Self.queuedInputMax) queued")
                }
                return
            }
            return queuedInput.append(body)
        }
        working = true
        body()
        while !queuedInput.isEmpty {
            let queued = queuedInput
            queuedInput = []
            for next in queued { next() }
        }
        working = false
    }

    /// Stops ticking, closes every connection and the Raft log. Called from outside the loop
    /// (a signal handler): it waits for the loop's work, which must never wait on the loop
    /// itself (it did, and `brook controller` died on SIGTERM).
    public func shutdown() {
        loop.preconditionNotInEventLoop()
        try? loop.submit { [self] in
            stopped = true
            ticker?.cancel()
            for peer in peers.values { peer.close() }
        }.wait()
        try? serverChannel?.close().wait()
        try? loop.submit { [self] in try? store.close() }.wait()
    }

    // MARK: the Ready loop

    func drive() {
        loop.preconditionInEventLoop()
        guard !stopped else { return }
        if let ready = unsaved {
            guard persist(ready) else { return }
            unsaved = nil
            handle(ready)
        }
        while raft.hasReady {
            let ready = raft.ready()
            guard persist(ready) else {
                unsaved = ready
                return
            }
            handle(ready)
        }
        reportRoleChange()
        // No longer alone (a voter added, leadership lost): a tick every wake from now on.
        if ticksPerWake > 1, !leadsAlone { scheduleTicks(every: 1) }
        activateController()
        answerMetadataWaiters()
        stats.set(raft.status, metadataOffset: image.offset.value, active: controller != nil)
    }

    /// Drives once the input being read now is all taken up: the proposals of one read (a
    /// broker's pipelined AlterPartition requests) share one save, one fsync, instead of one
    /// each, which held a cluster to some 60 ISR changes a second.
    func driveSoon() {
        loop.preconditionInEventLoop()
        guard !driveQueued else { return }
        driveQueued = true
        loop.execute { [self] in
            input { [self] in
                driveQueued = false
                drive()
            }
        }
    }

    /// Where a voter listens: the founding voters' addresses from this node's configuration,
    /// those added later from the configuration entry that added them.
    func address(of node: NodeID) -> VoterAddress? {
        if let founder = options.voters.first(where: { $0.id == node }) { return founder }
        guard let endpoint = raft.configuration.endpoints[node] else { return nil }
        return VoterAddress(id: node, endpoint: endpoint)
    }

    /// A connection to every voter but this node (and to the founding ones, which answer a
    /// joining node's first requests); a removed voter's added address is dropped.
    func syncPeers() {
        for voter in raft.configuration.voters where voter != options.nodeID && peers[voter] == nil {
            guard let address = address(of: voter) else {
                logger.warning("controller \(options.nodeID): voter \(voter) has no known address")
                continue
            }
            let peer = Peer(address: address, transport: options.transport, loop: loop, logger: logger)
            peers[voter] = peer
            // At once: a message to a peer not connected yet is dropped, and a new voter's first
            // words to the others may be its vote requests (a leader transfer to it failed so).
            peer.connect()
        }
        for (node, peer) in peers where !raft.configuration.contains(node) && !options.voters.contains(where: { $0.id == node }) {
            peer.close()
            peers[node] = nil
        }
    }

    /// Saves `ready`. Out of file descriptors or disk space, the quorum stalls (nothing is sent,
    /// applied or answered) and the save is tried again at each tick; a save is idempotent (the
    /// state file is replaced whole, entries past the first are truncated first). Any other
    /// failure stops the process: nothing may be sent that is not on disk.
    func persist(_ ready: Ready) -> Bool {
        do {
            let started = NIODeadline.now()
            try store.save(ready)
            options.observeSave?(NIODeadline.now().uptimeNanoseconds - started.uptimeNanoseconds)
            if saveStalled {
                saveStalled = false
                logger.notice("controller \(options.nodeID) persists its Raft log again")
            }
            return true
        } catch {
            switch error {
            case .diskFull, .io(_, _, EMFILE), .io(_, _, ENFILE), .io(_, _, ENOSPC):
                if !saveStalled { logger.error("controller \(options.nodeID) cannot persist its Raft log, stalled until it can: \(error)") }
                saveStalled = true
                return false
            default:
                logger.critical("controller \(options.nodeID) cannot persist its Raft log: \(error)")
                preconditionFailure("cannot persist the Raft log: \(error)")
            }
        }
    }

    /// Sends, installs and applies what a saved Ready holds, then advances Raft past it.
    func handle(_ ready: Ready) {
        syncPeers()
        for message in ready.messages { peers[message.to]?.send(.raft(message)) }
        if let snapshot = ready.snapshot {
            do { image = try Self.image(from: snapshot) } catch {
                preconditionFailure("controller \(options.nodeID) received a snapshot that does not rebuild an image: \(error)")
            }
            lastSnapshot = snapshot
            controller = nil
        }
        for entry in ready.committedEntries { apply(entry) }
        raft.advance(ready)
        compactIfDue()
    }

    /// The image a snapshot holds (empty for the digest snapshots of Brook before the image).
    static func image(from snapshot: Snapshot) throws(MetadataError) -> MetadataImage {
        switch try MetadataEntry(decoding: snapshot.data, recordsMax: MetadataEntry.snapshotRecordsMax) {
        case .records(let records): return try MetadataImage(snapshot: records, at: MetadataOffset(snapshot.index.value))
        case .opaque: return MetadataImage()
        }
    }

    func apply(_ entry: Entry) {
        if entry.kind == .data {
            do {
                if case .records(let records) = try MetadataEntry(decoding: entry.data) {
                    let offset = MetadataOffset(entry.index.value)
                    try image.apply(records, at: offset)
                    try controller?.replay(records, at: offset)
                }
            } catch {
                // A committed entry that does not apply: every controller would fail the same way.
                logger.critical("controller \(options.nodeID) cannot apply metadata entry \(entry.index): \(error)")
                preconditionFailure("metadata entry \(entry.index) does not apply: \(error)")
            }
        }
        if let waiter = waiting.removeValue(forKey: entry.index) { waiter.done(waiter.term == entry.term) }
    }

    /// This node leads and has applied everything in its log, an entry of its own term included:
    /// its image is the whole committed state, and it may decide.
    func activateController() {
        guard raft.role == .leader else {
            controller = nil
            return
        }
        guard controller == nil, raft.applied == raft.lastIndex, raft.term(at: raft.applied) == raft.term else { return }
        var seed = SystemRandomNumberGenerator()
        controller = ClusterController(committed: image, config: options.controller, nowMs: Self.nowMs(), randomSeed: seed.next())
        logger.notice("controller \(options.nodeID) is active at metadata offset \(image.offset) with \(image.brokers.count) brokers and \(image.topics.count) topics")
    }

    /// Proposes a decision's records as one entry; `done` learns whether it committed.
    func propose(_ records: [MetadataRecord], done: @escaping (Bool) -> Void) {
        guard !records.isEmpty else { return done(true) }
        do {
            let index = try raft.propose(MetadataEntry.records(records).encoded)
            waiting[index] = (raft.term, done)
            driveSoon()
        } catch {
            // The controller applied records that will never be in the log: start it afresh.
            logger.warning("controller \(options.nodeID) could not append a decision: \(error)")
            controller = nil
            done(false)
        }
    }

    static func nowMs() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds / 1_000_000) }

    func compactIfDue() {
        guard raft.applied - raft.snapshotIndex >= options.snapshotEveryEntries else { return }
        let snapshot = raft.compact(through: raft.applied, data: MetadataEntry.records(image.snapshotRecords()).encoded)
        lastSnapshot = snapshot
        do {
            try store.install(snapshot)
            logger.info("controller \(options.nodeID) took a snapshot at \(snapshot.index)")
        } catch .diskFull, .io(_, _, EMFILE), .io(_, _, ENFILE), .io(_, _, ENOSPC) {
            // The log keeps its entries on disk: the next snapshot covers these too.
            logger.error("controller \(options.nodeID) could not write its snapshot now: out of descriptors or space")
        } catch {
            logger.critical("controller \(options.nodeID) cannot write its snapshot: \(error)")
            preconditionFailure("cannot write the snapshot: \(error)")
        }
    }

    func reportRoleChange() {
        let now = (raft.role, raft.leader, raft.term)
        if let last = lastReported, last.0 == now.0, last.1 == now.1, last.2 == now.2 { return }
        lastReported = now
        if raft.role == .leader {
            logger.notice("controller \(options.nodeID) is the leader of term \(raft.term) (controller epoch)")
        } else {
            logger.info("controller \(options.nodeID) is \(raft.role) in term \(raft.term), leader \(raft.leader.map { "\($0)" } ?? "unknown")")
            // Proposals of a leader that stepped down may never commit: tell their clients.
            let lost = waiting
            waiting = [:]
            controller = nil
            for (_, waiter) in lost { waiter.done(false) }
        }
    }

    // MARK: input from the network

    func received(_ message: Message) {
        // A node not yet a voter takes the leader's messages whoever it is: a leader added
        // since its founding voters were configured is known only from the log it sends.
        guard message.to == options.nodeID,
              raft.configuration.contains(message.from) || peers[message.from] != nil || !raft.configuration.contains(options.nodeID) else { return }
        raft.step(message)
        noteContact(from: message.from)
        drive()
    }

    /// A leader notes a voter's answer: how far its log goes against the leader's.
    func noteContact(from node: NodeID) {
        guard raft.role == .leader, raft.configuration.contains(node), let match = raft.matchIndex(of: node) else { return }
        freshContacts()
        contacts.heard(node, holds: match.value, leaderEnd: raft.lastIndex.value, nowMs: Self.wallMs())
    }

    /// The active controller notes a broker's heartbeat: what it applied against what is committed.
    func noteObserver(_ node: NodeID, applied: MetadataOffset) {
        guard raft.role == .leader else { return }
        freshContacts()
        contacts.heard(node, holds: applied.value, leaderEnd: raft.commit.value, nowMs: Self.wallMs())
    }

    func freshContacts() {
        if contactsTerm != raft.term {
            contacts = ReplicaContacts()
            contactsTerm = raft.term
        }
    }

    /// The wall clock kept steady by the monotonic one (never going back within a run): the
    /// times DescribeQuorum shows.
    static let wallClock = SteadyWallClock(SystemClock())
    static func wallMs() -> Int64 { wallClock.now().ms }

    /// The quorum as this leader sees it; nil when it does not lead.
    func describeQuorum() -> QuorumDescription? {
        let status = raft.status
        guard status.role == .leader else { return nil }
        let now = Self.wallMs()
        freshContacts()
        // The leader itself: its log end, now for both times (as Kafka's leader reports itself).
        // Another node: as last heard in this term (never: -1, whatever Raft's progress starts at).
        func replica(_ id: NodeID) -> QuorumDescription.Replica {
            if id == options.nodeID { return QuorumDescription.Replica(id: id, logEnd: raft.lastIndex.value, lastFetchMs: now, lastCaughtUpMs: now) }
            guard let contact = contacts.seen[id] else { return QuorumDescription.Replica(id: id, logEnd: -1) }
            return QuorumDescription.Replica(id: id, logEnd: contact.holds, lastFetchMs: contact.heardMs, lastCaughtUpMs: contact.caughtUpMs)
        }
        let voters = status.configuration.voters.sorted().map(replica)
        // Brokers are the observers, by their heartbeats to this active controller (a node that
        // is a voter too is shown once, as the voter: Kafka's combined node).
        let observers = image.brokers.keys.sorted().filter { !status.configuration.contains($0) }
            .prefix(QuorumDescription.replicasMax).map(replica)
        var endpoints: [NodeID: String] = [:]
        for voter in status.configuration.voters {
            guard var address = address(of: voter) else { continue }
            // This node's port as bound (a single node's controller takes any free one).
            if voter == options.nodeID, let port = boundPort { address.port = port }
            endpoints[voter] = address.endpoint
        }
        return QuorumDescription(leader: options.nodeID, term: raft.term.value, highWatermark: raft.commit.value,
                                 voters: voters, observers: Array(observers), endpoints: endpoints)
    }

    func handle(_ request: QuorumRequest, reply: @escaping (Reply) -> Void) {
        func text(_ ok: Bool, _ body: String) { reply(.text(ok: ok, body)) }
        switch request {
        case .status:
            let s = raft.status
            text(true, """
                node=\(s.id)
                role=\(s.role)
                term=\(s.term)
                leader=\(s.leader.map { "\($0)" } ?? "-1")
                commit=\(s.commit)
                applied=\(s.applied)
                last_index=\(s.lastIndex)
                snapshot_index=\(raft.snapshotIndex)
                voters=\(s.configuration.voters.map(\.description).joined(separator: ","))
                voter_addresses=\(s.configuration.voters.compactMap { v in address(of: v).map { "\(v)@\($0.endpoint)" } ?? (v == options.nodeID ? nil : "\(v)@?") }.joined(separator: ","))
                metadata_offset=\(image.offset)
                active_controller=\(controller != nil)

                """)
        case .propose(let data):
            guard waiting.count < Self.waitingMax else { return text(false, "error=too many proposals in flight\n") }
            guard data.first != MetadataEntry.recordsTag else { return text(false, "error=an appended entry may not start with byte 1 (metadata records)\n") }
            do {
                let index = try raft.propose(data)
                let term = raft.term
                waiting[index] = (term, { committed in
                    committed ? text(true, "index=\(index)\nterm=\(term)\n")
                              : text(false, "error=the entry was replaced or leadership was lost; retry\n")
                })
                driveSoon()
            } catch {
                text(false, Self.describe(error))
            }
        case .read(let index):
            guard index <= raft.commit, let entry = raft.entry(at: index) else {
                return text(false, "error=entry \(index) is not committed here or was compacted\n")
            }
            text(true, "index=\(entry.index)\nterm=\(entry.term)\nkind=\(entry.kind)\ndata=\(String(decoding: entry.data, as: UTF8.self))\n")
        case .transfer(let target):
            do {
                try raft.transferLeadership(to: target)
                drive()
                text(true, "transferring=\(target)\n")
            } catch {
                text(false, Self.describe(error))
            }
        case .registerBroker(let registration):
            guard controller != nil, waiting.count < Self.waitingMax else { return text(false, notActive()) }
            let decision = controller!.register(registration, nowMs: Self.nowMs())
            let (code, epoch) = decision.answer
            propose(decision.records) { committed in
                committed ? text(true, "error_code=\(code.rawValue)\nbroker_epoch=\(epoch)\n") : text(false, "error=not committed; retry\n")
            }
        case .brokerHeartbeat(let heartbeat):
            guard controller != nil, waiting.count < Self.waitingMax else { return text(false, notActive()) }
            let decision = controller!.heartbeat(heartbeat, nowMs: Self.nowMs())
            if decision.answer.error == .none { noteObserver(heartbeat.id, applied: heartbeat.metadataOffset) }
            let a = decision.answer
            propose(decision.records) { committed in
                committed ? text(true, "error_code=\(a.error.rawValue)\ncaught_up=\(a.isCaughtUp)\nfenced=\(a.isFenced)\nshould_shut_down=\(a.shouldShutDown)\n")
                          : text(false, "error=not committed; retry\n")
            }
        case .fetchMetadata(let after, let maxWaitMs):
            if let answer = metadataAnswer(after: after) { return reply(.data(answer)) }
            guard metadataWaiters.count < Self.metadataWaitersMax else { return reply(.data(Self.emptyMetadataAnswer(through: after))) }
            metadataWaiters.append((after, .now() + .milliseconds(Int64(maxWaitMs)), reply))
        case .describeCluster:
            text(true, describeCluster())
        case .describeQuorum:
            guard let description = describeQuorum() else { return text(false, Self.describe(.notLeader(leader: raft.leader))) }
            text(true, QuorumDescriptionText.text(description))
        case .alterPartitions(let requests):
            guard controller != nil, waiting.count < Self.waitingMax else { return text(false, notActive()) }
            let decision = controller!.alterPartitions(requests)
            let answer = ISRChangeAnswers.text(decision.answer)
            propose(decision.records) { committed in committed ? text(true, answer) : text(false, "error=not committed; retry\n") }
        case .addVoter(let voter):
            changeVoters(adding: voter, removing: nil, reply: reply)
        case .removeVoter(let node):
            changeVoters(adding: nil, removing: node, reply: reply)
        case .allocateProducerIDs(let broker, let epoch):
            guard controller != nil, waiting.count < Self.waitingMax else { return text(false, notActive()) }
            let decision = controller!.allocateProducerIDs(broker: broker, epoch: epoch)
            let (code, first, count) = decision.answer
            propose(decision.records) { committed in
                committed ? text(true, "error_code=\(code.rawValue)\nfirst=\(first.value)\ncount=\(count)\n")
                          : text(false, "error=not committed; retry\n")
            }
        case .admin(let request):
            guard controller != nil, waiting.count < Self.waitingMax else { return text(false, notActive()) }
            let (entries, answers) = controller!.admin(request)
            // The answer names the metadata offset that holds its entries: a broker answers its
            // client once its own image has it (read your writes).
            let lines = answers.map(TopicAnswerText.line).joined()
            guard !entries.isEmpty else { return text(true, TopicAnswerText.offsetLine(image.offset) + lines) }
            var remaining = entries.count
            var lost = false
            for entry in entries {
                propose(entry) { [self] committed in
                    lost = lost || !committed
                    remaining -= 1
                    if remaining == 0 { lost ? text(false, "error=not committed; retry\n") : text(true, TopicAnswerText.offsetLine(image.offset) + lines) }
                }
            }
        }
    }

    func notActive() -> String {
        "error=not the active controller\nleader=\(raft.leader.map { "\($0)" } ?? "-1")\n" + leaderAddressLine()
    }

    /// `leader_address=host:port` when this node knows where the leader listens: a broker or a
    /// tool configured with the founding voters finds a leader added since.
    func leaderAddressLine() -> String {
        guard let leader = raft.leader, let address = address(of: leader) else { return "" }
        return "leader_address=\(address.endpoint)\n"
    }

    /// Adds or removes one voter (Kafka's AddRaftVoter / RemoveRaftVoter); the answer waits
    /// for the new voter set to commit. An added voter should be running already (as an
    /// observer) so that it catches up at once.
    func changeVoters(adding voter: VoterAddress?, removing node: NodeID?, reply: @escaping (Reply) -> Void) {
        func text(_ ok: Bool, _ body: String) { reply(.text(ok: ok, body)) }
        guard waiting.count < Self.waitingMax else { return text(false, "error=too many proposals in flight\n") }
        if let voter, options.voters.contains(where: { $0.id == voter.id && ($0.host != voter.host || $0.port != voter.port) }) {
            return text(false, "error=voter \(voter.id) is a founding voter at another address\n")
        }
        do {
            let index = try raft.proposeConfigurationChange(adding: voter?.id, endpoint: voter?.endpoint, removing: node)
            let term = raft.term
            logger.notice("controller \(options.nodeID) proposes the voters \(raft.configuration) at \(index)")
            waiting[index] = (term, { [self] committed in
                committed ? text(true, "index=\(index)\nvoters=\(raft.configuration.voters.map(\.description).joined(separator: ","))\n")
                          : text(false, "error=the change was replaced or leadership was lost; retry\n")
            })
            drive()
        } catch {
            switch error {
            case .notLeader: text(false, Self.describe(error) + leaderAddressLine())
            case .invalidConfigurationChange:
                text(false, "error=\(voter.map { "\($0.id) is already a voter, or the voters are full" } ?? "\(node!) is not a voter, or is the last one")\n")
            case .configurationChangePending:
                text(false, "error=another change of the voters is in progress, or this leader has not committed in its term yet; retry\n")
            default: text(false, Self.describe(error))
            }
        }
    }

    // MARK: brokers reading the metadata log

    /// Committed entries after `after`, or the snapshot when they were compacted; nil when
    /// there is nothing new. Layout: kind (0 entries, 1 snapshot), the offset the broker has
    /// then seen everything through (8 bytes), then for entries a count (4) and per entry its
    /// index (8), length (4) and data; for a snapshot its length (4) and data.
    func metadataAnswer(after: MetadataOffset) -> [UInt8]? {
        let commit = raft.commit
        guard after.value < commit.value else { return nil }
        var out: [UInt8] = []
        func put<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.bigEndian) { out.append(contentsOf: $0) } }
        if after.value < raft.snapshotIndex.value, let snapshot = lastSnapshot {
            out.append(1)
            put(snapshot.index.value)
            put(UInt32(snapshot.data.count))
            out.append(contentsOf: snapshot.data)
            return out
        }
        var entries: [Entry] = []
        var bytes = 0
        var through = after.value
        var index = LogIndex(after.value + 1)
        while index <= commit, entries.count < Self.metadataEntriesPerAnswerMax, bytes < Self.metadataBytesPerAnswerMax,
              let entry = raft.entry(at: index) {
            if entry.kind == .data, entry.data.first == MetadataEntry.recordsTag {
                entries.append(entry)
                bytes += entry.data.count
            }
            through = index.value
            index = index + 1
        }
        out.append(0)
        put(through)
        put(UInt32(entries.count))
        for entry in entries {
            put(entry.index.value)
            put(UInt32(entry.data.count))
            out.append(contentsOf: entry.data)
        }
        return out
    }

    static func emptyMetadataAnswer(through: MetadataOffset) -> [UInt8] {
        var out: [UInt8] = [0]
        withUnsafeBytes(of: through.value.bigEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: [0, 0, 0, 0])
        return out
    }

    func answerMetadataWaiters() {
        guard let lowest = metadataWaiters.map(\.after.value).min(), lowest < raft.commit.value else { return }
        var still: [(after: MetadataOffset, deadline: NIODeadline, reply: (Reply) -> Void)] = []
        for waiter in metadataWaiters {
            if let answer = metadataAnswer(after: waiter.after) { waiter.reply(.data(answer)) } else { still.append(waiter) }
        }
        metadataWaiters = still
    }

    func answerExpiredMetadataWaiters() {
        let now = NIODeadline.now()
        guard metadataWaiters.contains(where: { $0.deadline <= now }) else { return }
        let expired = metadataWaiters.filter { $0.deadline <= now }
        metadataWaiters.removeAll { $0.deadline <= now }
        for waiter in expired { waiter.reply(.data(Self.emptyMetadataAnswer(through: waiter.after))) }
    }

    /// One line per broker of the committed image, and who leads the quorum.
    func describeCluster() -> String {
        var lines = ["controller=\(raft.leader.map { "\($0)" } ?? "-1")", "metadata_offset=\(image.offset)", "topics=\(image.topics.count)"]
        for broker in image.brokers.values.sorted(by: { $0.id < $1.id }) {
            let endpoints = broker.endpoints.map { "\($0.name)://\($0.host):\($0.port)" }.joined(separator: ",")
            lines.append("broker=\(broker.id) epoch=\(broker.epoch) fenced=\(broker.fenced) controlled_shutdown=\(broker.inControlledShutdown) rack=\(broker.rack ?? "-") endpoints=\(endpoints)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func describe(_ error: ProposalError) -> String {
        switch error {
        case .notLeader(let leader): return "error=not the leader\nleader=\(leader.map { "\($0)" } ?? "-1")\n"
        default: return "error=\(error)\n"
        }
    }
}

/// Frames from one connection: Raft messages to the core, requests answered on the connection.
final class InboundHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Frame
    let driver: QuorumDriver
    init(driver: QuorumDriver) { self.driver = driver }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .raft(let message):
            driver.input { [driver] in driver.received(message) }
        case .request(let id, let request):
            let channel = context.channel
            driver.input { [driver] in
                driver.handle(request) { reply in
                    let frame: Frame
                    switch reply {
                    case .text(let ok, let text): frame = .answer(id: id, ok: ok, text: text)
                    case .data(let bytes): frame = .data(id: id, bytes)
                    }
                    var buffer = channel.allocator.buffer(capacity: 64)
                    frame.encode(into: &buffer)
                    channel.writeAndFlush(buffer, promise: nil)
                }
            }
        case .answer, .data:
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil) // a malformed or oversized frame ends the connection
    }
}

/// The outbound connection to one peer. Messages are dropped while it is down: Raft resends.
final class Peer: @unchecked Sendable {
    let address: VoterAddress
    let transport: QuorumTransport
    let loop: EventLoop
    let logger: Logger
    var channel: Channel?
    var connecting = false
    var lastAttempt = NIODeadline.uptimeNanoseconds(0)
    /// Bytes queued on a connection that is not draining: beyond this, messages are dropped.
    static let pendingBytesMax = 64 << 20

    init(address: VoterAddress, transport: QuorumTransport, loop: EventLoop, logger: Logger) {
        self.address = address
        self.transport = transport
        self.loop = loop
        self.logger = logger
    }

    /// Messages sent while connecting go out once connected (the newest `pendingMax`): a vote
    /// request is sent once per election, and a new voter's first words to most voters are its
    /// vote requests when leadership is handed to it.
    var pending: [Frame] = []
    static let pendingMax = 64
    /// Between connection attempts: doubled after each failure up to the most, as Kafka's
    /// reconnect.backoff.ms (50) and reconnect.backoff.max.ms (1000) do.
    var backoffMs: Int64 = Peer.backoffMinMs
    static let backoffMinMs: Int64 = 50
    static let backoffMaxMs: Int64 = 1000

    func send(_ frame: Frame) {
        loop.preconditionInEventLoop()
        if let channel, channel.isActive {
            guard channel.isWritable else { return }
            var buffer = channel.allocator.buffer(capacity: 256)
            frame.encode(into: &buffer)
            channel.writeAndFlush(buffer, promise: nil)
            return
        }
        pending.append(frame)
        if pending.count > Self.pendingMax { pending.removeFirst(pending.count - Self.pendingMax) }
        connect()
    }

    func connect() {
        guard !connecting, NIODeadline.now() - lastAttempt > .milliseconds(backoffMs) else { return }
        connecting = true
        lastAttempt = .now()
        ClientBootstrap(group: loop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelOption(ChannelOptions.connectTimeout, value: .milliseconds(500))
            .channelOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 1 << 20, high: Self.pendingBytesMax))
            .channelInitializer { [transport, address] channel in
                channel.eventLoop.makeCompletedFuture { try transport.secureOpened(channel, host: address.host) }
            }
            .connect(host: address.host, port: address.port)
            .whenComplete { [self] result in
                connecting = false
                switch result {
                case .success(let channel):
                    self.channel = channel
                    backoffMs = Self.backoffMinMs
                    let queued = pending
                    pending = []
                    for frame in queued { send(frame) }
                case .failure(let error):
                    pending = []
                    if backoffMs == Self.backoffMinMs { logger.debug("cannot reach controller \(address.id): \(error)") }
                    backoffMs = min(backoffMs * 2, Self.backoffMaxMs)
                }
            }
    }

    func close() { channel?.close(promise: nil) }
}

/// What a leader knows of each replica it hears from (voters' append answers, brokers'
/// heartbeats), kept as Kafka's leader keeps it for DescribeQuorum: the last log end heard,
/// when, and when the replica last held everything the leader had. A replica is caught up at an
/// answer that reaches the leader's end then, or, failing that, at its previous answer if this
/// one reaches the leader's end as of that previous answer (it was level then, at the latest).
struct ReplicaContacts {
    struct Contact: Equatable {
        var holds: Int64
        var heardMs: Int64
        var caughtUpMs: Int64 = -1
        /// The leader's end when this replica was last heard from.
        var leaderEndThen: Int64
    }
    private(set) var seen: [NodeID: Contact] = [:]
    /// Nodes tracked at most (voters and brokers).
    static let nodesMax = 2 * QuorumDescription.replicasMax

    mutating func heard(_ node: NodeID, holds: Int64, leaderEnd: Int64, nowMs: Int64) {
        guard var contact = seen[node] else {
            guard seen.count < Self.nodesMax else { return }
            seen[node] = Contact(holds: holds, heardMs: nowMs, caughtUpMs: holds >= leaderEnd ? nowMs : -1, leaderEndThen: leaderEnd)
            return
        }
        if holds >= leaderEnd {
            contact.caughtUpMs = max(contact.caughtUpMs, nowMs)
        } else if holds >= contact.leaderEndThen {
            contact.caughtUpMs = max(contact.caughtUpMs, contact.heardMs)
        }
        contact.holds = holds
        contact.heardMs = nowMs
        contact.leaderEndThen = leaderEnd
        seen[node] = contact
    }
}
