import BrookCluster
import BrookCore
import BrookProtocol
import BrookStorage
import NIOCore
import Synchronization

/// Fetch: whole batches from the one holding each fetch offset, up to the high watermark (or,
/// read_committed, the last stable offset, with the aborted transactions there), sent from the
/// segment files. When fewer than `min.bytes` are ready the fetch is parked until an
/// append arrives or `max.wait.ms` passes (long poll). Fetch sessions (KIP-227): FetchSessions.
struct FetchHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 4...17
    /// `fetch.max.bytes`: the most one response carries (Kafka's 55 MiB).
    static let fetchBytesMax: Int32 = 57_671_680
    static let maxWaitMsMax: Int32 = 600_000

    /// A follower's fetch is replication, not a client's use of the broker (either field: the
    /// one of the request's version is set, the other left at -1).
    func exemptFromRequestQuota(_ request: FetchRequest) -> Bool { Self.fromFollower(request) }

    static func fromFollower(_ request: FetchRequest) -> Bool {
        max(request.replicaId.value, request.replicaState.replicaId.value) >= 0
    }

    func handle(_ request: FetchRequest, version: Int16, context: RequestContext) -> Reply<FetchResponse> {
        guard request.isolationLevel == 0 || request.isolationLevel == 1 else {
            return .now(Self.refuseAll(request, .invalidRequest))
        }
        switch context.broker.fetchSessions.plan(request, version: version, nowMs: context.broker.clock.monotonicMs()) {
        case .sessionless:
            return answer(request, version: version, context: context)
        case .refuse(let code):
            return .now(FetchResponse(throttleTimeMs: 0, errorCode: code.rawValue, sessionId: 0))
        case .session(let id, let full, let reading):
            let sessions = context.broker.fetchSessions
            switch answer(reading, version: version, context: context) {
            case .now(let response): return .now(sessions.answer(response, session: id, full: full))
            case .later(let future): return .later(future.map { sessions.answer($0, session: id, full: full) })
            case let other: return other
            }
        }
    }

    /// Reads the request's partitions; answers at once, or once `min.bytes` have come or
    /// `max.wait.ms` has passed.
    func answer(_ request: FetchRequest, version: Int16, context: RequestContext) -> Reply<FetchResponse> {
        let stamp = Partition.changes.load(ordering: .sequentiallyConsistent)
        let (response, bytes) = read(request, version: version, context: context)
        let maxWaitMs = min(request.maxWaitMs, Self.maxWaitMsMax)
        // Errors are answered at once, as Kafka does: waiting would not change them.
        let anyError = response.errorCode != 0 || response.responses.contains { $0.partitions.contains { $0.errorCode != 0 } }
        guard bytes < Int(request.minBytes), maxWaitMs > 0, !anyError else { return .now(Self.throttled(response, request: request, context: context)) }
        if let connection = context.connection, connection.waitingCount >= Limits.waitingRequestsPerConnectionMax {
            return .now(response)  // this connection has enough waiting already
        }
        let parked = ParkedFetch(request: request, version: version, context: context, handler: self,
                                 first: (response, bytes, stamp))
        return .later(parked.start(waitMs: maxWaitMs))
    }

    /// The answer with its throttle time when a consumer's quota (`consumer_byte_rate`) is
    /// passed; a replica's fetch is not counted.
    static func throttled(_ response: FetchResponse, request: FetchRequest, context: RequestContext) -> FetchResponse {
        guard !fromFollower(request) else { return response }
        let throttle = context.throttle(.fetch) {
            Double(response.responses.reduce(0) { $0 + $1.partitions.reduce(0) { $0 + ($1.records?.byteCount ?? 0) } })
        }
        return throttle > 0 ? response.throttled(atLeast: throttle) : response
    }

    /// Every partition asked for answered with `code`, and the top-level error too (which only v7+
    /// carries), as Kafka's error response does.
    static func refuseAll(_ request: FetchRequest, _ code: ErrorCode) -> FetchResponse {
        FetchResponse(throttleTimeMs: 0, errorCode: code.rawValue, sessionId: 0, responses: request.topics.map { topic in
            .init(topic: topic.topic, topicId: topic.topicId, partitions: topic.partitions.map { p in
                unread(p, readCommitted: false, error: code)
            })
        })
    }

    /// A partition's answer before anything is read: no offsets, no records, `error`.
    static func unread(_ p: FetchRequest.FetchTopic.FetchPartition, readCommitted: Bool,
                       error: ErrorCode = .none) -> FetchResponse.FetchableTopicResponse.PartitionData {
        .init(partitionIndex: p.partition, errorCode: error.rawValue, highWatermark: Offset(-1), lastStableOffset: Offset(-1),
              logStartOffset: Offset(-1), abortedTransactions: readCommitted ? [] : nil, records: .bytes(ByteBuffer()))
    }

    /// The topics asked for, in request order: by id from v13, by name before; nil if unknown.
    static func resolve(_ request: FetchRequest, version: Int16, registry: TopicRegistry) -> [Topic?] {
        request.topics.map { version >= 13 ? registry.topic(id: $0.topicId) : registry.topic($0.topic) }
    }

    /// Reads every partition asked for; returns the answer and the record bytes in it.
    func read(_ request: FetchRequest, version: Int16, context: RequestContext) -> (FetchResponse, Int) {
        var budget = Int(min(request.maxBytes, Self.fetchBytesMax))
        var total = 0
        let unknown: ErrorCode = version >= 13 ? .unknownTopicID : .unknownTopicOrPartition
        let known = Self.resolve(request, version: version, registry: context.broker.topics)
        // A follower replica's fetch (a broker of the cluster); consumers send -1.
        let replica = version >= 15 ? request.replicaState.replicaId : request.replicaId
        var expansions: [ReplicaManager.ISRChangeToSend] = []
        // What every partition of a follower's fetch reads alike, looked up once.
        let follower = replica.value >= 0 && context.broker.cluster.isCluster ? FollowerFetch(replica, context.broker) : nil
        defer { if !expansions.isEmpty { ReplicaManager.send(expansions, broker: context.broker) } }
        // With an authorizer: READ on each topic for consumers, CLUSTER_ACTION for replicas.
        let authorization = context.authorization
        let replicaAllowed = replica.value < 0 || authorization.allowsCluster(.clusterAction)
        let responses = zip(request.topics, known).map { topic, known -> FetchResponse.FetchableTopicResponse in
            let readable = replicaAllowed && (replica.value >= 0 || known.map { authorization.allows(.read, .topic, $0.name) } ?? true)
            return FetchResponse.FetchableTopicResponse(topic: topic.topic, topicId: topic.topicId, partitions: topic.partitions.map { p in
                var data = Self.unread(p, readCommitted: request.isolationLevel == 1)
                guard readable else {
                    data.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                    return data
                }
                guard let topic = known, p.partition >= 0, Int(p.partition) < topic.partitions.count else {
                    data.errorCode = unknown.rawValue
                    return data
                }
                guard let partition = topic.partitions[Int(p.partition)] else {
                    data.errorCode = ErrorCode.notLeaderOrFollower.rawValue
                    return data
                }
                let consumer = replica.value < 0
                if let problem = consumer ? Self.checkConsumerRead(partition, p.currentLeaderEpoch, context: context)
                                          : partition.checkLeaderEpoch(p.currentLeaderEpoch) {
                    data.errorCode = problem.rawValue
                    return data
                }
                // (Only for an offset the leader holds: one out of its range is answered here, so
                // the consumer's reset policy applies rather than a replica's refusal.)
                if consumer, version >= 11, !request.rackId.isEmpty,
                   case let held = partition.offsets, p.fetchOffset >= held.logStart, p.fetchOffset <= held.highWatermark,
                   let preferred = Self.preferredReadReplica(partition, rack: request.rackId, context: context) {
                    // KIP-392: the consumer is sent to a replica in its rack; nothing is read here.
                    let offsets = partition.offsets
                    data.highWatermark = offsets.highWatermark
                    data.lastStableOffset = offsets.lastStable
                    data.logStartOffset = offsets.logStart
                    data.preferredReadReplica = preferred
                    return data
                }
                let maxBytes = max(0, min(Int(p.partitionMaxBytes), budget))
                if let follower {
                    let bytes = Self.readForFollower(partition, p, replica: replica, maxBytes: maxBytes, into: &data,
                                                     expansions: &expansions, follower: follower, context: context)
                    total += bytes
                    budget -= bytes
                    return data
                }
                do throws(StorageError) {
                    let result = try partition.read(from: p.fetchOffset, maxBytes: maxBytes, minOneBatch: total == 0,
                                                    readCommitted: request.isolationLevel == 1)
                    data.highWatermark = result.offsets.highWatermark
                    data.lastStableOffset = result.offsets.lastStable
                    data.logStartOffset = result.offsets.logStart
                    if request.isolationLevel == 1 {
                        data.abortedTransactions = result.aborted.map {
                            .init(producerId: $0.producerID, firstOffset: $0.firstOffset)
                        }
                    }
                    if !result.slice.isEmpty {
                        data.records = .file(LogRecords(result.slice))
                        partition.traffic.add(.bytesOut, result.slice.length)
                        total += result.slice.length
                        budget -= result.slice.length
                    }
                } catch {
                    let offsets = partition.offsets
                    data.highWatermark = offsets.highWatermark
                    data.lastStableOffset = offsets.lastStable
                    data.logStartOffset = offsets.logStart
                    data.errorCode = ErrorMapping.code(for: error).rawValue
                }
                return data
            })
        }
        var response = FetchResponse(throttleTimeMs: 0, errorCode: 0, sessionId: 0, responses: responses)
        LeaderHints.add(to: &response, version: version, broker: context.broker, listener: context.connection?.listener.name)
        return (response, total)
    }
}

