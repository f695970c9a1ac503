import ArgumentParser
import BrookMQTT
import BrookServer
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// `brook perf mqtt`: load on any MQTT broker (Brook's listener, Mosquitto): publishers at QoS 0
/// or 1 and a subscriber that times each message from its publish (the send time is in the
/// payload), or many idle connections for memory. With `--broker-pid`, the broker's CPU time and
/// resident memory are read from /proc around the run.
struct PerfMQTT: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mqtt", abstract: "MQTT load on a broker: publish throughput and delivery latency, or idle connections' memory.")
    @Option(help: "The broker, host:port.") var broker = "127.0.0.1:1883"
    @Option(help: "Messages to publish (over all publishers).") var messages = 200_000
    @Option(help: "Payload bytes per message (at least 8: the send time).") var size = 100
    @Option(help: "QoS of the publishes and the subscription: 0, 1 or 2.") var qos = 0
    @Option(help: "Publishing connections.") var publishers = 1
    @Option(help: "Unacknowledged QoS 1 and 2 publishes per publisher.") var window = 100
    @Flag(name: .customLong("persistent-publishers"), help: "Publishers with sessions the broker keeps (QoS 2 state saved with each write).")
    var persistentPublishers = false
    @Option(help: "Messages per second over all publishers; 0 for no cap.") var rate = 0
    @Option(name: .customLong("protocol-version"), help: "MQTT 4 (3.1.1) or 5.") var protocolVersion = 4
    @Option(name: .customLong("idle-clients"), help: "Instead: open this many connections, hold them, report the broker's memory.")
    var idleClients = 0
    @Option(name: .customLong("broker-pid"), help: "The broker's process id, to read its CPU time and memory.") var brokerPid: Int32?
    @Option(help: "Give up after this many seconds.") var timeout = 300

    func run() async throws {
        guard let version = MQTTVersion(rawValue: UInt8(protocolVersion)), version != .v3_1 else { throw ValidationError("--protocol-version takes 4 or 5") }
        guard (0...2).contains(qos), size >= 8, messages > 0, publishers > 0, window > 0 else { throw ValidationError("bad load settings") }
        let parts = broker.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--broker takes host:port") }
        raiseFileLimit()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let target = (host: String(parts[0]), port: port)
        do {
            if idleClients > 0 {
                try await idle(group: group, target: target, version: version)
            } else {
                try await load(group: group, target: target, version: version)
            }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try? await group.shutdownGracefully()
    }

    func brokerStats() -> ProcessStats? { brokerPid.flatMap { ProcessStats.read(pid: $0) } }

    func idle(group: MultiThreadedEventLoopGroup, target: (host: String, port: Int), version: MQTTVersion) async throws {
        let before = brokerStats()
        let started = now()
        var clients: [PerfMQTTClient] = []
        for i in 0..<idleClients {
            clients.append(try await PerfMQTTClient.connect(group: group, host: target.host, port: target.port, version: version,
                                                            clientID: "idle-\(i)", keepAlive: 600))
        }
        let took = now() - started
        try await Task.sleep(nanoseconds: 2_000_000_000)
        let after = brokerStats()
        print("idle connections: \(idleClients) connected in \(String(format: "%.1f", took)) s")
        if let before, let after {
            let perClient = (after.residentBytes - before.residentBytes) / Double(idleClients)
            print(String(format: "broker resident memory: %.1f MiB before, %.1f MiB with them: %.2f KiB per connection",
                         before.residentBytes / 1_048_576, after.residentBytes / 1_048_576, perClient / 1024))
        }
        for client in clients { client.close() }
    }

    func load(group: MultiThreadedEventLoopGroup, target: (host: String, port: Int), version: MQTTVersion) async throws {
        let topicBase = "perf/\(UInt32.random(in: 0...UInt32.max))"
        let subscriber = try await PerfMQTTClient.connect(group: group, host: target.host, port: target.port, version: version,
                                                          clientID: "perf-sub-\(topicBase.hashValue & 0xffff)", keepAlive: 60)
        let expected = messages
        try await subscriber.subscribe("\(topicBase)/#", qos: QoS(rawValue: UInt8(qos))!)
        var pubs: [PerfMQTTClient] = []
        for i in 0..<publishers {
            pubs.append(try await PerfMQTTClient.connect(group: group, host: target.host, port: target.port, version: version,
                                                         clientID: "perf-pub-\(i)-\(topicBase.hashValue & 0xffff)", keepAlive: 60,
                                                         persistent: persistentPublishers))
        }
        let before = brokerStats()
        let start = now()
        let perPublisher = (0..<publishers).map { messages / publishers + ($0 < messages % publishers ? 1 : 0) }
        let ratePer = rate > 0 ? Double(rate) / Double(publishers) : 0
        for (i, pub) in pubs.enumerated() {
            pub.startPublishing(topic: "\(topicBase)/\(i)", count: perPublisher[i], size: size, qos: QoS(rawValue: UInt8(qos))!,
                                window: window, ratePerSecond: ratePer)
        }
        let deadline = start + Double(timeout)
        var published = 0
        while now() < deadline {
            published = pubs.reduce(0) { $0 + $1.acknowledgedOrSent }
            if published >= expected && subscriber.received >= expected { break }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        let publishEnd = pubs.compactMap(\.finishedAt).max() ?? now()
        let end = now()
        let after = brokerStats()
        let received = subscriber.received
        let latencies = subscriber.latenciesMs.sorted()
        func pct(_ p: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(p * Double(latencies.count)))] }
        print(String(format: "published %d x %d B at QoS %d (%d publishers%@): %.0f msg/s (%.2f s)", published, size, qos, publishers,
                     qos > 0 ? ", window \(window)" : "", Double(published) / max(publishEnd - start, 1e-9), publishEnd - start))
        print(String(format: "delivered %d of %d: %.0f msg/s; latency ms p50 %.2f p99 %.2f p99.9 %.2f max %.2f", received, expected,
                     Double(received) / max(end - start, 1e-9), pct(0.5), pct(0.99), pct(0.999), latencies.last ?? 0))
        if let before, let after {
            let cpu = after.cpuSeconds - before.cpuSeconds
            print(String(format: "broker CPU %.2f s (%.2f us per message), resident %.1f MiB", cpu, cpu * 1e6 / Double(max(1, received)),
                         after.residentBytes / 1_048_576))
        }
        for client in pubs + [subscriber] { client.close() }
        if received < expected { throw ValidationError("only \(received) of \(expected) messages delivered within \(timeout) s") }
    }

    func raiseFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}

