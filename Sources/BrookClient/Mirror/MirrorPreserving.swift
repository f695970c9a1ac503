import BrookCore
import BrookProtocol
import BrookRecords
import NIOCore

/// Offset-preserving mirror topics (`MirrorConfig.preserveOffsets`; the target must be Brook).
///
/// Each partition is fetched from its source leader with read_committed; its committed data
/// batches (`MirrorBatches.committed`: transaction markers and aborted transactions left out)
/// go as they are, in one Produce with the transactional id `brook-mirror:NAME`, to the target
/// leader, which writes them at their own offsets (Partition.appendMirrored) into a topic whose
/// `brook.mirror.link` is NAME; nothing else may write there. The progress is the target's
/// own log: a partition starts (and starts again after any failed or unanswered write) at the
/// target's log end, and a batch the target has already is skipped there, so each one is
/// written once however often it is sent. A topic promoted on the target (`brook mirror
/// promote`) refuses the mirror's writes: it is no longer copied.
extension Mirror {
    /// The transactional id that marks the mirror's writes (ProduceHandler.mirrorPrefix).
    var writer: String { "brook-mirror:" + config.name }

    func runPreserving() async throws {
        try await refreshTopics()
        var nextRefresh = nowMs() + config.refreshIntervalMs
        var nextCheckpoint = nowMs() + config.checkpointIntervalMs
        while !Task.isCancelled {
            let copied = try await copyRound()
            if nowMs() >= nextCheckpoint {
                await checkpointPreserving()
                nextCheckpoint = nowMs() + config.checkpointIntervalMs
            }
            if nowMs() >= nextRefresh || leadersStale {
                try await refreshTopics()
                nextRefresh = nowMs() + config.refreshIntervalMs
            }
            publish()
            if copied == 0 { try? await Task.sleep(for: .milliseconds(100)) }
        }
        await checkpointPreserving()
        publish()
    }

    /// The leaders of `wanted`'s partitions on both sides; partitions new to the mirror start
    /// at the target's log end.
    func startPreserving(_ wanted: [String: Int32]) async throws {
        // Topics gone from the source (or the pattern) are no longer fetched.
        preservePositions = preservePositions.filter { wanted[$0.key.topic] != nil }
        // A target topic whose link is not this mirror's (promoted, or made by someone else)
        // is not copied into.
        let unknown = wanted.keys.sorted().filter { status.stoppedTopics[$0] == nil && !linked.contains($0) }
        for (name, settings) in await linkSettings(of: unknown) {
            if settings == config.name { linked.insert(name) } else {
                status.stoppedTopics[name] = settings.isEmpty ? "the target's \(name) is not a mirror topic (promoted?)"
                    : "the target's \(name) is a mirror topic of link \(settings)"
            }
        }
        let topics = wanted.keys.sorted().filter { status.stoppedTopics[$0] == nil && linked.contains($0) }
        guard !topics.isEmpty else { return }
        sourceLeaders = try await leaders(of: topics, at: source)
        targetLeaders = try await leaders(of: topics, at: target)
        leadersStale = false
        let fresh = wanted.sorted { $0.key < $1.key }.flatMap { name, count in (0..<count).map { TopicPartition(name, $0) } }
            .filter { preservePositions[$0] == nil && status.stoppedTopics[$0.topic] == nil }
        for partition in fresh {
            if let end = await targetEnd(partition) { preservePositions[partition] = end }
        }
    }

    /// Each topic's `brook.mirror.link` on the target ("" when none); a topic whose configs do
    /// not come is left out (asked again at the next refresh).
    func linkSettings(of topics: [String]) async -> [String: String] {
        var out: [String: String] = [:]
        for name in topics {
            guard let entries = try? await targetAdmin.describeConfigs(.topic(name)) else { continue }
            out[name] = entries.first { $0.name == MirrorConfig.mirrorLinkConfig }?.value ?? ""
        }
        return out
    }

    func leaders(of topics: [String], at cluster: ClusterClient) async throws -> [TopicPartition: NodeID] {
        let answer = try await cluster.metadata(topics: topics)
        var out: [TopicPartition: NodeID] = [:]
        for topic in answer.topics where topic.errorCode == 0 {
            guard let name = topic.name else { continue }
            for p in topic.partitions where p.leaderId.value >= 0 { out[TopicPartition(name, p.partitionIndex)] = p.leaderId }
        }
        return out
    }

    /// Where the target partition's copy ends for sure: its high watermark, what its in-sync
    /// replicas have (a write past it may be lost with its leader). nil: its leader did not say.
    func targetEnd(_ partition: TopicPartition) async -> Offset? {
        guard let leader = targetLeaders[partition] else { return nil }
        return try? await target.listOffsets(topic: partition.topic, leaders: [partition.partition: leader], timestamp: -1)[partition.partition]
    }

    /// One fetch per source topic and leader, and what came copied; returns the batches copied.
    func copyRound() async throws -> Int {
        var copied = 0
        let live = preservePositions.keys.filter { status.stoppedTopics[$0.topic] == nil }
        let byTopic = Dictionary(grouping: live, by: \.topic)
        let requests = byTopic.values.reduce(0) { $0 + Set($1.compactMap { sourceLeaders[$0] }).count }
        for (topic, partitions) in byTopic.sorted(by: { $0.key < $1.key }) {
            var byLeader: [NodeID: [TopicPartition]] = [:]
            for partition in partitions {
                guard let leader = sourceLeaders[partition] else { leadersStale = true; continue }
                byLeader[leader, default: []].append(partition)
            }
            for (leader, wanted) in byLeader.sorted(by: { $0.key < $1.key }) {
                copied += try await copy(topic, wanted.sorted(), from: leader, waitMs: requests > 1 ? 0 : 200)
            }
        }
        return copied
    }

