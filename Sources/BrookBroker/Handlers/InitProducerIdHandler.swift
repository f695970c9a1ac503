import BrookCore
import BrookProtocol
import NIOCore

/// InitProducerId: a fresh producer id for an idempotent producer; for a transactional id, its
/// producer id with a bumped epoch (fencing older instances, whose open transaction is aborted
/// first). From v3 a producer may name its current id and epoch to have it bumped (KIP-360).
struct InitProducerIdHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...5

    func handle(_ request: InitProducerIdRequest, version: Int16, context: RequestContext) -> Reply<InitProducerIdResponse> {
        // In a cluster, the first transactional id has the controller make `__transaction_state`
        // (as a FindCoordinator would) and is answered once this broker hosts it.
        guard request.transactionalId != nil else { return answer(request, version: version, context: context) }
        return .once(FindCoordinatorHandler.transactions(context.broker.config), context: context) {
            answer(request, version: version, context: context)
        }
    }

    func answer(_ request: InitProducerIdRequest, version: Int16, context: RequestContext) -> Reply<InitProducerIdResponse> {
        // With an authorizer: WRITE on the transactional id; an idempotent producer needs
        // IDEMPOTENT_WRITE on the cluster or WRITE on some topic (KIP-679).
        let authorization = context.authorization
        if let id = request.transactionalId, !authorization.allows(.write, .transactionalID, id) {
            return .now(InitProducerIdResponse(throttleTimeMs: 0, errorCode: ErrorCode.transactionalIDAuthorizationFailed.rawValue,
                                               producerId: .none, producerEpoch: .none))
        }
        if request.transactionalId == nil && !authorization.allowsCluster(.idempotentWrite) && !authorization.mayWriteSomeTopic {
            return .now(InitProducerIdResponse(throttleTimeMs: 0, errorCode: ErrorCode.clusterAuthorizationFailed.rawValue,
                                               producerId: .none, producerEpoch: .none))
        }
        let expected = version >= 3 && request.producerId != .none ? (request.producerId, request.producerEpoch) : nil
        let service = context.broker.transactions
        let (result, written) = service.initProducerID(transactionalID: request.transactionalId,
                                                       timeoutMs: request.transactionTimeoutMs, expected: expected)
        return InternalWrite.reply(result, after: written, on: context.eventLoop, failed: { .init(error: $0, producerID: .none, epoch: .none) }) { result in
            InitProducerIdResponse(throttleTimeMs: 0, errorCode: TxnErrors.fenced(result.error, version: version, since: 4).rawValue,
                                   producerId: result.producerID, producerEpoch: result.epoch)
        }
    }
}

/// Error codes across the transaction APIs' versions.
enum TxnErrors {
    /// PRODUCER_FENCED (KIP-588) is known to clients from version `since` of each API; older
    /// ones get INVALID_PRODUCER_EPOCH, which they treat the same way.
    static func fenced(_ code: ErrorCode, version: Int16, since: Int16) -> ErrorCode {
        code == .producerFenced && version < since ? .invalidProducerEpoch : code
    }
}
