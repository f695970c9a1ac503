import BrookBroker
import BrookClient
import BrookCore
import BrookGroups
import BrookQuorum
import BrookTxn
import Prometheus

/// Series of one name whose label sets come and go: each scrape gives the rows of what exists
/// then; a label set not given is dropped from the registry.
struct Family<Entry: Sendable>: Sendable {
    let name: String
    let help: String
    let labelNames: [String]
    var descriptor: MetricNameDescriptor { MetricName.make(name, help) }
    var series: [[String]: Entry] = [:]

    init(_ name: String, _ help: String, labels: [String]) {
        self.name = name
        self.help = help
        labelNames = labels
    }

    mutating func update(_ rows: [([String], Double)], make: ([(String, String)]) -> Entry, set: (inout Entry, Double) -> Void,
                         drop: (Entry) -> Void) {
        var seen = Set<[String]>()
        for (values, value) in rows {
            precondition(values.count == labelNames.count, "\(name): \(values.count) label values for \(labelNames)")
            seen.insert(values)
            var entry = series[values] ?? make(Array(zip(labelNames, values)))
            set(&entry, value)
            series[values] = entry
        }
        for (values, entry) in series where !seen.contains(values) {
            drop(entry)
            series[values] = nil
        }
    }
}

/// Gauges set at each scrape.
struct GaugeFamily: Sendable {
    var family: Family<Gauge>

    init(_ name: String, _ help: String, labels: [String] = []) {
        family = Family(name, help, labels: labels)
    }

    mutating func update(_ rows: [([String], Double)], in registry: PrometheusCollectorRegistry) {
        let descriptor = family.descriptor
        family.update(rows, make: { registry.makeGauge(descriptor: descriptor, labels: $0) }, set: { $0.set(to: $1) },
                      drop: { registry.unregisterGauge($0) })
    }

    mutating func set(_ value: Double, in registry: PrometheusCollectorRegistry) {
        update([([], value)], in: registry)
    }
}

/// Counters read from running totals kept elsewhere (atomics): each scrape adds what the total
/// grew by. A total that went down (a topic deleted and made again) starts its counter over,
/// which Prometheus's rate() reads as a reset.
struct CounterFamily: Sendable {
    var family: Family<(counter: Prometheus.Counter, last: Double)>

    init(_ name: String, _ help: String, labels: [String] = []) {
        family = Family(name, help, labels: labels)
    }

    mutating func update(_ rows: [([String], Double)], in registry: PrometheusCollectorRegistry) {
        let descriptor = family.descriptor
        family.update(rows, make: { (registry.makeCounter(descriptor: descriptor, labels: $0), 0) }, set: { entry, total in
            if total < entry.last { entry.counter.reset(); entry.last = 0 }
            if total > entry.last { entry.counter.increment(by: total - entry.last) }
            entry.last = total
        }, drop: { registry.unregisterCounter($0.counter) })
    }
}

/// What each scrape reads (ServerMetrics.render): the families whose values live elsewhere.
struct Scrape: Sendable {
    let registry: PrometheusCollectorRegistry

    // The process.
    var cpu = CounterFamily("process_cpu_seconds_total", "User and system CPU time spent by the process, in seconds")
    var resident = GaugeFamily("process_resident_memory_bytes", "Resident memory of the process, in bytes")
    var virtual = GaugeFamily("process_virtual_memory_bytes", "Virtual memory of the process, in bytes")
    var openFds = GaugeFamily("process_open_fds", "Open file descriptors of the process")
    var maxFds = GaugeFamily("process_max_fds", "The process's limit on open file descriptors")
    var startTime = GaugeFamily("process_start_time_seconds", "When the process started, in seconds since the Unix epoch")

    // The server.
    var requestMemory = GaugeFamily("brook_request_memory_bytes", "Bytes of requests held in memory now (queued.max.request.bytes bounds them)")
    var requestMemoryMax = GaugeFamily("brook_request_memory_max_bytes", "The request memory budget, queued.max.request.bytes")

