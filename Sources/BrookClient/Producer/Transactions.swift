import BrookCore
import BrookProtocol

/// Where a transactional producer is.
enum TransactionState: Equatable {
    /// No `transactional.id`.
    case notTransactional
    /// `initTransactions` not called yet.
    case uninitialized
    /// Between transactions.
    case ready
    /// In a transaction, with the partitions added to it so far.
    case open(Set<TopicPartition>)
    /// A record of the transaction failed: `abortTransaction` is the way on.
    case failed(ProduceError)
}

/// Transactions (`transactional.id`), as the Java client's: `initTransactions` once (it fences
/// older producers with the same id and ends what they left open), then `beginTransaction`,
/// sends, `sendOffsetsToTransaction` (a consumer's progress, committed with the records), and
/// `commitTransaction` or `abortTransaction`. Consumers with read_committed see a transaction's
/// records only once it is committed, and never an aborted one's.
extension KafkaProducer {
    /// Gets the producer id and epoch for `transactional.id` from its coordinator: a producer
    /// with the same id still around is fenced, and a transaction it left open is aborted.
    public func initTransactions() async throws {
        guard let id = config.transactionalID else { throw ProduceError(nil, "initTransactions needs transactional.id") }
        // (`ProducerConfig(properties:)` refuses this; a config set up field by field is checked here.)
        guard config.isIdempotent else {
            throw ProduceError(nil, "transactional.id needs idempotence (acks=all, idempotence not turned off, at most 5 in flight)")
        }
        guard transaction == .uninitialized else { throw ProduceError(.invalidTxnState, "initTransactions was called already") }
        try await newEpoch(id)
        transaction = .ready
    }

    /// InitProducerId at the coordinator: the producer's id and (next) epoch.
    func newEpoch(_ id: String) async throws {
        let request = InitProducerIdRequest(transactionalId: id, transactionTimeoutMs: config.transactionTimeoutMs)
        let answer: InitProducerIdResponse = try await toTransactionCoordinator(request) { $0.errorCode }
        accumulator.useProducer(answer.producerId, answer.producerEpoch)
        startSender()
        ring()
    }

    public func beginTransaction() throws {
        if let fatal { throw fatal }
        switch transaction {
        case .ready: transaction = .open([])
        case .notTransactional: throw ProduceError(nil, "beginTransaction needs transactional.id")
        case .uninitialized: throw ProduceError(.invalidTxnState, "initTransactions first")
        case .open, .failed: throw ProduceError(.invalidTxnState, "a transaction is open already")
        }
    }

    /// A send's partition joins the open transaction (AddPartitionsToTxn) before its first record.
    func joinTransaction(_ partition: TopicPartition) async throws {
        switch transaction {
        case .open(let added) where added.contains(partition): return
        case .open: break
        case .failed(let error): throw ProduceError(.transactionAbortable, "the transaction failed (\(error)): abort it")
        default: throw ProduceError(.invalidTxnState, "send in a transactional producer needs beginTransaction")
        }
        guard let id = config.transactionalID, let producer = accumulator.producer else {
            throw ProduceError(.invalidTxnState, "no producer id: initTransactions first")
        }
        let request = AddPartitionsToTxnRequest(v3AndBelowTransactionalId: id, v3AndBelowProducerId: producer.id,
                                                v3AndBelowProducerEpoch: producer.epoch,
                                                v3AndBelowTopics: [.init(name: partition.topic, partitions: [partition.partition])])
        // Versions 4 and later are the brokers' own (batched, verify-only).
        let answer: AddPartitionsToTxnResponse = try await toTransactionCoordinator(request, versionMax: 3) { answer in
            answer.errorCode != 0 ? answer.errorCode
                : answer.resultsByTopicV3AndBelow.flatMap(\.resultsByPartition).map(\.partitionErrorCode).first { $0 != 0 } ?? 0
        }
        _ = answer
        if case .open(var added) = transaction {
            added.insert(partition)
            transaction = .open(added)
        }
    }

    /// Commits `offsets` (the next records to read) to `group` as part of the open
    /// transaction: a consume-transform-produce loop's progress goes with its output. `metadata`:
    /// a partition's commit metadata (the group's `offset.metadata.max.bytes` bounds it; a
    /// longer one is refused with OFFSET_METADATA_TOO_LARGE, the transaction still open).
    public func sendOffsetsToTransaction(_ offsets: [TopicPartition: Offset], group: String, member: GroupMember? = nil,
                                         metadata: [TopicPartition: String] = [:]) async throws {
        guard case .open = transaction else {
            if case .failed(let error) = transaction { throw ProduceError(.transactionAbortable, "the transaction failed (\(error)): abort it") }
            throw ProduceError(.invalidTxnState, "sendOffsetsToTransaction needs an open transaction")
        }
        guard let id = config.transactionalID, let producer = accumulator.producer else { throw ProduceError(.invalidTxnState, "no producer id") }
        let add = AddOffsetsToTxnRequest(transactionalId: id, producerId: producer.id, producerEpoch: producer.epoch, groupId: group)
        let _: AddOffsetsToTxnResponse = try await toTransactionCoordinator(add) { $0.errorCode }
        let byTopic = Dictionary(grouping: offsets, by: \.key.topic)
        let commit = TxnOffsetCommitRequest(
            transactionalId: id, groupId: group, producerId: producer.id, producerEpoch: producer.epoch,
            generationId: member?.epoch ?? -1, memberId: member?.id ?? "", groupInstanceId: member?.instanceID,
            topics: byTopic.keys.sorted().map { topic in
                .init(name: topic, partitions: byTopic[topic]!.sorted { $0.key.partition < $1.key.partition }.map {
                    .init(partitionIndex: $0.key.partition, committedOffset: $0.value, committedMetadata: metadata[$0.key])
                })
            })
        // At the group's coordinator, found again when it moved.
        let deadline = nowMs() + config.maxBlockMs
        while true {
            var why = "no answer"
            if let node = try? await cluster.coordinator(ofGroup: group),
               let answer = try? await cluster.send(commit, toNode: node, timeoutMs: Int64(config.requestTimeoutMs)) {
                let codes = answer.topics.flatMap(\.partitions).map { ErrorCode(rawValue: $0.errorCode) }.filter { $0 != .none }
                guard let code = codes.first else { return }
                guard ClusterClient.coordinatorMoved.contains(code) || code == .concurrentTransactions else {
                    throw ProduceError(code, "offsets of group \(group) in transaction \(id)")
                }
                why = "\(code)"
            }
            guard nowMs() < deadline else { throw ProduceError(.requestTimedOut, "offsets of group \(group) in transaction \(id): \(why)") }
            try await Task.sleep(for: .milliseconds(max(config.retryBackoffMs, 10)))
        }
    }

