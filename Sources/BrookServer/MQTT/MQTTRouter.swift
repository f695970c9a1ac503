import BrookBroker
import BrookClient
import BrookCore
import BrookMQTT
import BrookProtocol
import BrookRecords
import NIOCore

/// The router: one long-polling fetch over every partition of the Kafka topics MQTT maps to that
/// this node leads, each record handed to the sessions subscribed to its MQTT topic. Messages
/// from MQTT clients and records from Kafka producers take the same way to subscribers.
extension MQTTGateway {
    func startRouting() {
        loop.execute { self.routeNext() }
    }

    func stop() {
        running.withLockedValue { $0 = false }
        loop.execute { self.scope.close() }
    }

    func routeNext() {
        guard running.withLockedValue({ $0 }) else { return }
        let state = router.value
        let now = NIODeadline.now()
        if state.refreshSoon || !state.scanned || now - state.lastRefresh >= Self.refreshInterval {
            state.refreshSoon = false
            state.lastRefresh = now
            refreshPartitions().whenComplete { result in
                if case .failure(let error) = result { Self.warnings.warn(self.logger, "MQTT router: cannot list its partitions: \(error)") }
                self.routeAfter(self.router.value.positions.isEmpty ? .seconds(1) : .zero)
            }
            return
        }
        guard !state.positions.isEmpty else { return routeAfter(.seconds(1)) }
        // Paced by the connected clients: while one's queue is past its limit, wait for it to
        // drain (a while at most: a client that stays behind then loses messages, not everyone).
        let backlog = sessions.withLockedValue { Array($0.values) }.reduce(0) { max($0, $1.connectedBacklog) }
        if backlog > settings.queuedMessagesMax {
            let since = state.pacingSince ?? now
            state.pacingSince = since
            if now - since < Self.routerPaceMax { return routeAfter(.milliseconds(5)) }
        } else {
            state.pacingSince = nil
        }
        let request = FetchRequest(replicaId: NodeID(-1), maxWaitMs: Self.fetchWaitMs, minBytes: 1, maxBytes: Self.fetchBytesMax,
                                   isolationLevel: 1, topics: state.positions.sorted { $0.key < $1.key }.map { topic, partitions in
                                       .init(topic: topic, partitions: partitions.sorted { $0.key < $1.key }.map { index, offset in
                                           .init(partition: index, fetchOffset: offset, partitionMaxBytes: Self.partitionFetchBytesMax)
                                       })
                                   })
        kafka.send(request, version: 12, scope: scope).whenComplete { result in
            switch result {
            case .success(let answer):
                self.route(answer)
                self.commitShareGroups()
                self.routeAfter(.zero)
            case .failure(let error):
                Self.warnings.warn(self.logger, "MQTT router: fetch failed: \(error)")
                self.routeAfter(.seconds(1))
            }
        }
    }

    func routeAfter(_ delay: TimeAmount) {
        if delay == .zero { loop.execute { self.routeNext() } } else { loop.scheduleTask(in: delay) { self.routeNext() } }
    }

    /// Hands what a fetch brought to the sessions and moves the positions past it.
    func route(_ answer: FetchResponse) {
        let state = router.value
        let now = broker.clock.now().ms
        var messages: [MQTTSession.Message] = []
        for topic in answer.responses {
            for partition in topic.partitions {
                guard let from = state.positions[topic.topic]?[partition.partitionIndex] else { continue }
                let code = ErrorCode(rawValue: partition.errorCode)
                if code == .offsetOutOfRange {
                    // Retention passed the position: go on from the log start (or the end, when ahead).
                    let next = from < partition.logStartOffset ? partition.logStartOffset : partition.highWatermark
                    state.positions[topic.topic]?[partition.partitionIndex] = next
                    continue
                }
                guard code == .none else {
                    state.positions[topic.topic]?[partition.partitionIndex] = nil
                    state.left[topic.topic, default: [:]][partition.partitionIndex] = from
                    state.refreshSoon = true
                    continue
                }
                guard case .bytes(let bytes)? = partition.records, bytes.readableBytes > 0 else { continue }
                var next = from
                _ = bytes.withUnsafeReadableBytes { raw in
                    RecordBatchHeader.forEachBatch(in: raw) { header, _ in next = max(next, header.nextOffset) }
                }
                let aborted = Self.abortedOffsets(bytes, partition.abortedTransactions ?? [])
                do {
                    for record in try RecordDecoding.records(in: bytes, partition: partition.partitionIndex, from: from)
                    where !aborted.contains(where: { $0.contains(record.offset.value) }) {
                        if var message = MQTTRecords.message(record, nowMs: now) {
                            message.shard = partition.partitionIndex
                            messages.append(message)
                        }
                    }
                } catch {
                    Self.warnings.warn(logger, "MQTT router: records of \(topic.topic)-\(partition.partitionIndex) at \(from): \(error)")
                }
                state.positions[topic.topic]?[partition.partitionIndex] = next
            }
        }
        guard !messages.isEmpty else { return }
        let boxes = sessions.withLockedValue { $0 }
        for box in boxes.values { box.offer(messages, stats: stats) }
        routeShared(messages, boxes: boxes)
    }

