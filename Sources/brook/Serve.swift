import ArgumentParser
import BrookBroker
import BrookCluster
import BrookCore
import BrookCrypto
import BrookProtocol
import BrookQuorum
import BrookSecurity
import BrookServer
import BrookStorage
import Dispatch
import Logging
import NIOCore
import NIOPosix
import OTel
import ServiceLifecycle
import Synchronization
import Tracing

#if canImport(Glibc)
import Glibc
#endif

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run a broker (as Kafka's kafka-server-start.sh).",
        discussion: """
            With nothing given, a single node on 127.0.0.1:9092 with its data in ./brook-data: \
            the one voter of its own metadata quorum, which takes over the data of a quorum-less \
            Brook node on first start. \
            Settings use Kafka's names (server.properties): node.id, listeners, \
            advertised.listeners, log.dirs, num.partitions, auto.create.topics.enable, \
            log.retention.ms, log.segment.bytes, ... SIGTERM or Ctrl-C shuts down cleanly. \
            With process.roles (broker, controller or both), node.id, controller.quorum.voters and \
            controller.listener.names it is a node of a cluster, as a KRaft server.properties says \
            (see docs/cluster.md for what the cluster does so far).
            """)

    @Argument(help: "A server.properties file.")
    var properties: String?

    @Option(name: .customLong("override"), help: ArgumentHelp("A setting that wins over the file.", valueName: "key=value"))
    var overrides: [String] = []

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    @Option(name: .customLong("add-scram"), help: ArgumentHelp(
        "A SCRAM credential the cluster starts with (Kafka's kafka-storage format --add-scram): written when the metadata log is new, ignored after.",
        valueName: "SCRAM-SHA-256=[name=USER,password=PASSWORD]"))
    var addScram: [String] = []

    func run() throws {
        var settings: [(String, String)] = []
        if let properties {
            guard let text = try FileSystem.readFile(properties) else {
                throw ValidationError("cannot read the properties file \(properties)")
            }
            settings += BrokerConfig.readProperties(text)
        }
        for item in overrides {
            // An empty value is a value (`http.listeners=` turns the HTTP listener off).
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--override takes key=value, not '\(item)'") }
            settings.append((parts[0], parts[1]))
        }
        let config: BrokerConfig
        do { config = try BrokerConfig(settings) } catch { throw ValidationError("\(error)") }
        // Key stores and trust stores load now: a setting that cannot be used stops the start.
        do { try BrookServer.checkListeners(config) } catch { throw ValidationError("\(error)") }
        if let problem = config.security.oauthProblem { throw ValidationError(problem) }
        if config.security.authorizer != nil && config.processRoles.isEmpty && !config.singleNodeQuorum {
            throw ValidationError("authorizer.class.name needs the metadata quorum, where access control entries live (brook.single.node.quorum=false has none)")
        }
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown log level \(logLevel)") }
        var bootstrap: [MetadataRecord] = []
        for text in addScram.prefix(100) {
            let given: ScramBootstrap
            do { given = try ScramBootstrap.parse(text) } catch { throw ValidationError(error.description) }
            let credential = Scram(given.mechanism).credential(password: given.password, iterations: given.iterations)
            bootstrap.append(.userScramCredential(UserScramCredentialRecord(
                name: given.user, mechanism: given.mechanism.rawValue, salt: ByteBuffer(bytes: credential.salt),
                storedKey: ByteBuffer(bytes: credential.storedKey), serverKey: ByteBuffer(bytes: credential.serverKey),
                iterations: credential.iterations)))
        }
        guard addScram.count <= 100 else { throw ValidationError("--add-scram is given at most 100 times") }
        if !bootstrap.isEmpty && config.processRoles.isEmpty && !config.singleNodeQuorum {
            throw ValidationError("--add-scram needs the metadata quorum, where credentials live (brook.single.node.quorum=false has none)")
        }

        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "brook")
        raiseOpenFileLimit(logger: logger)
        let observed = try Observability.start(config, logger: logger)
        if !config.processRoles.isEmpty {
            guard let votersText = config.controllerQuorumVoters else {
                throw ValidationError("process.roles needs controller.quorum.voters (id@host:port,...)")
            }
            do { try runClusterNode(config, voters: try VoterAddress.parseList(votersText), bootstrap: bootstrap, observed: observed, logger: logger) } catch let error as QuorumError {
                throw ValidationError("\(error)")
            }
        }
        if config.singleNodeQuorum {
            // Both roles, one voter: the controller on the CONTROLLER listener when one is
            // given (for `brook cluster describe`), else on a loopback port of the system's choice.
            var node = config
            node.processRoles = [.broker, .controller]
            if node.controllerListenerNames.isEmpty { node.controllerListenerNames = [Self.singleNodeControllerListener] }
            let listener = config.listeners.first { node.controllerListenerNames.contains($0.name) }
            let host = listener.map { $0.host.isEmpty || $0.host == "0.0.0.0" ? "127.0.0.1" : $0.host } ?? "127.0.0.1"
            try runClusterNode(node, voters: [VoterAddress(id: config.nodeID, host: host, port: listener?.port ?? 0)], singleNode: true, bootstrap: bootstrap,
                               observed: observed, logger: logger)
        }

        let broker = try Broker(config: config, logger: logger, scramDigests: SwiftCryptoDigests(), jwsVerifier: SwiftCryptoJwsVerifier(),
                                responseErrors: observed.metrics?.requests)
        haltOnFatalLogDirFailure(broker, logger: logger)
        observed.attach(broker)
        let server = BrookServer(broker: broker, threads: broker.config.networkThreads, logger: logger, metrics: observed.metrics,
                                 tracing: observed.tracing)
        let addresses = try server.start()
        observed.health.markReady()
        let dirs = config.logDirs.map(absolutePath).joined(separator: ", ")
        logger.notice("Brook \(Version.brook) node \(config.nodeID) of cluster \(broker.clusterID) listening on \(addresses.map { "\($0)" }.joined(separator: ", ")), advertised as \(config.advertised), data in \(dirs)")

        // SIGTERM / SIGINT: stop listening, close the logs, exit (the parts in reverse order).
        runNode([observed.part, NodePart(description: "client listeners") { server.shutdown() }], first: observed.first,
                watchdog: observed.watchdog, logger: logger)
    }

    static let singleNodeControllerListener = "CONTROLLER"
    /// How long a single node waits for its broker to be unfenced before it serves clients.
    static let singleNodeStartWaitSeconds = 30

    /// A node of a cluster: a controller of the quorum, a broker following it, or both.
    /// `singleNode`: the one voter a bare `brook serve` runs; its data from before the quorum is
    /// taken over into the metadata log on first start, and clients are served once the broker
    /// is unfenced (at most `singleNodeStartWaitSeconds` later).
    /// `bootstrap`: records the cluster starts with (`--add-scram`), written by the controller
    /// that writes the metadata log's first entry.
    func runClusterNode(_ config: BrokerConfig, voters: [VoterAddress], singleNode: Bool = false, bootstrap: [MetadataRecord] = [],
                        observed: Observability, logger: Logger) throws -> Never {
        var voters = voters
        // TLS between the nodes loads now: settings that cannot be used stop the start.
        let transport: QuorumTransport
        let controllerFiles: TLSFiles
        let peers: InterBrokerClient?
        do {
            (transport, controllerFiles) = try ControllerTransport.make(config, serving: config.processRoles.contains(.controller))
            peers = config.processRoles.contains(.broker) ? try InterBrokerClient(config: config, alone: singleNode) : nil
        } catch {
            throw ValidationError("\(error)")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Renewed certificates between the nodes are taken as the client listeners' are.
        let interNodeFiles = [controllerFiles, peers?.files ?? .none].filter { !$0.isEmpty }
        let reloadTask = interNodeFiles.isEmpty ? nil
            : group.next().scheduleRepeatedTask(initialDelay: .seconds(5), delay: .seconds(5)) { _ in
                for files in interNodeFiles { files.reloadIfChanged(logger: logger) }
            }
        // The broker first: its data is what a single node's controller takes over.
        let broker = config.processRoles.contains(.broker)
            ? try Broker(config: config, logger: logger, scramDigests: SwiftCryptoDigests(), jwsVerifier: SwiftCryptoJwsVerifier(),
                         responseErrors: observed.metrics?.requests)
            : nil
        if let broker {
            haltOnFatalLogDirFailure(broker, logger: logger)
            observed.attach(broker)
        }
        var driver: QuorumDriver?
        if config.processRoles.contains(.controller) {
            guard !config.controllerListenerNames.isEmpty else {
                throw ValidationError("a controller needs controller.listener.names (CONTROLLER in Kafka's sample)")
            }
            if config.metadataLogDir == nil {
                do { try FileSystem.createDirectories(config.logDirs[0]) } catch { throw ValidationError("cannot create \(config.logDirs[0]): \(error)") }
            }
            var options = QuorumOptions(nodeID: config.nodeID, voters: voters,
                                        dataDirectory: config.metadataLogDir ?? (config.logDirs[0] + "/__cluster_metadata-0"))
            options.electionTimeoutMs = config.controllerElectionTimeoutMs
            // One voter has no one to wait for: it elects itself within 0.2-0.4 s of start.
            if singleNode && config.given["controller.quorum.election.timeout.ms"] == nil { options.electionTimeoutMs = 200 }
            if let listener = config.listeners.first(where: { config.controllerListenerNames.contains($0.name) }) {
                options.listenHost = listener.host.isEmpty ? "0.0.0.0" : listener.host
                options.listenPort = listener.port
            }
            options.transport = transport
            options.observeSave = observed.metrics?.observeSave
            options.controller.sessionTimeoutMs = config.brokerSessionTimeoutMs
            options.controller.clusterID = config.clusterID
            options.controller.bootstrapRecords = bootstrap
            options.controller.defaultReplicationFactor = Int(config.defaultReplicationFactor)
            options.controller.defaultPartitions = Int(config.numPartitions)
            options.controller.uncleanLeaderElection = config.topicDefaults["unclean.leader.election.enable"] == "true"
            options.controller.minInSyncReplicas = Int(config.topicDefaults["min.insync.replicas"] ?? "1") ?? 1
            options.controller.autoLeaderRebalance = config.autoLeaderRebalance
            options.controller.leaderImbalanceCheckIntervalMs = config.leaderImbalanceCheckIntervalSeconds * 1000
            options.controller.leaderImbalancePerBrokerPercentage = config.leaderImbalancePerBrokerPercentage
            if singleNode, let broker {
                options.controller.clusterID = broker.clusterID
                options.controller.takeover = Self.singleNodeData(broker)
            }
            do { driver = try QuorumDriver.start(options, group: group, logger: logger) } catch {
                throw ValidationError("cannot start controller \(config.nodeID): \(error)")
            }
            if singleNode, let port = driver?.boundPort { voters = voters.map { VoterAddress(id: $0.id, host: $0.host, port: port) } }
            if let driver { observed.metrics?.attach(quorum: driver.stats) }
        }
        var server: BrookServer?
        let servingQueue = DispatchQueue(label: "brook.serving")
        var lifecycle: BrokerLifecycle?
        var replicaManager: ReplicaManager?
        if let broker, let peers {
            guard !config.clientListeners.isEmpty else { throw ValidationError("a broker needs a listener that is not a controller listener") }
            let started = BrookServer(broker: broker, threads: broker.config.networkThreads, logger: logger, metrics: observed.metrics,
                                      tracing: observed.tracing,
                                      peers: singleNode ? nil : peers)
            let health = observed.health
            let advertised = (config.advertisedListeners ?? config.listeners).filter { !config.controllerListenerNames.contains($0.name) }
            var options = BrokerLifecycleOptions(
                nodeID: config.nodeID, voters: voters,
                endpoints: advertised.map {
                    BrokerInfo.Endpoint(name: $0.name, host: $0.host.isEmpty ? config.advertised.host : $0.host, port: $0.port,
                                        securityProtocol: config.security.securityProtocol(of: $0.name).id)
                },
                rack: config.brokerRack)
            options.transport = transport
            options.heartbeatIntervalMs = config.brokerHeartbeatIntervalMs
            // A request to a controller that does not answer (paused, or no longer active) is given
            // up within half a session, leaving time to heartbeat to another before the session
            // ends (Kafka's controller.quorum.request.timeout.ms is 2 s beside a 9 s session).
            options.requestTimeoutMs = min(options.requestTimeoutMs, max(500, config.brokerSessionTimeoutMs / 2))
            options.cleanShutdown = broker.previousShutdownWasClean
            let topics = broker.topics
            options.offlineReplicas = {
                // More than a heartbeat carries: the broker is stopping (haltOnFatalLogDirFailure); the
                // controller is told of as many as fit meanwhile.
                (topics.offlineReplicas(limit: Int.max) ?? []).prefix(BrokerHeartbeatRequest.offlineReplicasMax).map { TopicIDPartition($0.topicID, $0.index) }
            }
            let membership = broker.cluster
            let replicas = ReplicaManager(broker: broker, node: config.nodeID)
            let node = config.nodeID
            let unfenced = DispatchSemaphore(value: 0)
            let waiting = Mutex(singleNode)
            // Clients are served once this broker's image holds its registration (Kafka's broker
            // waits for its initial metadata catch-up too): before that it answered Metadata with
            // its own cluster id and no topics, and librdkafka took a restarted node's answer
            // for "the topic has 0 partitions" (seen in the fault campaign). Starting and
            // stopping the server run one after the other on `serving`.
            let serving = servingQueue
            let servingStarted = Mutex(singleNode)
            let startServing: @Sendable () -> Void = {
                serving.async {
                    do {
                        let addresses = try started.start()
                        health.markReady()
                        logger.notice("broker \(node) caught up with the metadata log: serving clients on \(addresses.map { "\($0)" }.joined(separator: ", "))")
                    } catch {
                        logger.critical("broker \(node) cannot listen: \(error)")
                        Glibc.exit(1)
                    }
                }
            }
            let follower = BrokerLifecycle(options, group: group, logger: logger) { view in
                membership.update(ClusterMembership.View(image: view.image, activeController: view.activeController, fenced: view.fenced))
                // The image is acted on once it holds this incarnation's registration.
                if view.epoch != .none, view.image.brokers[node]?.epoch == view.epoch {
                    replicas.imageChanged(view.image)
                    if servingStarted.withLock({ was in defer { was = true }; return !was }) { startServing() }
                    // Serving starts with the image that unfences this broker (it holds its
                    // leaderships), not with the heartbeat answer that may come before it.
                    if view.image.brokers[node]?.fenced == false && waiting.withLock({ was in defer { was = false }; return was }) { unfenced.signal() }
                }
            }
            membership.attach(describeQuorum: { done in follower.describeQuorum { done($0.mapError { $0 }) } })
            membership.attach(moveReplica: { topic, index, dir, ticket in replicas.moveReplica(topic, index, to: dir, ticket: ticket) })
            membership.attach(forward: { request, done in
                                  follower.forward(request) { result in
                                      switch result {
                                      case .success(let (answers, offset)): replicas.whenApplied(offset) { done(.success(answers)) }
                                      case .failure(let error): done(.failure(error))
                                      }
                                  }
                              },
                              alterPartitions: { changes, done in follower.alterPartitions(changes, done: done) })
            let markers = MarkerSender(broker: broker, node: config.nodeID, peers: peers, logger: logger)
            membership.attach(sendMarkers: { leader, request in await markers.send(to: leader, request) },
                              allocateProducerIDs: { done in follower.allocateProducerIDs(done: done) })
            replicas.start()
            let fetcher = ReplicaFetcher(broker: broker, node: config.nodeID, peers: peers, logger: logger,
                                         generation: { replicas.generation.load(ordering: .sequentiallyConsistent) })
            if singleNode {
                follower.start()
                if unfenced.wait(timeout: .now() + .seconds(Self.singleNodeStartWaitSeconds)) == .timedOut {
                    logger.warning("the broker was not unfenced within \(Self.singleNodeStartWaitSeconds) s; serving anyway")
                }
                replicas.drain()
                if !broker.transactions.prefetchProducerIDs(timeoutMs: 5000) { logger.warning("no producer ids from the controller yet") }
            }
            let addresses = singleNode ? try started.start() : []
            if singleNode { observed.health.markReady() }
            server = started
            if !singleNode { follower.start() }
            fetcher.start()
            lifecycle = follower
            replicaManager = replicas
            let dirs = config.logDirs.map(absolutePath).joined(separator: ", ")
            logger.notice("Brook \(Version.brook) broker \(config.nodeID) of cluster \(broker.clusterID) \(singleNode ? "listening on \(addresses.map { "\($0)" }.joined(separator: ", "))" : "serving clients once caught up with the metadata log"), controllers \(voters.map { "\($0.id)@\($0.host):\($0.port)" }.joined(separator: ",")), data in \(dirs)")
        }
        let roles = config.processRoles.map(\.rawValue).sorted().joined(separator: ",")
        logger.notice("node \(config.nodeID) runs as \(roles)")
        // A controller alone is ready once its quorum runs.
        if broker == nil { observed.health.markReady() }
        // SIGTERM stops the parts in the reverse order of this list: a broker leaves first (its
        // leaderships move), takes its last HW checkpoint, then stops serving; the controller
        // stops last, so that it can still decide on the broker's departure.
        var parts = [observed.part]
        if let driver { parts.append(NodePart(description: "controller") { driver.shutdown() }) }
        if let server { parts.append(NodePart(description: "client listeners") { servingQueue.sync { server.shutdown() } }) }
        if let replicaManager { parts.append(NodePart(description: "replica manager") { replicaManager.stop() }) }
        if let lifecycle {
            parts.append(NodePart(description: "cluster membership") {
                let agreed = lifecycle.shutDown(timeoutMs: max(5000, config.brokerSessionTimeoutMs))
                logger.notice(agreed ? "controlled shutdown done" : "controlled shutdown not confirmed in time; stopping anyway")
            })
        }
        if let reloadTask { parts.append(NodePart(description: "inter-node certificate reloads") { reloadTask.cancel() }) }
        // MQTT clients first, while this broker still leads partitions: their sessions are saved.
        if let server { parts.append(NodePart(description: "MQTT clients") { servingQueue.sync { server.endMQTTClients() } }) }
        runNode(parts, first: observed.first, watchdog: observed.watchdog, logger: logger)
    }

    /// What a single node's directory holds that its metadata log must hold too: every topic
    /// with its id, partition count and overrides, and the producer ids it reserved.
    static func singleNodeData(_ broker: Broker) -> SingleNodeData {
        let topics = broker.topics.allTopics().sorted { $0.name < $1.name }.map {
            SingleNodeData.Topic(name: $0.name, id: $0.id, partitions: $0.partitions.count, configs: $0.overrides)
        }
        return SingleNodeData(node: broker.config.nodeID, topics: topics, nextProducerID: broker.transactions.reservedProducerIDsEnd)
    }

    func raiseOpenFileLimit(logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 { logger.warning("could not raise the open file limit") }
    }
}

