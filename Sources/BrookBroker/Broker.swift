import BrookCore
import BrookProtocol
import BrookSecurity
import BrookStorage
import Logging
import NIOCore
import Synchronization

/// A request the broker will not answer: the connection that sent it is closed.
public struct RequestRefused: Error, CustomStringConvertible {
    public let description: String
}

/// A count any thread may add to.
public final class Counter: Sendable {
    let value = Atomic<Int>(0)
    public init() {}
    public func add(_ n: Int) { value.add(n, ordering: .relaxed) }
    public var count: Int { value.load(ordering: .relaxed) }
}

/// The single-node broker: its settings, its topics, and the request handlers. No sockets here
/// (BrookServer feeds it frames), so it runs the same in tests and under the NIO server.
public final class Broker: Sendable {
    public let config: BrokerConfig
    public let topics: TopicRegistry
    public let clusterID: String
    public let clock: any Clock
    public let logger: Logger
    public let handlers: HandlerTable
    public let groups: GroupService
    public let transactions: TxnService
    /// Where topic changes run, off the event loops.
    public let admin: any AdminExecutor
    /// Where heavy request work runs, off the event loops (a large compressed produce).
    public let work: any AdminExecutor
    /// The cluster this broker follows (`process.roles`); empty on a single node.
    public let cluster = ClusterMembership()
    /// Replication throttles (KIP-73), in a cluster.
    public let throttles = ReplicationThrottles()
    /// SCRAM's digests (BrookCrypto's, given by the server): without them SCRAM mechanisms
    /// are refused as unsupported.
    public let scramDigests: (any ScramDigests)?
    /// OAUTHBEARER's signature checks (BrookCrypto's, given by the server): without them only
    /// unsecured tokens, where enabled, are taken.
    public let jwsVerifier: (any JwsVerifier)?
    /// Told of the error codes in every answer (the server's metrics); nil counts nothing.
    public let responseErrors: (any ResponseErrorObserver)?
    /// Failed SASL authentications since the start.
    public let authenticationFailures = Counter()
    /// Client quotas on produced and fetched bytes, measured per quota entity.
    public let quotas = ClientQuotaEnforcer()
    /// Incremental fetch sessions (KIP-227), shared by every connection.
    public let fetchSessions = FetchSessions(seed: UInt64.random(in: 1...UInt64.max))
    /// Whether the broker's last run ended with `shutdown()` (Kafka's `.kafka_cleanshutdown`):
    /// after a crash or a power loss its logs may lack records it had acknowledged, and the
    /// controller then takes it out of every ELR (KIP-966) when it registers.
    public let previousShutdownWasClean: Bool
    static let cleanShutdownMarker = ".brook_cleanshutdown"

    public init(config: BrokerConfig, clock: any Clock = SystemClock(), logger: Logger,
                admin: any AdminExecutor = QueueAdminExecutor(), work: any AdminExecutor = ConcurrentExecutor(),
                scramDigests: (any ScramDigests)? = nil, jwsVerifier: (any JwsVerifier)? = nil,
                responseErrors: (any ResponseErrorObserver)? = nil) throws {
        self.config = config
        self.responseErrors = responseErrors
        self.scramDigests = scramDigests
        self.jwsVerifier = jwsVerifier
        self.clock = clock
        self.logger = logger
        self.admin = admin
        self.work = work
        self.topics = TopicRegistry(logDirs: config.logDirs, brokerDefaults: config.topicDefaults, clock: clock, logger: logger,
                                    initialRole: config.processRoles.isEmpty ? .leader(LeaderEpoch(0)) : .follower(leader: nil, epoch: .none),
                                    recoveryThreads: config.recoveryThreadsPerDataDir * config.logDirs.count)
        try topics.load()
        // Read, then removed at once: a crash from here on is an unclean shutdown.
        let marker = config.logDirs[0] + "/" + Self.cleanShutdownMarker
        // A log dir without its meta.properties is new (a replaced disk): what this broker held
        // there is gone, as after a crash, and it must not stay an eligible leader (KIP-966).
        let everyDirKnown = config.logDirs.allSatisfy { FileSystem.exists($0 + "/meta.properties") }
        previousShutdownWasClean = FileSystem.exists(marker) && everyDirKnown
        if previousShutdownWasClean { try FileSystem.remove(marker) }
        clusterID = try Self.loadClusterID(config: config)
        groups = GroupService(config: config, topics: topics, clock: clock, logger: logger)
        try groups.load()
        transactions = TxnService(config: config, topics: topics, groups: groups, cluster: cluster, clock: clock, logger: logger)
        try transactions.load()
        handlers = Self.defaultHandlers()
    }