    // The controller.
    var raftTerm = GaugeFamily("brook_raft_term", "The Raft term (controller epoch) this controller is in")
    var raftLeader = GaugeFamily("brook_raft_leader_id", "The node id of the quorum's leader as this controller knows it, -1 when none")
    var raftIsLeader = GaugeFamily("brook_raft_is_leader", "1 when this controller leads the quorum")
    var controllerActive = GaugeFamily("brook_controller_active", "1 when this controller is the active controller (leads and has applied its log)")
    var raftLastIndex = GaugeFamily("brook_raft_last_index", "The index of the last entry of this controller's Raft log")
    var raftCommitIndex = GaugeFamily("brook_raft_commit_index", "The highest Raft log index known committed")
    var raftAppliedIndex = GaugeFamily("brook_raft_applied_index", "The highest Raft log index this controller applied")
    var raftCommitLag = GaugeFamily("brook_raft_commit_lag", "Entries of this controller's log not yet committed (last index minus commit index)")

    // The broker.
    var partitions = GaugeFamily("brook_partitions", "Partition replicas this broker hosts")
    var leaders = GaugeFamily("brook_leader_partitions", "Partitions this broker leads")
    var underReplicated = GaugeFamily("brook_under_replicated_partitions", "Partitions this broker leads whose ISR is smaller than their replica set")
    var underMinISR = GaugeFamily("brook_under_min_isr_partitions", "Partitions this broker leads whose ISR is below min.insync.replicas")
    var offline = GaugeFamily("brook_offline_partitions", "Partitions of the cluster with no leader, as this broker's metadata image has them")
    var offlineReplicas = GaugeFamily("brook_offline_replicas", "Replicas on this broker in a failed log directory")
    var previousShutdownClean = GaugeFamily("brook_previous_shutdown_clean", "1 when the broker's last run ended with a clean shutdown")
    var segmentsRecovered = GaugeFamily("brook_log_segments_recovered", "Log segments scanned and recovered when their partitions opened (0 after a clean shutdown)")
    var isrShrinks = CounterFamily("brook_isr_shrinks_total", "ISR shrinks this broker's leaderships asked for and the controller committed")
    var isrExpands = CounterFamily("brook_isr_expands_total", "ISR expansions this broker's leaderships asked for and the controller committed")
    var retentionDeleted = CounterFamily("brook_log_retention_segments_deleted_total", "Log segments deleted by retention (time, size, log start)")
    var compactionPasses = CounterFamily("brook_log_compaction_passes_total", "Compaction passes over partitions' logs")
    var compactionRecords = CounterFamily("brook_log_compaction_records_removed_total", "Records compaction removed (older values of a key, expired tombstones)")
    var compactionBytes = CounterFamily("brook_log_compaction_reclaimed_bytes_total", "Bytes of log compaction reclaimed")
    var parkedFetches = GaugeFamily("brook_parked_fetches", "Fetches waiting for records (long polls) on this broker")
    var authFailures = CounterFamily("brook_authentication_failures_total", "Failed client authentications (SASL, certificates)")
    var topicRecordsIn = CounterFamily("brook_topic_records_in_total", "Records produced by clients, by topic (this broker's partitions)", labels: ["topic"])
    var topicBytesIn = CounterFamily("brook_topic_bytes_in_total", "Bytes of record batches produced by clients, by topic", labels: ["topic"])
    var topicBytesOut = CounterFamily("brook_topic_bytes_out_total", "Bytes of record batches fetched by consumers, by topic (replication not counted)", labels: ["topic"])
    var logStart = GaugeFamily("brook_partition_log_start_offset", "The first offset of the partition's log", labels: ["topic", "partition"])
    var logEnd = GaugeFamily("brook_partition_log_end_offset", "The offset the next record appended to the partition gets (LEO)", labels: ["topic", "partition"])
    var highWatermark = GaugeFamily("brook_partition_high_watermark", "The partition's high watermark", labels: ["topic", "partition"])
    var lastStable = GaugeFamily("brook_partition_last_stable_offset", "The partition's last stable offset (LSO)", labels: ["topic", "partition"])
    var logSize = GaugeFamily("brook_partition_log_size_bytes", "Bytes of the partition's log segments", labels: ["topic", "partition"])
    var logSegments = GaugeFamily("brook_partition_log_segments", "Segments of the partition's log", labels: ["topic", "partition"])
    var groups = GaugeFamily("brook_consumer_groups", "Groups this broker coordinates, by protocol and state", labels: ["protocol", "state"])
    var groupMembers = GaugeFamily("brook_consumer_group_members", "Members of a group", labels: ["group"])
    var groupGeneration = GaugeFamily("brook_consumer_group_generation", "A group's generation (classic) or group epoch (KIP-848): its rebalances", labels: ["group"])
    var lag = GaugeFamily("brook_consumer_group_lag", "Records a group has not consumed: the high watermark minus its committed offset",
                          labels: ["group", "topic", "partition"])
    var lagSeconds = GaugeFamily("brook_consumer_group_lag_seconds",
                                 "How old the oldest record a group has not consumed is (0 when caught up), in seconds",
                                 labels: ["group", "topic", "partition"])
    var lagSeriesDropped = GaugeFamily("brook_consumer_group_lag_series_dropped", "Group partitions left out of the lag series by metrics.consumer.lag.series.max")
    var transactions = GaugeFamily("brook_transactions", "Transactions this broker coordinates, by state", labels: ["state"])
    var transactionsCommitted = CounterFamily("brook_transactions_committed_total", "Transactions this broker's coordinator committed")
    var transactionsAborted = CounterFamily("brook_transactions_aborted_total", "Transactions this broker's coordinator aborted")

