import BrookCluster
import BrookCore
import BrookProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A broker's settings towards the controllers (Kafka's names).
public struct BrokerLifecycleOptions: Sendable {
    public var nodeID: NodeID
    /// `controller.quorum.voters`: where the controllers listen.
    public var voters: [VoterAddress]
    /// The broker's advertised listeners, registered for clients and other brokers.
    public var endpoints: [BrokerInfo.Endpoint]
    /// `broker.rack`
    public var rack: String?
    /// Whether the broker's previous run stopped cleanly (told at registration).
    public var cleanShutdown = true
    /// `broker.heartbeat.interval.ms`
    public var heartbeatIntervalMs: Int64 = 2000
    /// How long a metadata read waits at the controller for something new.
    public var metadataWaitMs: Int32 = 1000
    /// A request to a controller with no answer within this is given up (and the next controller tried).
    public var requestTimeoutMs: Int64 = 5000
    /// The replicas lost with a failed log directory, told in every heartbeat (at most
    /// BrokerHeartbeatRequest.offlineReplicasMax).
    public var offlineReplicas: @Sendable () -> [TopicIDPartition] = { [] }
    /// TLS on the connections to the controllers (their listener's security protocol).
    public var transport = QuorumTransport.plaintext
    public init(nodeID: NodeID, voters: [VoterAddress], endpoints: [BrokerInfo.Endpoint], rack: String? = nil) {
        self.nodeID = nodeID
        self.voters = voters
        self.endpoints = endpoints
        self.rack = rack
    }
}

/// What a broker knows of the cluster: the metadata image it has applied, and its standing.
public struct BrokerView: Sendable {
    public var image = MetadataImage()
    /// The committed log's offset this broker has read everything through.
    public var fetchedThrough = MetadataOffset.zero
    public var epoch = BrokerEpoch.none
    public var fenced = true
    /// The controller that last answered as active.
    public var activeController: NodeID?
}

/// A broker's side of the quorum, on one event loop: it registers with the active controller
/// (a new broker epoch per process), heartbeats every `broker.heartbeat.interval.ms`, and reads
/// the committed metadata log from a controller as an observer, applying it to its image. On
/// shutdown it asks to leave (controlled shutdown) and waits until the controller has moved its
/// leaderships, or a timeout.
public final class BrokerLifecycle: @unchecked Sendable {
    public let options: BrokerLifecycleOptions
    let loop: EventLoop
    let logger: Logger
    let incarnation: KafkaUUID
    let onChange: @Sendable (BrokerView) -> Void
    let viewBox = NIOLockedValueBox(BrokerView())

    // State below is confined to `loop`.
    var view = BrokerView()
    var target = 0
    /// The controllers this broker asks: the configured voters, and leaders added since that a
    /// controller named with their address.
    var controllers: [VoterAddress] = []
    static let controllersMax = 128
    var connection: ControllerConnection?
    var registering = false
    /// Once registered, this process's logs are its own: a later registration (the controller
    /// lost it) says clean, whatever the process found at start.
    var registeredOnce = false
    var heartbeatInFlight = false
    var fetchInFlight = false
    var lastHeartbeat = NIODeadline.uptimeNanoseconds(0)
    /// The metadata offset the last heartbeat reported.
    var lastHeartbeatOffset = MetadataOffset.zero
    var wantShutdown = false
    var shutdownDone: EventLoopPromise<Bool>?
    var ticker: RepeatedTask?
    /// Callers waiting for the DescribeQuorum in flight (one at a time goes to the controller,
    /// whatever the number of clients asking); at most `describeWaitersMax`.
    var describeWaiters: [@Sendable (Result<QuorumDescription, QuorumError>) -> Void] = []
    static let describeWaitersMax = 1024

    public var current: BrokerView { viewBox.withLockedValue { $0 } }

