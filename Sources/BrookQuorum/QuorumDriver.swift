import BrookCore
import BrookRaft
import BrookStorage
import Logging
import NIOCore
import NIOPosix

/// Runs one Raft core over real time and TCP: a tick every electionTimeoutMs/10, each Ready
/// persisted and fsynced (RaftStore) before its messages go out, committed entries applied to
/// the state machine. Everything runs on one event loop, so the core needs no lock; fsyncs
/// block that loop, which a controller's small write rate allows.
///
/// The state machine is, for now, a digest chained over the applied entries (what the next
/// cluster issue replaces with the metadata image); its snapshot is that digest.
public final class QuorumDriver: @unchecked Sendable {
    public let options: QuorumOptions
    let loop: EventLoop
    let logger: Logger
    let store: RaftStore
    var raft: Raft
    var peers: [NodeID: Peer] = [:]
    var serverChannel: Channel?
    var ticker: RepeatedTask?
    /// Proposals waiting to be applied: answered with their index, or refused if another
    /// entry took their place.
    var waiting: [LogIndex: (term: Term, reply: (Bool, String) -> Void)] = [:]
    var digest: UInt64 = 0
    var lastReported: (Role, NodeID?, Term)?

    static let waitingMax = 10_000

    public static func start(_ options: QuorumOptions, group: EventLoopGroup, logger: Logger) throws -> QuorumDriver {
        guard let me = options.voters.first(where: { $0.id == options.nodeID }) else { throw QuorumError.notAVoter(options.nodeID) }
        let loop = group.next()
        let driver = try loop.submit { () throws -> QuorumDriver in try QuorumDriver(options, loop: loop, logger: logger) }.wait()
        let bootstrap = ServerBootstrap(group: loop)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(InboundHandler(driver: driver))
                }
            }
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
        driver.serverChannel = try bootstrap.bind(host: me.host, port: me.port).wait()
        try loop.submit { driver.startTicking() }.wait()
        logger.notice("controller \(options.nodeID) listening on \(me.host):\(me.port), voters \(options.voters.map { "\($0.id)@\($0.host):\($0.port)" }.joined(separator: ",")), data in \(options.dataDirectory)")
        return driver
    }

    init(_ options: QuorumOptions, loop: EventLoop, logger: Logger) throws {
        self.options = options
        self.loop = loop
        self.logger = logger
        store = try RaftStore(directory: options.dataDirectory, logger: logger)
        let state = try store.load()
        var config = RaftConfig()
        config.electionTicks = 10
        config.heartbeatTicks = 1
        var seed = SystemRandomNumberGenerator()
        raft = Raft(id: options.nodeID, config: config, restoring: state,
                    bootstrap: Configuration(voters: options.voters.map(\.id)), randomSeed: seed.next())
        digest = state.snapshot.map { EntryDigest.digest(fromSnapshot: $0.data) } ?? 0
        for voter in options.voters where voter.id != options.nodeID {
            peers[voter.id] = Peer(address: voter, loop: loop, logger: logger)
        }
        logger.info("controller \(options.nodeID) restored term \(state.hardState.term), \(state.entries.count) entries after snapshot \(state.snapshot?.index ?? .zero)")
    }

    func startTicking() {
        let tick = TimeAmount.milliseconds(max(1, options.electionTimeoutMs / 10))
        ticker = loop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { [self] _ in
            raft.tick()
            drive()
        }
        drive()
    }

    /// Stops ticking, closes every connection and the Raft log. Called from outside the loop
    /// (a signal handler): it waits for the loop's work, which must never wait on the loop
    /// itself (it did, and `brook controller` died on SIGTERM).
    public func shutdown() {
        loop.preconditionNotInEventLoop()
        try? loop.submit { [self] in
            ticker?.cancel()
            for peer in peers.values { peer.close() }
        }.wait()
        try? serverChannel?.close().wait()
        try? loop.submit { [self] in try? store.close() }.wait()
    }

    // MARK: the Ready loop

    func drive() {
        loop.preconditionInEventLoop()
        while raft.hasReady {
            let ready = raft.ready()
            do {
                try store.save(ready)
            } catch {
                // Nothing may be sent that is not on disk: stop rather than guess.
                logger.critical("controller \(options.nodeID) cannot persist its Raft log: \(error)")
                preconditionFailure("cannot persist the Raft log: \(error)")
            }
            for message in ready.messages { peers[message.to]?.send(.raft(message)) }
            if let snapshot = ready.snapshot { digest = EntryDigest.digest(fromSnapshot: snapshot.data) }
            for entry in ready.committedEntries { apply(entry) }
            raft.advance(ready)
            compactIfDue()
        }
        reportRoleChange()
    }

    func apply(_ entry: Entry) {
        digest = EntryDigest.chain(digest, entry)
        if let waiter = waiting.removeValue(forKey: entry.index) {
            if waiter.term == entry.term {
                waiter.reply(true, "index=\(entry.index)\nterm=\(entry.term)\n")
            } else {
                waiter.reply(false, "error=the entry was replaced after a leader change; retry\n")
            }
        }
    }

    func compactIfDue() {
        guard raft.applied - raft.snapshotIndex >= options.snapshotEveryEntries else { return }
        let snapshot = raft.compact(through: raft.applied, data: EntryDigest.snapshotData(digest))
        do {
            try store.install(snapshot)
            logger.info("controller \(options.nodeID) took a snapshot at \(snapshot.index)")
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
            for (_, waiter) in waiting { waiter.reply(false, "error=leadership lost before the entry committed; retry\n") }
            waiting = [:]
        }
    }

    // MARK: input from the network

    func received(_ message: Message) {
        guard message.to == options.nodeID, raft.configuration.contains(message.from) || peers[message.from] != nil else { return }
        raft.step(message)
        drive()
    }

    func handle(_ request: QuorumRequest, reply: @escaping (Bool, String) -> Void) {
        switch request {
        case .status:
            let s = raft.status
            reply(true, """
                node=\(s.id)
                role=\(s.role)
                term=\(s.term)
                leader=\(s.leader.map { "\($0)" } ?? "-1")
                commit=\(s.commit)
                applied=\(s.applied)
                last_index=\(s.lastIndex)
                snapshot_index=\(raft.snapshotIndex)
                voters=\(s.configuration.voters.map(\.description).joined(separator: ","))

                """)
        case .propose(let data):
            guard waiting.count < Self.waitingMax else { return reply(false, "error=too many proposals in flight\n") }
            do {
                let index = try raft.propose(data)
                waiting[index] = (raft.term, reply)
                drive()
            } catch {
                reply(false, Self.describe(error))
            }
        case .read(let index):
            guard index <= raft.commit, let entry = raft.entry(at: index) else {
                return reply(false, "error=entry \(index) is not committed here or was compacted\n")
            }
            reply(true, "index=\(entry.index)\nterm=\(entry.term)\nkind=\(entry.kind)\ndata=\(String(decoding: entry.data, as: UTF8.self))\n")
        case .transfer(let target):
            do {
                try raft.transferLeadership(to: target)
                drive()
                reply(true, "transferring=\(target)\n")
            } catch {
                reply(false, Self.describe(error))
            }
        }
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
            driver.received(message)
        case .request(let id, let request):
            let channel = context.channel
            driver.handle(request) { ok, text in
                var buffer = channel.allocator.buffer(capacity: 64 + text.utf8.count)
                Frame.answer(id: id, ok: ok, text: text).encode(into: &buffer)
                channel.writeAndFlush(buffer, promise: nil)
            }
        case .answer:
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
    let loop: EventLoop
    let logger: Logger
    var channel: Channel?
    var connecting = false
    var lastAttempt = NIODeadline.uptimeNanoseconds(0)
    /// Bytes queued on a connection that is not draining: beyond this, messages are dropped.
    static let pendingBytesMax = 64 << 20

    init(address: VoterAddress, loop: EventLoop, logger: Logger) {
        self.address = address
        self.loop = loop
        self.logger = logger
    }

    func send(_ frame: Frame) {
        loop.preconditionInEventLoop()
        if let channel, channel.isActive {
            guard channel.isWritable else { return }
            var buffer = channel.allocator.buffer(capacity: 256)
            frame.encode(into: &buffer)
            channel.writeAndFlush(buffer, promise: nil)
            return
        }
        connect()
    }

    func connect() {
        guard !connecting, NIODeadline.now() - lastAttempt > .milliseconds(100) else { return }
        connecting = true
        lastAttempt = .now()
        ClientBootstrap(group: loop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelOption(ChannelOptions.connectTimeout, value: .milliseconds(500))
            .channelOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 1 << 20, high: Self.pendingBytesMax))
            .connect(host: address.host, port: address.port)
            .whenComplete { [self] result in
                connecting = false
                switch result {
                case .success(let channel): self.channel = channel
                case .failure(let error): logger.debug("cannot reach controller \(address.id): \(error)")
                }
            }
    }

    func close() { channel?.close(promise: nil) }
}