    // The MQTT listener.
    var mqttConnections = GaugeFamily("brook_mqtt_connections", "MQTT connections open")
    var mqttConnectionsCreated = CounterFamily("brook_mqtt_connections_created_total", "MQTT connections accepted")
    var mqttSessions = GaugeFamily("brook_mqtt_sessions", "MQTT sessions kept, with their client connected or not")
    var mqttSubscriptions = GaugeFamily("brook_mqtt_subscriptions", "Subscriptions over every MQTT session")
    var mqttRetained = GaugeFamily("brook_mqtt_retained_messages", "Retained MQTT messages held")
    var mqttIn = CounterFamily("brook_mqtt_messages_in_total", "PUBLISH packets received from MQTT clients, by QoS", labels: ["qos"])
    var mqttOut = CounterFamily("brook_mqtt_messages_out_total", "Messages sent to MQTT subscribers, by QoS", labels: ["qos"])
    var mqttDropped = CounterFamily("brook_mqtt_messages_dropped_total",
                                    "Messages not delivered to a subscriber: its queue full (mqtt.max.queued.messages) or larger than it takes")

    // A mirror (`brook mirror run`).
    var mirrorCopied = CounterFamily("brook_mirror_records_copied_total", "Records the mirror copied from the source to the target", labels: ["mirror"])
    var mirrorSkipped = CounterFamily("brook_mirror_records_skipped_total",
                                      "Records the mirror did not copy because they began on the target (loop prevention)", labels: ["mirror"])
    var mirrorTopics = GaugeFamily("brook_mirror_topics", "Topics the mirror copies", labels: ["mirror"])
    var mirrorBehind = GaugeFamily("brook_mirror_records_behind",
                                   "Source records not copied yet, over every partition (as the mirror's last checkpoint saw the source's ends)",
                                   labels: ["mirror"])
    var mirrorLag = GaugeFamily("brook_mirror_lag_records", "Source records of the partition not copied yet (as the last checkpoint saw its end)",
                                labels: ["mirror", "topic", "partition"])
    var mirrorLagDropped = GaugeFamily("brook_mirror_lag_series_dropped", "Partitions left out of brook_mirror_lag_records (at most 10,000 series)",
                                       labels: ["mirror"])
    var mirrorGroups = CounterFamily("brook_mirror_group_offsets_translated_total", "Group offsets the mirror translated and committed on the target",
                                     labels: ["mirror"])
    var mirrorCheckpoint = GaugeFamily("brook_mirror_last_checkpoint_timestamp_seconds", "When the mirror last checkpointed its progress on the target",
                                       labels: ["mirror"])

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    static let mirrorLagSeriesMax = 10_000

