import BrookBroker
import BrookClient
import BrookCore
import BrookMQTT
import BrookProtocol
import BrookRecords
import NIOCore

/// The router: a long-polling fetch per partition leader over every partition of the Kafka
/// topics MQTT maps to (this node's own in process, another broker's over the inter-broker
/// listener), each record handed to the sessions subscribed to its MQTT topic. Messages from MQTT
/// clients and records from Kafka producers take the same way to subscribers. The retained and
/// sessions topics are read the same way: what other nodes of a cluster write there reaches this
/// one.
extension MQTTGateway {
    func startRouting() {
        loop.execute { self.superviseRouting() }
        let interval = settings.sessionSaveIntervalMs
        if interval > 0 {
            loop.scheduleRepeatedTask(initialDelay: .milliseconds(interval), delay: .milliseconds(interval)) { task in
                guard self.running.withLockedValue({ $0 }) else { return task.cancel() }
                self.saveProgress()
            }
        }
    }

    func stop() {
        running.withLockedValue { $0 = false }
        loop.execute { self.scope.close() }
    }

    /// How often the router looks whether a partition's leader changed (sooner after an error).
    static let superviseInterval = TimeAmount.milliseconds(250)

    /// Refreshes the partitions and their leaders when due, and starts a fetch loop for each
    /// leader that has none.
    func superviseRouting() {
        guard running.withLockedValue({ $0 }) else { return }
        let state = router.value
        let now = NIODeadline.now()
        // Until the sessions topic exists, sooner: another node's first session makes it.
        let interval = peers != nil && state.leaders[settings.sessionsTopic] == nil ? .seconds(1) : Self.refreshInterval
        guard state.refreshSoon || !state.scanned || now - state.lastRefresh >= interval else {
            startFetchLoops()
            return superviseAfter()
        }
        state.refreshSoon = false
        state.lastRefresh = now
        refreshPartitions().whenComplete { result in
            if case .failure(let error) = result { Self.warnings.warn(self.logger, "MQTT router: cannot list its partitions: \(error)") }
            self.adoptOrphanedSessions()
            self.startFetchLoops()
            self.superviseAfter()
        }
    }

    func superviseAfter() {
        loop.scheduleTask(in: Self.superviseInterval) { self.superviseRouting() }
    }

    func startFetchLoops() {
        let state = router.value
        for leader in Set(state.leaders.values.flatMap(\.values)).subtracting(state.loops).sorted() {
            state.loops.insert(leader)
            fetchNext(from: leader)
        }
    }

    /// One long-polling Fetch to `leader` for the partitions it leads, then the next; the loop
    /// ends when it leads none of them.
    func fetchNext(from leader: NodeID) {
        let state = router.value
        guard running.withLockedValue({ $0 }) else { return }
        var reading: [String: [Int32: Offset]] = [:]
        for (topic, partitions) in state.positions {
            for (index, offset) in partitions where state.leaders[topic]?[index] == leader { reading[topic, default: [:]][index] = offset }
        }
        let sent = reading
        guard !sent.isEmpty else {
            state.loops.remove(leader)
            return
        }
        // Paced by the connected clients: while one's queue is past its limit, wait for it to
        // drain (a while at most: a client that stays behind then loses messages, not everyone).
        let now = NIODeadline.now()
        let backlog = sessions.withLockedValue { Array($0.values) }.reduce(0) { max($0, $1.connectedBacklog) }
        if backlog > settings.queuedMessagesMax {
            let since = state.pacingSince ?? now
            state.pacingSince = since
            if now - since < Self.routerPaceMax { return fetchAfter(.milliseconds(5), from: leader) }
        } else {
            state.pacingSince = nil
        }
        let request = FetchRequest(replicaId: NodeID(-1), maxWaitMs: Self.fetchWaitMs, minBytes: 1, maxBytes: Self.fetchBytesMax,
                                   isolationLevel: 1, topics: sent.sorted { $0.key < $1.key }.map { topic, partitions in
                                       .init(topic: topic, partitions: partitions.sorted { $0.key < $1.key }.map { index, offset in
                                           .init(partition: index, fetchOffset: offset, partitionMaxBytes: Self.partitionFetchBytesMax)
                                       })
                                   })
        send(request, version: 12, to: leader, scope: scope, lane: .fetches).whenComplete { result in
            switch result {
            case .success(let answer):
                let failed = self.route(answer, from: leader, sent: sent)
                self.commitShareGroups()
                self.fetchAfter(failed ? Self.retryBackoff : .zero, from: leader)
            case .failure(let error):
                Self.warnings.warn(self.logger, "MQTT router: fetch from broker \(leader) failed: \(error)")
                self.router.value.refreshSoon = true
                self.fetchAfter(.seconds(1), from: leader)
            }
        }
    }