    public init(_ options: BrokerLifecycleOptions, group: EventLoopGroup, logger: Logger, onChange: @escaping @Sendable (BrokerView) -> Void = { _ in }) {
        precondition(!options.voters.isEmpty, "a broker needs controllers")
        self.options = options
        loop = group.next()
        self.logger = logger
        var random = SystemRandomNumberGenerator()
        incarnation = KafkaUUID.random(using: &random)
        self.onChange = onChange
        controllers = options.voters
        target = Int(options.nodeID.value) % options.voters.count
    }

    public func start() {
        loop.execute { [self] in
            ticker = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(100)) { [self] _ in step() }
        }
    }

    /// Controlled shutdown: heartbeats ask to leave until the controller answers that this broker
    /// may stop (its leaderships moved), or `timeoutMs` passes. Then everything stops. Call from
    /// outside the loop; returns whether the controller agreed in time.
    public func shutDown(timeoutMs: Int64) -> Bool {
        loop.preconditionNotInEventLoop()
        let agreed = try? loop.submit { [self] () -> EventLoopFuture<Bool> in
            wantShutdown = true
            let promise = loop.makePromise(of: Bool.self)
            shutdownDone = promise
            if view.epoch == .none { promise.succeed(false) }
            loop.scheduleTask(in: .milliseconds(timeoutMs)) { promise.succeed(false) }
            lastHeartbeat = .uptimeNanoseconds(0)
            step()
            return promise.futureResult
        }.flatMap { $0 }.wait()
        try? loop.submit { [self] in
            ticker?.cancel()
            connection?.close()
            connection = nil
        }.wait()
        return agreed ?? false
    }

    /// Forwards a topic change to the active controller (trying the one named when a
    /// controller is not active), and calls `done` with its answers once committed, or an error:
    /// the answers and the metadata offset that holds the entries they made.
    public func forward(_ request: ControllerAdminRequest, done: @escaping @Sendable (Result<([TopicAnswer], MetadataOffset), QuorumError>) -> Void) {
        loop.execute { [self] in
            askLeader(.admin(request), attempt: 0, attemptsMax: Self.forwardAttemptsMax, delayMs: 200, deadline: nil, readOnly: false,
                      nobody: "no active controller answered", read: TopicAnswerText.parse, done: done)
        }
    }

    static let forwardAttemptsMax = 10

    /// The quorum as its leader sees it (DescribeQuorum), asked of the controller this broker
    /// follows and, if that one does not lead, of the leader it names. Callers that ask while
    /// one is in flight share its answer; within `describeWaitMs` in all.
    public func describeQuorum(done: @escaping @Sendable (Result<QuorumDescription, QuorumError>) -> Void) {
        loop.execute { [self] in
            guard describeWaiters.count < Self.describeWaitersMax else { return done(.failure(.unreachable("too many DescribeQuorum requests waiting"))) }
            describeWaiters.append(done)
            guard describeWaiters.count == 1 else { return }
            askLeader(.describeQuorum, attempt: 0, attemptsMax: Self.describeAttemptsMax, delayMs: 100,
                      deadline: .now() + .milliseconds(Self.describeWaitMs), readOnly: true,
                      nobody: "no quorum leader answered", read: QuorumDescriptionText.parse) { [self] result in
                let waiting = describeWaiters
                describeWaiters = []
                for waiter in waiting { waiter(result) }
            }
        }
    }

    /// A DescribeQuorum is tried at most this many times, 0.1 s apart, none started past
    /// `describeWaitMs` (each within the request timeout).
    static let describeAttemptsMax = 5
    static let describeWaitMs: Int64 = 3000

    /// Asks the active controller (the leader): an answer that is not the leader's moves to the
    /// leader it names, a lost one to the next controller (not for a `readOnly` request: the
    /// heartbeats decide that a controller is gone, and a client's reads must not cut this
    /// broker's connection), each tried again `delayMs` later, at most `attemptsMax` times and
    /// not past `deadline`; `read` turns the leader's text answer into the result.
    func askLeader<T>(_ request: QuorumRequest, attempt: Int, attemptsMax: Int, delayMs: Int64, deadline: NIODeadline?, readOnly: Bool,
                      nobody: String, read: @escaping (String) -> T?, done: @escaping @Sendable (Result<T, QuorumError>) -> Void) {
        let retry = { [self] in
            guard attempt < attemptsMax, deadline.map({ .now() + .milliseconds(delayMs) < $0 }) ?? true else {
                return done(.failure(.unreachable(nobody)))
            }
            loop.scheduleTask(in: .milliseconds(delayMs)) { [self] in
                askLeader(request, attempt: attempt + 1, attemptsMax: attemptsMax, delayMs: delayMs, deadline: deadline, readOnly: readOnly,
                          nobody: nobody, read: read, done: done)
            }
        }
        guard let connection = connected() else { return retry() }
        connection.ask(request) { [self] result in
            switch result {
            case .success(.text(true, let text)):
                guard let value = read(text) else { return done(.failure(.unreachable("unreadable controller answer"))) }
                done(.success(value))
            case .success(.text(false, let text)):
                if self.connection === connection { rotate(toLeaderIn: Self.fields(text)) }
                retry()
            default:
                if self.connection === connection && !readOnly { rotate() }
                retry()
            }
        }
    }

    /// Sends a leader's ISR changes to the active controller in one request (one attempt: the
    /// leader proposes again later). `done` gets, per change in order, the committed ISR and
    /// partition epoch, or nil with the error.
    public func alterPartitions(_ changes: [(TopicIDPartition, ISRProposal)], done: @escaping @Sendable ([(ErrorCode, CommittedISR?)]) -> Void) {
        precondition(changes.count <= AlterPartitionRequest.partitionsMax, "\(changes.count) ISR changes in one request")
        guard !changes.isEmpty else { return done([]) }
        func all(_ code: ErrorCode) -> [(ErrorCode, CommittedISR?)] { changes.map { _ in (code, nil) } }
        loop.execute { [self] in
            guard view.epoch != .none, let connection = connected() else { return done(all(.requestTimedOut)) }
            let requests = changes.map { AlterPartitionRequest(broker: options.nodeID, brokerEpoch: view.epoch, partition: $0.0, proposal: $0.1) }
            connection.ask(.alterPartitions(requests)) { [self] result in
                guard case .success(.text(let ok, let text)) = result else { return done(all(.requestTimedOut)) }
                guard ok else {
                    if self.connection === connection { rotate(toLeaderIn: Self.fields(text)) }
                    return done(all(.notController))
                }
                done(ISRChangeAnswers.parse(text, count: changes.count) ?? all(.unknownServerError))
            }
        }
    }

    /// A block of producer ids from the active controller (AllocateProducerIds): the first id
    /// and how many, or the error.
    public func allocateProducerIDs(done: @escaping @Sendable (ErrorCode, ProducerID, Int64) -> Void) {
        loop.execute { [self] in
            guard view.epoch != .none, let connection = connected() else { return done(.requestTimedOut, .none, 0) }
            connection.ask(.allocateProducerIDs(broker: options.nodeID, epoch: view.epoch)) { [self] result in
                guard case .success(.text(let ok, let text)) = result else { return done(.requestTimedOut, .none, 0) }
                let fields = Self.fields(text)
                guard ok else {
                    if self.connection === connection { rotate(toLeaderIn: fields) }
                    return done(.notController, .none, 0)
                }
                let code = ErrorCode(rawValue: Int16(fields["error_code"] ?? "") ?? -1)
                guard code == .none, let first = fields["first"].flatMap(Int64.init), let count = fields["count"].flatMap(Int64.init),
                      first >= 0, count > 0 else { return done(code == .none ? .unknownServerError : code, .none, 0) }
                done(.none, ProducerID(first), count)
            }
        }
    }

    // MARK: the loop

    func step() {
        guard let connection = connected() else { return }
        if view.epoch == .none {
            if !registering && !wantShutdown { register(connection) }
        } else if !heartbeatInFlight,
                  Self.heartbeatDue(sinceLastMs: (NIODeadline.now() - lastHeartbeat).nanoseconds / 1_000_000, intervalMs: options.heartbeatIntervalMs,
                                    view: view, lastReported: lastHeartbeatOffset, wantShutdown: wantShutdown) {
            heartbeat(connection)
        }
        if !fetchInFlight { fetch(connection) }
    }

    /// Whether a heartbeat is due: every `intervalMs` (200 ms while asking to shut down), and
    /// at once while fenced when the metadata read moved past what the last one reported. The
    /// controller unfences a broker once it has read its own registration: waiting for the
    /// interval cost a start up to `broker.heartbeat.interval.ms` (2 s of a 10,000-partition
    /// start).
    static func heartbeatDue(sinceLastMs: Int64, intervalMs: Int64, view: BrokerView, lastReported: MetadataOffset, wantShutdown: Bool) -> Bool {
        if sinceLastMs >= (wantShutdown ? 200 : intervalMs) { return true }
        return view.fenced && !wantShutdown && view.fetchedThrough > lastReported
    }

    func connected() -> ControllerConnection? {
        if let connection, connection.isUsable { return connection }
        if connection != nil { rotate() }
        let voter = controllers[target]
        connection = ControllerConnection(host: voter.host, port: voter.port, transport: options.transport, loop: loop,
                                          timeoutMs: options.requestTimeoutMs, logger: logger)
        registering = false
        heartbeatInFlight = false
        fetchInFlight = false
        return connection!.isUsable ? connection : nil
    }

    /// The leader a controller's answer names (`leader`, and `leader_address` for one added
    /// after this broker's configuration was written), or the next controller.
    func rotate(toLeaderIn fields: [String: String]) {
        let leader = fields["leader"].flatMap(Int32.init).map(NodeID.init)
        if let leader, !controllers.contains(where: { $0.id == leader }), controllers.count < Self.controllersMax,
           let address = fields["leader_address"], let learned = VoterAddress(id: leader, endpoint: address) {
            logger.notice("broker \(options.nodeID) learned of controller \(leader) at \(address)")
            controllers.append(learned)
        }
        rotate(to: leader)
    }

    /// Next controller, or the one named as leader.
    func rotate(to leader: NodeID? = nil) {
        if let leader, let index = controllers.firstIndex(where: { $0.id == leader }) {
            target = index
        } else {
            target = (target + 1) % controllers.count
        }
        connection?.close()
        connection = nil
    }

    func register(_ connection: ControllerConnection) {
        registering = true
        let request = BrokerRegistrationRequest(id: options.nodeID, incarnation: incarnation, endpoints: options.endpoints, rack: options.rack,
                                                cleanShutdown: options.cleanShutdown || registeredOnce)
        connection.ask(.registerBroker(request)) { [self] result in
            // An answer from a connection given up since changes nothing.
            guard self.connection === connection else { return }
            registering = false
            guard case .success(.text(let ok, let text)) = result else { return rotate() }
            let fields = Self.fields(text)
            guard ok else { return rotate(toLeaderIn: fields) }
            let code = ErrorCode(rawValue: Int16(fields["error_code"] ?? "") ?? -1)
            guard code == .none, let epoch = fields["broker_epoch"].flatMap(Int64.init) else {
                logger.warning("broker \(options.nodeID) registration refused: \(code)")
                return
            }
            view.epoch = BrokerEpoch(epoch)
            registeredOnce = true
            view.activeController = controllers[target].id
            lastHeartbeat = .uptimeNanoseconds(0)
            logger.notice("broker \(options.nodeID) registered with controller \(controllers[target].id), broker epoch \(epoch)")
            publish()
        }
    }

    func heartbeat(_ connection: ControllerConnection) {
        heartbeatInFlight = true
        lastHeartbeat = .now()
        lastHeartbeatOffset = view.fetchedThrough
        let request = BrokerHeartbeatRequest(id: options.nodeID, epoch: view.epoch, metadataOffset: view.fetchedThrough, wantShutdown: wantShutdown,
                                             offlineReplicas: Array(options.offlineReplicas().prefix(BrokerHeartbeatRequest.offlineReplicasMax)))
        connection.ask(.brokerHeartbeat(request)) { [self] result in
            // An answer from a connection given up since changes nothing.
            guard self.connection === connection else { return }
            heartbeatInFlight = false
            guard case .success(.text(let ok, let text)) = result else { return rotate() }
            let fields = Self.fields(text)
            guard ok else { return rotate(toLeaderIn: fields) }
            let code = ErrorCode(rawValue: Int16(fields["error_code"] ?? "") ?? -1)
            if code == .staleBrokerEpoch || code == .brokerIDNotRegistered {
                logger.warning("broker \(options.nodeID) must register again: \(code)")
                view.epoch = .none
                return publish()
            }
            guard code == .none else { return }
            let fenced = fields["fenced"] == "true"
            if fenced != view.fenced {
                logger.notice("broker \(options.nodeID) is \(fenced ? "fenced" : "unfenced") (broker epoch \(view.epoch))")
            }
            view.fenced = fenced
            view.activeController = controllers[target].id
            publish()
            if wantShutdown, fields["should_shut_down"] == "true" {
                shutdownDone?.succeed(true)
            }
        }
    }

    func fetch(_ connection: ControllerConnection) {
        fetchInFlight = true
        connection.ask(.fetchMetadata(after: view.fetchedThrough, maxWaitMs: options.metadataWaitMs)) { [self] result in
            // An answer from a connection given up since changes nothing.
            guard self.connection === connection else { return }
            fetchInFlight = false
            guard case .success(.data(let bytes)) = result else { return }
            do {
                if try apply(bytes) { publish() }
            } catch {
                logger.error("broker \(options.nodeID) cannot apply the metadata it read: \(error)")
            }
            step()
        }
    }

    /// Applies a metadata answer (QuorumDriver.metadataAnswer's layout); true if the view moved.
    func apply(_ bytes: [UInt8]) throws(MetadataError) -> Bool {
        var reader = ByteReader(bytes)
        guard let kind = reader.uint8(), let through = reader.int64() else { throw MetadataError("metadata answer cut short") }
        let before = view.fetchedThrough
        if kind == 1 {
            guard let length = reader.uint32(), let data = reader.bytes(Int(length)) else { throw MetadataError("snapshot cut short") }
            guard case .records(let records) = try MetadataEntry(decoding: data, recordsMax: MetadataEntry.snapshotRecordsMax) else {
                throw MetadataError("a snapshot without records")
            }
            view.image = try MetadataImage(snapshot: records, at: MetadataOffset(through))
        } else {
            guard let count = reader.uint32() else { throw MetadataError("metadata answer cut short") }
            for _ in 0..<count {
                guard let index = reader.int64(), let length = reader.uint32(), let data = reader.bytes(Int(length)) else {
                    throw MetadataError("metadata entry cut short")
                }
                guard index > view.image.offset.value else { continue }
                if case .records(let records) = try MetadataEntry(decoding: data) {
                    try view.image.apply(records, at: MetadataOffset(index))
                }
            }
        }
        view.fetchedThrough = MetadataOffset(max(before.value, through))
        return view.fetchedThrough != before
    }

    func publish() {
        let snapshot = view
        viewBox.withLockedValue { $0 = snapshot }
        onChange(snapshot)
    }

    static func fields(_ text: String) -> [String: String] { QuorumClient.Answer.fields(text) }
}