extension FetchHandler {
    /// A consumer may read from the leader, or in a cluster from a follower that holds a replica
    /// (KIP-392: up to the follower's high watermark). The current leader epoch it names is
    /// checked against this broker's.
    static func checkConsumerRead(_ partition: Partition, _ current: LeaderEpoch, context: RequestContext) -> ErrorCode? {
        if partition.isLeader { return partition.checkLeaderEpoch(current) }
        let broker = context.broker
        guard broker.cluster.isCluster, case .follower(let leader?, let epoch) = partition.role, partition.isReplicating,
              let partitions = broker.cluster.current?.image.topic(named: partition.topic)?.partitions,
              Int(partition.index) < partitions.count, case let info = partitions[Int(partition.index)],
              info.replicas.contains(broker.config.nodeID), info.leader == leader else { return .notLeaderOrFollower }
        guard current != LeaderEpoch(-1), current != epoch else { return nil }
        return current > epoch ? .unknownLeaderEpoch : .fencedLeaderEpoch
    }

    /// With `replica.selector.class` rack-aware, a leader whose rack is not the consumer's sends
    /// it to an in-sync, active replica in the consumer's rack (nil: read here).
    static func preferredReadReplica(_ partition: Partition, rack: String, context: RequestContext) -> NodeID? {
        let broker = context.broker
        guard broker.config.rackAwareReplicaSelector, partition.isLeader, broker.config.brokerRack != rack,
              let image = broker.cluster.current?.image, let partitions = image.topic(named: partition.topic)?.partitions,
              Int(partition.index) < partitions.count else { return nil }
        let info = partitions[Int(partition.index)]
        let node = broker.config.nodeID
        return info.isr.first { $0 != node && image.brokers[$0]?.isActive == true && image.brokers[$0]?.rack == rack }
    }

