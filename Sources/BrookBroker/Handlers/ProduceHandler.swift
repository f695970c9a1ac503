import BrookCore
import BrookProtocol
import BrookRecords
import BrookStorage
import BrookTxn
import NIOCore
import Synchronization

/// Produce: validates and appends record batches. acks=1 and acks=all are the same on a single
/// node (it is the whole ISR); acks=0 gets no answer, and a failure closes the connection. A batch with a producer id is checked
/// against the partition's producer state (a retry gets its original offsets); a transactional
/// one must belong to its producer's open transaction (KIP-890's verification).
struct ProduceHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 3...12
    /// Kafka 4 still lists v0-v2 (it answers them with an error): librdkafka enables
    /// compression only when it sees them listed.
    let advertised: ClosedRange<Int16> = 0...12

    typealias PartitionResult = ProduceResponse.TopicProduceResponse.PartitionProduceResponse

    func handle(_ request: ProduceRequest, version: Int16, context: RequestContext) -> Reply<ProduceResponse> {
        // A producer's quota (`producer_byte_rate`): the records' bytes are counted as they come.
        let throttle = context.throttle(.produce) {
            Double(request.topicData.reduce(0) { $0 + $1.partitionData.reduce(0) { $0 + ($1.records?.byteCount ?? 0) } })
        }
        let reply = append(request, version: version, context: context)
        guard throttle > 0 else { return reply }
        return reply.map { $0.throttled(atLeast: throttle) }
    }

    func append(_ request: ProduceRequest, version: Int16, context: RequestContext) -> Reply<ProduceResponse> {
        // Decompressing (and checking) large compressed batches would hold up every other
        // connection on this event loop: that work moves off it. acks=0 stays here: its failure
        // closes the connection, which an answer that comes later cannot do.
        if request.acks != 0 && Self.compressedBytes(request) >= Self.offloadBytesMin {
            let loop = context.eventLoop
            let appended = context.broker.work.run(on: loop) { appendAll(request, context: context) }
            let answer = appended.flatMap { responses, replicated in
                finish(responses, replicated, request: request, version: version, context: context)
            }
            return .offloaded(answer, handled: appended.map { _ in () })
        }
        let (responses, replicated) = appendAll(request, context: context)
        if request.acks == 0 {
            let failed = responses.flatMap { topic in topic.partitionResponses.filter { $0.errorCode != 0 }.map { (topic.name, $0) } }
            guard let (topic, first) = failed.first else { return .none }
            return .closeConnection("an acks=0 produce failed (\(topic)-\(first.index): error \(first.errorCode)\(first.errorMessage.map { ", " + $0 } ?? ""))")
        }
        let broker = context.broker
        let listener = context.connection?.listener.name
        if replicated.isEmpty { return .now(LeaderHints.add(to: ProduceResponse(responses: responses, throttleTimeMs: 0), version: version, broker: broker, listener: listener)) }
        return .later(finish(responses, replicated, request: request, version: version, context: context))
    }

    /// A produce request carrying at least this many bytes of compressed batches is handled off
    /// the event loop: 64 KiB of gzip or zstd often holds a MiB of records, a millisecond or more to
    /// decompress and check.
    static let offloadBytesMin = 64 * 1024

    /// The bytes of the request's partitions whose (first) batch is compressed; 0 when the
    /// request holds under `offloadBytesMin` of records in all (most do: no header is decoded).
    static func compressedBytes(_ request: ProduceRequest) -> Int {
        var all = 0
        for topic in request.topicData {
            for data in topic.partitionData {
                if case .bytes(let records)? = data.records { all += records.readableBytes }
            }
        }
        guard all >= offloadBytesMin else { return 0 }
        var total = 0
        for topic in request.topicData {
            for data in topic.partitionData {
                guard case .bytes(let records)? = data.records,
                      let header = records.withUnsafeReadableBytes({ RecordBatchHeader.decode($0) }),
                      let codec = header.attributes.compression, codec != .none else { continue }
                total += records.readableBytes
            }
        }
        return total
    }

    typealias Waits = [(topic: String, index: Int32, partition: Partition, end: Offset)]

    /// Appends every partition's batches; the answers, and what acks=all waits for.
    func appendAll(_ request: ProduceRequest, context: RequestContext) -> ([ProduceResponse.TopicProduceResponse], Waits) {
        let validAcks = request.acks == -1 || request.acks == 0 || request.acks == 1
        var replicated: Waits = []
        let acksAll = request.acks == -1 && context.broker.cluster.isCluster
        // With an authorizer: WRITE on each topic, and on the transactional id when there is one.
        let authorization = context.authorization
        let transactionAllowed = request.transactionalId.map { authorization.allows(.write, .transactionalID, $0) } ?? true
        let mirrorWriter = request.transactionalId.flatMap { $0.hasPrefix(Self.mirrorPrefix) ? String($0.dropFirst(Self.mirrorPrefix.count)) : nil }
        let responses = request.topicData.map { topic in
            let writable = authorization.allows(.write, .topic, topic.name)
            let mirror = Self.mirrorWrite(topic: topic.name, writer: mirrorWriter, context: context)
            return ProduceResponse.TopicProduceResponse(name: topic.name, partitionResponses: topic.partitionData.map { data in
                guard validAcks else { return failure(data.index, .invalidRequiredAcks, nil) }
                guard transactionAllowed else { return failure(data.index, .transactionalIDAuthorizationFailed, nil) }
                guard writable else { return failure(data.index, .topicAuthorizationFailed, nil) }
                if case .refused(let message) = mirror { return failure(data.index, .policyViolation, message) }
                if case .unknown = mirror { return failure(data.index, .unknownTopicOrPartition, nil) }
                if case .mirrored = mirror {
                    let (result, wait) = appendMirrored(data, topic: topic.name, acksAll: acksAll, context: context)
                    if let wait { replicated.append((topic.name, data.index, wait.partition, wait.end)) }
                    return result
                }
                let (result, wait) = append(data, topic: topic.name, transactionalID: request.transactionalId, acksAll: acksAll, context: context)
                if let wait { replicated.append((topic.name, data.index, wait.partition, wait.end)) }
                return result
            })
        }
        return (responses, replicated)
    }

    /// The answer once appended: with acks=all in a cluster, once the replicas have the records.
    func finish(_ responses: [ProduceResponse.TopicProduceResponse], _ replicated: Waits, request: ProduceRequest, version: Int16,
                context: RequestContext) -> EventLoopFuture<ProduceResponse> {
        let broker = context.broker
        let listener = context.connection?.listener.name
        guard !replicated.isEmpty else {
            return context.eventLoop.makeSucceededFuture(LeaderHints.add(to: ProduceResponse(responses: responses, throttleTimeMs: 0), version: version, broker: broker, listener: listener))
        }
        return waitForReplicas(responses, replicated, timeoutMs: request.timeoutMs, context: context)
            .map { LeaderHints.add(to: $0, version: version, broker: broker, listener: listener) }
    }

    /// acks=all in a cluster: each partition's answer waits until the high watermark passes its
    /// records (the ISR has them), or the request's timeout (REQUEST_TIMED_OUT), or the end of
    /// this broker's leadership (NOT_ENOUGH_REPLICAS_AFTER_APPEND, below).
    func waitForReplicas(_ responses: [ProduceResponse.TopicProduceResponse], _ waits: Waits,
                         timeoutMs: Int32, context: RequestContext) -> EventLoopFuture<ProduceResponse> {
        let loop = context.eventLoop
        let futures = waits.map { wait -> EventLoopFuture<(String, Int32, ErrorCode)> in
            wait.partition.highWatermark(reaching: wait.end, timeoutMs: Int64(timeoutMs), on: loop).map { (wait.topic, wait.index, $0) }
        }
        return EventLoopFuture.whenAllSucceed(futures, on: loop).map { outcomes in
            var codes: [String: [Int32: ErrorCode]] = [:]
            for (topic, index, code) in outcomes where code != .none {
                // Written here, but this broker stopped leading before the ISR had the records:
                // the new leader may hold them. Kafka answers NOT_LEADER_OR_FOLLOWER, which
                // librdkafka takes for "not written"; its idempotent producer then re-sent them
                // under a bumped epoch, and the log held them twice (found by the fault campaign,
                // seeds 777 and 750451350). NOT_ENOUGH_REPLICAS_AFTER_APPEND says "written, maybe
                // not kept": clients retry with the same sequence numbers, which the new leader
                // recognizes when it has the records.
                codes[topic, default: [:]][index] = code == .notLeaderOrFollower ? .notEnoughReplicasAfterAppend : code
            }
            let answered = responses.map { topic in
                ProduceResponse.TopicProduceResponse(name: topic.name, partitionResponses: topic.partitionResponses.map { result in
                    guard let code = codes[topic.name]?[result.index] else { return result }
                    let message: String? = switch code {
                    case .requestTimedOut: "The in-sync replicas did not all have the records in time"
                    case .notEnoughReplicasAfterAppend: "Written, but this broker stopped leading the partition before the in-sync replicas had the records"
                    default: nil
                    }
                    return failure(result.index, code, message)
                })
            }
            return ProduceResponse(responses: answered, throttleTimeMs: 0)
        }
    }

    /// One partition's append; with acks=all in a cluster, also what to wait for (the offset
    /// after the records appended).
    /// The partition this broker leads and the request's batches for it, or the refusal.
    func writable(_ data: ProduceRequest.TopicProduceData.PartitionProduceData, topic: String, acksAll: Bool,
                  context: RequestContext) -> Result<(Partition, ByteBuffer), WriteRefusal> {
        let found = context.broker.topics.lookup(topic, data.index)
        guard case .hosted(let partition) = found else { return .failure(WriteRefusal(found.absentCode, nil)) }
        guard partition.isLeader else { return .failure(WriteRefusal(.notLeaderOrFollower, "This broker does not lead \(partition.name)")) }
        if acksAll && !partition.hasEnoughReplicas {
            return .failure(WriteRefusal(.notEnoughReplicas, "The in-sync replicas of \(partition.name) are fewer than min.insync.replicas"))
        }
        // The coordinators write their internal topics; clients may not (as in Kafka).
        if TopicRegistry.isInternal(topic) {
            return .failure(WriteRefusal(.invalidTopicException, "\(topic) is an internal topic"))
        }
        guard case .bytes(let records)? = data.records, records.readableBytes > 0 else {
            return .failure(WriteRefusal(.corruptMessage, "The request holds no record batch"))
        }
        return .success((partition, records))
    }

    struct WriteRefusal: Error {
        let code: ErrorCode
        let message: String?
        init(_ code: ErrorCode, _ message: String?) {
            self.code = code
            self.message = message
        }
    }

    func append(_ data: ProduceRequest.TopicProduceData.PartitionProduceData, topic: String, transactionalID: String?,
                acksAll: Bool, context: RequestContext) -> (PartitionResult, (partition: Partition, end: Offset)?) {
        let partition: Partition
        var records: ByteBuffer
        switch writable(data, topic: topic, acksAll: acksAll, context: context) {
        case .failure(let refusal): return (failure(data.index, refusal.code, refusal.message), nil)
        case .success(let found): (partition, records) = found
        }
        // Only a transactional producer's request pays for the verification closure.
        let verify: ((ProducerBatch) -> ErrorCode?)? = transactionalID.map { id in
            let transactions = context.broker.transactions
            let target = TxnPartition(topic, data.index)
            return { batch in
                transactions.verify(transactionalID: id, producerID: batch.producerID, epoch: batch.epoch, partition: target)
            }
        }
        do throws(Partition.AppendError) {
            let appended = try partition.append(&records, now: context.broker.clock.now().ms, verify: verify)
            let result = appended.result
            let answer = PartitionResult(index: data.index, errorCode: 0, baseOffset: result.firstOffset,
                                         logAppendTimeMs: result.logAppendTime?.ms ?? -1, logStartOffset: appended.logStart)
            return (answer, acksAll ? (partition, result.lastOffset + 1) : nil)
        } catch {
            switch error {
            case .producer(let code, let message):
                // Refused as by a follower although the role said leader: a leadership that
                // just changed (one ending, or a sequence gap right after one began).
                if code == .notLeaderOrFollower { Self.refusals.log(context.broker.logger, .info, "produce to \(partition.name) refused: \(message)") }
                return (failure(data.index, code, message), nil)
            case .storage(.missingKeyOnCompactedTopic(let indexes)):
                return (Self.keylessRefused(data.index, indexes, partition: partition.name), nil)
            case .storage(let error):
                let code = ErrorMapping.code(for: error)
                if code == .kafkaStorageError { context.broker.logger.error("append to \(partition.name) failed: \(error)") }
                return (failure(data.index, code, "\(error)"), nil)
            }
        }
    }

    /// An offset-preserving mirror (`brook mirror --preserve-offsets`) writes with this
    /// transactional id prefix and its link's name: only to the topics whose
    /// `brook.mirror.link` names that link, and nothing else writes to those.
    static let mirrorPrefix = "brook-mirror:"

    enum MirrorWrite {
        case normal
        case unknown
        case mirrored
        case refused(String)
    }

    static func mirrorWrite(topic: String, writer: String?, context: RequestContext) -> MirrorWrite {
        guard let link = context.broker.topics.mirrorLink(of: topic) else { return writer == nil ? .normal : .unknown }
        switch (writer, link.isEmpty) {
        case (nil, true): return .normal
        case (nil, false):
            return .refused("\(topic) is a read-only mirror topic of link \(link); `brook mirror promote` makes it writable")
        case (let writer?, false) where writer == link: return .mirrored
        case (let writer?, _):
            return .refused("\(topic) is not a mirror topic of link \(writer)\(link.isEmpty ? " (promoted, or never one)" : " (its link is \(link))")")
        }
    }

    /// A mirror's batches, at their own offsets (Partition.appendMirrored).
    func appendMirrored(_ data: ProduceRequest.TopicProduceData.PartitionProduceData, topic: String, acksAll: Bool,
                        context: RequestContext) -> (PartitionResult, (partition: Partition, end: Offset)?) {
        let partition: Partition
        let records: ByteBuffer
        switch writable(data, topic: topic, acksAll: acksAll, context: context) {
        case .failure(let refusal): return (failure(data.index, refusal.code, refusal.message), nil)
        case .success(let found): (partition, records) = found
        }
        do throws(Partition.AppendError) {
            guard let written = try partition.appendMirrored(records) else {
                // Copied already: answered with the log end, where the mirror goes on, once the
                // replicas have it (acks=all) as for a new write.
                let end = partition.logEndOffset
                return (PartitionResult(index: data.index, errorCode: 0, baseOffset: end, logAppendTimeMs: -1,
                                        logStartOffset: partition.offsets.logStart), acksAll ? (partition, end) : nil)
            }
            let answer = PartitionResult(index: data.index, errorCode: 0, baseOffset: written.first, logAppendTimeMs: -1, logStartOffset: written.logStart)
            return (answer, acksAll ? (partition, written.last + 1) : nil)
        } catch {
            switch error {
            case .producer(let code, let message): return (failure(data.index, code, message), nil)
            case .storage(let error):
                let code = ErrorMapping.code(for: error)
                if code == .kafkaStorageError { context.broker.logger.error("mirrored append to \(partition.name) failed: \(error)") }
                return (failure(data.index, code, "\(error)"), nil)
            }
        }
    }

    /// Not-leader refusals, said at info: a leader change under many producers refuses many.
    static let refusals = RateLimitedLog()

    /// Keyless records refused by a compacted topic, answered as Kafka does: INVALID_RECORD with
    /// a record error per keyless record (clients fail those and retry the others).
    static func keylessRefused(_ index: Int32, _ records: [Int32], partition: String) -> PartitionResult {
        let message = "Compacted topic cannot accept message without key in topic partition \(partition)."
        let errors = records.prefix(Self.recordErrorsMax).map { PartitionResult.BatchIndexAndErrorMessage(batchIndex: $0, batchIndexErrorMessage: message) }
        let shown = errors.prefix(3).map { "RecordError(batchIndex=\($0.batchIndex), message='\(message)')" }.joined(separator: ", ")
        return PartitionResult(index: index, errorCode: ErrorCode.invalidRecord.rawValue, baseOffset: Offset(-1), recordErrors: Array(errors),
                               errorMessage: "One or more records have been rejected due to \(records.count) record errors in total, and only showing the first three errors at most: [\(shown)]")
    }

    /// At most this many record errors in one partition's answer.
    static let recordErrorsMax = 10_000

    func failure(_ index: Int32, _ code: ErrorCode, _ message: String?) -> PartitionResult {
        PartitionResult(index: index, errorCode: code.rawValue, baseOffset: Offset(-1), errorMessage: message)
    }
}