/// Reads big-endian numbers and byte runs from an answer, nil past its end.
struct ByteReader {
    let bytes: [UInt8]
    var at = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    mutating func bytes(_ count: Int) -> [UInt8]? {
        guard count >= 0, bytes.count - at >= count else { return nil }
        defer { at += count }
        return Array(bytes[at..<(at + count)])
    }
    mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
        bytes(MemoryLayout<T>.size).map { $0.reduce(T(0)) { ($0 << 8) | T($1) } }
    }
    mutating func uint8() -> UInt8? { integer(UInt8.self) }
    mutating func uint32() -> UInt32? { integer(UInt32.self) }
    mutating func int64() -> Int64? { integer(UInt64.self).map { Int64(bitPattern: $0) } }
}

/// One connection to a controller carrying many requests, each answered by id. All on one loop;
/// a request without an answer in time fails, and so does every one when the connection ends.
final class ControllerConnection: @unchecked Sendable {
    enum Answer {
        case text(ok: Bool, String)
        case data([UInt8])
    }
    let loop: EventLoop
    let timeoutMs: Int64
    var channel: Channel?
    var failed = false
    var nextID: UInt32 = 1
    var pending: [UInt32: (Result<Answer, Error>) -> Void] = [:]
    var queued: [ByteBuffer] = []
    /// Requests unanswered at once, at most. A leader's ISR changes go many to a request
    /// (ReplicaManager), so a node that rejoins thousands of partitions asks in a few. (With
    /// one partition a request, raising this to 512 or 4,096 made the controller take longer
    /// than the request timeout over them, about 2 ms each, and the heartbeats behind them
    /// timed out: scripts/cluster-scale-check.py, 3,000 partitions.)
    static let pendingMax = 64