func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    var buffer = [CChar](repeating: 0, count: 4096)
    guard getcwd(&buffer, buffer.count) != nil else { return path }
    let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return cwd + "/" + path
}

/// A failed first log directory (the broker's own files, and by default the metadata log), the
/// failure of the last healthy one, or more offline replicas than a heartbeat can tell the
/// controller: the broker stops at once, as Kafka's halts, and the controller moves its
/// leaderships when its session lapses. Any other failed directory only takes its replicas
/// offline (TopicRegistry.failDirectory).
func haltOnFatalLogDirFailure(_ broker: Broker, logger: Logger) {
    let topics = broker.topics
    topics.health.onFailure { failure in
        let tooMany = topics.offlineReplicas(limit: BrokerHeartbeatRequest.offlineReplicasMax) == nil
        guard failure.fatal || tooMany else { return }
        logger.critical("log directory \(failure.directory) failed\(tooMany ? " with more replicas than the controller can be told of" : ""): the broker cannot go on and stops now")
        // At once, as Kafka halts: no exit handlers while the other threads run on.
        Glibc._exit(3)
    }
}

/// Blocks until SIGTERM or SIGINT, then runs `stop` and exits 0. The handlers run on a global
/// queue: the calling thread only waits.
func runUntilSignalled(logger: Logger, _ stop: @escaping @Sendable () -> Void) -> Never {
    let numbers: [Int32] = [SIGTERM, SIGINT]
    let signals = numbers.map { number -> DispatchSourceSignal in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            logger.notice("shutting down (signal \(number))")
            stop()
            Glibc.exit(0)
        }
        source.resume()
        return source
    }
    withExtendedLifetime(signals) { DispatchSemaphore(value: 0).wait() }
    preconditionFailure("the signal handlers exit the process")
}

