import BrookBroker
import BrookMQTT
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// MQTT over WebSocket (for browsers): an HTTP upgrade (subprotocol `mqtt`, any path), then
/// binary frames whose bytes are the MQTT stream (a packet may span frames, a frame hold several).
enum MQTTWebSocket {
    static let refuserName = "mqtt-ws-refuse"

    /// `ws://` and `wss://` listeners speak WebSocket; `mqtts://` and `wss://` TLS.
    static func isWebSocket(_ listener: Listener) -> Bool { ["ws", "wss"].contains(listener.name.lowercased()) }
    static func usesTLS(_ listener: Listener) -> Bool { ["mqtts", "wss"].contains(listener.name.lowercased()) }

    /// The pipeline of a `ws://` listener's connection: HTTP until the upgrade, then `connection`.
    /// A connection not upgraded within `upgradeTimeout` is closed.
    static func configure(_ channel: any Channel, frameBytesMax: Int, upgradeTimeout: TimeAmount,
                          connection: @escaping @Sendable () -> MQTTConnection) -> EventLoopFuture<Void> {
        channel.eventLoop.scheduleTask(in: upgradeTimeout) {
            channel.pipeline.handler(type: MQTTConnection.self).whenFailure { _ in channel.close(promise: nil) }
        }
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: frameBytesMax,
            shouldUpgrade: { channel, head in
                let offered = head.headers[canonicalForm: "Sec-WebSocket-Protocol"].map { $0.lowercased() }
                // Clients name "mqtt" (MQTT 3.1.1 and 5.0); older ones "mqttv3.1".
                guard let chosen = ["mqtt", "mqttv3.1"].first(where: { offered.contains($0) }) else {
                    return channel.eventLoop.makeSucceededFuture(nil)
                }
                return channel.eventLoop.makeSucceededFuture(HTTPHeaders([("Sec-WebSocket-Protocol", chosen)]))
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(MQTTWebSocketBridge())
                    try channel.pipeline.syncOperations.addHandler(connection())
                }
            })
        return channel.pipeline.configureHTTPServerPipeline(
            withServerUpgrade: (upgraders: [upgrader], completionHandler: { context in
                context.pipeline.removeHandler(name: refuserName, promise: nil)
            })
        ).flatMap {
            channel.pipeline.addHandler(RefuseHTTP(), name: refuserName)
        }
    }
}

/// A request that is not a WebSocket upgrade to MQTT: 400, then closed.
final class RefuseHTTP: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        var head = HTTPResponseHead(version: .http1_1, status: .badRequest)
        let body = "this is an MQTT over WebSocket listener: upgrade with the subprotocol mqtt\n"
        head.headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        head.headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}

/// WebSocket frames in, the MQTT byte stream out (and back): binary and continuation frames carry
/// the stream; pings are answered; a text frame ends the connection (MQTT is binary); a close
/// is answered and the connection closed.
final class MQTTWebSocketBridge: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = WebSocketFrame

    var closing = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .continuation:
            context.fireChannelRead(wrapInboundOut(frame.unmaskedData))
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            guard !closing else { return context.close(promise: nil) }
            closing = true
            var code = context.channel.allocator.buffer(capacity: 2)
            code.write(webSocketErrorCode: .normalClosure)
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: code))).whenComplete { _ in
                context.close(promise: nil)
            }
        case .text:
            var code = context.channel.allocator.buffer(capacity: 2)
            code.write(webSocketErrorCode: .unacceptableData)
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: code))).whenComplete { _ in
                context.close(promise: nil)
            }
        default:
            break
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = unwrapOutboundIn(data)
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .binary, data: bytes)), promise: promise)
    }
}
