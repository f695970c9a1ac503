import BrookCluster
import BrookProtocol
import BrookSecurity
import NIOCore

/// SaslAuthenticate: one step of the exchange the handshake chose. PLAIN takes one message and
/// checks it against the listener's users; SCRAM takes two and checks the proof against the
/// credentials in the metadata log; OAUTHBEARER takes one carrying a JWT (OAuthBearer; a
/// refusal is answered at once, without RFC 7628's error challenge). A failure is answered SASL_AUTHENTICATION_FAILED at once,
/// logged with the peer's address and counted; the connection closes
/// `connection.failed.authentication.delay.ms` after the answer (as Kafka: the client reads
/// the answer, and a client that retries at once is slowed). With `connections.max.reauth.ms`
/// the session ends that long after each authentication, and the client re-authenticates on
/// the same connection (KIP-368; the broker's side is in Broker.handle and the handshake).
struct SaslAuthenticateHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...2
    /// As SaslHandshake's.
    func exemptFromRequestQuota(_ request: SaslAuthenticateRequest) -> Bool { true }

    func handle(_ request: SaslAuthenticateRequest, version: Int16, context: RequestContext) -> Reply<SaslAuthenticateResponse> {
        guard let connection = context.connection else {
            return .now(SaslAuthenticateResponse(errorCode: ErrorCode.illegalSaslState.rawValue, errorMessage: "No connection to authenticate."))
        }
        let message = Array(request.authBytes.readableBytesView)
        switch connection.authentication {
        case .handshaken(.plain):
            switch PlainAuthentication.check(message, users: connection.listener.plainUsers) {
            case .authenticated(let user):
                return succeed(user, mechanism: .plain, serverFinal: [], version: version, context: context)
            case .failed(let reason):
                return fail(reason, mechanism: .plain, message: "Authentication failed: Invalid username or password", context: context)
            }
        case .handshaken(.oauthBearer):
            let now = context.broker.clock.now().ms
            switch OAuthBearer.check(message, settings: context.broker.config.security.oauth, nowMs: now, verifier: context.broker.jwsVerifier) {
            case .authenticated(let user, let expiresAtMs):
                // KIP-368: with re-authentication on, the session ends with the token at the latest.
                let reauth = context.broker.config.security.reauthenticationMs
                let lifetime = reauth > 0 ? max(1, min(reauth, expiresAtMs - now)) : 0
                return succeed(user, mechanism: .oauthBearer, serverFinal: [], version: version, lifetimeMs: lifetime, context: context)
            case .failed(let reason):
                return fail(reason, mechanism: .oauthBearer, message: "Authentication failed: invalid_token", context: context)
            }
        case .handshaken(let mechanism):
            guard let scram = mechanism.scram else { return illegal(context) }
            guard let digests = context.broker.scramDigests else { return illegal(context) }
            var exchange = ScramServerExchange(scram: Scram(scram, digests: digests))
            return scramStep(&exchange, message, mechanism: mechanism, context: context)
        case .scram(var exchange):
            return scramStep(&exchange, message, mechanism: exchange.mechanism == .sha256 ? .scramSHA256 : .scramSHA512, context: context)
        case .none, .awaitingHandshake, .authenticated, .failed:
            return illegal(context)
        }
    }

    func scramStep(_ exchange: inout ScramServerExchange, _ message: [UInt8], mechanism: SaslMechanism, context: RequestContext) -> Reply<SaslAuthenticateResponse> {
        let connection = context.connection!
        let image = context.broker.cluster.current?.image
        let used = exchange.mechanism
        let step = exchange.step(message) { user in image?.scramCredential(of: user, used) }
        switch step {
        case .challenge(let bytes):
            connection.authentication = .scram(exchange)
            return .now(SaslAuthenticateResponse(authBytes: ByteBuffer(bytes: bytes)))
        case .authenticated(let user, let serverFinal):
            return succeed(user, mechanism: mechanism, serverFinal: serverFinal, version: context.header.apiVersion, context: context)
        case .failed(let reason):
            return fail(reason, mechanism: mechanism,
                        message: "Authentication failed during authentication due to invalid credentials with SASL mechanism \(mechanism.rawValue)",
                        context: context)
        }
    }

    /// Authenticated: the session's lifetime (`connections.max.reauth.ms`, KIP-368) goes to
    /// clients of version 1 and later, which re-authenticate before it ends. A re-authentication
    /// as another principal is refused, as Kafka does.
    func succeed(_ user: String, mechanism: SaslMechanism, serverFinal: [UInt8], version: Int16, lifetimeMs: Int64? = nil,
                 context: RequestContext) -> Reply<SaslAuthenticateResponse> {
        let connection = context.connection!
        let lifetime = lifetimeMs ?? context.broker.config.security.reauthenticationMs
        let before = connection.principal
        guard connection.authenticated(as: user, with: mechanism, nowMs: context.broker.clock.now().ms, lifetimeMs: lifetime) else {
            return fail("re-authenticated as User:\(user), not \(before)", mechanism: mechanism,
                        message: "Cannot change principals during re-authentication from \(before): User:\(user)", context: context)
        }
        return .now(SaslAuthenticateResponse(authBytes: ByteBuffer(bytes: serverFinal), sessionLifetimeMs: version >= 1 ? lifetime : 0))
    }

    func illegal(_ context: RequestContext) -> Reply<SaslAuthenticateResponse> {
        context.connection?.authentication = .failed
        let answer = SaslAuthenticateResponse(errorCode: ErrorCode.illegalSaslState.rawValue, errorMessage: "SaslAuthenticate out of turn.")
        return .answerThenClose(context.eventLoop.makeSucceededFuture(answer), "SaslAuthenticate out of turn")
    }

    func fail(_ reason: String, mechanism: SaslMechanism, message: String, context: RequestContext) -> Reply<SaslAuthenticateResponse> {
        context.connection?.authentication = .failed
        let broker = context.broker
        broker.authenticationFailures.add(1)
        Self.failures.warn(broker.logger, "authentication failed from \(context.clientHost.dropFirst()) with \(mechanism.rawValue) on listener \(context.connection?.listener.name ?? "?"): \(reason)")
        let answer = SaslAuthenticateResponse(errorCode: ErrorCode.saslAuthenticationFailed.rawValue, errorMessage: message)
        return .answerThenClose(context.eventLoop.makeSucceededFuture(answer), "authentication failed")
    }

    static let failures = RateLimitedLog()
}

extension MetadataImage {
    /// `user`'s SCRAM credential for `mechanism`, as a SCRAM exchange checks a proof against it.
    public func scramCredential(of user: String, _ mechanism: ScramMechanism) -> ScramCredential? {
        guard let r = scramCredentials[user]?[mechanism.rawValue] else { return nil }
        return ScramCredential(salt: Array(r.salt.readableBytesView), storedKey: Array(r.storedKey.readableBytesView),
                               serverKey: Array(r.serverKey.readableBytesView), iterations: r.iterations)
    }
}