/// The node's metrics, health and the HTTP listener serving them, started before anything else
/// so that `/health` answers while logs are recovered and `/ready` says when clients are served.
struct Observability {
    /// nil when no HTTP listener is up (none configured, or the default's port taken): with no
    /// one to read them, requests are not counted.
    let metrics: ServerMetrics?
    let health: NodeHealth
    let http: HTTPListener
    /// Takes SIGTERM and SIGINT from before anything binds, so that a signal sent as soon as a
    /// port answers is never lost (the node's group acts on it once it runs).
    let watchdog: ShutdownWatchdog
    /// Spans for Produce and Fetch, and swift-otel's exporter that sends them (run with the
    /// node's parts), when `tracing.otlp.endpoint` is set.
    var tracing: RequestTracing? = nil
    var tracingService: (any Service)? = nil

    static func start(_ config: BrokerConfig, shutdownTimeoutMs: Int64? = nil, logger: Logger) throws -> Observability {
        let metrics = ServerMetrics()
        let health = NodeHealth()
        let watchdog = ShutdownWatchdog(timeoutMs: shutdownTimeoutMs ?? config.shutdownTimeoutMs, health: health, logger: logger)
        let http = HTTPListener(metrics: metrics, health: health, logger: logger)
        let bound: [SocketAddress]
        do {
            bound = try http.start(config.httpListeners, optional: config.given["http.listeners"] == nil) { config.security.ssl(for: $0) }
            if !bound.isEmpty { logger.info("metrics, health and readiness served over HTTP on \(bound.map { "\($0)" }.joined(separator: ", "))") }
        } catch {
            throw ValidationError("\(error)")
        }
        var observed = Observability(metrics: bound.isEmpty ? nil : metrics, health: health, http: http, watchdog: watchdog)
        if config.tracing.enabled {
            do {
                let (tracer, service) = try SpanExport.backend(config.tracing, logger: logger)
                observed.tracing = RequestTracing(ratio: config.tracing.sampleRatio, tracer: tracer)
                observed.tracingService = service
            } catch {
                throw ValidationError("tracing.otlp.endpoint: \(error)")
            }
            logger.info("tracing \(config.tracing.sampleRatio * 100)% of Produce and Fetch requests to \(config.tracing.endpoint) (\(config.tracing.protocolName))")
        }
        return observed
    }