/// One MQTT client connection of the load generator, on one event loop: everything it does
/// runs there; counters are read from other threads under a lock.
final class PerfMQTTClient: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let version: MQTTVersion
    var framer = MQTTFramer(packetBytesMax: 16 * 1024 * 1024)
    var channel: (any Channel)?
    var pending: [UInt16: CheckedContinuation<Void, any Error>] = [:]
    var connected: CheckedContinuation<Void, any Error>?
    let counters = NIOLockedValueBox((received: 0, sent: 0, acked: 0, finishedAt: Double?.none, latencies: [Double]()))
    // Publishing state (on the loop).
    var toSend = 0
    var inflight = 0
    var window = 1
    var qos = QoS.atMostOnce
    var topic = ""
    var payload = ByteBuffer()
    var nextID: UInt16 = 1
    var ratePerSecond = 0.0
    var startedAt = 0.0
    var total = 0

    init(version: MQTTVersion) { self.version = version }

    static func connect(group: MultiThreadedEventLoopGroup, host: String, port: Int, version: MQTTVersion, clientID: String,
                        keepAlive: UInt16, persistent: Bool = false) async throws -> PerfMQTTClient {
        let client = PerfMQTTClient(version: version)
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(client) } }
            .connect(host: host, port: port).get()
        client.channel = channel
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            channel.eventLoop.execute {
                client.connected = done
                var connect = MQTTConnect(version: version, cleanStart: !persistent, keepAliveSeconds: keepAlive, clientID: clientID)
                // A kept session: 3.1.1's clean session 0; 5.0 names an expiry.
                if persistent && version == .v5 { connect.properties.sessionExpiryInterval = 300 }
                client.send(.connect(connect))
                channel.flush()
            }
        }
        return client
    }

    func subscribe(_ filter: String, qos: QoS) async throws {
        guard let channel else { return }
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            channel.eventLoop.execute {
                self.pending[1] = done
                self.send(.subscribe(MQTTSubscribe(packetID: 1, filters: [(filter, SubscriptionOptions(qos: qos))])))
                channel.flush()
            }
        }
    }

    func startPublishing(topic: String, count: Int, size: Int, qos: QoS, window: Int, ratePerSecond: Double) {
        channel?.eventLoop.execute {
            self.topic = topic
            self.toSend = count
            self.total = count
            self.qos = qos
            self.window = window
            self.payload = ByteBuffer(repeating: 0x61, count: size)
            self.ratePerSecond = ratePerSecond
            self.startedAt = now()
            self.pump()
        }
    }

    /// Sends what the window, the socket and the rate allow.
    func pump() {
        guard let channel else { return }
        var wrote = 0
        while toSend > 0 && channel.isWritable && (qos == .atMostOnce || inflight < window) && wrote < 256 {
            if ratePerSecond > 0 {
                let due = Int((now() - startedAt) * ratePerSecond) + 1
                if total - toSend >= due {
                    channel.eventLoop.scheduleTask(in: .microseconds(200)) { self.pump() }
                    break
                }
            }
            var body = payload
            body.setInteger(UInt64(DispatchTime.now().uptimeNanoseconds), at: body.readerIndex)
            var publish = MQTTPublish(topic: topic, qos: qos, payload: body)
            if qos != .atMostOnce {
                publish.packetID = nextID
                nextID = nextID == UInt16.max ? 1 : nextID + 1
                inflight += 1
            }
            send(.publish(publish))
            toSend -= 1
            wrote += 1
        }
        channel.flush()
        counters.withLockedValue { $0.sent = total - toSend }
        if toSend == 0 && (qos == .atMostOnce || inflight == 0) {
            counters.withLockedValue { if $0.finishedAt == nil { $0.finishedAt = now() } }
        } else if wrote == 256 || (toSend > 0 && channel.isWritable && ratePerSecond == 0 && (qos == .atMostOnce || inflight < window)) {
            channel.eventLoop.execute { self.pump() }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && toSend > 0 { pump() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        framer.append(&bytes)
        do {
            while let (first, body) = try framer.next() {
                handle(try MQTTPacket.decode(first: first, body: body, version: version), context: context)
            }
        } catch {
            connected?.resume(throwing: error)
            connected = nil
            context.close(promise: nil)
        }
    }

    func handle(_ packet: MQTTPacket, context: ChannelHandlerContext) {
        switch packet {
        case .connack(let ack):
            if ack.reason == .success { connected?.resume() } else { connected?.resume(throwing: ValidationError("CONNACK \(ack.reason)")) }
            connected = nil
        case .suback(let ack):
            pending.removeValue(forKey: ack.packetID)?.resume()
        case .puback, .pubcomp:
            inflight -= 1
            counters.withLockedValue { $0.acked += 1 }
            pump()
        case .pubrec(let ack):
            send(.pubrel(MQTTAck(packetID: ack.packetID)))
            context.flush()
        case .pubrel(let ack):
            send(.pubcomp(MQTTAck(packetID: ack.packetID)))
            context.flush()
        case .publish(let publish):
            let sentNs = publish.payload.getInteger(at: publish.payload.readerIndex, as: UInt64.self) ?? 0
            let ms = Double(DispatchTime.now().uptimeNanoseconds &- sentNs) / 1e6
            counters.withLockedValue { c in
                c.received += 1
                c.latencies.append(ms)
            }
            if let id = publish.packetID {
                send(publish.qos == .atLeastOnce ? .puback(MQTTAck(packetID: id)) : .pubrec(MQTTAck(packetID: id)))
                context.flush()
            }
        default:
            break
        }
    }

    func send(_ packet: MQTTPacket) {
        channel?.write(packet.encode(version: version), promise: nil)
    }

    var received: Int { counters.withLockedValue { $0.received } }
    var latenciesMs: [Double] { counters.withLockedValue { $0.latencies } }
    var finishedAt: Double? { counters.withLockedValue { $0.finishedAt } }
    var acknowledgedOrSent: Int { counters.withLockedValue { qos == .atMostOnce ? $0.sent : $0.acked } }

    func close() {
        channel?.eventLoop.execute {
            self.send(.disconnect(MQTTReasoned()))
            self.channel?.flush()
            self.channel?.close(promise: nil)
        }
    }
}
