import BrookBroker
import BrookProtocol
import NIOCore

/// Kafka requests to this node's broker from inside the process (the MQTT gateway's produces,
/// fetches and metadata): encoded and handled exactly as a client's over a socket would be, so
/// they take the same path (validation, acks=all, long polls, metrics), without the socket.
struct LocalKafka: Sendable {
    let broker: Broker
    let clientID: String

    struct Refused: Error, CustomStringConvertible {
        let description: String
    }

    /// Sends `request` as if on `scope`'s connection; call on `scope`'s event loop. The answer
    /// comes on that loop.
    func send<R: KafkaRequest>(_ request: R, version: Int16, scope: ConnectionScope) -> EventLoopFuture<R.Response> {
        let loop = scope.eventLoop
        loop.preconditionInEventLoop()
        var writer = WireWriter()
        let header = RequestHeader(apiKey: R.apiKey, apiVersion: version, correlationID: 1, clientID: clientID)
        header.encode(to: &writer)
        request.encode(to: &writer, version: version)
        let outcome: Outcome
        do {
            outcome = try broker.handle(frame: writer.buffer, eventLoop: loop, clientHost: "/127.0.0.1", connection: scope)
        } catch {
            return loop.makeFailedFuture(error)
        }
        let encoded: EventLoopFuture<EncodedResponse>
        switch outcome {
        case .respond(let answer): encoded = loop.makeSucceededFuture(answer)
        case .later(let future), .offloaded(let future, _), .laterThenClose(let future, _): encoded = future.hop(to: loop)
        case .none: return loop.makeFailedFuture(Refused(description: "\(R.apiName) got no answer"))
        case .close(let reason): return loop.makeFailedFuture(Refused(description: "\(R.apiName) refused: \(reason)"))
        }
        return encoded.flatMapThrowing { answer in try Self.decode(answer, R.Response.self, apiKey: R.apiKey, version: version) }
    }

    /// The answer's body decoded, with record data kept in files read in.
    static func decode<M: KafkaMessage>(_ answer: EncodedResponse, _ type: M.Type, apiKey: Int16, version: Int16) throws -> M {
        var whole = try answer.writer.contiguousBytes()
        whole.moveReaderIndex(forwardBy: 4)  // the size prefix
        var reader = WireReader(whole)
        _ = try ResponseHeader.decode(apiKey: apiKey, apiVersion: version, from: &reader)
        return try M(decoding: reader.buffer, version: version)
    }
}