    /// A follower's read: its divergence checked against our leader epochs first (KIP-320), its
    /// position recorded (which may move the high watermark), then batches up to the log end.
    static func readForFollower(_ partition: Partition, _ p: FetchRequest.FetchTopic.FetchPartition, replica: NodeID, maxBytes: Int,
                                into data: inout FetchResponse.FetchableTopicResponse.PartitionData,
                                expansions: inout [ReplicaManager.ISRChangeToSend], follower: FollowerFetch,
                                context: RequestContext) -> Int {
        let broker = context.broker
        let eligible = follower.eligible
        let (check, expansion) = partition.followerFetch(replica, fetchOffset: p.fetchOffset, lastFetchedEpoch: p.lastFetchedEpoch,
                                                         nowMs: broker.clock.monotonicMs(), eligible: eligible)
        if let expansion, let topic = broker.topics.topic(partition.topic) {
            // The follower reached the high watermark: ask the controller to take it back in,
            // with the other partitions of this fetch that did (one request).
            expansions.append(ReplicaManager.ISRChangeToSend(key: TopicIDPartition(topic.id, partition.index), proposal: expansion, partition: partition))
        }
        switch check {
        case .refused(let code):
            data.errorCode = code.rawValue
            if code == .offsetOutOfRange { data.logStartOffset = partition.offsets.logStart }
            return 0
        case .diverging(let epoch, let end):
            data.divergingEpoch = .init(epoch: epoch, endOffset: end)
            let offsets = partition.offsets
            data.highWatermark = offsets.highWatermark
            data.logStartOffset = offsets.logStart
            return 0
        case .read:
            // A throttled follower out of the ISR (KIP-73) gets no records while the leader's
            // throttled copying is over its rate.
            // In sync means in the maximal ISR (one being added counts): the high watermark
            // waits for those, and a throttle must never hold it back.
            let node = broker.config.nodeID
            let rate = follower.leaderRate
            let throttled = rate < Int64.max
                && ReplicationThrottles.names(broker.topics.topic(partition.topic)?.overrides["leader.replication.throttled.replicas"],
                                              partition: partition.index, node: node)
                && !partition.inMaximalISR(replica)
            let nowMs = broker.clock.monotonicMs()
            if throttled && broker.throttles.leaderOverRate(rate, nowMs: nowMs) {
                let offsets = partition.offsets
                data.highWatermark = offsets.highWatermark
                data.lastStableOffset = offsets.lastStable
                data.logStartOffset = offsets.logStart
                return 0
            }
            do throws(StorageError) {
                let (slice, offsets) = try partition.readForFollower(from: p.fetchOffset, maxBytes: maxBytes)
                data.highWatermark = offsets.highWatermark
                data.lastStableOffset = offsets.lastStable
                data.logStartOffset = offsets.logStart
                if !slice.isEmpty { data.records = .file(LogRecords(slice)) }
                if throttled { broker.throttles.leaderSent(slice.length, nowMs: nowMs) }
                return slice.length
            } catch {
                data.errorCode = ErrorMapping.code(for: error).rawValue
                data.logStartOffset = partition.offsets.logStart
                return 0
            }
        }
    }
}