    static func defaultHandlers() -> HandlerTable {
        var table = HandlerTable()
        table.register(ApiVersionsHandler())
        table.register(MetadataHandler())
        table.register(ProduceHandler())
        table.register(FetchHandler())
        table.register(ListOffsetsHandler())
        table.register(CreateTopicsHandler())
        table.register(DeleteTopicsHandler())
        table.register(CreatePartitionsHandler())
        table.register(DescribeConfigsHandler())
        table.register(AlterConfigsHandler())
        table.register(IncrementalAlterConfigsHandler())
        table.register(DescribeClusterHandler())
        table.register(DescribeTopicPartitionsHandler())
        table.register(UpdateFeaturesHandler())
        table.register(ListConfigResourcesHandler())
        table.register(DescribeQuorumHandler())
        table.register(DeleteRecordsHandler())
        table.register(OffsetForLeaderEpochHandler())
        table.register(WriteTxnMarkersHandler())
        table.register(ElectLeadersHandler())
        table.register(AlterPartitionReassignmentsHandler())
        table.register(ListPartitionReassignmentsHandler())
        table.register(UnregisterBrokerHandler())
        table.register(DescribeLogDirsHandler())
        table.register(AlterReplicaLogDirsHandler())
        table.register(FindCoordinatorHandler())
        table.register(JoinGroupHandler())
        table.register(SyncGroupHandler())
        table.register(HeartbeatHandler())
        table.register(LeaveGroupHandler())
        table.register(OffsetCommitHandler())
        table.register(OffsetFetchHandler())
        table.register(ListGroupsHandler())
        table.register(DescribeGroupsHandler())
        table.register(DeleteGroupsHandler())
        table.register(OffsetDeleteHandler())
        table.register(ConsumerGroupHeartbeatHandler())
        table.register(ConsumerGroupDescribeHandler())
        table.register(InitProducerIdHandler())
        table.register(AddPartitionsToTxnHandler())
        table.register(AddOffsetsToTxnHandler())
        table.register(EndTxnHandler())
        table.register(TxnOffsetCommitHandler())
        table.register(DescribeProducersHandler())
        table.register(DescribeTransactionsHandler())
        table.register(ListTransactionsHandler())
        table.register(SaslHandshakeHandler())
        table.register(SaslAuthenticateHandler())
        table.register(DescribeUserScramCredentialsHandler())
        table.register(AlterUserScramCredentialsHandler())
        table.register(DescribeAclsHandler())
        table.register(CreateAclsHandler())
        table.register(DeleteAclsHandler())
        table.register(DescribeClientQuotasHandler())
        table.register(AlterClientQuotasHandler())
        return table
    }