    func fetchAfter(_ delay: TimeAmount, from leader: NodeID) {
        if delay == .zero { loop.execute { self.fetchNext(from: leader) } } else { loop.scheduleTask(in: delay) { self.fetchNext(from: leader) } }
    }

    /// The offset after the last batch of fetched bytes (`from` when there is none).
    static func nextOffset(after bytes: ByteBuffer, from: Offset) -> Offset {
        var next = from
        _ = bytes.withUnsafeReadableBytes { raw in
            RecordBatchHeader.forEachBatch(in: raw) { header, _ in next = max(next, header.nextOffset) }
        }
        return next
    }

    /// Hands what a fetch from `leader` brought to the sessions (the retained and sessions
    /// topics' records to the gateway) and moves the positions past it. A partition that moved
    /// meanwhile (to another leader, or read on by another loop) is left alone. True when a
    /// partition answered an error.
    func route(_ answer: FetchResponse, from leader: NodeID, sent: [String: [Int32: Offset]]) -> Bool {
        let state = router.value
        let now = broker.clock.now().ms
        var messages: [MQTTSession.Message] = []
        var failed = false
        for topic in answer.responses {
            for partition in topic.partitions {
                let index = partition.partitionIndex
                guard let from = sent[topic.topic]?[index], state.positions[topic.topic]?[index] == from,
                      state.leaders[topic.topic]?[index] == leader else { continue }
                let code = ErrorCode(rawValue: partition.errorCode)
                if code == .offsetOutOfRange {
                    // Retention passed the position: go on from the log start (or the end, when ahead).
                    state.positions[topic.topic]?[index] = from < partition.logStartOffset ? partition.logStartOffset : partition.highWatermark
                    continue
                }
                guard code == .none else {
                    // Not read again until a refresh names its leader.
                    state.leaders[topic.topic]?[index] = nil
                    state.refreshSoon = true
                    failed = true
                    continue
                }
                guard case .bytes(let bytes)? = partition.records, bytes.readableBytes > 0 else { continue }
                do {
                    for record in try RecordDecoding.decode(bytes, topic: topic.topic, partition: index, from: from,
                                                            aborted: Self.aborted(partition.abortedTransactions)).records {
                        if topic.topic == settings.retainedTopic {
                            retainedRecordRead(record, nowMs: now)
                        } else if topic.topic == settings.sessionsTopic {
                            sessionRecordRead(record)
                        } else if var message = MQTTRecords.message(record, nowMs: now) {
                            message.shard = index
                            message.source = .init(topic: topic.topic, partition: index, offset: record.offset.value)
                            messages.append(message)
                        }
                    }
                } catch {
                    Self.warnings.warn(logger, "MQTT router: records of \(topic.topic)-\(index) at \(from): \(error)")
                }
                state.positions[topic.topic]?[index] = Self.nextOffset(after: bytes, from: from)
            }
        }
        if !messages.isEmpty {
            let boxes = sessions.withLockedValue { $0 }
            for box in boxes.values { box.offer(messages, stats: stats, nowMs: now) }
            routeShared(messages, boxes: boxes, nowMs: now)
        }
        // After the offers: a session saved now resumes from what it was offered.
        routedUpTo.withLockedValue { $0 = state.positions }
        return failed
    }

