import BrookCore
import BrookProtocol
import BrookStorage
import NIOCore

/// Fetch: whole batches from the one holding each fetch offset, up to the high watermark (or,
/// read_committed, the last stable offset, with the aborted transactions there), sent from the
/// segment files. When fewer than `min.bytes` are ready the fetch is parked until an
/// append arrives or `max.wait.ms` passes (long poll). Fetch sessions (KIP-227) are not kept:
/// every fetch is answered in full with session id 0, which tells the client to stay sessionless.
struct FetchHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 4...17
    /// `fetch.max.bytes`: the most one response carries (Kafka's 55 MiB).
    static let fetchBytesMax: Int32 = 57_671_680
    static let maxWaitMsMax: Int32 = 600_000

    func handle(_ request: FetchRequest, version: Int16, context: RequestContext) -> Reply<FetchResponse> {
        if request.sessionEpoch > 0 {
            return .now(FetchResponse(throttleTimeMs: 0, errorCode: ErrorCode.fetchSessionIDNotFound.rawValue, sessionId: 0))
        }
        let (response, bytes) = read(request, version: version, context: context)
        let maxWaitMs = min(request.maxWaitMs, Self.maxWaitMsMax)
        // Errors are answered at once, as Kafka does: waiting would not change them.
        let anyError = response.errorCode != 0 || response.responses.contains { $0.partitions.contains { $0.errorCode != 0 } }
        guard bytes < Int(request.minBytes), maxWaitMs > 0, !anyError else { return .now(response) }
        let parked = ParkedFetch(request: request, version: version, context: context, handler: self)
        return .later(parked.start(waitMs: maxWaitMs))
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
        let responses = zip(request.topics, known).map { topic, known -> FetchResponse.FetchableTopicResponse in
            FetchResponse.FetchableTopicResponse(topic: topic.topic, topicId: topic.topicId, partitions: topic.partitions.map { p in
                var data = FetchResponse.FetchableTopicResponse.PartitionData(
                    partitionIndex: p.partition, errorCode: 0, highWatermark: Offset(-1), lastStableOffset: Offset(-1),
                    logStartOffset: Offset(-1), abortedTransactions: request.isolationLevel == 1 ? [] : nil,
                    records: .bytes(ByteBuffer()))
                guard let topic = known, p.partition >= 0, Int(p.partition) < topic.partitions.count else {
                    data.errorCode = unknown.rawValue
                    return data
                }
                let partition = topic.partitions[Int(p.partition)]
                if let problem = partition.checkLeaderEpoch(p.currentLeaderEpoch) {
                    data.errorCode = problem.rawValue
                    return data
                }
                let maxBytes = max(0, min(Int(p.partitionMaxBytes), budget))
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
        return (FetchResponse(throttleTimeMs: 0, errorCode: 0, sessionId: 0, responses: responses), total)
    }
}

/// A fetch waiting for data. Its state is touched only on its connection's event loop.
final class ParkedFetch: @unchecked Sendable {
    let request: FetchRequest
    let version: Int16
    let context: RequestContext
    let handler: FetchHandler
    let promise: EventLoopPromise<FetchResponse>
    let partitions: [Partition]
    var timeout: Scheduled<Void>?
    var done = false

    init(request: FetchRequest, version: Int16, context: RequestContext, handler: FetchHandler) {
        self.request = request
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

    func start(waitMs: Int32) -> EventLoopFuture<FetchResponse> {
        context.eventLoop.assertInEventLoop()
        timeout = context.eventLoop.scheduleTask(in: .milliseconds(Int64(waitMs))) { [self] in
            finish(handler.read(request, version: version, context: context).0)
        }
        park()
        return promise.futureResult
    }

    /// Waits for the next append on any of the partitions; checks once after parking so that an
    /// append between the first read and the parking is not missed.
    func park() {
        guard parkOnEveryPartition() else {
            return finish(handler.read(request, version: version, context: context).0)
        }
        retry()
    }

    func retry() {
        guard !done else { return }
        let (response, bytes) = handler.read(request, version: version, context: context)
        if bytes >= Int(request.minBytes) {
            finish(response)
        } else {
            _ = parkOnEveryPartition()  // a wake-up unparks: park again; the timeout still stands
        }
    }

    /// False when a partition has too many fetches parked already.
    func parkOnEveryPartition() -> Bool {
        let key = ObjectIdentifier(self)
        let loop = context.eventLoop
        for partition in partitions {
            guard partition.park(key, wake: { loop.execute { self.retry() } }) else { return false }
        }
        return true
    }

    func finish(_ response: FetchResponse) {
        guard !done else { return }
        done = true
        timeout?.cancel()
        let key = ObjectIdentifier(self)
        for partition in partitions { partition.unpark(key) }
        promise.succeed(response)
    }
}
