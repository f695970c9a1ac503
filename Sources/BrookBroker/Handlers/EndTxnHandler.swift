import BrookCore
import BrookProtocol

/// EndTxn: commits or aborts the transaction. The answer comes once the markers are in every
/// partition of it (in a cluster: once the decision is replicated; see TxnService.endTxn). From v5 (transaction version 2, KIP-890) each transaction ends under a new
/// epoch, returned to the producer.
struct EndTxnHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...5

    func handle(_ request: EndTxnRequest, version: Int16, context: RequestContext) -> Reply<EndTxnResponse> {
        // With an authorizer: WRITE on the transactional id.
        if !context.authorization.allows(.write, .transactionalID, request.transactionalId) {
            return .now(EndTxnResponse(throttleTimeMs: 0, errorCode: ErrorCode.transactionalIDAuthorizationFailed.rawValue,
                                       producerId: .none, producerEpoch: .none))
        }
        let service = context.broker.transactions
        let (result, written) = service.endTxn(transactionalID: request.transactionalId, producerID: request.producerId,
                                               epoch: request.producerEpoch, commit: request.committed, bumpEpoch: version >= 5)
        return InternalWrite.reply(result, after: written, on: context.eventLoop, failed: { .init(error: $0, producerID: .none, epoch: .none) }) { result in
            EndTxnResponse(throttleTimeMs: 0, errorCode: TxnErrors.fenced(result.error, version: version, since: 2).rawValue,
                           producerId: result.producerID, producerEpoch: result.epoch)
        }
    }
}