    init(host: String, port: Int, transport: QuorumTransport, loop: EventLoop, timeoutMs: Int64, logger: Logger) {
        self.loop = loop
        self.timeoutMs = timeoutMs
        ClientBootstrap(group: loop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelOption(ChannelOptions.connectTimeout, value: .milliseconds(min(timeoutMs, 1000)))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try transport.secureOpened(channel, host: host)
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(ControllerAnswerHandler(connection: self))
                }
            }
            .connect(host: host, port: port)
            .whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    self.channel = channel
                    for buffer in queued { channel.write(buffer, promise: nil) }
                    queued = []
                    channel.flush()
                case .failure(let error):
                    logger.debug("cannot reach controller \(host):\(port): \(error)")
                    end(error)
                }
            }
    }

    var isUsable: Bool { !failed }

    func ask(_ request: QuorumRequest, _ done: @escaping (Result<Answer, Error>) -> Void) {
        loop.preconditionInEventLoop()
        guard !failed, pending.count < Self.pendingMax else { return done(.failure(QuorumError.unreachable("connection unusable"))) }
        let id = nextID
        nextID &+= 1
        pending[id] = done
        var buffer = ByteBufferAllocator().buffer(capacity: 128)
        Frame.request(id: id, request).encode(into: &buffer)
        if let channel { channel.writeAndFlush(buffer, promise: nil) } else { queued.append(buffer) }
        let wait = request.isLongPoll ? timeoutMs + Int64(QuorumRequest.fetchWaitMsMax) : timeoutMs
        loop.scheduleTask(in: .milliseconds(wait)) { [self] in
            if let waiting = pending.removeValue(forKey: id) { waiting(.failure(QuorumError.timedOut)) }
        }
    }

    func received(_ frame: Frame) {
        switch frame {
        case .answer(let id, let ok, let text): pending.removeValue(forKey: id)?(.success(.text(ok: ok, text)))
        case .data(let id, let bytes): pending.removeValue(forKey: id)?(.success(.data(bytes)))
        default: end(QuorumError.unreachable("unexpected frame from the controller"))
        }
    }

    func end(_ error: Error) {
        guard !failed else { return }
        failed = true
        channel?.close(promise: nil)
        let waiting = pending
        pending = [:]
        for (_, done) in waiting { done(.failure(error)) }
    }

    func close() { end(QuorumError.unreachable("closed")) }
}

final class ControllerAnswerHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Frame
    let connection: ControllerConnection
    init(connection: ControllerConnection) { self.connection = connection }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { connection.received(unwrapInboundIn(data)) }
    func channelInactive(context: ChannelHandlerContext) { connection.end(QuorumError.unreachable("connection closed")) }
    func errorCaught(context: ChannelHandlerContext, error: Error) { connection.end(error) }
}

extension QuorumRequest {
    var isLongPoll: Bool {
        if case .fetchMetadata = self { return true }
        return false
    }
}
