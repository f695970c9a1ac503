import BrookCore
import BrookProtocol

/// DescribeTransactions: each transactional id's state, producer, timeout and partitions.
struct DescribeTransactionsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...0

    func handle(_ request: DescribeTransactionsRequest, version: Int16, context: RequestContext) -> Reply<DescribeTransactionsResponse> {
        // With an authorizer: DESCRIBE on each transactional id.
        let authorization = context.authorization
        return .now(DescribeTransactionsResponse(throttleTimeMs: 0, transactionStates: request.transactionalIds.map { id in
            guard authorization.allows(.describe, .transactionalID, id) else {
                return .init(errorCode: ErrorCode.transactionalIDAuthorizationFailed.rawValue, transactionalId: id, transactionState: "",
                             producerId: .none, producerEpoch: .none)
            }
            guard let m = context.broker.transactions.read({ $0.metadata(id) }) else {
                return .init(errorCode: ErrorCode.transactionalIDNotFound.rawValue, transactionalId: id, transactionState: "",
                             producerId: .none, producerEpoch: .none)
            }
            let byTopic = Dictionary(grouping: m.partitions, by: \.topic)
            return .init(errorCode: 0, transactionalId: id, transactionState: m.status.name, transactionTimeoutMs: m.timeoutMs,
                         transactionStartTimeMs: m.startMs, producerId: m.producerID, producerEpoch: m.epoch,
                         topics: byTopic.keys.sorted().map { topic in
                             .init(topic: topic, partitions: byTopic[topic]!.map(\.partition).sorted())
                         })
        }))
    }
}