    mutating func collectMirror(_ name: String, _ status: MirrorStatus) {
        mirrorCopied.update([([name], Double(status.recordsCopied))], in: registry)
        mirrorSkipped.update([([name], Double(status.recordsSkipped))], in: registry)
        mirrorTopics.update([([name], Double(status.topics.count))], in: registry)
        mirrorBehind.update([([name], Double(status.lag.values.reduce(0, +)))], in: registry)
        let lag = status.lag.sorted { $0.key < $1.key }
        mirrorLag.update(lag.prefix(Self.mirrorLagSeriesMax).map { ([name, $0.key.topic, String($0.key.partition)], Double($0.value)) }, in: registry)
        mirrorLagDropped.update([([name], Double(max(0, lag.count - Self.mirrorLagSeriesMax)))], in: registry)
        mirrorGroups.update([([name], Double(status.groupsTranslated))], in: registry)
        mirrorCheckpoint.update(status.lastCheckpointMs.map { [([name], Double($0) / 1000)] } ?? [], in: registry)
    }

    mutating func collectMQTT(_ gateway: MQTTGateway) {
        let stats = gateway.stats
        mqttConnections.set(Double(stats.connectionsOpen.count), in: registry)
        mqttConnectionsCreated.update([([], Double(stats.connectionsCreated.count))], in: registry)
        mqttSessions.set(Double(gateway.sessionCount), in: registry)
        mqttSubscriptions.set(Double(gateway.subscriptionCount), in: registry)
        mqttRetained.set(Double(gateway.retainedCount), in: registry)
        mqttIn.update((0..<3).map { ([String($0)], Double(stats.messagesIn[$0].count)) }, in: registry)
        mqttOut.update((0..<3).map { ([String($0)], Double(stats.messagesOut[$0].count)) }, in: registry)
        mqttDropped.update([([], Double(stats.messagesDropped.count))], in: registry)
    }

    static func registerBuildInfo(_ registry: PrometheusCollectorRegistry) {
        registry.makeGauge(descriptor: MetricName.make("brook_build_info", "Brook's version (the value is 1)"),
                           labels: [("version", Version.brook)]).set(to: 1.0)
    }

    mutating func collect(_ sources: ServerMetrics.Sources, nowMs: Int64) {
        collectProcess()
        if let memory = sources.memory {
            requestMemory.set(Double(memory.bytes), in: registry)
            requestMemoryMax.set(Double(memory.bytesMax), in: registry)
        }
        if let quorum = sources.quorum { collectQuorum(quorum.now) }
        if let broker = sources.broker { collectBroker(broker, sources.limits, nowMs: nowMs) }
        if let mqtt = sources.mqtt { collectMQTT(mqtt) }
        if let mirror = sources.mirror { collectMirror(mirror.name, mirror.status()) }
    }

    mutating func collectProcess() {
        guard let stats = ProcessStats.read() else { return }
        cpu.update([([], stats.cpuSeconds)], in: registry)
        resident.set(stats.residentBytes, in: registry)
        virtual.set(stats.virtualBytes, in: registry)
        openFds.set(stats.openFds, in: registry)
        maxFds.set(stats.maxFds, in: registry)
        startTime.set(stats.startTimeSeconds, in: registry)
    }

