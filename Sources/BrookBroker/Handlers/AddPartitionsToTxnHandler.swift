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
            let results = add(id: request.v3AndBelowTransactionalId, producerID: request.v3AndBelowProducerId,
                              epoch: request.v3AndBelowProducerEpoch, topics: request.v3AndBelowTopics, verifyOnly: false,
                              version: version, context: context)
            return .now(AddPartitionsToTxnResponse(throttleTimeMs: 0, resultsByTopicV3AndBelow: results))
        }
        return .now(AddPartitionsToTxnResponse(throttleTimeMs: 0, errorCode: 0, resultsByTransaction: request.transactions.map { t in
            AddPartitionsToTxnResponse.AddPartitionsToTxnResult(
                transactionalId: t.transactionalId,
                topicResults: add(id: t.transactionalId, producerID: t.producerId, epoch: t.producerEpoch, topics: t.topics,
                                  verifyOnly: t.verifyOnly, version: version, context: context))
        }))
    }

    func add(id: String, producerID: ProducerID, epoch: ProducerEpoch, topics: [AddPartitionsToTxnRequest.AddPartitionsToTxnTopic],
             verifyOnly: Bool, version: Int16, context: RequestContext) -> [TopicResult] {
        let service = context.broker.transactions
        let partitions = topics.flatMap { t in t.partitions.map { TxnPartition(t.name, $0) } }
        var codes: [TxnPartition: ErrorCode] = [:]
        if verifyOnly {
            for p in partitions {
                codes[p] = service.verify(transactionalID: id, producerID: producerID, epoch: epoch, partition: p) ?? .none
            }
        } else {
            let code = service.addPartitions(transactionalID: id, producerID: producerID, epoch: epoch, partitions: partitions)
            for p in partitions { codes[p] = TxnErrors.fenced(code, version: version, since: 2) }
        }
        return topics.map { t in
            TopicResult(name: t.name, resultsByPartition: t.partitions.map { p in
                .init(partitionIndex: p, partitionErrorCode: (codes[TxnPartition(t.name, p)] ?? .none).rawValue)
            })
        }
    }
}