    /// Each message of a shared subscription goes to one session of its group: the one its Kafka
    /// partition falls to (so the members split the partitions, as a consumer group's do), or
    /// the next connected one when that one's client is away.
    func routeShared(_ messages: [MQTTSession.Message], boxes: [String: MQTTSessionBox]) {
        let shares = self.shares.withLockedValue { $0 }
        for (key, share) in shares where !share.members.isEmpty {
            for message in messages where MQTTTopic.matches(filter: share.filter, name: message.topic) {
                let start = Int(message.shard) % share.members.count
                var chosen: MQTTSessionBox?
                for step in 0..<share.members.count {
                    guard let box = boxes[share.members[(start + step) % share.members.count]] else { continue }
                    if chosen == nil { chosen = box }
                    if box.isConnected {
                        chosen = box
                        break
                    }
                }
                chosen?.offerShared(message, key: key, stats: stats)
            }
        }
    }

    /// Commits the router's positions as the offsets of each share group's Kafka consumer group
    /// (at most once a second), so that `brook group describe` shows how far it is.
    func commitShareGroups() {
        let state = router.value
        let groups = Set(shares.withLockedValue { $0.values.map(\.group) })
        let now = NIODeadline.now()
        guard !groups.isEmpty, now - state.lastShareCommit >= .seconds(1), !state.positions.isEmpty else { return }
        state.lastShareCommit = now
        let topics: [OffsetCommitRequest.OffsetCommitRequestTopic] = state.positions.sorted { $0.key < $1.key }.map { topic, partitions in
            .init(name: topic, partitions: partitions.sorted { $0.key < $1.key }.map { .init(partitionIndex: $0.key, committedOffset: $0.value) })
        }
        for group in groups.sorted() {
            let request = OffsetCommitRequest(groupId: Self.kafkaGroup(ofShare: group), generationIdOrMemberEpoch: -1, memberId: "", topics: topics)
            kafka.send(request, version: 8, scope: scope).whenComplete { result in
                let failed: String? = switch result {
                case .success(let answer):
                    answer.topics.flatMap(\.partitions).first { $0.errorCode != 0 }.map { "\(ErrorCode(rawValue: $0.errorCode))" }
                case .failure(let error): "\(error)"
                }
                if let failed { Self.warnings.warn(self.logger, "MQTT share group \(group): offsets not committed: \(failed)") }
            }
        }
    }

    /// The offsets of aborted transactions' batches in fetched bytes, as a read_committed
    /// consumer leaves them out: from an aborted transaction's first offset, a producer's
    /// transactional batches until its abort marker (a control batch).
    static func abortedOffsets(_ bytes: ByteBuffer,
                               _ aborted: [FetchResponse.FetchableTopicResponse.PartitionData.AbortedTransaction]) -> [ClosedRange<Int64>] {
        guard !aborted.isEmpty else { return [] }
        var pending = aborted.sorted { $0.firstOffset < $1.firstOffset }[...]
        var open: Set<ProducerID> = []
        var skipped: [ClosedRange<Int64>] = []
        _ = bytes.withUnsafeReadableBytes { raw in
            RecordBatchHeader.forEachBatch(in: raw) { header, _ in
                while let next = pending.first, next.firstOffset <= header.lastOffset {
                    open.insert(next.producerId)
                    pending = pending.dropFirst()
                }
                guard open.contains(header.producerID) else { return }
                if header.attributes.isControl {
                    open.remove(header.producerID)
                } else if header.attributes.isTransactional {
                    skipped.append(header.baseOffset.value...header.lastOffset.value)
                }
            }
        }
        return skipped
    }

    /// Finds the partitions this node leads of the mapped topics. Those seen at the first look
    /// are read from their end (the node's start); later ones, new, from their start.
    func refreshPartitions() -> EventLoopFuture<Void> {
        let topics = mapping.kafkaTopics
        let lookup = MetadataRequest(topics: topics.map { .init(name: $0) }, allowAutoTopicCreation: false)
        return kafka.send(lookup, version: 12, scope: scope).flatMap { answer in
            let state = self.router.value
            let node = self.broker.config.nodeID
            var led: [String: Set<Int32>] = [:]
            for topic in answer.topics where topic.errorCode == 0 {
                guard let name = topic.name else { continue }
                self.partitionCounts.withLockedValue { $0[name] = Int32(topic.partitions.count) }
                led[name] = Set(topic.partitions.filter { $0.errorCode == 0 && $0.leaderId == node }.map(\.partitionIndex))
            }
            // Partitions no longer led here are dropped (their position kept, should they come
            // back); those led again resume there; new ones get a starting position.
            for (topic, partitions) in state.positions {
                for (index, offset) in partitions where !(led[topic]?.contains(index) ?? false) {
                    state.left[topic, default: [:]][index] = offset
                }
                state.positions[topic] = partitions.filter { led[topic]?.contains($0.key) ?? false }
                if state.positions[topic]!.isEmpty { state.positions[topic] = nil }
            }
            for (topic, partitions) in led {
                for index in partitions where state.positions[topic]?[index] == nil {
                    guard let offset = state.left[topic]?[index] else { continue }
                    state.positions[topic, default: [:]][index] = offset
                    state.left[topic]?[index] = nil
                }
            }
            let fresh = led.flatMap { topic, partitions in
                partitions.filter { state.positions[topic]?[$0] == nil }.map { (topic, $0) }
            }
            let first = !state.scanned
            state.scanned = true
            guard !fresh.isEmpty else { return self.loop.makeSucceededFuture(()) }
            let request = ListOffsetsRequest(replicaId: NodeID(-1), isolationLevel: 1, topics: Dictionary(grouping: fresh, by: \.0).map { topic, entries in
                .init(name: topic, partitions: entries.map { .init(partitionIndex: $0.1, timestamp: first ? -1 : -2) })
            })
            return self.kafka.send(request, version: 7, scope: self.scope).map { offsets in
                let state = self.router.value
                for topic in offsets.topics {
                    for partition in topic.partitions where partition.errorCode == 0 {
                        state.positions[topic.name, default: [:]][partition.partitionIndex] = partition.offset
                    }
                }
            }
        }
    }

