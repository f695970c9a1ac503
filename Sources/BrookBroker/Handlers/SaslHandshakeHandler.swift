import BrookProtocol
import BrookSecurity

/// SaslHandshake: the client names its mechanism; the answer lists the listener's. Versions 0
/// and 1 are answered alike and the exchange then runs in SaslAuthenticate requests: version 0's
/// bare tokens (sent by clients that know no SaslAuthenticate) are not served, but librdkafka
/// looks for version 0 before it uses version 1 with SaslAuthenticate. On a listener without SASL,
/// or in the middle of an exchange, it is ILLEGAL_SASL_STATE; on an authenticated connection it
/// starts a re-authentication (KIP-368) with the same mechanism. A mechanism the listener does
/// not enable (or another one when re-authenticating) is UNSUPPORTED_SASL_MECHANISM and closes
/// the connection after the answer.
struct SaslHandshakeHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...1
    /// Before authentication there is no principal a quota could name (Kafka's authenticator
    /// answers these outside its request quotas).
    func exemptFromRequestQuota(_ request: SaslHandshakeRequest) -> Bool { true }

    func handle(_ request: SaslHandshakeRequest, version: Int16, context: RequestContext) -> Reply<SaslHandshakeResponse> {
        guard let connection = context.connection, connection.listener.securityProtocol.usesSASL else {
            return .now(SaslHandshakeResponse(errorCode: ErrorCode.illegalSaslState.rawValue))
        }
        let enabled = connection.listener.mechanisms.map(\.rawValue)
        // A re-authentication (KIP-368) starts with a handshake on an authenticated connection.
        let reauthenticating = connection.mechanism != nil
        if case .authenticated = connection.authentication, reauthenticating {} else if case .awaitingHandshake = connection.authentication {} else {
            return .answerThenClose(context.eventLoop.makeSucceededFuture(SaslHandshakeResponse(errorCode: ErrorCode.illegalSaslState.rawValue, mechanisms: enabled)),
                                    "SaslHandshake out of turn")
        }
        guard let mechanism = SaslMechanism(rawValue: request.mechanism), connection.listener.mechanisms.contains(mechanism),
              mechanism.scram == nil || context.broker.scramDigests != nil, !reauthenticating || mechanism == connection.mechanism,
              mechanism != .oauthBearer || context.broker.config.security.oauthProblem == nil else {
            connection.authentication = .failed
            return .answerThenClose(context.eventLoop.makeSucceededFuture(SaslHandshakeResponse(errorCode: ErrorCode.unsupportedSaslMechanism.rawValue, mechanisms: enabled)),
                                    "SASL mechanism '\(request.mechanism.prefix(64))' is not enabled")
        }
        connection.authentication = .handshaken(mechanism)
        return .now(SaslHandshakeResponse(errorCode: ErrorCode.none.rawValue, mechanisms: enabled))
    }
}
