import ArgumentParser
import BrookBroker
import BrookClient
import BrookCore
import BrookServer
import Logging
import Dispatch
import Synchronization
import Foundation

#if canImport(Glibc)
import Glibc
#endif

struct MirrorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mirror", abstract: "Mirror topics (and groups' offsets) from one cluster to another (as MirrorMaker 2).",
        subcommands: [MirrorRun.self, MirrorStatusCommand.self, MirrorPromote.self], defaultSubcommand: MirrorRun.self)
}

/// A client properties file for one side of the mirror (security settings and client settings).
struct MirrorSide {
    let bootstrap: String
    let settings: [String: String]

    init(bootstrap: String, configFile: String?) throws {
        self.bootstrap = bootstrap
        settings = try ClientProperties.read(configFile)
    }

    /// Opens connections with the side's SASL and TLS settings.
    func connector(clientID: String) throws -> ClusterClient.Connect {
        let sasl = try ClientProperties.credentials(settings)
        let tls = try ClientProperties.tls(settings)
        return { address in try await BrokerConnection.connect(address, clientID: clientID, sasl: sasl, tls: tls) }
    }
}

struct MirrorRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Copy the topics matching --topics from --source to --target under the same names until stopped (SIGTERM or Ctrl-C checkpoint and stop).",
        discussion: """
            Makes each topic on the target with the source's partition count and own settings, follows new topics, \
            partitions and setting changes, copies records (keys, headers, timestamps, same partitions) with an idempotent \
            producer, checkpoints how far it got in the target (group brook-mirror.NAME), translates the committed offsets \
            of the source groups matching --groups to the same groups on the target, and writes a heartbeat record to \
            brook-mirror.heartbeats on the target every checkpoint. At least once: records copied after the last \
            checkpoint are copied again after a hard stop; with --exactly-once each checkpoint and the records before it \
            are one transaction on the target, and each record is copied once.
            """)
    @Option(help: "The source cluster's bootstrap server(s), host:port[,host:port].") var source: String
    @Option(help: "The target cluster's bootstrap server(s).") var target: String
    @Option(help: "Topics whose whole name matches this regular expression are mirrored.") var topics: String
    @Option(help: "Consumer groups whose id matches this regular expression get their offsets translated to the target.") var groups: String?
    @Option(help: "The mirror's name (its checkpoint group is brook-mirror.NAME).") var name = "default"
    @Option(name: .customLong("source-config"), help: "A client properties file for the source (security.protocol, sasl.*, ssl.*, consumer settings).")
    var sourceConfig: String?
    @Option(name: .customLong("target-config"), help: "A client properties file for the target (security.protocol, sasl.*, ssl.*, producer settings).")
    var targetConfig: String?
    @Option(name: .customLong("refresh-interval-ms"), help: "How often the source's topics, partitions and settings are looked at again.")
    var refreshIntervalMs: Int64 = 10_000
    @Option(name: .customLong("checkpoint-interval-ms"), help: "How often progress is checkpointed, groups translated and a heartbeat written.")
    var checkpointIntervalMs: Int64 = 1000
    @Option(name: .customLong("replication-factor"), help: "The target topics' replication factor (default: the target's).")
    var replicationFactor: Int16 = -1
    @Flag(name: .customLong("exactly-once"),
          help: "Copy in transactions on the target, each with its checkpoint: each record once after any stop (for read_committed consumers).")
    var exactlyOnce = false
    @Flag(name: .customLong("preserve-offsets"),
          help: "Offset-preserving mirror topics (the target must be Brook): the source's committed batches at their own offsets, the target topics read-only until `brook mirror promote`.")
    var preserveOffsets = false
    @Flag(name: .customLong("loop-prevention"), inversion: .prefixedNo,
          help: "Mark each record copied with the cluster it began on (header brook.mirror.origin) and never copy a record back to the cluster it began on, so mirrors may run both ways.")
    var loopPrevention = true
    @Option(name: .customLong("http-listeners"),
            help: "Serve /metrics (Prometheus: records copied, lag, checkpoints), /health and /ready on these, http://host:port[,...] (default: none).")
    var httpListeners: String?

    func run() async throws {
        guard refreshIntervalMs > 0, checkpointIntervalMs > 0 else { throw ValidationError("intervals are positive") }
        if preserveOffsets && exactlyOnce { throw ValidationError("--preserve-offsets copies each batch once already: it takes no --exactly-once") }
        var listeners: [Listener] = []
        if let httpListeners {
            do { listeners = try Listener.parseList(httpListeners, key: "--http-listeners") } catch { throw ValidationError("\(error)") }
            guard listeners.count <= 8, listeners.allSatisfy({ $0.name.lowercased() == "http" }) else {
                throw ValidationError("--http-listeners takes up to 8 http://host:port")
            }
        }
        let sourceSide = try MirrorSide(bootstrap: source, configFile: sourceConfig)
        let targetSide = try MirrorSide(bootstrap: target, configFile: targetConfig)
        func clientSettings(_ side: MirrorSide, _ clientID: String) -> [String: String] {
            var properties = side.settings
            properties["bootstrap.servers"] = side.bootstrap
            properties["client.id"] = properties["client.id"] ?? clientID
            return properties
        }
        let config: MirrorConfig
        do {
            var built = MirrorConfig(topics: topics, source: try ConsumerConfig(properties: clientSettings(sourceSide, "brook-mirror")),
                                     target: try ProducerConfig(properties: clientSettings(targetSide, "brook-mirror")))
            built.name = name
            built.groups = groups
            built.refreshIntervalMs = refreshIntervalMs
            built.checkpointIntervalMs = checkpointIntervalMs
            built.replicationFactor = replicationFactor
            built.exactlyOnce = exactlyOnce
            built.preserveOffsets = preserveOffsets
            built.loopPrevention = loopPrevention
            config = built
        } catch { throw ValidationError("\(error)") }
        let mirror: Mirror
        do {
            mirror = try Mirror(config, sourceConnect: try sourceSide.connector(clientID: config.source.clientID),
                                targetConnect: try targetSide.connector(clientID: config.target.clientID))
        } catch { throw ValidationError("\(error)") }
        var http: HTTPListener?
        let health = NodeHealth()
        if !listeners.isEmpty {
            let metrics = ServerMetrics()
            metrics.attach(mirror: name) { mirror.statusNow() }
            let started = HTTPListener(metrics: metrics, health: health, logger: Logger(label: "brook.mirror"))
            do {
                for address in try started.start(listeners, optional: false) { printError("brook mirror \(name): metrics on http://\(address.ipAddress ?? ""):\(address.port ?? 0)/metrics") }
            } catch {
                started.shutdown()
                throw CommandFailure("\(error)")
            }
            http = started
            health.markReady()
        }
        defer {
            health.markStopping()
            http?.shutdown()
        }
        let running = Task { try await mirror.run() }
        // SIGTERM or SIGINT: checkpoint and stop; a second one stops at once.
        let queue = DispatchQueue(label: "brook.mirror.signals")
        let count = Mutex(0)
        let sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                let n = count.withLock { n in
                    n += 1
                    return n
                }
                if n == 1 { running.cancel() } else { Glibc._exit(1) }
            }
            source.resume()
            return source
        }
        printError("brook mirror \(name): \(source) -> \(target), topics matching \(topics)")
        do {
            try await running.value
        } catch {
            throw CommandFailure("mirror \(name): \(error)")
        }
        withExtendedLifetime(sources) {}
        let status = await mirror.currentStatus()
        for (topic, why) in status.stoppedTopics.sorted(by: { $0.key < $1.key }) { printError("brook mirror \(name): \(topic) not copied: \(why)") }
        let leftOut = status.recordsSkipped > 0 ? " (\(status.recordsSkipped) left out: they began on the target)" : ""
        printError("brook mirror \(name): stopped after copying \(status.recordsCopied) records of \(status.topics.count) topics\(leftOut)")
    }
}

