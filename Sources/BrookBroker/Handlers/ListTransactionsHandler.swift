import BrookCore
import BrookProtocol
import BrookTxn

/// ListTransactions: the transactional ids, filtered by state, producer id and (v1) how long
/// their transaction has been open. Unknown state names are listed back.
struct ListTransactionsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...1

    func handle(_ request: ListTransactionsRequest, version: Int16, context: RequestContext) -> Reply<ListTransactionsResponse> {
        let unknown = request.stateFilters.filter { TxnStatus(name: $0) == nil }
        let now = context.broker.clock.now().ms
        let found = context.broker.transactions.read {
            $0.list(states: request.stateFilters, producerIDs: request.producerIdFilters,
                    minDurationMs: version >= 1 ? request.durationFilter : -1, now: now)
        }
        // With an authorizer: only the transactional ids it may describe.
        let authorization = context.authorization
        return .now(ListTransactionsResponse(throttleTimeMs: 0, errorCode: 0, unknownStateFilters: unknown,
                                             transactionStates: found.filter { authorization.allows(.describe, .transactionalID, $0.transactionalID) }.map {
                                                 .init(transactionalId: $0.transactionalID, producerId: $0.producerID,
                                                       transactionState: $0.status.name)
                                             }))
    }
}