    func copy(_ topic: String, _ partitions: [TopicPartition], from leader: NodeID, waitMs: Int32) async throws -> Int {
        if await source.topicIDs[topic] == nil { _ = try? await source.metadata(topics: [topic]) }
        let request = FetchRequest(replicaId: NodeID(-1), maxWaitMs: waitMs, minBytes: 1, maxBytes: 8 * 1024 * 1024, isolationLevel: 1, topics: [
            .init(topic: topic, topicId: await source.topicIDs[topic] ?? .zero, partitions: partitions.map {
                .init(partition: $0.partition, fetchOffset: preservePositions[$0] ?? .zero, partitionMaxBytes: 1024 * 1024)
            }),
        ])
        let answer: FetchResponse
        do { answer = try await source.send(request, toNode: leader, timeoutMs: config.source.requestTimeoutMs + Int64(waitMs)) } catch {
            leadersStale = true
            return 0
        }
        var copied = 0
        for p in answer.responses.flatMap(\.partitions) {
            let partition = TopicPartition(topic, p.partitionIndex)
            guard let position = preservePositions[partition], status.stoppedTopics[topic] == nil else { continue }
            let code = ErrorCode(rawValue: p.errorCode)
            switch code {
            case .none:
                let stable = p.lastStableOffset.value >= 0 ? p.lastStableOffset : p.highWatermark
                guard case .bytes(let bytes)? = p.records, bytes.readableBytes > 0 else {
                    status.lag[partition] = max(0, stable.value - position.value)
                    continue
                }
                let aborted = (p.abortedTransactions ?? []).map { (producer: $0.producerId, firstOffset: $0.firstOffset) }
                let found = bytes.withUnsafeReadableBytes { MirrorBatches.committed($0, aborted: aborted) }
                guard let next = found.next else { continue }
                if found.count > 0 {
                    guard let targetStart = try await write(found.batches, to: partition) else { continue }
                    copied += found.count
                    status.recordsCopied += found.records
                    // The first batch copied may hold records before the source's log start
                    // (DeleteRecords, retention mid-batch): the target's start follows.
                    if p.logStartOffset > targetStart {
                        _ = try? await targetAdmin.deleteRecords(before: [partition: min(p.logStartOffset, next)])
                    }
                }
                preservePositions[partition] = next
                status.lag[partition] = max(0, stable.value - next.value)
            case .offsetOutOfRange:
                // Records deleted at the source (retention, DeleteRecords): go on from its start.
                guard let earliest = try? await source.listOffsets(topic: topic, leaders: [p.partitionIndex: leader], timestamp: -2)[p.partitionIndex] else {
                    continue  // asked again next round
                }
                if earliest > position { preservePositions[partition] = earliest } else if p.highWatermark < position {
                    // The source's log is shorter than the copy (an unclean election there): this
                    // topic is not copied into any more; the others go on.
                    status.stoppedTopics[topic] = "\(partition) at the source ends at \(p.highWatermark), before \(position), which the target has"
                }
            default:
                leadersStale = true
            }
        }
        return copied
    }

    /// The batches written to the target partition: the target's log start then; nil when not
    /// written (then the partition goes on from the target's log end, or its topic stops being
    /// copied when the target refuses the mirror).
    func write(_ batches: [UInt8], to partition: TopicPartition) async throws -> Offset? {
        guard let leader = targetLeaders[partition] else {
            leadersStale = true
            return nil
        }
        let request = ProduceRequest(transactionalId: writer, acks: -1, timeoutMs: config.target.requestTimeoutMs, topicData: [
            .init(name: partition.topic, partitionData: [.init(index: partition.partition, records: .bytes(ByteBuffer(bytes: batches)))]),
        ])
        var code = ErrorCode.networkException
        var message: String?
        var logStart = Offset(-1)
        if let answer = try? await target.send(request, toNode: leader, timeoutMs: Int64(config.target.requestTimeoutMs) + 5000),
           let result = answer.responses.first?.partitionResponses.first {
            code = ErrorCode(rawValue: result.errorCode)
            message = result.errorMessage
            logStart = result.logStartOffset
        }
        switch code {
        case .none:
            return logStart
        case .policyViolation:
            status.stoppedTopics[partition.topic] = message ?? "the target refuses the mirror's writes"
            return nil
        case .corruptMessage, .topicAuthorizationFailed, .transactionalIDAuthorizationFailed, .unsupportedVersion:
            throw ClientError("mirror \(config.name): the target refused \(partition): \(code)\(message.map { ": \($0)" } ?? "")")
        default:
            // Not written, or written without an answer: the target's log end says where to go on.
            leadersStale = true
            if let end = await targetEnd(partition) { preservePositions[partition] = end } else { preservePositions[partition] = nil }
            return nil
        }
    }

    /// The positions as checkpoints (for `brook mirror status`), groups' offsets (the same
    /// ones), a heartbeat.
    func checkpointPreserving() async {
        let positions = preservePositions.filter { status.stoppedTopics[$0.key.topic] == nil && status.checkpoints[$0.key] != $0.value }
        if !positions.isEmpty,
           (try? await target.commitOffsets(positions, group: config.checkpointGroup, timeoutMs: config.target.maxBlockMs,
                                            backoffMs: config.target.retryBackoffMs)) != nil {
            status.checkpoints.merge(positions) { $1 }
        }
        if groupRegex != nil { await translateGroups() }
        status.lastCheckpointMs = SystemClock().now().ms
        _ = try? await producer.send(heartbeat())
    }
}