struct MirrorStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "How far a mirror got: its checkpoints in the target and, with --source, its lag; its last heartbeat.")
    @Option(help: "The target cluster's bootstrap server(s).") var target: String
    @Option(help: "The source cluster's bootstrap server(s) (for the lag).") var source: String?
    @Option(help: "The mirror's name.") var name = "default"
    @Option(name: .customLong("source-config"), help: "A client properties file for the source.") var sourceConfig: String?
    @Option(name: .customLong("target-config"), help: "A client properties file for the target.") var targetConfig: String?

    func run() async throws {
        let targetSide = try MirrorSide(bootstrap: target, configFile: targetConfig)
        let targetClient = ClusterClient(bootstrap: target.split(separator: ",").map(String.init), connect: try targetSide.connector(clientID: "brook-mirror-status"))
        defer { Task { await targetClient.close() } }
        let group = "brook-mirror.\(name)"
        let checkpoints: [TopicPartition: Offset]
        do {
            checkpoints = try await targetClient.committedOffsets(nil, group: group, timeoutMs: 30_000, backoffMs: 100)
        } catch { throw CommandFailure("checkpoints of mirror \(name) (group \(group)): \(error)") }
        var ends: [TopicPartition: Offset] = [:]
        if let source {
            let sourceSide = try MirrorSide(bootstrap: source, configFile: sourceConfig)
            let sourceClient = ClusterClient(bootstrap: source.split(separator: ",").map(String.init), connect: try sourceSide.connector(clientID: "brook-mirror-status"))
            for (topic, partitions) in Dictionary(grouping: checkpoints.keys, by: \.topic) {
                let meta = try await sourceClient.metadata(topics: [topic])
                let leaders = Dictionary(uniqueKeysWithValues: (meta.topics.first?.partitions ?? []).filter { p in partitions.contains { $0.partition == p.partitionIndex } }
                    .map { ($0.partitionIndex, $0.leaderId) })
                for (partition, end) in try await sourceClient.listOffsets(topic: topic, leaders: leaders, timestamp: -1) {
                    ends[TopicPartition(topic, partition)] = end
                }
            }
            await sourceClient.close()
        }
        print("MIRROR  TOPIC  PARTITION  CHECKPOINT  SOURCE-END  LAG")
        for partition in checkpoints.keys.sorted() {
            let checkpoint = checkpoints[partition]!
            let end = ends[partition].map { "\($0)" } ?? "-"
            let lag = ends[partition].map { "\(max(0, $0.value - checkpoint.value))" } ?? "-"
            print("\(name)  \(partition.topic)  \(partition.partition)  \(checkpoint)  \(end)  \(lag)")
        }
        if checkpoints.isEmpty { print("(no checkpoint yet)") }
        // The last heartbeat: the newest record of the heartbeats topic keyed by the name.
        var consumerConfig = ConsumerConfig(bootstrapServers: target.split(separator: ",").map(String.init))
        consumerConfig.autoCommit = false
        let consumer = KafkaConsumer(consumerConfig, connect: try targetSide.connector(clientID: "brook-mirror-status"))
        let heartbeats = TopicPartition(MirrorConfig.heartbeatsTopic, 0)
        var last: ConsumedRecord?
        if (try? await consumer.partitions(of: heartbeats.topic)) != nil {
            try await consumer.assign([heartbeats])
            try await consumer.seek([heartbeats], to: .timestamp(wallClockMs() - 60_000))
            // Up to the end the first fetch saw (a running mirror keeps writing), 5 s at most.
            let deadline = wallClockMs() + 5000
            var end: Offset?
            while wallClockMs() < deadline {
                let records = try await consumer.poll(timeoutMs: 300)
                for record in records where record.key == Array(name.utf8) { last = record }
                if end == nil { end = await consumer.highWatermark(heartbeats) }
                if let end, let position = await consumer.position(heartbeats), position >= end { break }
            }
        }
        await consumer.close()
        if let last {
            print("last heartbeat \(wallClockMs() - last.timestamp.ms) ms ago: \(String(decoding: last.value ?? [], as: UTF8.self))")
        } else {
            print("no heartbeat in the last minute")
        }
    }
}

