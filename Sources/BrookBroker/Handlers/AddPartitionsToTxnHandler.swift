import BrookCore
import BrookProtocol
import BrookTxn

/// AddPartitionsToTxn: the partitions a transactional producer is about to write join its
/// transaction (the first one starts it). v0-3 carry one transaction; v4+ (sent by brokers)
/// carry several and may only verify (`verify_only`) that the partitions are in.
struct AddPartitionsToTxnHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...5

    typealias TopicResult = AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult

    func handle(_ request: AddPartitionsToTxnRequest, version: Int16, context: RequestContext) -> Reply<AddPartitionsToTxnResponse> {
        if version <= 3 {
            let (codes, written) = add(id: request.v3AndBelowTransactionalId, producerID: request.v3AndBelowProducerId,
                                       epoch: request.v3AndBelowProducerEpoch, partitions: Self.partitions(request.v3AndBelowTopics),
                                       verifyOnly: false, version: version, context: context)
            let topics = request.v3AndBelowTopics
            return InternalWrite.reply(codes, after: written, on: context.eventLoop, failed: { code in codes.mapValues { _ in code } }) { codes in
                AddPartitionsToTxnResponse(throttleTimeMs: 0, resultsByTopicV3AndBelow: Self.results(topics, codes))
            }
        }
        var written: [InternalWrite] = []
        let answers = request.transactions.map { t in
            let (codes, writes) = add(id: t.transactionalId, producerID: t.producerId, epoch: t.producerEpoch, partitions: Self.partitions(t.topics),
                                      verifyOnly: t.verifyOnly, version: version, context: context)
            written += writes
            return (t.transactionalId, t.topics, codes)
        }
        let failed: @Sendable (ErrorCode) -> [(String, [AddPartitionsToTxnRequest.AddPartitionsToTxnTopic], [TxnPartition: ErrorCode])] = { code in
            answers.map { ($0.0, $0.1, $0.2.mapValues { _ in code }) }
        }
        return InternalWrite.reply(answers, after: written, on: context.eventLoop, failed: failed) { answers in
            AddPartitionsToTxnResponse(throttleTimeMs: 0, errorCode: 0, resultsByTransaction: answers.map { id, topics, codes in
                AddPartitionsToTxnResponse.AddPartitionsToTxnResult(transactionalId: id, topicResults: Self.results(topics, codes))
            })
        }
    }

    static func partitions(_ topics: [AddPartitionsToTxnRequest.AddPartitionsToTxnTopic]) -> [TxnPartition] {
        topics.flatMap { t in t.partitions.map { TxnPartition(t.name, $0) } }
    }

    static func results(_ topics: [AddPartitionsToTxnRequest.AddPartitionsToTxnTopic], _ codes: [TxnPartition: ErrorCode]) -> [TopicResult] {
        topics.map { t in
            TopicResult(name: t.name, resultsByPartition: t.partitions.map { p in
                .init(partitionIndex: p, partitionErrorCode: (codes[TxnPartition(t.name, p)] ?? .none).rawValue)
            })
        }
    }

    func add(id: String, producerID: ProducerID, epoch: ProducerEpoch, partitions: [TxnPartition],
             verifyOnly: Bool, version: Int16, context: RequestContext) -> ([TxnPartition: ErrorCode], [InternalWrite]) {
        let service = context.broker.transactions
        var codes: [TxnPartition: ErrorCode] = [:]
        // With an authorizer: WRITE on the transactional id and on every topic; if a topic is
        // refused none is added (the others OPERATION_NOT_ATTEMPTED), as Kafka.
        let authorization = context.authorization
        if !authorization.allows(.write, .transactionalID, id) {
            for p in partitions { codes[p] = .transactionalIDAuthorizationFailed }
            return (codes, [])
        }
        let refused = Set(partitions.map(\.topic).filter { !authorization.allows(.write, .topic, $0) })
        if !refused.isEmpty {
            for p in partitions { codes[p] = refused.contains(p.topic) ? .topicAuthorizationFailed : .operationNotAttempted }
            return (codes, [])
        }
        // An offset-preserving mirror topic takes no transaction (its markers would take offsets
        // the mirror copies into): refused as its produces are.
        let mirrors = Set(partitions.map(\.topic).filter { context.broker.topics.mirrorLink(of: $0)?.isEmpty == false })
        if !mirrors.isEmpty {
            for p in partitions { codes[p] = mirrors.contains(p.topic) ? .policyViolation : .operationNotAttempted }
            return (codes, [])
        }
        if verifyOnly {
            for p in partitions {
                codes[p] = service.verify(transactionalID: id, producerID: producerID, epoch: epoch, partition: p, asCoordinator: true) ?? ErrorCode.none
            }
            return (codes, [])
        }
        let (code, written) = service.addPartitions(transactionalID: id, producerID: producerID, epoch: epoch, partitions: partitions)
        for p in partitions { codes[p] = TxnErrors.fenced(code, version: version, since: 2) }
        return (codes, written)
    }
}
