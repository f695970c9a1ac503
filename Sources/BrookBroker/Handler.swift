import BrookCluster
import BrookCore
import BrookProtocol
import NIOCore

/// What a request is answered with.
public enum Reply<Response: Sendable>: Sendable {
    /// Answered at once.
    case now(Response)
    /// Answered later (a long-poll fetch).
    case later(EventLoopFuture<Response>)
    /// Answered later, by work moved off the event loop (a large compressed produce); the
    /// connection takes up none of its next requests until `handled` completes, so that they do
    /// not reach a partition before this one.
    case offloaded(EventLoopFuture<Response>, handled: EventLoopFuture<Void>)
    /// No answer at all (produce with acks=0).
    case none
    /// No answer, and the connection is closed (a failed produce with acks=0: the client's only
    /// signal, as in Kafka).
    case closeConnection(String)
    /// Answered (now or later), then the connection is closed (a failed authentication).
    case answerThenClose(EventLoopFuture<Response>, String)
}

extension Reply {
    /// The same reply with `transform` applied to its answer, now or when it comes.
    func map(_ transform: @escaping @Sendable (Response) -> Response) -> Reply {
        switch self {
        case .now(let response): .now(transform(response))
        case .later(let future): .later(future.map(transform))
        case .offloaded(let future, let handled): .offloaded(future.map(transform), handled: handled)
        case .answerThenClose(let future, let reason): .answerThenClose(future.map(transform), reason)
        case .none, .closeConnection: self
        }
    }
}

/// The operations a client may do on a resource, as the bit field (1 << AclOperation code)
/// that Metadata, DescribeCluster and the group descriptions answer when asked. With no
/// authorizer, as Brook has today, Kafka answers every operation the resource type supports
/// (AclEntry.supportedOperations).
enum AuthorizedOperations {
    // AclOperation codes.
    static let read: Int32 = 3, write: Int32 = 4, create: Int32 = 5, delete: Int32 = 6, alter: Int32 = 7,
               describe: Int32 = 8, clusterAction: Int32 = 9, describeConfigs: Int32 = 10, alterConfigs: Int32 = 11,
               idempotentWrite: Int32 = 12

    static func field(_ operations: [Int32]) -> Int32 { operations.reduce(0) { $0 | (1 << $1) } }

    static let topicOperations: [Int32] = [read, write, create, describe, delete, alter, describeConfigs, alterConfigs]
    static let groupOperations: [Int32] = [read, describe, delete, describeConfigs, alterConfigs]
    static let clusterOperations: [Int32] = [create, clusterAction, describeConfigs, alterConfigs, idempotentWrite, alter, describe]
    static let topic = field(topicOperations)
    static let group = field(groupOperations)
    static let cluster = field(clusterOperations)

    /// What `authorization` allows on a resource, as the bit field (all of it without an authorizer).
    static func allowed(_ operations: [Int32], _ type: AclResourceType, _ name: String, _ authorization: Authorization) -> Int32 {
        field(operations.filter { code in AclOperation(rawValue: Int8(code)).map { authorization.allows($0, type, name) } ?? false })
    }
    static func topic(_ name: String, _ authorization: Authorization) -> Int32 {
        authorization.enabled ? allowed(topicOperations, .topic, name, authorization) : topic
    }
    static func group(_ name: String, _ authorization: Authorization) -> Int32 {
        authorization.enabled ? allowed(groupOperations, .group, name, authorization) : group
    }
    static func cluster(_ authorization: Authorization) -> Int32 {
        authorization.enabled ? allowed(clusterOperations, .cluster, AclBinding.clusterName, authorization) : cluster
    }
}

/// Everything a handler may use besides its request.
public struct RequestContext: Sendable {
    public let header: RequestHeader
    public let eventLoop: any EventLoop
    public let broker: Broker
    /// The client's address ("/127.0.0.1"), as group members are described.
    public let clientHost: String
    /// The connection the request came on, which owns what the request leaves waiting (nil in
    /// tests that drive the broker without one).
    public let connection: ConnectionScope?

    /// The address this client is told to use for this broker: the advertised listener named
    /// like the one the request came on.
    var advertised: Listener { broker.config.advertised(named: connection?.listener.name) }
}

/// One API: its request type and the versions it serves. One file per handler (Handlers/).
public protocol ApiHandler: Sendable {
    associatedtype Request: KafkaRequest
    /// The versions this broker decodes and answers.
    var versions: ClosedRange<Int16> { get }
    /// The versions listed in ApiVersions (usually the same; Produce lists more, see its file).
    var advertised: ClosedRange<Int16> { get }
    func handle(_ request: Request, version: Int16, context: RequestContext) -> Reply<Request.Response>
    /// The answer to a request refused as a whole before it runs (an API checked on the cluster,
    /// Authorization.checks, that the principal may not use): `code` in its error fields, as
    /// Kafka answers. nil (the default) closes the connection instead.
    func refused(_ request: Request, version: Int16, code: ErrorCode, message: String) -> Request.Response?
    /// Whether the request's handling time is left out of `request_percentage` quotas: a
    /// follower's fetch and the other requests between brokers, as Kafka leaves them out.
    func exemptFromRequestQuota(_ request: Request) -> Bool
}

