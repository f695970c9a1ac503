import BrookCluster
import BrookCore
import BrookProtocol
import NIOCore

/// UnregisterBroker (`kafka-cluster.sh unregister`, `brook cluster unregister`): the controller
/// removes the broker's registration, and in the same entry its leaderships, ISR and ELR places;
/// answered once committed. A broker that is not registered gets BROKER_ID_NOT_REGISTERED; a node
/// without a metadata quorum (`brook.single.node.quorum=false`) has nothing to unregister.
struct UnregisterBrokerHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...0

    func handle(_ request: UnregisterBrokerRequest, version: Int16, context: RequestContext) -> Reply<UnregisterBrokerResponse> {
        let broker = context.broker
        guard broker.cluster.isCluster, let image = broker.cluster.current?.image else {
            return .now(UnregisterBrokerResponse(errorCode: ErrorCode.unsupportedVersion.rawValue,
                                                 errorMessage: "This node runs without a metadata quorum: there are no registrations."))
        }
        guard image.brokers[request.brokerId] != nil else {
            return .now(Self.answer(.brokerIDNotRegistered, "Broker \(request.brokerId) is not registered."))
        }
        return .later(broker.cluster.forward(.unregisterBroker(request.brokerId), on: context.eventLoop).map { result in
            switch result {
            case .success(let answers):
                let answer = answers.first ?? TopicAnswer(name: "", error: .unknownServerError, message: "The controller gave no answer.")
                return Self.answer(answer.error, answer.message)
            case .failure(let error):
                return Self.answer(.requestTimedOut, "The controller did not answer: \(error)")
            }
        })
    }

    static func answer(_ code: ErrorCode, _ message: String?) -> UnregisterBrokerResponse {
        UnregisterBrokerResponse(errorCode: code.rawValue, errorMessage: code == .none ? nil : message)
    }

    func refused(_ request: UnregisterBrokerRequest, version: Int16, code: ErrorCode, message: String) -> UnregisterBrokerResponse? {
        UnregisterBrokerResponse(errorCode: code.rawValue, errorMessage: message)
    }
}
