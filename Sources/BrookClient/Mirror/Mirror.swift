import Synchronization
import BrookCore
import BrookProtocol

/// What a mirror copies, and how often it looks again.
public struct MirrorConfig: Sendable {
    /// The mirror's name: its progress is the target group `brook-mirror.NAME`'s offsets.
    public var name = "default"
    /// Topics of the source whose whole name matches this regular expression (internal topics
    /// never) are mirrored to the target under the same names.
    public var topics: String
    /// Consumer groups of the source whose id matches: their committed offsets are translated
    /// and committed to the same groups on the target (nil: none).
    public var groups: String?
    /// How often the source's topics, partitions and configs are looked at again.
    public var refreshIntervalMs: Int64 = 10_000
    /// How often the progress is committed, groups translated and a heartbeat written.
    public var checkpointIntervalMs: Int64 = 1000
    /// The target topics' replication factor (-1: the target's default).
    public var replicationFactor: Int16 = -1
    /// Exactly once: the records copied since the last checkpoint and the checkpoint itself
    /// are one transaction on the target (transactional id `brook-mirror.NAME`), so a mirror
    /// stopped hard and started again copies each record once (read_committed consumers of
    /// the target see each once).
    public var exactlyOnce = false
    /// Offset-preserving mirror topics (the target must be Brook): each topic is made on the
    /// target with `brook.mirror.link` set to the mirror's name, read-only for producers, and
    /// the source's committed batches are copied as they are to the same offsets, so consumers
    /// and group offsets need no translation. The progress is the target's own log. Not with
    /// `exactlyOnce` (each batch goes once anyway).
    public var preserveOffsets = false
    /// Loop prevention (record copies): each record copied carries the id of the cluster it
    /// began on in a `brook.mirror.origin` header, and records that began on the target are not
    /// copied back, so two mirrors may copy the same topics both ways, and mirrors in a ring
    /// stop where a record began. Off: records are copied with their own headers only, and a
    /// mirror each way copies forever (MirrorMaker 2's identity replication policy has that
    /// limit).
    public var loopPrevention = true
    /// The source side (bootstrap and client settings; the mirror sets the rest).
    public var source: ConsumerConfig
    /// The target side.
    public var target: ProducerConfig

    public init(topics: String, source: ConsumerConfig, target: ProducerConfig) {
        self.topics = topics
        self.source = source
        self.target = target
    }

    public var checkpointGroup: String { "brook-mirror.\(name)" }
    /// Where every mirror writes its heartbeats on the target (key: the mirror's name).
    public static let heartbeatsTopic = "brook-mirror.heartbeats"
    /// Topic settings not copied (MirrorMaker 2's exclusions): the target keeps its own, and
    /// CreateTime, so that copied records keep their source timestamps.
    public static let configsNotCopied: Set<String> = [
        "follower.replication.throttled.replicas", "leader.replication.throttled.replicas", "message.timestamp.difference.max.ms",
        "message.timestamp.type", "unclean.leader.election.enable", "min.insync.replicas", mirrorLinkConfig,
    ]

    /// The target topic config naming the offset-preserving mirror that alone writes it
    /// (Brook's `brook.mirror.link`); `brook mirror promote` removes it.
    public static let mirrorLinkConfig = "brook.mirror.link"
}

/// How far a mirror is.
public struct MirrorStatus: Sendable {
    public var topics: [String: Int32] = [:]
    public var recordsCopied = 0
    /// Records not copied because they began on the target (loop prevention).
    public var recordsSkipped = 0
    /// Per partition, the next source offset to copy (as last checkpointed).
    public var checkpoints: [TopicPartition: Offset] = [:]
    /// Per partition, source records not copied yet (as the last fetch saw the source's end).
    public var lag: [TopicPartition: Int64] = [:]
    public var groupsTranslated = 0
    /// Offset-preserving mirrors: topics no longer copied, and why (promoted on the target, or
    /// never made a mirror topic there).
    public var stoppedTopics: [String: String] = [:]
    /// When the last checkpoint was written (ms since the epoch; nil: none yet).
    public var lastCheckpointMs: Int64?
}