/// What a follower's fetch reads once for all its partitions: whether the follower may join an
/// ISR (registered and unfenced) and the leader's replication throttle rate.
struct FollowerFetch {
    let eligible: Bool
    let leaderRate: Int64
    init(_ replica: NodeID, _ broker: Broker) {
        let image = broker.cluster.current?.image
        eligible = image?.brokers[replica]?.isActive ?? false
        leaderRate = DynamicBrokerConfigs.rate(DynamicBrokerConfigs.leaderRate, node: broker.config.nodeID, image: image)
    }
}

/// A fetch waiting for data: parked on each of its partitions until `min.bytes` have arrived,
/// `max.wait.ms` passes, or its connection closes. Appends tell it their size from any thread
/// (an atomic count of the bytes still needed); it re-reads on its connection's event loop only
/// once that count reaches zero, so a fetch that asked for more than will come costs an append
/// next to nothing. Its other state is touched only on that event loop.
final class ParkedFetch: @unchecked Sendable {
    let request: FetchRequest
    let version: Int16
    let context: RequestContext
    let handler: FetchHandler
    let promise: EventLoopPromise<FetchResponse>
    let partitions: [Partition]
    /// Bytes still needed before a re-read may complete the fetch; appends subtract their size.
    let bytesNeeded = Atomic<Int>(0)
    /// A re-read is scheduled on the event loop (at most one at a time).
    let retryScheduled = Atomic<Bool>(false)
    /// Appends (and high watermark moves) told to this fetch so far.
    let wakes = Atomic<Int>(0)
    /// The last re-read's answer and the wakes counted before it: when `max.wait.ms` passes
    /// with no wake since, that answer is still what a read would give (nothing was appended,
    /// no high watermark moved), so the fetch ends without reading every partition again.
    var lastRead: (wakes: Int, response: FetchResponse)?
    /// The read that found too little, its record bytes, and `Partition.changes` before it.
    let first: (response: FetchResponse, bytes: Int, stamp: UInt64)
    var timeout: Scheduled<Void>?
    var connectionToken: Int?
    var done = false

    init(request: FetchRequest, version: Int16, context: RequestContext, handler: FetchHandler,
         first: (response: FetchResponse, bytes: Int, stamp: UInt64)) {
        self.request = request
        self.first = first
        self.version = version
        self.context = context
        self.handler = handler
        promise = context.eventLoop.makePromise()
        let known = FetchHandler.resolve(request, version: version, registry: context.broker.topics)
        partitions = zip(request.topics, known).flatMap { topic, known in
            topic.partitions.compactMap { p in
                known.flatMap { t in p.partition >= 0 && Int(p.partition) < t.partitions.count ? t.partitions[Int(p.partition)] : nil }
            }
        }
    }