    /// Sends what the transaction holds, waits for it, and commits the transaction; throws
    /// (and leaves it to `abortTransaction`) if a record of it failed.
    public func commitTransaction() async throws {
        guard case .open = transaction else {
            if case .failed(let error) = transaction { throw ProduceError(.transactionAbortable, "the transaction failed (\(error)): abort it") }
            throw ProduceError(.invalidTxnState, "commitTransaction needs an open transaction")
        }
        await flush()
        if let fatal { throw fatal }
        if case .failed(let error) = transaction { throw ProduceError(.transactionAbortable, "a record of the transaction failed (\(error)): abort it") }
        try await endTransaction(commit: true)
    }

    /// Ends the open transaction without its records: those not sent yet fail, those sent are
    /// marked aborted (read_committed consumers skip them).
    public func abortTransaction() async throws {
        if let fatal { throw fatal }
        switch transaction {
        case .open, .failed: break
        default: throw ProduceError(.invalidTxnState, "abortTransaction needs an open transaction")
        }
        // Records not handed out yet are dropped; those in flight are waited for.
        fail(accumulator.expire(nowMs: .max / 2), ProduceError(.transactionAbortable, "the transaction was aborted"))
        resumeWaiters()
        while !accumulator.isEmpty { await waitForCompletion(untilMs: nowMs() + 100) }
        if accumulator.needsProducer, let id = config.transactionalID {
            // The producer lost its sequences: a new epoch, which also aborts the transaction.
            try await newEpoch(id)
            transaction = .ready
            return
        }
        try await endTransaction(commit: false)
    }

    func endTransaction(commit: Bool) async throws {
        guard let id = config.transactionalID, let producer = accumulator.producer else { throw ProduceError(.invalidTxnState, "no producer id") }
        let request = EndTxnRequest(transactionalId: id, producerId: producer.id, producerEpoch: producer.epoch, committed: commit)
        // Version 5 (KIP-890's transaction version 2) ends each transaction under a new epoch,
        // which this producer does not follow yet.
        let _: EndTxnResponse = try await toTransactionCoordinator(request, versionMax: 4) { $0.errorCode }
        transaction = .ready
    }

    /// Sends `request` to the transaction coordinator, finding it again after a coordinator
    /// error or a lost connection, and again after CONCURRENT_TRANSACTIONS (an earlier
    /// transaction still ending), until `max.block.ms`; other errors are thrown (a fenced
    /// producer's for good).
    func toTransactionCoordinator<R: KafkaRequest>(_ request: R, versionMax: Int16? = nil,
                                                   error: (R.Response) -> Int16) async throws -> R.Response {
        guard let id = config.transactionalID else { preconditionFailure("a transactional producer") }
        let deadline = nowMs() + config.maxBlockMs
        var last = "no answer"
        while nowMs() < deadline {
            do {
                let node: NodeID
                if let known = transactionCoordinator { node = known } else { node = try await cluster.coordinator(ofTransaction: id) }
                transactionCoordinator = node
                let timeout = Int64(config.requestTimeoutMs)
                let answer = try await cluster.using(try await cluster.address(of: node)) { connection in
                    let version = min(try connection.version(for: R.self), versionMax ?? .max)
                    return try await connection.send(request, version: version, timeoutMs: timeout)
                }
                let code = ErrorCode(rawValue: error(answer))
                switch code {
                case .none: return answer
                case .notCoordinator, .coordinatorNotAvailable, .coordinatorLoadInProgress:
                    transactionCoordinator = nil
                case .concurrentTransactions, .requestTimedOut:
                    break
                case .producerFenced, .invalidProducerEpoch, .transactionalIDAuthorizationFailed, .invalidProducerIDMapping:
                    let refused = ProduceError(code, "\(R.apiName) for transactional id \(id)")
                    fatal = fatal ?? refused
                    failEverything(refused)
                    throw refused
                default:
                    throw ProduceError(code, "\(R.apiName) for transactional id \(id)")
                }
                last = "\(code)"
            } catch let refused as ProduceError where !ClusterClient.coordinatorMoved.contains(refused.code ?? .none) {
                // (FindCoordinator's COORDINATOR_NOT_AVAILABLE, as while the transaction log is
                // being made, is asked again below.)
                throw refused
            } catch {
                transactionCoordinator = nil
                last = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(max(config.retryBackoffMs, 10)))
        }
        throw ProduceError(.requestTimedOut, "\(R.apiName) for transactional id \(id) within max.block.ms: \(last)")
    }
}