extension ApiHandler {
    public var advertised: ClosedRange<Int16> { versions }
    public func refused(_ request: Request, version: Int16, code: ErrorCode, message: String) -> Request.Response? { nil }
    public func exemptFromRequestQuota(_ request: Request) -> Bool { false }
}

/// A response ready to go out: the size prefix, header and body in `writer.buffer`, with any
/// file-backed record data noted where it belongs.
public struct EncodedResponse: Sendable {
    public var writer: WireWriter

    static func encode<R: KafkaMessage>(_ response: R, header: RequestHeader) -> EncodedResponse {
        var writer = WireWriter(buffer: ByteBufferAllocator().buffer(capacity: 128))
        writer.writeInt32(0)
        ResponseHeader.encode(correlationID: header.correlationID, apiKey: header.apiKey, apiVersion: header.apiVersion, to: &writer)
        response.encode(to: &writer, version: header.apiVersion)
        let size = writer.messageBytes - 4
        precondition(size >= 0 && size <= Int(Int32.max), "response of \(size) bytes")
        writer.buffer.setInteger(Int32(size), at: writer.buffer.readerIndex)
        return EncodedResponse(writer: writer)
    }
}

/// Told of each error code an answer carries, at any depth (a Produce answer's per-partition
/// codes included): the server counts errors by API and code. Called on the thread that
/// encodes the answer.
public protocol ResponseErrorObserver: Sendable {
    func responseError(apiKey: Int16, code: ErrorCode)
}

extension EncodedResponse {
    static func encode<R: KafkaMessage>(_ response: R, header: RequestHeader, errors: (any ResponseErrorObserver)?) -> EncodedResponse {
        if let errors {
            response.visitErrorCodes { code in
                if code != 0 { errors.responseError(apiKey: header.apiKey, code: ErrorCode(rawValue: code)) }
            }
        }
        return encode(response, header: header)
    }
}

/// What the server does with a request.
public enum Outcome: Sendable {
    case respond(EncodedResponse)
    case later(EventLoopFuture<EncodedResponse>)
    /// Answered later; the connection handles no later request before `handled` completes.
    case offloaded(EventLoopFuture<EncodedResponse>, handled: EventLoopFuture<Void>)
    case none
    /// Close the connection after the answers before it (the reason is logged).
    case close(String)
    /// Answered later, then the connection closes; nothing after it is read.
    case laterThenClose(EventLoopFuture<EncodedResponse>, String)
}

/// The handlers by API key. ApiVersions answers from this table, so it cannot list an API
/// that is not served.
public struct HandlerTable: Sendable {
    public struct Entry: Sendable {
        public let apiKey: Int16
        public let name: String
        public let versions: ClosedRange<Int16>
        public let advertised: ClosedRange<Int16>
        let run: @Sendable (ByteBuffer, RequestContext) throws(ProtocolError) -> Outcome
    }

    public private(set) var entries: [Int16: Entry] = [:]

    public init() {}

    public mutating func register<H: ApiHandler>(_ handler: H) {
        let key = H.Request.apiKey
        precondition(entries[key] == nil, "two handlers for API \(key)")
        precondition(H.Request.versions.contains(handler.versions.lowerBound)
                     && H.Request.versions.contains(handler.versions.upperBound),
                     "\(H.Request.apiName) serves versions its definition lacks")
        entries[key] = Entry(apiKey: key, name: H.Request.apiName, versions: handler.versions, advertised: handler.advertised) {
            body, context throws(ProtocolError) in
            let version = context.header.apiVersion
            let request = try H.Request(decoding: body, version: version, trailingBytesAllowed: true)
            let errors = context.broker.responseErrors
            if let refusal = context.clusterRefusal(key) {
                guard let answer = handler.refused(request, version: version, code: .clusterAuthorizationFailed, message: refusal) else {
                    return .close(refusal)
                }
                return .respond(.encode(answer, header: context.header, errors: errors))
            }
            var reply: Reply<H.Request.Response>
            if context.measuresRequestTime && !handler.exemptFromRequestQuota(request) {
                let started = NIODeadline.now().uptimeNanoseconds
                reply = handler.handle(request, version: version, context: context)
                let ms = context.throttleRequest(nanoseconds: NIODeadline.now().uptimeNanoseconds &- started)
                if ms > 0 { reply = reply.map { throttled($0, atLeast: ms) } }
            } else {
                reply = handler.handle(request, version: version, context: context)
            }
            let header = context.header
            switch reply {
            case .now(let response):
                return .respond(.encode(response, header: header, errors: errors))
            case .later(let future):
                return .later(future.map { .encode($0, header: header, errors: errors) })
            case .offloaded(let future, let handled):
                return .offloaded(future.map { .encode($0, header: header, errors: errors) }, handled: handled)
            case .none:
                return .none
            case .closeConnection(let reason):
                return .close(reason)
            case .answerThenClose(let future, let reason):
                return .laterThenClose(future.map { .encode($0, header: header, errors: errors) }, reason)
            }
        }
    }

    /// Every API served, by key.
    public var sorted: [Entry] { entries.values.sorted { $0.apiKey < $1.apiKey } }
}