    var minBytes: Int { Int(request.minBytes) }

    func start(waitMs: Int32) -> EventLoopFuture<FetchResponse> {
        context.eventLoop.assertInEventLoop()
        if let connection = context.connection {
            guard let token = connection.register({ [self] in cancel() }) else {
                promise.fail(ConnectionClosed())
                return promise.futureResult
            }
            connectionToken = token
        }
        timeout = context.eventLoop.scheduleTask(in: .milliseconds(Int64(waitMs))) { [self] in
            if let last = lastRead, last.wakes == wakes.load(ordering: .sequentiallyConsistent) { return finish(last.response) }
            finish(handler.read(request, version: version, context: context).0)
        }
        // Wakes from the parking on wait for what follows (at most one re-read at a time).
        retryScheduled.store(true, ordering: .sequentiallyConsistent)
        guard parkOnEveryPartition() else {
            finish(handler.read(request, version: version, context: context).0)
            return promise.futureResult
        }
        guard Partition.changes.load(ordering: .sequentiallyConsistent) == first.stamp else {
            // Something changed between the first read and the parking, perhaps here, its wake
            // missed: read once more.
            retry()
            return promise.futureResult
        }
        // Nothing changed anywhere since the first read: it stands. A wake since the parking
        // moved the count (so would have been caught above) or is counted from here.
        lastRead = (0, first.response)
        let left = bytesNeeded.add(minBytes - first.bytes, ordering: .sequentiallyConsistent).newValue
        retryScheduled.store(false, ordering: .sequentiallyConsistent)
        retryIfDue(left)
        return promise.futureResult
    }

    /// False when a partition has too many fetches parked already.
    func parkOnEveryPartition() -> Bool {
        let key = ObjectIdentifier(self)
        let wake: Partition.Wake = { [self] bytes in appended(bytes) }
        for partition in partitions {
            guard partition.park(key, wake: wake) else { return false }
        }
        return true
    }

    /// Called by appends, on any thread.
    func appended(_ bytes: Int) {
        wakes.add(1, ordering: .sequentiallyConsistent)
        retryIfDue(bytesNeeded.subtract(min(bytes, Partition.wakeAll), ordering: .sequentiallyConsistent).newValue)
    }

    /// Schedules a re-read on the event loop when no bytes are `left` to wait for and none is
    /// scheduled yet (at most one at a time).
    func retryIfDue(_ left: Int) {
        guard left <= 0, !retryScheduled.exchange(true, ordering: .sequentiallyConsistent) else { return }
        context.eventLoop.execute { [self] in retry() }
    }

    /// Re-reads; completes the fetch if `min.bytes` are there, or waits for more.
    func retry() {
        context.eventLoop.assertInEventLoop()
        guard !done else { return }
        // Counted from before the read: an append racing with it is counted, perhaps twice
        // (then one re-read too many), never missed.
        bytesNeeded.store(minBytes, ordering: .sequentiallyConsistent)
        retryScheduled.store(false, ordering: .sequentiallyConsistent)
        let seen = wakes.load(ordering: .sequentiallyConsistent)
        let (response, bytes) = handler.read(request, version: version, context: context)
        if bytes >= minBytes { return finish(response) }
        lastRead = (seen, response)
        retryIfDue(bytesNeeded.subtract(bytes, ordering: .sequentiallyConsistent).newValue)
    }

    /// The connection closed: nothing is answered, nothing is left behind.
    func cancel() {
        connectionToken = nil
        guard end() else { return }
        promise.fail(ConnectionClosed())
    }

    func finish(_ response: FetchResponse) {
        guard end() else { return }
        promise.succeed(FetchHandler.throttled(response, request: request, context: context))
    }

    /// Unparks everywhere; false if already ended.
    private func end() -> Bool {
        context.eventLoop.assertInEventLoop()
        guard !done else { return false }
        done = true
        timeout?.cancel()
        let key = ObjectIdentifier(self)
        for partition in partitions { partition.unpark(key) }
        if let token = connectionToken { context.connection?.unregister(token) }
        return true
    }
}