    /// The latest record of each key of a compacted topic (tombstones removing theirs), read from
    /// its start to its end on the partitions this node leads; at the node's start, before MQTT
    /// clients are taken.
    func readCompacted(_ topic: String, timeout: TimeAmount = .seconds(30)) -> [String: ConsumedRecord] {
        let deadline = NIODeadline.now() + timeout
        let promise = loop.makePromise(of: [String: ConsumedRecord].self)
        loop.execute {
            let lookup = MetadataRequest(topics: [.init(name: topic)], allowAutoTopicCreation: false)
            self.kafka.send(lookup, version: 12, scope: self.scope).whenComplete { result in
                guard case .success(let answer) = result, let found = answer.topics.first, found.errorCode == 0 else { return promise.succeed([:]) }
                let node = self.broker.config.nodeID
                let partitions = found.partitions.filter { $0.leaderId == node }.map(\.partitionIndex)
                self.readCompacted(topic, positions: Dictionary(uniqueKeysWithValues: partitions.map { ($0, Offset(0)) }),
                                   deadline: deadline, into: [:], promise: promise)
            }
        }
        do {
            return try promise.futureResult.wait()
        } catch {
            logger.warning("MQTT: \(topic) not read: \(error)")
            return [:]
        }
    }

    private func readCompacted(_ topic: String, positions: [Int32: Offset], deadline: NIODeadline, into latest: [String: ConsumedRecord],
                               promise: EventLoopPromise<[String: ConsumedRecord]>) {
        guard !positions.isEmpty else { return promise.succeed(latest) }
        guard NIODeadline.now() < deadline else { return promise.fail(MQTTError(.unspecifiedError, "still reading when the time was up")) }
        let request = FetchRequest(replicaId: NodeID(-1), maxWaitMs: 0, minBytes: 0, maxBytes: Self.fetchBytesMax, isolationLevel: 1,
                                   topics: [.init(topic: topic, partitions: positions.map {
                                       .init(partition: $0.key, fetchOffset: $0.value, partitionMaxBytes: Self.partitionFetchBytesMax)
                                   })])
        kafka.send(request, version: 12, scope: scope).whenComplete { result in
            guard case .success(let answer) = result else { return promise.succeed(latest) }
            var positions = positions
            var latest = latest
            for partition in answer.responses.first?.partitions ?? [] {
                guard let from = positions[partition.partitionIndex] else { continue }
                guard partition.errorCode == 0, case .bytes(let bytes)? = partition.records, bytes.readableBytes > 0 else {
                    positions[partition.partitionIndex] = nil
                    continue
                }
                var next = from
                _ = bytes.withUnsafeReadableBytes { raw in
                    RecordBatchHeader.forEachBatch(in: raw) { header, _ in next = max(next, header.nextOffset) }
                }
                for record in (try? RecordDecoding.records(in: bytes, partition: partition.partitionIndex, from: from)) ?? [] {
                    guard let key = record.key, let name = String(validating: key, as: UTF8.self) else { continue }
                    latest[name] = record.value == nil ? nil : record
                }
                positions[partition.partitionIndex] = next >= partition.highWatermark || next == from ? nil : next
            }
            self.readCompacted(topic, positions: positions, deadline: deadline, into: latest, promise: promise)
        }
    }

    /// Retained messages from their topic (at the node's start).
    func loadRetained() {
        let now = broker.clock.now().ms
        let records = readCompacted(settings.retainedTopic)
        let loaded = retained.withLockedValue { all in
            for (name, record) in records.sorted(by: { $0.key < $1.key }) where all.count < settings.retainedMessagesMax {
                guard var message = MQTTRecords.message(record, nowMs: now), message.payload.readableBytes > 0 else { continue }
                message.retain = true
                all[name] = message
            }
            return all.count
        }
        if loaded > 0 { logger.info("MQTT: \(loaded) retained messages read from \(settings.retainedTopic)") }
    }

}
