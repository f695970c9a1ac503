import BrookCore
import BrookProtocol

/// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction, so that
/// TxnOffsetCommit may write there and the markers reach it.
struct AddOffsetsToTxnHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...4

    func handle(_ request: AddOffsetsToTxnRequest, version: Int16, context: RequestContext) -> Reply<AddOffsetsToTxnResponse> {
        // With an authorizer: WRITE on the transactional id, READ on the group.
        let authorization = context.authorization
        if !authorization.allows(.write, .transactionalID, request.transactionalId) {
            return .now(AddOffsetsToTxnResponse(throttleTimeMs: 0, errorCode: ErrorCode.transactionalIDAuthorizationFailed.rawValue))
        }
        if !authorization.allows(.read, .group, request.groupId) {
            return .now(AddOffsetsToTxnResponse(throttleTimeMs: 0, errorCode: ErrorCode.groupAuthorizationFailed.rawValue))
        }
        let service = context.broker.transactions
        let (code, written) = service.addOffsets(transactionalID: request.transactionalId, producerID: request.producerId,
                                                 epoch: request.producerEpoch, groupID: request.groupId)
        return InternalWrite.reply(code, after: written, on: context.eventLoop, failed: { $0 }) { code in
            AddOffsetsToTxnResponse(throttleTimeMs: 0, errorCode: TxnErrors.fenced(code, version: version, since: 2).rawValue)
        }
    }
}