/// Mirrors topics from a source cluster to a target (MirrorMaker 2's job): makes the topics on
/// the target with the source's partition count and settings, follows new topics, partitions
/// and setting changes, copies the records (keys, headers, timestamps, each to the same
/// partition) with an idempotent producer, checkpoints its progress in the target (the
/// offsets of the group `brook-mirror.NAME`), translates the committed offsets of selected
/// consumer groups, and writes a heartbeat record to the target every checkpoint.
///
/// At least once: a mirror stopped hard copies again what it copied after its last
/// checkpoint. Offsets are translated through sparse offset syncs, the newest of each
/// partition kept in its checkpoint's commit metadata and taken back at a restart (in
/// exactly-once mode too: the transaction's offset commit carries them).
public actor Mirror {
    public nonisolated let config: MirrorConfig
    let source: ClusterClient
    let target: ClusterClient
    let sourceAdmin: KafkaAdmin
    let targetAdmin: KafkaAdmin
    let consumer: KafkaConsumer
    let producer: KafkaProducer
    var progress = MirrorProgress()
    var syncs = OffsetSyncs()
    var status = MirrorStatus()
    /// The status as of the last round (`publish`), for readers that cannot wait for the actor
    /// (a metrics scrape).
    private nonisolated let published = Mutex(MirrorStatus())

    func publish() { published.withLock { $0 = status } }
    /// The source settings copied to each target topic (what the target was given).
    var copiedConfigs: [String: [String: String]] = [:]
    var regex: Regex<AnyRegexOutput>
    var groupRegex: Regex<AnyRegexOutput>?
    let clock = ElapsedClock()
    /// Offset-preserving mode: each partition's next source offset, and the leaders.
    var preservePositions: [TopicPartition: Offset] = [:]
    var sourceLeaders: [TopicPartition: NodeID] = [:]
    var targetLeaders: [TopicPartition: NodeID] = [:]
    var leadersStale = false
    /// Target topics known to be this mirror's (their `brook.mirror.link`).
    var linked: Set<String> = []
    /// Record copies: the origin header's rule (nil: loop prevention off).
    var origin: MirrorOrigin?

    public init(_ config: MirrorConfig, sourceConnect: @escaping ClusterClient.Connect, targetConnect: @escaping ClusterClient.Connect) throws {
        precondition(!(config.preserveOffsets && config.exactlyOnce), "an offset-preserving mirror is not transactional")
        self.config = config
        do {
            regex = try Regex(config.topics)
            groupRegex = try config.groups.map { try Regex($0) }
        } catch { throw ClientError("mirror pattern: \(error)") }
        var consumerConfig = config.source
        consumerConfig.groupID = nil
        consumerConfig.autoCommit = false
        consumerConfig.offsetReset = .earliest
        consumerConfig.readCommitted = true
        var producerConfig = config.target
        producerConfig.acks = -1
        producerConfig.idempotent = true
        producerConfig.allowAutoCreateTopics = false
        producerConfig.transactionalID = config.exactlyOnce ? config.checkpointGroup : nil
        source = ClusterClient(bootstrap: config.source.bootstrapServers, connect: sourceConnect)
        target = ClusterClient(bootstrap: config.target.bootstrapServers, connect: targetConnect)
        sourceAdmin = KafkaAdmin(Self.adminConfig(config.source.bootstrapServers, timeoutMs: config.source.requestTimeoutMs,
                                                  backoffMs: config.source.retryBackoffMs), cluster: source)
        targetAdmin = KafkaAdmin(Self.adminConfig(config.target.bootstrapServers, timeoutMs: config.target.maxBlockMs,
                                                  backoffMs: config.target.retryBackoffMs), cluster: target)
        consumer = KafkaConsumer(consumerConfig, connect: sourceConnect)
        producer = KafkaProducer(producerConfig, connect: targetConnect)
    }

    static func adminConfig(_ bootstrap: [String], timeoutMs: Int64, backoffMs: Int64) -> AdminConfig {
        var config = AdminConfig(bootstrapServers: bootstrap)
        config.clientID = "brook-mirror"
        config.apiTimeoutMs = timeoutMs
        config.retryBackoffMs = backoffMs
        return config
    }

    func nowMs() -> Int64 { clock.nowMs() }

    public func currentStatus() -> MirrorStatus { status }

    /// The status as of its last change, without waiting for the mirror.
    public nonisolated func statusNow() -> MirrorStatus { published.withLock { $0 } }

    /// Mirrors until the task is cancelled (then copies what was fetched, checkpoints and
    /// closes), or until something fails for good (thrown).
    public func run() async throws {
        do {
            // Exactly once: a mirror of the same name still running is fenced, and what it left
            // open aborted, before the checkpoints are read.
            if config.exactlyOnce { try await producer.initTransactions() }
            let (sourceID, targetID) = (try await sourceAdmin.describeCluster().clusterID, try await targetAdmin.describeCluster().clusterID)
            if !sourceID.isEmpty && sourceID == targetID {
                throw ClientError("the source and the target are the same cluster (\(sourceID)): the mirror would copy its own copies")
            }
            if config.loopPrevention { origin = MirrorOrigin(source: sourceID, target: targetID) }
            if config.preserveOffsets {
                try await runPreserving()
                await close()
                return
            }
            try await refreshTopics()
            var nextRefresh = nowMs() + config.refreshIntervalMs
            var nextCheckpoint = nowMs() + config.checkpointIntervalMs
            while !Task.isCancelled {
                let records = try await consumer.poll(timeoutMs: 100)
                if !records.isEmpty {
                    if config.exactlyOnce && !inTransaction {
                        try await producer.beginTransaction()
                        inTransaction = true
                    }
                    await copy(records)
                }
                try settle()
                if nowMs() >= nextCheckpoint {
                    try await checkpoint()
                    nextCheckpoint = nowMs() + config.checkpointIntervalMs
                }
                if nowMs() >= nextRefresh {
                    try await refreshTopics()
                    nextRefresh = nowMs() + config.refreshIntervalMs
                }
                publish()
            }
            // Stopping: what was fetched is copied and checkpointed, in a task of its own (this
            // one is cancelled, and its waits would end at once).
            try await Task { try await self.finalCheckpoint() }.value
        } catch {
            if inTransaction { try? await producer.abortTransaction() }
            await close()
            throw error
        }
        await close()
    }

    /// Writes `records` to the target, each with its origin header (loop prevention), and
    /// notes each one's delivery in source order; a record that began on the target is left
    /// out and settled as it is.
    func copy(_ records: [ConsumedRecord]) async {
        var copies: [ProducerRecord] = []
        copies.reserveCapacity(records.count)
        var skipped: [Bool] = []
        skipped.reserveCapacity(records.count)
        for record in records {
            var headers = record.headers
            if let origin {
                guard case .copy(let given) = origin.decide(headers) else {
                    skipped.append(true)
                    continue
                }
                headers = given
            }
            skipped.append(false)
            copies.append(ProducerRecord(topic: record.topic, partition: record.partition, key: record.key, value: record.value,
                                         headers: headers, timestamp: record.timestamp))
        }
        let deliveries = copies.isEmpty ? [] : await producer.send(contentsOf: copies)
        precondition(deliveries.count == copies.count, "a delivery for each record copied")
        var next = deliveries.makeIterator()
        for (record, skip) in zip(records, skipped) {
            if skip {
                progress.skip(record.topicPartition, source: record.offset)
                syncs.markMixed(record.topicPartition)
                status.recordsSkipped += 1
            } else {
                progress.add(record.topicPartition, source: record.offset, next.next()!)
            }
        }
    }

    func finalCheckpoint() async throws {
        await producer.flush()
        try settle()
        try await checkpoint()
    }

    /// Exactly once: whether a transaction is open on the target.
    var inTransaction = false

    func close() async {
        await producer.close()
        await consumer.close()
        await source.close()
        await target.close()
    }

    /// Takes the deliveries that came: progress and offset syncs; a failed one stops the mirror.
    func settle() throws {
        let settled = progress.settle()
        for (partition, sourceOffset, targetOffset) in settled.written {
            syncs.record(partition, source: sourceOffset, target: targetOffset)
        }
        status.recordsCopied += settled.written.count
        for (partition, next) in settled.checkpoints { pendingCheckpoints[partition] = next }
        if let failure = settled.failure { throw ClientError("a record not written to the target: \(failure)") }
    }

    var pendingCheckpoints: [TopicPartition: Offset] = [:]
    /// Checkpoints carry offset syncs (until the target refuses metadata that long).
    var syncsInCheckpoints = true

    // MARK: checkpoints, groups, heartbeats

    func checkpoint() async throws {
        if config.exactlyOnce {
            try await commitTransaction()
        } else if !pendingCheckpoints.isEmpty {
            let offsets = pendingCheckpoints
            // Each checkpoint carries its partition's newest offset syncs, taken back at a restart.
            var metadata: [TopicPartition: String] = [:]
            if syncsInCheckpoints { for partition in offsets.keys { metadata[partition] = syncs.encoded(partition) } }
            do {
                try await target.commitOffsets(offsets, group: config.checkpointGroup, timeoutMs: config.target.maxBlockMs,
                                               backoffMs: config.target.retryBackoffMs, metadata: metadata)
            } catch let error as KafkaError where error.code == .offsetMetadataTooLarge {
                // A target with a smaller offset.metadata.max.bytes: checkpoints without syncs.
                syncsInCheckpoints = false
                try await target.commitOffsets(offsets, group: config.checkpointGroup, timeoutMs: config.target.maxBlockMs,
                                               backoffMs: config.target.retryBackoffMs)
            }
            for (partition, offset) in offsets where pendingCheckpoints[partition] == offset { pendingCheckpoints[partition] = nil }
            status.checkpoints.merge(offsets) { $1 }
        }
        for partition in await consumer.assignment() {
            if let end = await consumer.highWatermark(partition), let position = await consumer.position(partition) {
                status.lag[partition] = max(0, end.value - position.value)
            }
        }
        if groupRegex != nil { await translateGroups() }
        status.lastCheckpointMs = SystemClock().now().ms
        // (Exactly once: the heartbeat goes with the next transaction.)
        if !config.exactlyOnce { _ = try? await producer.send(heartbeat()) }
    }

    func heartbeat() -> ProducerRecord {
        let beat = "{\"mirror\":\"\(config.name)\",\"source\":\"\(config.source.bootstrapServers.joined(separator: ","))\",\"copied\":\(status.recordsCopied)}"
        return ProducerRecord(topic: MirrorConfig.heartbeatsTopic, partition: 0, key: Array(config.name.utf8), value: Array(beat.utf8))
    }

    /// Exactly once: the open transaction (or a new one, for the heartbeat) ends with the
    /// consumer's positions committed in it to the checkpoint group.
    func commitTransaction() async throws {
        if !inTransaction {
            try await producer.beginTransaction()
            inTransaction = true
        }
        _ = try await producer.send(heartbeat())
        var offsets: [TopicPartition: Offset] = [:]
        for partition in await consumer.assignment() {
            if let position = await consumer.position(partition), status.checkpoints[partition] != position { offsets[partition] = position }
        }
        if !offsets.isEmpty {
            // The transaction's records written first, so that their offset syncs go in the
            // checkpoint's metadata (taken back at a restart, as without exactly once).
            await producer.flush()
            try settle()
            var metadata: [TopicPartition: String] = [:]
            if syncsInCheckpoints { for partition in offsets.keys { metadata[partition] = syncs.encoded(partition) } }
            do {
                try await producer.sendOffsetsToTransaction(offsets, group: config.checkpointGroup, metadata: metadata)
            } catch let error as ProduceError where error.code == .offsetMetadataTooLarge {
                // A target with a smaller offset.metadata.max.bytes: checkpoints without syncs.
                syncsInCheckpoints = false
                try await producer.sendOffsetsToTransaction(offsets, group: config.checkpointGroup)
            }
        }
        try await producer.commitTransaction()
        inTransaction = false
        try settle()
        pendingCheckpoints = [:]
        status.checkpoints.merge(offsets) { $1 }
    }

    /// Each selected source group's committed offsets, translated, committed to the same group
    /// on the target where that moves it forward (a group with members there refuses it).
    func translateGroups() async {
        guard let groupRegex, let groups = try? await sourceGroups() else { return }
        let timeout = config.target.maxBlockMs
        let backoff = config.target.retryBackoffMs
        for group in groups where (try? groupRegex.wholeMatch(in: group)) != nil && group != config.checkpointGroup {
            guard let committed = try? await source.committedOffsets(nil, group: group, timeoutMs: timeout, backoffMs: backoff) else { continue }
            var translated: [TopicPartition: Offset] = [:]
            for (partition, offset) in committed where status.topics[partition.topic] != nil && status.stoppedTopics[partition.topic] == nil {
                // Offset-preserving topics: the same offsets, at most what was copied (a group
                // resuming on a promoted topic must not skip records never copied).
                let mapped = config.preserveOffsets ? preservePositions[partition].map { min(offset, $0) } : syncs.translate(partition, offset)
                if let mapped { translated[partition] = mapped }
            }
            guard !translated.isEmpty else { continue }
            let current = (try? await target.committedOffsets(Array(translated.keys), group: group, timeoutMs: timeout, backoffMs: backoff)) ?? [:]
            let forward = translated.filter { partition, offset in current[partition].map { offset > $0 } ?? true }
            guard !forward.isEmpty else { continue }
            if (try? await target.commitOffsets(forward, group: group, timeoutMs: timeout, backoffMs: backoff)) != nil {
                status.groupsTranslated += 1
            }
        }
    }

    /// Every group of the source.
    func sourceGroups() async throws -> [String] {
        try await sourceAdmin.listGroups().map(\.id)
    }

    // MARK: topics

    /// The source's matching topics made (or grown, or their settings changed) on the target,
    /// and the consumer assigned every partition of them: a partition new to the mirror starts
    /// at its checkpoint, else at the source's start.
    func refreshTopics() async throws {
        let answer = try await source.metadata(topics: nil)
        var wanted: [String: Int32] = [:]
        for topic in answer.topics where topic.errorCode == 0 && !topic.isInternal {
            guard let name = topic.name, !name.hasPrefix("__"), name != MirrorConfig.heartbeatsTopic,
                  (try? regex.wholeMatch(in: name)) != nil else { continue }
            wanted[name] = Int32(topic.partitions.count)
        }
        let configs = try await sourceConfigs(Array(wanted.keys))
        try await ensureTargetTopics(wanted, configs: configs)
        status.topics = wanted
        if config.preserveOffsets { return try await startPreserving(wanted) }
        let before = Set(await consumer.assignment())
        let partitions = wanted.sorted { $0.key < $1.key }.flatMap { name, count in (0..<count).map { TopicPartition(name, $0) } }
        let added = partitions.filter { !before.contains($0) }
        guard !added.isEmpty || partitions.count != before.count else { return }
        try await consumer.assign(partitions)
        guard !added.isEmpty else { return }
        let entries = try await target.committedEntries(added, group: config.checkpointGroup, timeoutMs: config.target.maxBlockMs,
                                                        backoffMs: config.target.retryBackoffMs)
        let checkpoints = entries.mapValues(\.offset)
        for (partition, entry) in entries {
            try await consumer.seek([partition], to: .offset(entry.offset))
            // The offset syncs of the run that wrote the checkpoint.
            if syncs.last[partition] == nil, let text = entry.metadata { syncs.restore(partition, from: text) }
        }
        status.checkpoints.merge(checkpoints) { $1 }
    }

    /// The source topics' own settings (those set on the topic, not defaults), but the ones
    /// not copied. A source that does not answer DescribeConfigs gets its topics made with the
    /// target's defaults.
    func sourceConfigs(_ topics: [String]) async throws -> [String: [String: String]] {
        await ownSettings(of: topics, at: sourceAdmin)
    }

    /// `topics`' settings set on the topic at `admin`'s cluster (none of those not copied); a
    /// topic whose settings cannot be read is left out.
    func ownSettings(of topics: [String], at admin: KafkaAdmin) async -> [String: [String: String]] {
        guard !topics.isEmpty else { return [:] }
        let resources = topics.sorted().map { ConfigResource.topic($0) }
        var described: [ConfigResource: [ConfigEntry]] = [:]
        if let all = try? await admin.describeConfigs(resources) { described = all } else {
            // One refused (deleted meanwhile, say): the others one by one.
            for resource in resources { described[resource] = try? await admin.describeConfigs(resource) }
        }
        var out: [String: [String: String]] = [:]
        for (resource, entries) in described {
            guard case .topic(let name) = resource else { continue }
            var settings: [String: String] = [:]
            for entry in entries where entry.source == .topic && !entry.isSensitive && !entry.isReadOnly {
                guard let value = entry.value, !MirrorConfig.configsNotCopied.contains(entry.name) else { continue }
                settings[entry.name] = value
            }
            out[name] = settings
        }
        return out
    }

    func ensureTargetTopics(_ wanted: [String: Int32], configs: [String: [String: String]]) async throws {
        let heartbeats = [MirrorConfig.heartbeatsTopic: Int32(1)]
        let answer = try await target.metadata(topics: Array(wanted.keys) + Array(heartbeats.keys))
        var existing: [String: Int32] = [:]
        for topic in answer.topics where topic.errorCode == 0 { if let name = topic.name { existing[name] = Int32(topic.partitions.count) } }
        let missing = wanted.merging(heartbeats) { a, _ in a }.filter { existing[$0.key] == nil }
        for (name, count) in missing.sorted(by: { $0.key < $1.key }) {
            do {
                var settings = configs[name] ?? [:]
                if config.preserveOffsets && wanted[name] != nil { settings[MirrorConfig.mirrorLinkConfig] = config.name }
                try await targetAdmin.createTopics([NewTopic(name, partitions: count, replicationFactor: config.replicationFactor, configs: settings)])
            } catch let error as KafkaError where error.code == .topicAlreadyExists {}
            copiedConfigs[name] = configs[name] ?? [:]
        }
        try await targetAdmin.createPartitions(wanted.filter { name, count in existing[name].map { $0 < count } ?? false })
        // A topic that existed before this run: its settings on the target are what was copied.
        let unknown = configs.keys.filter { existing[$0] != nil && copiedConfigs[$0] == nil }
        for (name, settings) in await ownSettings(of: unknown, at: targetAdmin) { copiedConfigs[name] = settings }
        // Settings changed on the source since they were copied: set (or removed) on the target.
        for (name, settings) in configs.sorted(by: { $0.key < $1.key }) where existing[name] != nil {
            guard let copied = copiedConfigs[name] else { continue }
            let set = settings.filter { copied[$0.key] != $0.value }
            let removed = copied.keys.sorted().filter { settings[$0] == nil }
            guard !set.isEmpty || !removed.isEmpty else { continue }
            if (try? await targetAdmin.alterConfigs(.topic(name), set: set, delete: removed)) != nil { copiedConfigs[name] = settings }
        }
    }
}
