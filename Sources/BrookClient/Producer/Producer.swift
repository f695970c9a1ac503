import BrookCore
import BrookProtocol
import BrookRecords
import NIOCore
import Synchronization

/// A record to send.
public struct ProducerRecord: Sendable {
    public var topic: String
    /// nil: by the key's murmur2 hash (as the Java client), or sticky for a record without a key.
    public var partition: Int32?
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [SimpleRecord.Header]
    /// nil: the time of `send`.
    public var timestamp: Timestamp?

    public init(topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: [UInt8]?,
                headers: [SimpleRecord.Header] = [], timestamp: Timestamp? = nil) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }
}

/// A Kafka producer in Swift: records batched per partition and sent to each partition's
/// leader, idempotent by default, retried across leader moves, with the memory it holds bounded.
///
/// ```swift
/// let producer = KafkaProducer(ProducerConfig(bootstrapServers: ["127.0.0.1:9092"]))
/// let delivery = try await producer.send(ProducerRecord(topic: "events", key: Array("k".utf8), value: Array("v".utf8)))
/// let written = try await delivery.metadata   // partition and offset
/// await producer.close()
/// ```
///
/// `send` returns once the record is queued (waiting while `buffer.memory` is full); its
/// `Delivery` tells when it is written. Up to `max.in.flight.requests.per.connection` batches
/// of a partition are in flight (5 by default), written to its leader's connection in order; an
/// idempotent producer's partition keeps them in order when one fails (without idempotence a
/// batch sent again may land behind those after it, as with the Java client). Call `close` when
/// done: it sends what is queued and ends the sender.
public actor KafkaProducer {
    public nonisolated let config: ProducerConfig
    let cluster: ClusterClient
    var accumulator: RecordAccumulator<Delivery>
    var partitioner: StickyPartitioner
    var topics: [String: TopicLeaders] = [:]
    /// Why the producer cannot go on (a refused InitProducerId): every send fails with it.
    var fatal: ProduceError?
    var sender: Task<Void, Never>?
    /// Per leader, the queue its batches are written from, in the order they were handed out.
    var nodeQueues: [NodeID: NodeQueue] = [:]
    var closing = false
    var lastRefreshMs = Int64.min / 2
    let clock = ElapsedClock()
    // The sender's sleep and what wakes it.
    var sleeper: CheckedContinuation<Void, Never>?
    var rung = false
    /// When the sender's pending timer fires (nil: none pending).
    var timerAtMs: Int64?
    /// Sends waiting for room in `buffer.memory`.
    var completionWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    /// Flushes waiting for their batches (each looks again at every completion).
    var flushWaiters: [CheckedContinuation<Void, Never>] = []
    var nextWaiter: UInt64 = 0
    /// Where the producer is in its transactions (with `transactional.id`).
    var transaction: TransactionState
    var transactionCoordinator: NodeID?

    struct NodeQueue {
        let batches: AsyncStream<[RecordAccumulator<Delivery>.Batch]>.Continuation
        let writer: Task<Void, Never>
        /// Batches handed to the writer and not written yet: while there are any, the next go
        /// through it too (so a leader's requests are written in the order of their batches).
        let backlog: Backlog
        /// The requests written and their answers, to the reader.
        let inbox: AnswerInbox<Written>
        /// Takes the answers to the leader's requests, in the order they were written (a
        /// connection answers in order), and hands them to `completed`: one task per leader,
        /// not one per request, on the actor.
        let reader: Task<Void, Never>
    }

    /// A request written, its answer still to come (or why it could not be written).
    struct Written: Sendable {
        let batches: [RecordAccumulator<Delivery>.Batch]
        let pending: Result<PendingAnswer<ProduceResponse>, any Error>
        let unbuildable: [(RecordAccumulator<Delivery>.Batch, ProduceError)]
    }

    /// The count of a writer's arrays of batches not written yet.
    final class Backlog: Sendable {
        let count = Atomic<Int>(0)
    }

    /// A request's batches, sealed.
    typealias Request = (batches: [RecordAccumulator<Delivery>.Batch], request: ProduceRequest)

    struct TopicLeaders {
        /// By partition; nil while the partition has no known leader.
        var leaders: [NodeID?] {
            didSet { available = leaders.indices.filter { leaders[$0] != nil }.map(Int32.init) }
        }
        var fetchedMs: Int64
        /// The partitions with a leader (where keyless records go).
        private(set) var available: [Int32]

        init(leaders: [NodeID?], fetchedMs: Int64) {
            self.leaders = leaders
            self.fetchedMs = fetchedMs
            available = leaders.indices.filter { leaders[$0] != nil }.map(Int32.init)
        }
    }

    /// A producer whose connections are opened by `connect` (with TLS or SASL as the caller
    /// wants them).
    public init(_ config: ProducerConfig, connect: @escaping ClusterClient.Connect) {
        self.config = config
        cluster = ClusterClient(bootstrap: config.bootstrapServers, requestTimeoutMs: Int64(config.requestTimeoutMs), connect: connect)
        accumulator = RecordAccumulator(config.accumulator)
        partitioner = StickyPartitioner(batchBytes: config.batchBytes)
        transaction = config.transactionalID == nil ? .notTransactional : .uninitialized
    }

    /// A producer over plain connections, or with `sasl` and `tls` when given.
    public init(_ config: ProducerConfig, sasl: SaslCredentials? = nil, tls: ClientTLS? = nil) {
        let clientID = config.clientID
        self.init(config) { address in
            try await BrokerConnection.connect(address, clientID: clientID, sasl: sasl, tls: tls)
        }
    }

    func nowMs() -> Int64 { clock.nowMs() }

    /// Queues `record` for its partition's leader; waits (up to `max.block.ms`) for the topic's
    /// metadata and for room in `buffer.memory`.
    public func send(_ record: ProducerRecord) async throws -> Delivery {
        var cache: KnownTopic?
        let now = nowMs()
        let delivery = Delivery()
        let placement = try place(record, as: delivery, nowMs: now, timestamp: SystemClock().now(), cache: &cache)
        if case .queued = placement { return delivery }
        return try await finish(placement, record, as: delivery, deadline: now + config.maxBlockMs)
    }

    /// Queues `records` in order, in one call (cheaper than a `send` each: the records that can
    /// go at once are queued without suspending, with one clock reading and one metadata lookup
    /// for a run of records to the same topic). A record that cannot be queued (the reasons
    /// `send` throws for) gets a delivery that failed already; the others go on.
    public func send(contentsOf records: [ProducerRecord]) async -> [Delivery] {
        guard !records.isEmpty else { return [] }
        // One object holds the reports of all of them.
        let reports = DeliveryReports(count: records.count)
        var deliveries: [Delivery] = []
        deliveries.reserveCapacity(records.count)
        var cache: KnownTopic?
        var now = nowMs()
        var timestamp = SystemClock().now()
        for (index, record) in records.enumerated() {
            let delivery = Delivery(reports, index)
            deliveries.append(delivery)
            do {
                let placement = try place(record, as: delivery, nowMs: now, timestamp: timestamp, cache: &cache)
                if case .queued = placement { continue }
                _ = try await finish(placement, record, as: delivery, deadline: now + config.maxBlockMs)
            } catch {
                // Not queued: its report is the reason.
                delivery.complete(.failure(error as? ProduceError ?? ProduceError(nil, "\(error)")))
            }
            // The producer was left (or may have been): what it knew may have changed.
            cache = nil
            now = nowMs()
            timestamp = SystemClock().now()
        }
        return deliveries
    }

    /// A topic's leaders as last looked up, for the next record of a `send(contentsOf:)`.
    struct KnownTopic {
        let name: String
        let leaders: TopicLeaders
    }

    /// How far `place` got with a record.
    enum Placement {
        /// In its partition's batch.
        case queued
        /// Its partition is known: it waits for room (or, `join`, for the partition to be added
        /// to the open transaction first).
        case placed(SimpleRecord, TopicPartition, join: Bool)
        /// The topic's metadata is unknown or old, or the partition asked for beyond it.
        case needsMetadata
    }

    /// What `send` does without suspending: the checks (throwing at once what it throws), the
    /// partition (from the metadata at hand) and the record queued if `buffer.memory` has room.
    /// `delivery`: the record's report, which its batch fills in.
    func place(_ record: ProducerRecord, as delivery: Delivery, nowMs now: Int64, timestamp: Timestamp, cache: inout KnownTopic?) throws -> Placement {
        if let fatal { throw fatal }
        guard !closing else { throw ProduceError(nil, "the producer is closed") }
        let simple = SimpleRecord(key: record.key, value: record.value, headers: record.headers, timestamp: record.timestamp ?? timestamp)
        let bytes = RecordAccumulator<Delivery>.bytes(of: simple)
        let largest = min(config.maxRequestBytes, config.bufferBytes) - RecordAccumulator<Delivery>.Batch.overheadBytes
        guard bytes <= largest else {
            throw ProduceError(.messageTooLarge, "a record of about \(bytes) bytes is larger than max.request.size or buffer.memory allows (\(largest))")
        }
        let known: TopicLeaders
        if let cached = cache, cached.name == record.topic {
            known = cached.leaders
        } else {
            guard let found = topics[record.topic], now - found.fetchedMs < config.metadataMaxAgeMs else { return .needsMetadata }
            known = found
            cache = KnownTopic(name: record.topic, leaders: found)
        }
        let count = Int32(known.leaders.count)
        let partition: Int32
        if let chosen = record.partition {
            guard chosen >= 0 else {
                throw ProduceError(.unknownTopicOrPartition, "\(record.topic) has \(count) partitions, not a partition \(chosen)")
            }
            // A partition beyond those known: the topic may have grown (as the Java client, the
            // metadata is asked again until max.block.ms).
            guard chosen < count else { return .needsMetadata }
            partition = chosen
        } else if let key = record.key {
            partition = Partitioner.partition(forKey: key, count: count)
        } else {
            partition = partitioner.partition(topic: record.topic, count: count, available: known.available, bytes: bytes)
        }
        let target = TopicPartition(record.topic, partition)
        if config.transactionalID != nil {
            guard case .open(let added) = transaction, added.contains(target) else { return .placed(simple, target, join: true) }
        }
        startSender()
        guard case .added(let wake) = accumulator.append(simple, token: delivery, to: target, nowMs: now, bytes: bytes) else {
            return .placed(simple, target, join: false)
        }
        if wake { ring() }
        return .queued
    }

    /// The rest of `send` for a record `place` could not queue: the metadata asked, the
    /// partition added to the transaction, room in `buffer.memory` waited for, until `deadline`.
    func finish(_ placement: Placement, _ record: ProducerRecord, as delivery: Delivery, deadline: Int64) async throws -> Delivery {
        switch placement {
        case .queued:
            return delivery
        case .placed(let simple, let target, let join):
            if join { try await joinTransaction(target) }
            try await enqueue(simple, as: delivery, to: target, deadline: deadline)
            return delivery
        case .needsMetadata:
            var leaders = try await partitions(of: record.topic, until: deadline)
            while let chosen = record.partition, chosen >= Int32(leaders.count), nowMs() < deadline {
                _ = try? await refresh([record.topic])
                if let known = topics[record.topic] { leaders = known.leaders }
                if chosen >= Int32(leaders.count) { try await Task.sleep(for: .milliseconds(max(config.retryBackoffMs, 10))) }
            }
            if let chosen = record.partition, chosen >= Int32(leaders.count) {
                throw ProduceError(.unknownTopicOrPartition, "\(record.topic) has \(leaders.count) partitions, not a partition \(chosen)")
            }
            // The metadata is fresh (unless max.block.ms is spent, and then it is an error anyway).
            var cache: KnownTopic? = KnownTopic(name: record.topic, leaders: topics[record.topic] ?? TopicLeaders(leaders: leaders, fetchedMs: nowMs()))
            let again = try place(record, as: delivery, nowMs: nowMs(), timestamp: SystemClock().now(), cache: &cache)
            if case .needsMetadata = again { preconditionFailure("a record placed twice without metadata") }
            return try await finish(again, record, as: delivery, deadline: deadline)
        }
    }

    /// Adds a placed record to its partition's batch, waiting (until `deadline`) while
    /// `buffer.memory` has no room.
    func enqueue(_ simple: SimpleRecord, as delivery: Delivery, to target: TopicPartition, deadline: Int64) async throws {
        startSender()
        while true {
            if let fatal { throw fatal }
            // `close` may have flushed while this send waited (for metadata or room).
            guard !closing else { throw ProduceError(nil, "the producer is closed") }
            let now = nowMs()
            switch accumulator.append(simple, token: delivery, to: target, nowMs: now) {
            case .added(let wake):
                if wake { ring() }
                return
            case .noRoom:
                guard now < deadline else {
                    throw ProduceError(nil, "buffer.memory (\(config.bufferBytes) bytes) stayed full for max.block.ms")
                }
                // Open batches go now rather than linger while this send waits for their room.
                if !accumulator.roomWanted {
                    accumulator.roomWanted = true
                    ring()
                }
                await waitForCompletion(untilMs: deadline)
            }
        }
    }

    /// Sends every record queued so far now (without waiting out `linger.ms`) and waits until
    /// each of them is written or failed (records sent meanwhile are not waited for).
    public func flush() async {
        let mark = accumulator.flush()
        ring()
        while accumulator.hasBatches(before: mark) {
            await withCheckedContinuation { flushWaiters.append($0) }
        }
    }

    /// Sends what is queued, waits for it, and closes the connections. Sends after this fail.
    public func close() async {
        closing = true
        await flush()
        ring()
        await sender?.value
        sender = nil
        for queue in nodeQueues.values { queue.batches.finish() }
        for queue in nodeQueues.values {
            await queue.writer.value
            await queue.reader.value
        }
        nodeQueues.removeAll()
        await cluster.close()
    }

    // MARK: metadata

    /// The leaders of `topic`'s partitions, asked of the cluster when unknown or old.
    func partitions(of topic: String, until deadline: Int64) async throws -> [NodeID?] {
        var why = "not in the cluster's metadata"
        while true {
            if let known = topics[topic], nowMs() - known.fetchedMs < config.metadataMaxAgeMs { return known.leaders }
            do {
                if let refused = try await refresh([topic])[topic] {
                    why = "\(refused)"
                    if refused == .topicAuthorizationFailed || refused == .invalidTopicException {
                        throw ProduceError(refused, "topic \(topic): \(refused)")
                    }
                }
            } catch let error as ProduceError { throw error } catch { why = "\(error)" }
            if let known = topics[topic] { return known.leaders }
            guard nowMs() < deadline else {
                throw ProduceError(.unknownTopicOrPartition, "topic \(topic) within max.block.ms (\(config.maxBlockMs) ms): \(why)")
            }
            try await Task.sleep(for: .milliseconds(max(config.retryBackoffMs, 10)))
        }
    }

    /// Asks for `names`' metadata; returns the topics the cluster answered with an error for.
    @discardableResult
    func refresh(_ names: [String]) async throws -> [String: ErrorCode] {
        lastRefreshMs = nowMs()
        let answer = try await cluster.metadata(topics: names, allowAutoTopicCreation: config.allowAutoCreateTopics)
        var refused: [String: ErrorCode] = [:]
        for topic in answer.topics {
            guard let name = topic.name else { continue }
            guard topic.errorCode == 0, !topic.partitions.isEmpty else {
                refused[name] = ErrorCode(rawValue: topic.errorCode)
                continue
            }
            let count = Int(topic.partitions.map(\.partitionIndex).max() ?? -1) + 1
            var leaders = [NodeID?](repeating: nil, count: count)
            for p in topic.partitions where p.partitionIndex >= 0 && p.leaderId.value >= 0 {
                leaders[Int(p.partitionIndex)] = p.leaderId
            }
            topics[name] = TopicLeaders(leaders: leaders, fetchedMs: nowMs())
        }
        return refused
    }

    func leader(of partition: TopicPartition) -> NodeID? {
        guard let known = topics[partition.topic], partition.partition < known.leaders.count else { return nil }
        return known.leaders[Int(partition.partition)]
    }

    /// `partition`'s leader is unknown until the next metadata (or a hint names it).
    func forgetLeader(of partition: TopicPartition, hint: NodeID?) {
        guard var known = topics[partition.topic], partition.partition < known.leaders.count else { return }
        known.leaders[Int(partition.partition)] = hint.flatMap { $0.value >= 0 ? $0 : nil }
        topics[partition.topic] = known
    }

    // MARK: the sender

    /// Starts the sender at the first record (or transaction) that needs it.
    func startSender() {
        if sender == nil { sender = Task { await self.run() } }
    }

    func run() async {
        while !(closing && accumulator.isEmpty) {
            let expired = accumulator.expire(nowMs: nowMs())
            if !expired.isEmpty {
                fail(expired, ProduceError(.requestTimedOut, "not written within delivery.timeout.ms (\(config.deliveryTimeoutMs) ms)"))
                resumeWaiters()
                resumeFlushWaiters()
            }
            if fatal != nil {
                break
            }
            if accumulator.needsProducer && !accumulator.isEmpty {
                // A transactional producer's id comes from initTransactions (and again from
                // abortTransaction after a failed batch): until then nothing is sent.
                if config.transactionalID != nil { await sleep(untilMs: nil) } else { await initProducer() }
                continue
            }
            let waiting = Set(accumulator.waitingPartitions.filter { leader(of: $0) == nil }.map(\.topic))
            if !waiting.isEmpty && nowMs() - lastRefreshMs >= config.retryBackoffMs {
                _ = try? await refresh(waiting.sorted())
            }
            let now = nowMs()
            // A drain takes one batch a partition (a request holds one of each): again while any
            // is taken, so the batches that answers arriving together made room for go in one
            // turn, not a wake-up each, and are written together. Each node's rounds are moved
            // out as they go (no copy kept here while they are sealed in place).
            var rounds: [NodeID: [[RecordAccumulator<Delivery>.Batch]]] = [:]
            while true {
                let drained = accumulator.drain(nowMs: now, leader: { leader(of: $0) })
                if drained.isEmpty { break }
                for (node, batches) in drained { rounds[node, default: []].append(batches) }
            }
            for node in rounds.keys.sorted() { queue(rounds.removeValue(forKey: node)!, to: node) }
            var deadline = accumulator.nextDeadlineMs(leader: { leader(of: $0) })
            if accumulator.waitingPartitions.contains(where: { leader(of: $0) == nil }) {
                deadline = min(deadline ?? .max, nowMs() + max(config.retryBackoffMs, 10))
            }
            await sleep(untilMs: deadline)
        }
        // A fatal error: nothing more is sent; what waits fails with it.
        if let fatal { failEverything(fatal) }
    }

    /// A producer id for idempotent batches; a refusal that retrying cannot mend ends the producer.
    func initProducer() async {
        do {
            let answer = try await cluster.sendToAny(InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: 60_000))
            let code = ErrorCode(rawValue: answer.errorCode)
            if code == .none {
                accumulator.useProducer(answer.producerId, answer.producerEpoch)
                return
            }
            if !Self.retriable.contains(code) && code != .coordinatorNotAvailable && code != .notCoordinator && code != .coordinatorLoadInProgress {
                fatal = ProduceError(code, "InitProducerId refused (enable.idempotence=false does without it)")
                return
            }
        } catch {}
        await sleep(untilMs: nowMs() + max(config.retryBackoffMs, 10))
    }

    /// After a fatal error: every batch not in flight fails with it (those in flight fail as
    /// they come back), and every wait ends.
    func failEverything(_ error: ProduceError) {
        fail(accumulator.expire(nowMs: .max / 2), error)
        for waiter in completionWaiters.values { waiter.resume() }
        completionWaiters.removeAll()
        resumeFlushWaiters()
    }

    func resumeFlushWaiters() {
        let waiting = flushWaiters
        flushWaiters.removeAll()
        for waiter in waiting { waiter.resume() }
    }

    /// Hands `rounds` of batches (a round: at most one batch a partition) to `node`'s writer
    /// (started at its first batches). The queue holds what the accumulator handed out, so it
    /// is bounded by `buffer.memory`.
    ///
    /// Uncompressed batches (sealing them is a header and a CRC) are written from here when
    /// the writer has nothing left to write and the leader's connection is open, all rounds'
    /// requests together: a hop to the writer and its wake-up per request saved, which is most
    /// of a small batch's cost.
    func queue(_ rounds: consuming [[RecordAccumulator<Delivery>.Batch]], to node: NodeID) {
        if let open = nodeQueues[node], config.compression == .none, config.acks != 0,
           open.backlog.count.load(ordering: .acquiring) == 0, let connection = cluster.openConnection(to: node) {
            var requests: [Request] = []
            rounds.reverse()
            // Each round moved out of the array (its only holder): its batches are sealed in place.
            while var batches = rounds.popLast() {
                let (sealed, unbuildable) = seal(&batches)
                // Sealing without a codec cannot fail, and a drain hands out no empty array.
                precondition(unbuildable.isEmpty && sealed.allSatisfy { !$0.batches.isEmpty }, "an uncompressed request without its batches")
                requests += sealed
            }
            let timeoutMs = Int64(config.requestTimeoutMs) + 5_000
            switch Result(catching: { try connection.start(contentsOf: requests.map(\.request), timeoutMs: timeoutMs) }) {
            case .success(let pendings):
                for (request, pending) in zip(requests, pendings) {
                    open.inbox.push(Written(batches: request.batches, pending: .success(pending), unbuildable: []))
                }
            case .failure(let error):
                for request in requests { open.inbox.push(Written(batches: request.batches, pending: .failure(error), unbuildable: [])) }
            }
            return
        }
        if nodeQueues[node] == nil {
            let (stream, continuation) = AsyncStream.makeStream(of: [RecordAccumulator<Delivery>.Batch].self)
            let inbox = AnswerInbox<Written>()
            let backlog = Backlog()
            let writer = Task {
                // Each array taken from the stream is its only holder: the batches are sealed in place.
                var batches = stream.makeAsyncIterator()
                while var next = await batches.next() {
                    await self.produce(&next, to: node, inbox: inbox)
                    backlog.count.subtract(1, ordering: .releasing)
                }
                inbox.finish()
            }
            let reader = Task { await self.readAnswers(inbox, from: node) }
            nodeQueues[node] = NodeQueue(batches: continuation, writer: writer, backlog: backlog, inbox: inbox, reader: reader)
        }
        rounds.reverse()
        // Moved out one by one: the writer seals each array in place, as its only holder.
        while let batches = rounds.popLast() {
            nodeQueues[node]!.backlog.count.add(1, ordering: .relaxed)
            nodeQueues[node]!.batches.yield(batches)
        }
    }

    /// Seals a leader's batches, one per partition, into as few requests as
    /// `max.request.size` allows (a batch larger than that alone goes in its own); a batch that
    /// cannot be sealed (its codec failed) is handed back apart.
    nonisolated func seal(_ batches: inout [RecordAccumulator<Delivery>.Batch])
        -> (requests: [Request], unbuildable: [(RecordAccumulator<Delivery>.Batch, ProduceError)]) {
        var unbuildable: [(RecordAccumulator<Delivery>.Batch, ProduceError)] = []
        var groups: [[(batch: RecordAccumulator<Delivery>.Batch, bytes: ByteBuffer)]] = [[]]
        var requestBytes = 0
        for index in batches.indices {
            do {
                let bytes = try batches[index].seal(transactional: config.transactionalID != nil, compression: config.compression,
                                                    level: config.compressionLevel)
                let batch = batches[index]
                if !groups[groups.count - 1].isEmpty && requestBytes + bytes.readableBytes > config.maxRequestBytes {
                    groups.append([])
                    requestBytes = 0
                }
                groups[groups.count - 1].append((batch, bytes))
                requestBytes += bytes.readableBytes
            } catch {
                unbuildable.append((batches[index], ProduceError(nil, "cannot compress with \(config.compression): \(error)")))
            }
        }
        let requests = groups.map { contents -> Request in
            var byTopic: [String: [ProduceRequest.TopicProduceData.PartitionProduceData]] = [:]
            for (batch, bytes) in contents {
                byTopic[batch.partition.topic, default: []].append(.init(index: batch.partition.partition, records: .bytes(bytes)))
            }
            let request = ProduceRequest(transactionalId: config.transactionalID, acks: config.acks, timeoutMs: config.requestTimeoutMs,
                                         topicData: byTopic.sorted { $0.key < $1.key }.map { .init(name: $0.key, partitionData: $0.value) })
            return (contents.map(\.batch), request)
        }
        return (requests, unbuildable)
    }

    /// Writes one leader its batches, one per partition, in as few requests as
    /// `max.request.size` allows (a batch larger than that alone goes in its own), and returns
    /// once they are written to the connection: the answers are awaited apart, so the leader's
    /// next batches follow at once, in order. Runs off the actor: batches are sealed (their
    /// headers written in place, or their records compressed) here.
    nonisolated func produce(_ batches: inout [RecordAccumulator<Delivery>.Batch], to node: NodeID, inbox: AnswerInbox<Written>) async {
        let (requests, unbuildable) = seal(&batches)
        for (index, (contents, request)) in requests.enumerated() {
            let unbuilt = index == 0 ? unbuildable : []
            guard !contents.isEmpty, config.acks != 0 else {
                var outcome: Result<ProduceResponse?, any Error> = .success(nil)
                do {
                    if !contents.isEmpty { try await cluster.sendWithoutResponse(request, toNode: node) }
                } catch {
                    outcome = .failure(error)
                }
                await completed(contents, from: node, outcome, unbuildable: unbuilt)
                continue
            }
            let pending: PendingAnswer<ProduceResponse>
            do {
                pending = try await cluster.start(request, toNode: node, timeoutMs: Int64(config.requestTimeoutMs) + 5_000)
            } catch {
                await completed(contents, from: node, .failure(error), unbuildable: unbuilt)
                continue
            }
            inbox.push(Written(batches: contents, pending: .success(pending), unbuildable: unbuilt))
        }
    }

    /// Hands `node`'s answers to `completed` in the order their requests were written, those
    /// that came together in one turn (the sender then writes what they made room for at once).
    func readAnswers(_ inbox: AnswerInbox<Written>, from node: NodeID) async {
        while let answered = await inbox.next() {
            for entry in answered {
                let outcome: Result<ProduceResponse?, any Error>
                switch entry.item.pending {
                case .failure(let error):
                    outcome = .failure(error)
                case .success(let pending):
                    guard let answer = entry.answer else { preconditionFailure("an entry taken before its answer") }
                    do { outcome = .success(try await cluster.answer(pending, answer)) } catch { outcome = .failure(error) }
                }
                await completed(entry.item.batches, from: node, outcome, unbuildable: entry.item.unbuildable)
            }
        }
    }

    /// Codes a batch is sent again for (the Java client's retriable errors for Produce).
    static let retriable: Set<ErrorCode> = [
        .corruptMessage, .unknownTopicOrPartition, .leaderNotAvailable, .notLeaderOrFollower, .requestTimedOut,
        .networkException, .notEnoughReplicas, .notEnoughReplicasAfterAppend, .kafkaStorageError,
        .fencedLeaderEpoch, .unknownLeaderEpoch, .unknownTopicID,
    ]
    /// Codes that say the leader may have moved: ask the metadata again.
    static let leaderMoved: Set<ErrorCode> = [
        .unknownTopicOrPartition, .leaderNotAvailable, .notLeaderOrFollower, .fencedLeaderEpoch, .unknownLeaderEpoch,
        .unknownTopicID, .networkException, .kafkaStorageError,
    ]

    /// `node`: the leader the batches went to.
    func completed(_ batches: [RecordAccumulator<Delivery>.Batch], from node: NodeID, _ outcome: Result<ProduceResponse?, any Error>,
                   unbuildable: [(RecordAccumulator<Delivery>.Batch, ProduceError)]) async {
        let now = nowMs()
        for (batch, error) in unbuildable { retryOrFail(batch, retriable: false, error, nowMs: now) }
        var endpoints: [(NodeID, String)] = []
        switch outcome {
        case .failure(let error):
            for batch in batches {
                forgetLeader(of: batch.partition, hint: nil)
                retryOrFail(batch, retriable: true, fatal ?? ProduceError(.networkException, "\(error)"), nowMs: now)
            }
        case .success(nil):
            for batch in batches { deliver(batch, baseOffset: Offset(-1), logAppendTime: -1) }
        case .success(let answer?):
            endpoints = answer.nodeEndpoints.map { ($0.nodeId, ClusterClient.address($0.host, Int($0.port))) }
            var byPartition: [TopicPartition: ProduceResponse.TopicProduceResponse.PartitionProduceResponse] = [:]
            for topic in answer.responses {
                for p in topic.partitionResponses { byPartition[TopicPartition(topic.name, p.index)] = p }
            }
            for batch in batches {
                guard let p = byPartition[batch.partition] else {
                    retryOrFail(batch, retriable: true, ProduceError(.unknownServerError, "the broker did not answer for \(batch.partition)"), nowMs: now)
                    continue
                }
                let code = ErrorCode(rawValue: p.errorCode)
                switch code {
                case .none:
                    deliver(batch, baseOffset: p.baseOffset, logAppendTime: p.logAppendTimeMs)
                case .duplicateSequenceNumber:
                    deliver(batch, baseOffset: Offset(-1), logAppendTime: -1)
                case .outOfOrderSequenceNumber, .unknownProducerID:
                    if accumulator.followsUnwrittenBatch(batch) {
                        // Refused because a batch before it failed: it goes again after that one.
                        retryOrFail(batch, retriable: true, Self.error(code, p, batch), nowMs: now)
                        continue
                    }
                    // The partition lost track of this producer: a new one numbers the batch again
                    // (in a transaction, the transaction fails: it is aborted, under a new epoch).
                    if accumulator.isCurrent(batch.producer) { accumulator.forgetProducer() }
                    retryOrFail(batch, retriable: config.transactionalID == nil, Self.error(code, p, batch), nowMs: now)
                case .messageTooLarge where accumulator.split(batch, nowMs: now):
                    // Too large for the topic's max.message.bytes: its halves go instead (as the
                    // Java client does); a single record too large fails.
                    break
                case .producerFenced, .invalidProducerEpoch, .transactionalIDAuthorizationFailed:
                    // A newer producer with the same transactional id took over: this one is done.
                    if config.transactionalID != nil { fatal = fatal ?? Self.error(code, p, batch) }
                    retryOrFail(batch, retriable: false, Self.error(code, p, batch), nowMs: now)
                default:
                    // KIP-951: a new leader named in the answer is tried at once, without the backoff.
                    var hinted = false
                    if Self.leaderMoved.contains(code) {
                        let hint = p.currentLeader.leaderId
                        hinted = hint.value >= 0 && hint != node
                        forgetLeader(of: batch.partition, hint: hint)
                    }
                    retryOrFail(batch, retriable: Self.retriable.contains(code), Self.error(code, p, batch), nowMs: now, backoff: !hinted)
                }
            }
        }
        resumeWaiters()
        resumeFlushWaiters()
        ring()
        // KIP-951: the new leaders' addresses came with the answer.
        for (node, address) in endpoints { await cluster.learn(node, at: address) }
    }

    /// A failed batch goes back to be sent again if `retriable` (and the producer can still
    /// send: after a fatal error the sender has stopped); otherwise its records fail with `error`.
    func retryOrFail(_ batch: RecordAccumulator<Delivery>.Batch, retriable: Bool, _ error: @autoclosure () -> ProduceError, nowMs: Int64,
                     backoff: Bool = true) {
        if accumulator.failed(batch, retriable: retriable && fatal == nil, nowMs: nowMs, backoff: backoff) { fail([batch], error()) }
    }

    static func error(_ code: ErrorCode, _ p: ProduceResponse.TopicProduceResponse.PartitionProduceResponse,
                      _ batch: RecordAccumulator<Delivery>.Batch) -> ProduceError {
        var message = p.errorMessage ?? "produce to \(batch.partition)"
        for record in p.recordErrors {
            message += "; record \(record.batchIndex): \(record.batchIndexErrorMessage ?? "refused")"
        }
        return ProduceError(code, message)
    }

    func deliver(_ batch: RecordAccumulator<Delivery>.Batch, baseOffset: Offset, logAppendTime: Int64) {
        accumulator.succeeded(batch)
        Self.delivered(batch, baseOffset: baseOffset, logAppendTime: logAppendTime)
    }

    /// Tells `batch`'s records they were written from `baseOffset` on (-1: unknown).
    static func delivered(_ batch: RecordAccumulator<Delivery>.Batch, baseOffset: Offset, logAppendTime: Int64) {
        report(batch) { first in
            .success(DeliveryReports.Written(topic: batch.partition.topic, partition: batch.partition.partition, baseOffset: baseOffset,
                                             logAppendTime: logAppendTime, timestamps: batch.timestamps, first: first))
        }
    }

    /// Fills in the reports of `batch`'s records a run at a time (its records are a run of one
    /// call's, or runs of a few calls' in turn): `outcome` gets the batch's index of a run's
    /// first record.
    static func report(_ batch: RecordAccumulator<Delivery>.Batch, _ outcome: (_ first: Int) -> Result<DeliveryReports.Written, ProduceError>) {
        let tokens = batch.tokens
        var start = 0
        while start < tokens.count {
            let reports = tokens[start].reports
            var end = start + 1
            while end < tokens.count && tokens[end].reports === reports && tokens[end].index == tokens[end - 1].index + 1 { end += 1 }
            reports.complete(tokens[start].index..<tokens[end - 1].index + 1, outcome(start))
            start = end
        }
    }

    func fail(_ batches: [RecordAccumulator<Delivery>.Batch], _ error: ProduceError) {
        // A record of the open transaction failed: it can only be aborted.
        if !batches.isEmpty, case .open = transaction { transaction = .failed(error) }
        for batch in batches { Self.report(batch) { _ in .failure(error) } }
    }

    // MARK: waking

    func ring() {
        rung = true
        if let sleeper {
            self.sleeper = nil
            sleeper.resume()
        }
    }

    /// Sleeps until rung, or until `untilMs` (nil: only until rung). One timer at a time: a
    /// later deadline than the pending timer's is set when that one has fired (the sender then
    /// asks again), so a busy sender does not start a timer task per batch.
    func sleep(untilMs: Int64?) async {
        if rung {
            rung = false
            return
        }
        if let deadline = untilMs, deadline < (timerAtMs ?? .max) {
            timerAtMs = deadline
            let delay = max(0, deadline - nowMs())
            Task {
                try? await Task.sleep(for: .milliseconds(delay))
                self.timerFired(deadline)
            }
        }
        await withCheckedContinuation { sleeper = $0 }
        rung = false
    }

    func timerFired(_ deadline: Int64) {
        if timerAtMs == deadline { timerAtMs = nil }
        ring()
    }

    /// Waits until some batch completes, or until `untilMs`.
    func waitForCompletion(untilMs: Int64?) async {
        nextWaiter += 1
        let id = nextWaiter
        let timer = untilMs.map { deadline in
            let delay = max(0, deadline - nowMs())
            return Task {
                try? await Task.sleep(for: .milliseconds(delay))
                self.endWait(id)
            }
        }
        await withCheckedContinuation { completionWaiters[id] = $0 }
        timer?.cancel()
    }

    /// Sends waiting for room go on once an eighth of `buffer.memory` is free (not at every
    /// batch: each wait costs a timer), flushes once everything is done.
    func resumeWaiters() {
        guard accumulator.isEmpty || accumulator.usedBytes <= config.bufferBytes - config.bufferBytes / 8 else { return }
        let waiters = completionWaiters.values
        completionWaiters.removeAll()
        accumulator.roomWanted = false
        for waiter in waiters { waiter.resume() }
    }

    func endWait(_ id: UInt64) {
        completionWaiters.removeValue(forKey: id)?.resume()
    }
}