    /// The broker the metrics and the console show (the console only with an HTTP listener up).
    func attach(_ broker: Broker) {
        guard let metrics else { return }
        metrics.attach(broker: broker)
        http.attach(console: Console.make(config: broker.config, clusterID: broker.clusterID, logger: broker.logger))
    }

    /// Services that start before the node's parts and stop after them: the span exporter,
    /// which sends what it holds when it stops.
    var first: [any Service] { tracingService.map { [$0] } ?? [] }

    /// The HTTP listener as the node's first part, stopped last.
    var part: NodePart { NodePart(description: "HTTP listener") { [http] in http.shutdown() } }
}

/// swift-otel's traces backend alone (OTLP/HTTP; its logs and metrics are not made, so nothing
/// of the process's logging or metrics systems is touched, whatever OTEL_* variables say): the
/// tracer the request spans go to, and the exporter's service. Every span Brook samples is kept.
enum SpanExport {
    static func backend(_ settings: TracingSettings, logger: Logger) throws -> (any Tracer, any Service) {
        var otel = OTel.Configuration.default
        otel.serviceName = settings.serviceName
        otel.diagnosticLogger = .custom(logger)
        otel.logs.enabled = false
        otel.metrics.enabled = false
        otel.traces.enabled = true
        otel.traces.sampler = .alwaysOn
        // A base URL, as OTEL_EXPORTER_OTLP_ENDPOINT: the traces go to its /v1/traces.
        otel.traces.otlpExporter.endpoint = settings.endpoint.hasSuffix("/") ? settings.endpoint + "v1/traces" : settings.endpoint + "/v1/traces"
        otel.traces.otlpExporter.protocol = settings.protocolName == "http/json" ? .httpJSON : .httpProtobuf
        // A collector that is down costs a stopping broker at most these (not the 30 s defaults).
        otel.traces.otlpExporter.timeout = .seconds(2)
        otel.traces.batchSpanProcessor.exportTimeout = .seconds(2)
        let backend = try OTel.makeTracingBackend(configuration: otel)
        return (backend.factory, backend.service)
    }
}