    /// `meta.properties` in each log dir: the cluster id is made once and kept.
    static func loadClusterID(config: BrokerConfig) throws -> String {
        var found: String? = config.clusterID
        for dir in config.logDirs {
            if let text = try FileSystem.readFile(dir + "/meta.properties"),
               let id = BrokerConfig.readProperties(text).first(where: { $0.0 == "cluster.id" })?.1 {
                found = found ?? id
            }
        }
        var generator = SystemRandomNumberGenerator()
        let id = found ?? KafkaUUID.random(using: &generator).description
        for dir in config.logDirs {
            let text = "version=1\nnode.id=\(config.nodeID)\ncluster.id=\(id)\n"
            if try FileSystem.readFile(dir + "/meta.properties") != text {
                try FileSystem.writeAtomically(dir + "/meta.properties", contents: text, durable: true)
            }
        }
        return id
    }

    /// Decodes one request frame and runs its handler. A frame that cannot be decoded, an
    /// unknown API, or an unserved version (but for ApiVersions) is refused.
    /// ApiVersions, SaslHandshake, SaslAuthenticate.
    static let servedBeforeAuthentication: Set<Int16> = [18, 17, 36]

    public func handle(frame: ByteBuffer, eventLoop: any EventLoop, clientHost: String = "/127.0.0.1",
                       connection: ConnectionScope? = nil) throws -> Outcome {
        var reader = WireReader(frame)
        let header = try RequestHeader(from: &reader)
        let context = RequestContext(header: header, eventLoop: eventLoop, broker: self, clientHost: clientHost,
                                     connection: connection)
        guard let entry = handlers.entries[header.apiKey] else {
            throw RequestRefused(description: "unknown API key \(header.apiKey)")
        }
        if let connection, connection.awaitsAuthentication, !Self.servedBeforeAuthentication.contains(header.apiKey) {
            // As Kafka: any other request before the SASL exchange ends closes the connection.
            throw RequestRefused(description: "\(entry.name) before SASL authentication on listener \(connection.listener.name)")
        }
        // The clock is read only for a session that has an end.
        if let connection, connection.sessionExpiresAtMs != nil, header.apiKey != SaslHandshakeRequest.apiKey,
           header.apiKey != SaslAuthenticateRequest.apiKey, connection.sessionExpired(nowMs: clock.now().ms) {
            // KIP-368, as Kafka: past the session's end only a re-authentication is taken.
            throw RequestRefused(description: "\(entry.name) after the SASL session of \(connection.principal) ended (connections.max.reauth.ms) without re-authentication")
        }
        guard entry.versions.contains(header.apiVersion) else {
            if header.apiKey == ApiVersionsRequest.apiKey {
                // Answered in v0's layout, which every client can read, listing what we serve.
                var v0 = header
                v0.apiVersion = 0
                return .respond(.encode(ApiVersionsHandler.answer(handlers, error: .unsupportedVersion), header: v0))
            }
            throw RequestRefused(description: "\(entry.name) v\(header.apiVersion) is not served (versions \(entry.versions))")
        }
        return try entry.run(reader.buffer, context)
    }

    /// Transaction timeouts, then retention, compaction and due flushes over every partition
    /// (about every second, off the event loops).
    public func runMaintenance(retention: Bool) {
        transactions.tick()
        for topic in topics.allTopics() {
            for partition in topic.hosted {
                do {
                    try partition.maintainLog(retention: retention, compaction: config.logCleanerEnable)
                    if retention {
                        try partition.maintainProducers(now: clock.now().ms, expirationMs: config.transactions.producerIDExpirationMs)
                    }
                } catch {
                    logger.warning("maintenance of \(partition.name): \(error)")
                }
            }
        }
    }

    public func shutdown() {
        // Moves between log dirs stop before the logs close (a last step under way finishes).
        topics.moves.stop()
        groups.shutdown()
        // A log that did not close cleanly may lack what it had: then the next start is unclean.
        guard topics.closeAllLogs() else { return logger.warning("a log did not close cleanly: no clean-shutdown marker") }
        do { try FileSystem.writeAtomically(config.logDirs[0] + "/" + Self.cleanShutdownMarker, contents: "clean\n", durable: true) } catch {
            logger.warning("cannot leave the clean-shutdown marker: \(error)")
        }
    }
}
