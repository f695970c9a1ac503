import BrookCore
import BrookProtocol

/// EndTxn: commits or aborts the transaction. The answer comes once the markers are in every
/// partition of it. From v5 (transaction version 2, KIP-890) each transaction ends under a new
/// epoch, returned to the producer.
struct EndTxnHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...5

    func handle(_ request: EndTxnRequest, version: Int16, context: RequestContext) -> Reply<EndTxnResponse> {
        let result = context.broker.transactions.endTxn(transactionalID: request.transactionalId, producerID: request.producerId,
                                                        epoch: request.producerEpoch, commit: request.committed,
                                                        bumpEpoch: version >= 5)
        return .now(EndTxnResponse(throttleTimeMs: 0, errorCode: TxnErrors.fenced(result.error, version: version, since: 2).rawValue,
                                   producerId: result.producerID, producerEpoch: result.epoch))
    }
}
