import BrookCore
import BrookProtocol

/// DescribeProducers: the idempotent and transactional producers a partition knows, with their
/// epoch, last sequence and open transaction.
struct DescribeProducersHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...0

    func handle(_ request: DescribeProducersRequest, version: Int16, context: RequestContext) -> Reply<DescribeProducersResponse> {
        // With an authorizer: READ on each topic.
        let authorization = context.authorization
        return .now(DescribeProducersResponse(throttleTimeMs: 0, topics: request.topics.map { topic in
            let readable = authorization.allows(.read, .topic, topic.name)
            return .init(name: topic.name, partitions: topic.partitionIndexes.map { index in
                guard readable else { return .init(partitionIndex: index, errorCode: ErrorCode.topicAuthorizationFailed.rawValue) }
                let found = context.broker.topics.lookup(topic.name, index)
                guard case .hosted(let partition) = found else {
                    return .init(partitionIndex: index, errorCode: found.absentCode.rawValue)
                }
                let producers = partition.producers.sorted { $0.key < $1.key }
                return .init(partitionIndex: index, errorCode: 0, activeProducers: producers.map { id, entry in
                    .init(producerId: id, producerEpoch: Int32(entry.epoch.value), lastSequence: entry.lastSequence,
                          lastTimestamp: entry.lastTimestamp, coordinatorEpoch: entry.coordinatorEpoch,
                          currentTxnStartOffset: entry.currentTxnFirstOffset ?? Offset(-1))
                })
            })
        }))
    }
}