    mutating func collectQuorum(_ q: QuorumStats.Snapshot) {
        raftTerm.set(Double(q.term), in: registry)
        raftLeader.set(Double(q.leader), in: registry)
        raftIsLeader.set(q.isLeader ? 1 : 0, in: registry)
        controllerActive.set(q.active ? 1 : 0, in: registry)
        raftLastIndex.set(Double(q.lastIndex), in: registry)
        raftCommitIndex.set(Double(q.commitIndex), in: registry)
        raftAppliedIndex.set(Double(q.appliedIndex), in: registry)
        raftCommitLag.set(Double(max(0, q.lastIndex - q.commitIndex)), in: registry)
    }

    mutating func collectBroker(_ broker: Broker, _ limits: ServerMetrics.Limits, nowMs: Int64) {
        var hosted = 0, leading = 0, under = 0, underMin = 0, parked = 0, recovered = 0
        var traffic: [String: (records: Double, bytesIn: Double, bytesOut: Double)] = [:]
        var work = (retention: 0.0, passes: 0.0, records: 0.0, bytes: 0.0)
        var rows: (start: [([String], Double)], end: [([String], Double)], high: [([String], Double)],
                   stable: [([String], Double)], size: [([String], Double)], segments: [([String], Double)]) = ([], [], [], [], [], [])
        for topic in broker.topics.allTopics() {
            var sums = (records: 0.0, bytesIn: 0.0, bytesOut: 0.0)
            for partition in topic.hosted {
                hosted += 1
                parked += partition.parkedCount
                recovered += (try? partition.withLog { $0.segmentsRecoveredAtOpen }) ?? 0
                sums.records += Double(partition.traffic.count(.recordsIn))
                sums.bytesIn += Double(partition.traffic.count(.bytesIn))
                sums.bytesOut += Double(partition.traffic.count(.bytesOut))
                work.retention += Double(partition.traffic.count(.segmentsDeletedByRetention))
                work.passes += Double(partition.traffic.count(.compactionPasses))
                work.records += Double(partition.traffic.count(.compactionRecordsRemoved))
                work.bytes += Double(partition.traffic.count(.compactionBytesReclaimed))
                if let health = partition.leaderHealth {
                    leading += 1
                    if health.underReplicated { under += 1 }
                    if health.underMinISR { underMin += 1 }
                }
                guard limits.partitionSeries else { continue }
                let labels = [topic.name, String(partition.index)]
                let offsets = partition.offsets
                rows.start.append((labels, Double(offsets.logStart.value)))
                rows.end.append((labels, Double(partition.logEndOffset.value)))
                rows.high.append((labels, Double(offsets.highWatermark.value)))
                rows.stable.append((labels, Double(offsets.lastStable.value)))
                if let (size, count) = try? partition.withLog({ ($0.sizeBytes, $0.segmentCount) }) {
                    rows.size.append((labels, Double(size)))
                    rows.segments.append((labels, Double(count)))
                }
            }
            traffic[topic.name] = sums
        }
        partitions.set(Double(hosted), in: registry)
        leaders.set(Double(leading), in: registry)
        underReplicated.set(Double(under), in: registry)
        underMinISR.set(Double(underMin), in: registry)
        parkedFetches.set(Double(parked), in: registry)
        segmentsRecovered.set(Double(recovered), in: registry)
        previousShutdownClean.set(broker.previousShutdownWasClean ? 1 : 0, in: registry)
        offlineReplicas.set(Double(broker.topics.offlineReplicas(limit: 1_000_000)?.count ?? 1_000_000), in: registry)
        let image = broker.cluster.current?.image
        let leaderless = image.map { $0.topics.values.reduce(0) { n, topic in n + topic.partitions.count { $0.leader == nil } } } ?? 0
        offline.set(Double(leaderless), in: registry)
        retentionDeleted.update([([], work.retention)], in: registry)
        compactionPasses.update([([], work.passes)], in: registry)
        compactionRecords.update([([], work.records)], in: registry)
        compactionBytes.update([([], work.bytes)], in: registry)
        isrShrinks.update([([], Double(broker.cluster.isrShrinks.count))], in: registry)
        isrExpands.update([([], Double(broker.cluster.isrExpands.count))], in: registry)
        authFailures.update([([], Double(broker.authenticationFailures.count))], in: registry)
        let sortedTraffic = traffic.sorted { $0.key < $1.key }
        topicRecordsIn.update(sortedTraffic.map { ([$0.key], $0.value.records) }, in: registry)
        topicBytesIn.update(sortedTraffic.map { ([$0.key], $0.value.bytesIn) }, in: registry)
        topicBytesOut.update(sortedTraffic.map { ([$0.key], $0.value.bytesOut) }, in: registry)
        logStart.update(rows.start, in: registry)
        logEnd.update(rows.end, in: registry)
        highWatermark.update(rows.high, in: registry)
        lastStable.update(rows.stable, in: registry)
        logSize.update(rows.size, in: registry)
        logSegments.update(rows.segments, in: registry)
        collectGroups(broker, limits, nowMs: nowMs)
        collectTransactions(broker)
    }