    /// Each message of a shared subscription goes to one session of its group: the one its Kafka
    /// partition falls to among the members of every node (so the members split the partitions,
    /// as a consumer group's do), or, when that one is this node's and its client is away, the
    /// next of this node's connected ones. A message falling to another node's member is that
    /// node's to deliver.
    func routeShared(_ messages: [MQTTSession.Message], boxes: [String: MQTTSessionBox], nowMs: Int64) {
        let shares = self.shares.withLockedValue { $0 }
        let elsewhere = sharesElsewhere.withLockedValue { $0 }
        for (key, share) in shares where !share.members.isEmpty {
            let members = elsewhere[key].map { Set(share.members).union($0).sorted() } ?? share.members
            for message in messages where MQTTTopic.matches(filter: share.filter, name: message.topic) {
                let start = Int(message.shard) % members.count
                guard let first = boxes[members[start]] else { continue }
                var chosen = first
                if !first.isConnected {
                    for step in 1..<max(1, members.count) {
                        if let box = boxes[members[(start + step) % members.count]], box.isConnected {
                            chosen = box
                            break
                        }
                    }
                }
                chosen.offerShared(message, key: key, stats: stats, nowMs: nowMs)
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
        // Each node commits the partitions it leads (every node reads them all).
        let mapped = Set(mapping.kafkaTopics)
        let topics: [OffsetCommitRequest.OffsetCommitRequestTopic] = state.positions.filter { mapped.contains($0.key) }.sorted { $0.key < $1.key }
            .compactMap { topic, partitions in
                let led = partitions.filter { state.leaders[topic]?[$0.key] == node }
                return led.isEmpty ? nil : .init(name: topic, partitions: led.sorted { $0.key < $1.key }.map {
                    .init(partitionIndex: $0.key, committedOffset: $0.value)
                })
            }
        guard !topics.isEmpty else { return }
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

    /// A read_committed answer's aborted transactions as the decoder takes them.
    static func aborted(_ list: [FetchResponse.FetchableTopicResponse.PartitionData.AbortedTransaction]?) -> [(producer: ProducerID, firstOffset: Offset)]? {
        list.map { $0.map { (producer: $0.producerId, firstOffset: $0.firstOffset) } }
    }

    /// Finds the partitions of the mapped topics and of the retained and sessions topics, and
    /// their leaders. A mapped topic's partitions seen at the first look are read from their end
    /// (the node's start); later ones, new, from their start, as are the retained and sessions
    /// topics' partitions not read at the start.
    func refreshPartitions() -> EventLoopFuture<Void> {
        // The sessions topic only in a cluster: alone, every record there is this node's own.
        let followed = Array(Set(mapping.kafkaTopics + [settings.retainedTopic] + (peers != nil ? [settings.sessionsTopic] : []))).sorted()
        let lookup = MetadataRequest(topics: followed.map { .init(name: $0) }, allowAutoTopicCreation: false)
        return kafka.send(lookup, version: 12, scope: scope).flatMap { answer in
            let state = self.router.value
            let first = !state.scanned
            state.scanned = true
            var fresh: [NodeID: [(topic: String, index: Int32, timestamp: Int64)]] = [:]
            for topic in answer.topics where topic.errorCode == 0 {
                guard let name = topic.name else { continue }
                let leaders = Self.leaders(of: topic)
                self.topicLeaders.withLockedValue { $0[name] = leaders }
                let special = name == self.settings.retainedTopic || name == self.settings.sessionsTopic
                if first && !special { state.countsAtStart[name] = Int32(leaders.count) }
                var known: [Int32: NodeID] = [:]
                for (index, leader) in leaders.enumerated() where leader.value >= 0 {
                    let index = Int32(index)
                    known[index] = leader
                    guard state.positions[name]?[index] == nil else { continue }
                    let atStart = !special && index < state.countsAtStart[name, default: 0]
                    fresh[leader, default: []].append((name, index, atStart ? -1 : -2))
                }
                state.leaders[name] = known
            }
            guard !fresh.isEmpty else {
                self.routedUpTo.withLockedValue { $0 = state.positions }
                return self.loop.makeSucceededFuture(())
            }
            let asked = fresh.sorted { $0.key < $1.key }.map { leader, entries in
                let request = ListOffsetsRequest(replicaId: NodeID(-1), isolationLevel: 1, topics: Dictionary(grouping: entries, by: \.topic).sorted { $0.key < $1.key }.map { topic, entries in
                    .init(name: topic, partitions: entries.map { .init(partitionIndex: $0.index, timestamp: $0.timestamp) })
                })
                return self.send(request, version: 7, to: leader, scope: self.scope).map { offsets in
                    let state = self.router.value
                    for topic in offsets.topics {
                        for partition in topic.partitions where partition.errorCode == 0 && state.positions[topic.name]?[partition.partitionIndex] == nil {
                            state.positions[topic.name, default: [:]][partition.partitionIndex] = partition.offset
                        }
                    }
                    self.routedUpTo.withLockedValue { $0 = state.positions }
                }.recover { error in
                    Self.warnings.warn(self.logger, "MQTT router: offsets from broker \(leader): \(error)")
                }
            }
            return EventLoopFuture.andAllComplete(asked, on: self.loop)
        }
    }

    /// The latest record of each key of a compacted topic (tombstones removing theirs), read from
    /// its start to its end from each partition's leader; at the node's start, before MQTT
    /// clients are taken. The router reads on from where this ended.
    func readCompacted(_ topic: String, timeout: TimeAmount = .seconds(30)) -> [String: ConsumedRecord] {
        let deadline = NIODeadline.now() + timeout
        let promise = loop.makePromise(of: [String: ConsumedRecord].self)
        loop.execute {
            let lookup = MetadataRequest(topics: [.init(name: topic)], allowAutoTopicCreation: false)
            self.kafka.send(lookup, version: 12, scope: self.scope).whenComplete { result in
                guard case .success(let answer) = result, let found = answer.topics.first, found.errorCode == 0 else { return promise.succeed([:]) }
                let leaders = Self.leaders(of: found).enumerated().filter { $0.element.value >= 0 }
                let reading = Dictionary(grouping: leaders, by: \.element).mapValues { entries in
                    Dictionary(uniqueKeysWithValues: entries.map { (Int32($0.offset), Offset(0)) })
                }
                let reads = reading.sorted { $0.key < $1.key }.map { leader, positions in
                    let done = self.loop.makePromise(of: [Int32: ([String: ConsumedRecord], Offset)].self)
                    self.readCompacted(topic, from: leader, positions: positions, deadline: deadline, into: [:], promise: done)
                    return done.futureResult
                }
                EventLoopFuture.whenAllComplete(reads, on: self.loop).whenSuccess { results in
                    // A key is in one partition only.
                    var latest: [String: ConsumedRecord] = [:]
                    let state = self.router.value
                    for case .success(let partitions) in results {
                        for (index, (records, end)) in partitions {
                            latest.merge(records) { _, new in new }
                            state.positions[topic, default: [:]][index] = end
                        }
                    }
                    promise.succeed(latest)
                }
            }
        }
        do {
            return try promise.futureResult.wait()
        } catch {
            logger.warning("MQTT: \(topic) not read: \(error)")
            return [:]
        }
    }

    /// Reads `positions`' partitions from `leader` to their ends: each finished partition's latest
    /// record of each key (tombstones too: a session's tombstone from another node says who let
    /// it go) and where it ended.
    private func readCompacted(_ topic: String, from leader: NodeID, positions: [Int32: Offset], deadline: NIODeadline,
                               into done: [Int32: ([String: ConsumedRecord], Offset)],
                               promise: EventLoopPromise<[Int32: ([String: ConsumedRecord], Offset)]>) {
        guard !positions.isEmpty else { return promise.succeed(done) }
        guard NIODeadline.now() < deadline else { return promise.fail(MQTTError(.unspecifiedError, "still reading \(topic) when the time was up")) }
        let request = FetchRequest(replicaId: NodeID(-1), maxWaitMs: 0, minBytes: 0, maxBytes: Self.fetchBytesMax, isolationLevel: 1,
                                   topics: [.init(topic: topic, partitions: positions.sorted { $0.key < $1.key }.map {
                                       .init(partition: $0.key, fetchOffset: $0.value, partitionMaxBytes: Self.partitionFetchBytesMax)
                                   })])
        send(request, version: 12, to: leader, scope: scope).whenComplete { result in
            guard case .success(let answer) = result else { return promise.succeed(done) }
            var positions = positions
            var done = done
            for partition in answer.responses.first?.partitions ?? [] {
                let index = partition.partitionIndex
                guard let from = positions[index] else { continue }
                guard partition.errorCode == 0 else {
                    positions[index] = nil
                    continue
                }
                var latest = done[index]?.0 ?? [:]
                var next = from
                if case .bytes(let bytes)? = partition.records, bytes.readableBytes > 0 {
                    next = Self.nextOffset(after: bytes, from: from)
                    for record in (try? RecordDecoding.records(in: bytes, topic: topic, partition: index, from: from)) ?? [] {
                        guard let key = record.key, let name = String(validating: key, as: UTF8.self) else { continue }
                        latest[name] = record
                    }
                }
                let finished = next >= partition.highWatermark || next == from
                done[index] = (latest, next)
                positions[index] = finished ? nil : next
            }
            self.readCompacted(topic, from: leader, positions: positions, deadline: deadline, into: done, promise: promise)
        }
    }

    /// A retained topic record (read by the router): what any node of the cluster retained.
    func retainedRecordRead(_ record: ConsumedRecord, nowMs: Int64) {
        guard let key = record.key, let name = String(validating: key, as: UTF8.self) else { return }
        guard record.value != nil, let message = MQTTRecords.message(record, nowMs: nowMs) else {
            retained.withLockedValue { $0.remove(name) }
            return
        }
        keepRetained(message)
    }

    /// Retained messages from their topic (at the node's start).
    func loadRetained() {
        let now = broker.clock.now().ms
        for (_, record) in readCompacted(settings.retainedTopic).sorted(by: { $0.key < $1.key }) where record.value != nil {
            retainedRecordRead(record, nowMs: now)
        }
        let loaded = retainedCount
        if loaded > 0 { logger.info("MQTT: \(loaded) retained messages read from \(settings.retainedTopic)") }
    }

}

/// A restored session (after a restart, taken up from another node, or from a node that left)
/// is offered again what it had not acknowledged: its partitions read from where its record
/// says up to where the router was when the session appeared here (the router offers it the
/// rest), its subscriptions choosing the messages (QoS 1 and 2 only, as for any session without
/// its client). At least once: a message acknowledged out of order may come again.
extension MQTTGateway {
    /// How long a replay waits for the router to know a partition (at a start, its first look).
    static let replayWait = TimeAmount.seconds(30)

    /// `resume`: the session record's (none in records from before there was one: no replay).
    /// A partition it does not name did not exist (or was not known) when the session was saved:
    /// read from its start.
    func replay(_ box: MQTTSessionBox, from resume: [MQTTSession.Snapshot.Resume]?) {
        guard let resume, box.state.withLockedValue({ s in
            guard !s.session.subscriptions.isEmpty else { return false }
            s.replaying = resume
            return true
        }) else { return box.replayEnded() }
        let until = routedUpTo.withLockedValue { $0 } ?? [:]
        let deadline = NIODeadline.now() + Self.replayWait
        loop.execute { self.startReplay(box, resume, until: until, deadline: deadline) }
    }

    /// Once the router knows the partitions (its first look, at a start).
    private func startReplay(_ box: MQTTSessionBox, _ resume: [MQTTSession.Snapshot.Resume], until: [String: [Int32: Offset]],
                             deadline: NIODeadline) {
        let state = router.value
        guard state.scanned else {
            guard NIODeadline.now() < deadline else { return box.replayEnded() }
            loop.scheduleTask(in: .milliseconds(100)) { self.startReplay(box, resume, until: until, deadline: deadline) }
            return
        }
        var parts: [MQTTSession.Snapshot.Resume] = []
        for topic in mapping.kafkaTopics {
            let named = Dictionary(resume.filter { $0.topic == topic }.map { ($0.partition, $0.offset) }) { a, _ in a }
            let known = Set(state.leaders[topic]?.keys.map { $0 } ?? []).union(named.keys)
            parts += known.sorted().map { .init(topic: topic, partition: $0, offset: named[$0] ?? 0) }
        }
        replay(box, parts[...], until: until, deadline: deadline)
    }

    private func replay(_ box: MQTTSessionBox, _ parts: ArraySlice<MQTTSession.Snapshot.Resume>, until: [String: [Int32: Offset]],
                        deadline: NIODeadline) {
        guard running.withLockedValue({ $0 }), let part = parts.first else { return box.replayEnded() }
        let state = router.value
        let next = { self.replay(box, parts.dropFirst(), until: until, deadline: deadline) }
        // Where the router was when the session appeared; at a start, where it begins.
        guard let end = until[part.topic]?[part.partition] ?? state.positions[part.topic]?[part.partition],
              let leader = state.leaders[part.topic]?[part.partition] else {
            guard NIODeadline.now() < deadline else { return next() }
            loop.scheduleTask(in: .milliseconds(100)) { self.replay(box, parts, until: until, deadline: deadline) }
            return
        }
        guard part.offset < end.value, box.state.withLockedValue({ $0.session.queuedCount < $0.session.queuedMessagesMax }),
              sessions.withLockedValue({ $0[box.clientID] === box }) else { return next() }
        let request = FetchRequest(replicaId: NodeID(-1), maxWaitMs: 0, minBytes: 0, maxBytes: Self.fetchBytesMax, isolationLevel: 1,
                                   topics: [.init(topic: part.topic, partitions: [
                                       .init(partition: part.partition, fetchOffset: Offset(part.offset), partitionMaxBytes: Self.partitionFetchBytesMax),
                                   ])])
        send(request, version: 12, to: leader, scope: scope).whenComplete { result in
            if case .success(let answer) = result, let data = answer.responses.first?.partitions.first,
               data.errorCode == ErrorCode.offsetOutOfRange.rawValue, data.logStartOffset.value > part.offset {
                // Retention passed it: from the log's start.
                var rest = parts
                rest[rest.startIndex].offset = data.logStartOffset.value
                return self.replay(box, rest, until: until, deadline: deadline)
            }
            guard case .success(let answer) = result, let data = answer.responses.first?.partitions.first, data.errorCode == 0,
                  case .bytes(let bytes)? = data.records, bytes.readableBytes > 0 else {
                Self.warnings.warn(self.logger, "MQTT session \(box.clientID): \(part.topic)-\(part.partition) not read again from \(part.offset)")
                return next()
            }
            let now = self.broker.clock.now().ms
            var messages: [MQTTSession.Message] = []
            let fetched = try? RecordDecoding.decode(bytes, topic: part.topic, partition: part.partition, from: Offset(part.offset),
                                                     aborted: Self.aborted(data.abortedTransactions))
            for record in fetched?.records ?? [] where record.offset < end {
                guard var message = MQTTRecords.message(record, nowMs: now) else { continue }
                message.shard = part.partition
                message.source = .init(topic: part.topic, partition: part.partition, offset: record.offset.value)
                messages.append(message)
            }
            box.offer(messages, stats: self.stats, nowMs: now)
            let reached = Self.nextOffset(after: bytes, from: Offset(part.offset))
            guard reached.value > part.offset else { return next() }
            var rest = parts
            rest[rest.startIndex].offset = reached.value
            self.replay(box, rest, until: until, deadline: deadline)
        }
    }
}