struct MirrorPromote: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Make offset-preserving mirror topics on the target writable (their mirror stops copying them).")
    @Option(help: "The target cluster's bootstrap server(s).") var target: String
    @Option(name: .customLong("target-config"), help: "A client properties file for the target.") var targetConfig: String?
    @Option(help: "The mirror's name (its topics' brook.mirror.link).") var name = "default"
    @Option(help: "A mirror topic to promote (repeatable).") var topic: [String]

    func run() async throws {
        guard !topic.isEmpty else { throw ValidationError("name the topics to promote with --topic") }
        let side = try MirrorSide(bootstrap: target, configFile: targetConfig)
        var config = AdminConfig(bootstrapServers: target.split(separator: ",").map(String.init))
        config.clientID = "brook-mirror-promote"
        config.apiTimeoutMs = 10_000
        let admin = KafkaAdmin(config, cluster: ClusterClient(bootstrap: config.bootstrapServers, connect: try side.connector(clientID: config.clientID)))
        defer { Task { await admin.close() } }
        var failed = false
        for name in topic {
            do {
                let entries = try await admin.describeConfigs(.topic(name))
                let link = entries.first { $0.name == MirrorConfig.mirrorLinkConfig }?.value ?? ""
                guard link == self.name else {
                    printError(link.isEmpty ? "\(name): not a mirror topic (promoted already?)" : "\(name): a mirror topic of link \(link), not \(self.name)")
                    failed = true
                    continue
                }
                try await admin.alterConfigs(.topic(name), set: [:], delete: [MirrorConfig.mirrorLinkConfig])
                print("\(name): promoted (writable; mirror \(self.name) no longer copies it)")
            } catch {
                printError("\(name): \(error)")
                failed = true
            }
        }
        if failed { throw ExitCode(1) }
    }
}