    mutating func collectGroups(_ broker: Broker, _ limits: ServerMetrics.Limits, nowMs: Int64) {
        let entries = broker.groups.read { $0.groups }
        var states: [[String]: Double] = [:]
        var members: [([String], Double)] = []
        var generations: [([String], Double)] = []
        var lagRows: [([String], Double)] = []
        var lagTimeRows: [([String], Double)] = []
        var dropped = 0
        for (id, entry) in entries.sorted(by: { $0.key < $1.key }) {
            states[[entry.typeName, entry.stateName], default: 0] += 1
            switch entry.kind {
            case .classic(let group):
                members.append(([id], Double(group.members.count)))
                generations.append(([id], Double(group.generation)))
            case .consumer(let group):
                members.append(([id], Double(group.members.count)))
                generations.append(([id], Double(group.groupEpoch)))
            }
            for (tp, committed) in entry.offsets.sorted(by: { $0.key < $1.key }) {
                // Lag is read where this broker holds the partition (its leader's high
                // watermark, or a follower's, a moment behind it).
                guard let partition = broker.topics.partition(tp.topic, tp.partition) else { continue }
                guard lagRows.count < limits.lagSeriesMax else {
                    dropped += 1
                    continue
                }
                let labels = [id, tp.topic, String(tp.partition)]
                let high = partition.offsets.highWatermark
                let behind = max(0, high.value - committed.offset.value)
                lagRows.append((labels, Double(behind)))
                var age = 0.0
                if behind > 0, let time = partition.batchTimestamp(at: committed.offset), time.ms >= 0 {
                    age = Double(max(0, nowMs - time.ms)) / 1000
                }
                lagTimeRows.append((labels, age))
            }
        }
        groups.update(states.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { ($0.key, $0.value) }, in: registry)
        groupMembers.update(members, in: registry)
        groupGeneration.update(generations, in: registry)
        lag.update(lagRows, in: registry)
        lagSeconds.update(lagTimeRows, in: registry)
        lagSeriesDropped.set(Double(dropped), in: registry)
    }

    mutating func collectTransactions(_ broker: Broker) {
        // Every state, 0 when none is in it: the series stay put between transactions.
        var counts = Dictionary(uniqueKeysWithValues: TxnStatus.allCases.map { ($0.name, 0.0) })
        broker.transactions.read { coordinator in
            for txn in coordinator.txns.values { counts[txn.status.name, default: 0] += 1 }
        }
        transactions.update(counts.sorted { $0.key < $1.key }.map { ([$0.key], $0.value) }, in: registry)
        transactionsCommitted.update([([], Double(broker.transactions.committed.count))], in: registry)
        transactionsAborted.update([([], Double(broker.transactions.aborted.count))], in: registry)
    }
}
