import BrookBroker
import BrookCore
import BrookProtocol
import BrookSecurity
import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// One client connection: splits its bytes into frames (reserving each frame's memory in the
/// broker-wide budget as soon as its size is known), runs each request's handler, and writes
/// the answers in the order the requests came (a parked fetch holds back the answers behind it).
/// Reading pauses while too many requests are unanswered, while the socket's send buffer is full
/// (a slow reader), or while the next frame's memory does not fit the budget. What the
/// connection leaves waiting in the broker (parked fetches) ends with it. A connection idle for
/// `connections.max.idle.ms`, or whose frame does not arrive whole within
/// `socket.request.receive.timeout.ms`, is closed.
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    struct Settings {
        var frameBytesMax: Int
        var idleMs: Int64
        var frameReceiveMs: Int64
        var zeroCopy = true
        /// The listener's security: a SASL listener serves only the handshake until authenticated.
        var listener = ListenerSecurity.plaintext
        /// `sasl.server.max.receive.size`: the largest frame before authentication.
        var frameBytesBeforeAuthenticationMax = 524_288
        /// `connection.failed.authentication.delay.ms`: how long a connection whose
        /// authentication failed stays open after its answer (read by then, as in Kafka).
        var failedAuthenticationCloseDelayMs: Int64 = 100
        /// Requests by API (counts, errors, latency, bytes), when the server keeps metrics.
        var requests: RequestMetrics?
        /// This listener's connections, when the server keeps metrics.
        var connections: ListenerMetrics?
        /// `slow.request.log.ms`: a request answered later than this is logged (0: never).
        var slowRequestMs: Int64 = 0
        /// Spans for sampled Produce and Fetch requests, when tracing is configured.
        var tracing: RequestTracing?
    }

    /// APIs whose answers wait by design (a long poll, a rebalance): never logged as slow.
    static let waitingByDesign: Set<Int16> = [FetchRequest.apiKey, JoinGroupRequest.apiKey, SyncGroupRequest.apiKey]

    /// A request taken up and not yet answered, for its metrics.
    struct InFlight {
        var apiKey: Int16
        var version: Int16
        var correlationID: Int32
        /// Read from the header only when every request is logged (debug).
        var clientID: String?
        var bytes: Int
        var receivedNs: UInt64
        var startedNs: UInt64
        /// A sampled request's span to be, when tracing.
        var trace: RequestTracing.Summary? = nil
    }

    let broker: Broker
    let memory: RequestMemory
    /// With the connection's peer and listener as metadata once it is added.
    var logger: Logger
    let settings: Settings
    /// Requests are timed: for metrics, the slow-request log, or the request log (debug).
    let timesRequests: Bool
    let logsEveryRequest: Bool
    var framer: RequestFramer
    var scope: ConnectionScope?
    var nextSequence = 0
    var nextToWrite = 0
    /// Answers completed out of order, by sequence; nil for requests without an answer.
    var completed: [Int: (EncodedResponse?, Int)] = [:]
    var unanswered = 0
    /// Not read until then: a client quota's throttle.
    var mutedUntil: NIODeadline?
    var readHeld = false
    /// The next frame's memory did not fit; a release resumes the connection.
    var waitingForMemory = false
    /// A request's work runs off the event loop (`Outcome.offloaded`): the next frames wait for
    /// it, so that they reach their partitions after it, in the order they came.
    var waitingForOffloaded = false
    var wroteSinceFlush = false
    var closed = false
    /// channelInactive came (once).
    var inactive = false
    /// The request after whose answer the connection closes (a failed acks=0 produce).
    var closeAfter: Int?
    /// How long after that answer is written the connection closes (a failed authentication).
    var closeDelay = TimeAmount.zero
    /// The client's address as group members show it ("/127.0.0.1"), read when the handler is added.
    var clientHost = "/unknown"
    /// The peer's `address:port`, for spans.
    var peer: String?
    var lastActivity = NIODeadline.uptimeNanoseconds(0)
    /// When the first byte of the frame now arriving came (nil between frames).
    var frameStarted: NIODeadline?
    var deadlineCheck: Scheduled<Void>?
    var deadlineCheckAt = NIODeadline.distantFuture
    /// When bytes last came (metrics: a frame's queue time counts from its last bytes).
    var lastReadNs: UInt64 = 0
    /// The requests awaiting their answers, in order (only with metrics).
    var inFlight = CircularBuffer<InFlight>()
    /// The metrics series of the API versions this connection used (a client repeats a few).
    var seriesByAPI: [Int32: RequestMetrics.Handle] = [:]

    init(broker: Broker, memory: RequestMemory, logger: Logger, settings: Settings) {
        self.broker = broker
        self.memory = memory
        self.logger = logger
        self.settings = settings
        logsEveryRequest = logger.logLevel <= .debug
        timesRequests = settings.requests != nil || settings.slowRequestMs > 0 || logsEveryRequest || settings.tracing != nil
        framer = RequestFramer(frameBytesMax: settings.frameBytesMax)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // An accepted connection knows its peer from the start.
        if let ip = context.remoteAddress?.ipAddress { clientHost = "/" + ip }
        peer = context.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" }
        logger[metadataKey: "peer"] = "\(peer ?? "?")"
        logger[metadataKey: "listener"] = "\(settings.listener.name)"
        scope = ConnectionScope(eventLoop: context.eventLoop, listener: settings.listener)
        lastActivity = context.eventLoop.now
        if let connections = settings.connections {
            connections.open.increment()
            connections.created.increment()
        }
        scheduleDeadlineCheck(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        var bytes = unwrapInboundIn(data)
        lastActivity = context.eventLoop.now
        if timesRequests { lastReadNs = lastActivity.uptimeNanoseconds }
        if frameStarted == nil { startFrameClock(context) }
        framer.append(&bytes)
        processFrames(context)
    }

    /// Takes every whole frame out of the framer, reserving memory for each as its size is seen.
    func processFrames(_ context: ChannelHandlerContext) {
        while !closed && !waitingForMemory && !waitingForOffloaded && closeAfter == nil {
            let next: RequestFramer.Next
            do { next = try framer.next() } catch {
                ConnectionHandler.warnings.warn(logger, "closing connection from \(context.remoteAddress?.description ?? "?"): \(error)")
                return close(context)
            }
            switch next {
            case .needBytes:
                if framer.bufferedBytes == 0 { frameStarted = nil }
                framer.compact()
                return
            case .reserve(let size):
                if size > settings.frameBytesBeforeAuthenticationMax, scope?.awaitsAuthentication == true {
                    ConnectionHandler.warnings.warn(logger, "closing connection from \(context.remoteAddress?.description ?? "?"): a frame of \(size) bytes before authentication (sasl.server.max.receive.size=\(settings.frameBytesBeforeAuthenticationMax))")
                    return close(context)
                }
                guard memory.reserve(size, orWhenFreed: { resumeOnLoop(context) }) else {
                    waitingForMemory = true
                    return
                }
                framer.reserved(size)
            case .frame(let frame, let size):
                frameStarted = nil
                if framer.bufferedBytes > 0 { startFrameClock(context) }
                handle(frame, size: size, context: context)
            }
        }
    }

    /// A closure, callable from any thread, that resumes this connection on its event loop.
    func resumeOnLoop(_ context: ChannelHandlerContext) -> @Sendable () -> Void {
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        return {
            loop.execute {
                let (handler, context) = bound.value
                handler.memoryFreed(context)
            }
        }
    }

    func memoryFreed(_ context: ChannelHandlerContext) {
        guard waitingForMemory, !closed else { return }
        waitingForMemory = false
        if frameStarted != nil { frameStarted = context.eventLoop.now }
        resume(context)
    }

    /// After a wait ends (memory freed, an offloaded request handled): the frames already read
    /// are taken up, their answers sent, and reading goes on if nothing else holds it.
    func resume(_ context: ChannelHandlerContext) {
        processFrames(context)
        flushIfNeeded(context)
        resumeReadingIfAllowed(context)
    }

    func handle(_ frame: ByteBuffer, size: Int, context: ChannelHandlerContext) {
        let outcome: Outcome
        let startedNs = timesRequests ? NIODeadline.now().uptimeNanoseconds : 0
        do {
            outcome = try broker.handle(frame: frame, eventLoop: context.eventLoop, clientHost: clientHost, connection: scope)
        } catch {
            memory.release(size)
            ConnectionHandler.warnings.warn(logger, "closing connection from \(context.remoteAddress?.description ?? "?"): \(error)")
            return close(context)
        }
        let sequence = nextSequence
        nextSequence += 1
        unanswered += 1
        if timesRequests, let key = frame.getInteger(at: frame.readerIndex, as: Int16.self),
           let version = frame.getInteger(at: frame.readerIndex + 2, as: Int16.self),
           let correlationID = frame.getInteger(at: frame.readerIndex + 4, as: Int32.self) {
            let clientID = logsEveryRequest ? Self.clientID(frame) : nil
            inFlight.append(InFlight(apiKey: key, version: version, correlationID: correlationID, clientID: clientID, bytes: size,
                                     receivedNs: lastReadNs, startedNs: startedNs, trace: settings.tracing?.sample(frame, apiKey: key) { [broker] id in broker.topics.topic(id: id)?.name }))
        }
        switch outcome {
        case .respond(let response): complete(sequence, response, size, context: context)
        case .none: complete(sequence, nil, size, context: context)
        case .close(let reason):
            // Kafka's answer to a failed acks=0 produce: the closed connection is the client's only
            // signal. The answers to the requests before it go out first; nothing after it is read.
            logger.debug("closing connection from \(context.remoteAddress?.description ?? "?"): \(reason)")
            closeAfter = sequence
            complete(sequence, nil, size, context: context)
        case .later(let future):
            completeLater(sequence, future, size, context: context)
        case .laterThenClose(let future, let reason):
            logger.debug("closing connection from \(context.remoteAddress?.description ?? "?") after its answer: \(reason)")
            closeAfter = sequence
            closeDelay = .milliseconds(settings.failedAuthenticationCloseDelayMs)
            completeLater(sequence, future, size, context: context)
        case .offloaded(let future, let handled):
            waitingForOffloaded = true
            handled.hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] _ in
                waitingForOffloaded = false
                guard !closed else { return }
                resume(context)
            }
            completeLater(sequence, future, size, context: context)
        }
    }

    func completeLater(_ sequence: Int, _ future: EventLoopFuture<EncodedResponse>, _ size: Int, context: ChannelHandlerContext) {
        future.hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let response):
                complete(sequence, response, size, context: context)
                flushIfNeeded(context)
            case .failure(let error):
                memory.release(size)
                if !(error is ConnectionClosed) { logger.warning("request failed: \(error)") }
                close(context)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded(context)
        context.fireChannelReadComplete()
    }

    func complete(_ sequence: Int, _ response: EncodedResponse?, _ size: Int, context: ChannelHandlerContext) {
        guard !closed else { return memory.release(size) }
        if sequence == nextToWrite && completed.isEmpty {
            emit(response, size, context: context)
        } else {
            completed[sequence] = (response, size)
            while let (ready, readySize) = completed.removeValue(forKey: nextToWrite) {
                emit(ready, readySize, context: context)
            }
        }
        resumeReadingIfAllowed(context)
    }

    func emit(_ response: EncodedResponse?, _ size: Int, context: ChannelHandlerContext) {
        lastActivity = context.eventLoop.now
        nextToWrite += 1
        unanswered -= 1
        memory.release(size)
        if timesRequests, let request = inFlight.popFirst() {
            let doneNs = NIODeadline.now().uptimeNanoseconds
            let responseBytes = response?.writer.messageBytes ?? 0
            if let requests = settings.requests {
                let key = Int32(request.apiKey) << 16 | Int32(UInt16(bitPattern: request.version))
                let handle = seriesByAPI[key] ?? {
                    let made = requests.handle(apiKey: request.apiKey, version: request.version)
                    if seriesByAPI.count < 256 { seriesByAPI[key] = made }
                    return made
                }()
                requests.recordRequest(handle, requestBytes: request.bytes, responseBytes: responseBytes, receivedNs: request.receivedNs,
                                       startedNs: request.startedNs, doneNs: doneNs)
            }
            log(request, responseBytes: responseBytes, doneNs: doneNs)
            if let trace = request.trace, let tracing = settings.tracing {
                tracing.record(trace, peer: peer, listener: settings.listener.name, requestBytes: request.bytes, responseBytes: responseBytes,
                               receivedNs: request.receivedNs, startedNs: request.startedNs, doneNs: doneNs)
            }
        }
        if let response {
            write(response.writer, context: context)
            wroteSinceFlush = true
        }
        if let last = closeAfter, nextToWrite > last { closeWhenWritten(context) }
        if let ms = scope?.takeThrottle(), ms > 0 { mute(for: ms, context: context) }
    }

    /// The request log (every request, at debug) and the slow-request log (notice).
    func log(_ request: InFlight, responseBytes: Int, doneNs: UInt64) {
        let totalMs = Double(doneNs &- min(request.receivedNs, doneNs)) / 1e6
        let slow = settings.slowRequestMs > 0 && totalMs >= Double(settings.slowRequestMs) && !Self.waitingByDesign.contains(request.apiKey)
        guard slow || logsEveryRequest else { return }
        let queueMs = Double(request.startedNs &- min(request.receivedNs, request.startedNs)) / 1e6
        let metadata: Logger.Metadata = [
            "api": "\(RequestMetrics.apiName(request.apiKey))", "version": "\(request.version)",
            "correlation_id": "\(request.correlationID)", "client_id": "\(request.clientID ?? "-")",
            "request_bytes": "\(request.bytes)", "response_bytes": "\(responseBytes)",
            "queue_ms": "\(Self.ms(queueMs))", "total_ms": "\(Self.ms(totalMs))",
        ]
        if slow {
            logger.notice("slow request: \(RequestMetrics.apiName(request.apiKey)) took \(Self.ms(totalMs)) ms (slow.request.log.ms=\(settings.slowRequestMs))",
                          metadata: metadata)
        } else {
            logger.debug("request", metadata: metadata)
        }
    }

    static func ms(_ value: Double) -> String { String(Double(Int(value * 1000)) / 1000) }

    /// The client id in a request header (v1+: after api key, version and correlation id).
    static func clientID(_ frame: ByteBuffer) -> String? {
        guard let length = frame.getInteger(at: frame.readerIndex + 8, as: Int16.self), length >= 0 else { return nil }
        return frame.getString(at: frame.readerIndex + 10, length: Int(length))
    }

    /// A client quota's throttle (KIP-219): the response went out with its throttle time, and
    /// the connection is not read until it has passed.
    func mute(for ms: Int64, context: ChannelHandlerContext) {
        let until = context.eventLoop.now + .milliseconds(ms)
        if let muted = mutedUntil, muted >= until { return }
        mutedUntil = until
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(deadline: until) {
            let (handler, context) = bound.value
            guard let muted = handler.mutedUntil, context.eventLoop.now >= muted else { return }
            handler.mutedUntil = nil
            handler.resumeReadingIfAllowed(context)
        }
    }

    /// Closes once everything written so far has gone out (a close fails unwritten writes).
    func closeWhenWritten(_ context: ChannelHandlerContext) {
        guard !closed else { return }
        closed = true
        wroteSinceFlush = false
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(ByteBuffer())), promise: written)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let delay = closeDelay
        written.futureResult.whenComplete { _ in
            guard delay > .zero else { return bound.value.close(promise: nil) }
            bound.value.eventLoop.scheduleTask(in: delay) { bound.value.close(promise: nil) }
        }
    }

    /// Record bytes a response carries at most to be sent in one write with the rest of it,
    /// read from their segment files, rather than each from its file with sendfile.
    static let inlineRecordBytesMax = 32 * 1024

    /// Writes the response bytes. Record data goes from its segment file (sendfile) when there
    /// is much of it; a small answer (the usual one of a consumer that keeps up) is read into
    /// one buffer and written at once: one write and one wakeup of the client, instead of a
    /// write, a sendfile and a write per partition.
    func write(_ writer: WireWriter, context: ChannelHandlerContext) {
        var buffer = writer.buffer
        guard !writer.fileRecords.isEmpty else {
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
            return
        }
        let recordBytes = writer.fileRecords.reduce(0) { total, entry in total + ((entry.1 as? LogRecords)?.slice.length ?? 0) }
        if !settings.zeroCopy || recordBytes <= Self.inlineRecordBytesMax {
            do {
                context.write(wrapOutboundOut(.byteBuffer(try writer.contiguousBytes(allocator: context.channel.allocator))), promise: nil)
            } catch {
                logger.error("reading record data for a fetch: \(error)")
                close(context)
            }
            return
        }
        for (position, records) in writer.fileRecords {
            let before = buffer.readSlice(length: position - buffer.readerIndex)!
            if before.readableBytes > 0 { context.write(wrapOutboundOut(.byteBuffer(before)), promise: nil) }
            writeRecords(records, context: context)
        }
        if buffer.readableBytes > 0 { context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: nil) }
    }

    /// One partition's records, from its segment file (sendfile).
    func writeRecords(_ records: any FileRecords, context: ChannelHandlerContext) {
        guard let log = records as? LogRecords, let file = log.slice.file else { return }
        let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: file.descriptor)
        let start = Int(log.slice.position.value)
        let region = FileRegion(fileHandle: handle, readerIndex: start, endIndex: start + log.slice.length)
        let promise = context.eventLoop.makePromise(of: Void.self)
        // The descriptor belongs to the segment file, kept open by `log` until the write ends.
        promise.futureResult.whenComplete { _ in
            _ = try? handle.takeDescriptorOwnership()
            withExtendedLifetime(log) {}
        }
        context.write(wrapOutboundOut(.fileRegion(region)), promise: promise)
    }

    func flushIfNeeded(_ context: ChannelHandlerContext) {
        guard wroteSinceFlush else { return }
        wroteSinceFlush = false
        context.flush()
    }

    // MARK: backpressure

    var mayRead: Bool {
        unanswered < Limits.inflightRequestsPerConnectionMax && !waitingForMemory && !waitingForOffloaded && closeAfter == nil
            && mutedUntil == nil
    }

    func read(context: ChannelHandlerContext) {
        guard mayRead, context.channel.isWritable else {
            readHeld = true
            return
        }
        context.read()
    }

    func resumeReadingIfAllowed(_ context: ChannelHandlerContext) {
        guard readHeld, !closed, mayRead, context.channel.isWritable else { return }
        readHeld = false
        if frameStarted != nil { frameStarted = context.eventLoop.now }  // a frame's clock runs while the broker reads
        read(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        resumeReadingIfAllowed(context)
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls, settings.listener.securityProtocol == .ssl {
            identifyPeer(context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// An SSL listener's principal: the client certificate's subject (RFC 2253) through
    /// `ssl.principal.mapping.rules`; without a certificate, ANONYMOUS. A subject no rule maps
    /// is an authentication failure: logged, counted, and the connection closed.
    func identifyPeer(_ context: ChannelHandlerContext) {
        switch Self.certificateName(context, mapper: settings.listener.principalMapper) {
        case .none: return
        case .named(let name): scope?.identified(byCertificate: name)
        case .refused(let reason):
            Self.warnings.warn(logger, "closing connection from \(context.remoteAddress?.description ?? "?") on listener \(settings.listener.name): \(reason)")
            broker.authenticationFailures.add(1)
            close(context)
        }
    }

    enum CertificateName {
        /// The client gave no certificate (or the connection has no TLS).
        case none
        case named(String)
        case refused(String)
    }

    /// The name a TLS client's certificate gives: its subject (RFC 2253) through `mapper`
    /// (`ssl.principal.mapping.rules`); refused when the subject cannot be read or no rule maps it.
    static func certificateName(_ context: ChannelHandlerContext, mapper: SslPrincipalMapper) -> CertificateName {
        guard let tls = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
              let certificate = tls.peerCertificate else { return .none }
        guard let der = try? certificate.toDERBytes(), let subject = CertificateSubject.distinguishedName(certificateDER: der) else {
            return .refused("its certificate's subject cannot be read")
        }
        guard let name = mapper.name(for: subject) else { return .refused("no rule of ssl.principal.mapping.rules applies to '\(subject)'") }
        return .named(name)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        ConnectionHandler.warnings.warn(logger, "closing connection from \(context.remoteAddress?.description ?? "?"): \(error)")
        close(context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !inactive, let connections = settings.connections { connections.open.decrement() }
        inactive = true
        inFlight.removeAll()
        closed = true
        deadlineCheck?.cancel()
        for (_, (_, size)) in completed { memory.release(size) }
        completed.removeAll()
        if let reserved = framer.reservedSize { memory.release(reserved) }
        framer = RequestFramer(frameBytesMax: settings.frameBytesMax)
        // Parked fetches end now; their failures release their memory as they come back.
        scope?.close()
        context.fireChannelInactive()
    }

    // MARK: deadlines

    /// The first bytes of a frame came: its deadline starts, and the check comes no later.
    func startFrameClock(_ context: ChannelHandlerContext) {
        let now = context.eventLoop.now
        frameStarted = now
        if now + .milliseconds(settings.frameReceiveMs) < deadlineCheckAt { scheduleDeadlineCheck(context) }
    }

    /// Closes the connection at the earliest of its deadlines; checks again then otherwise.
    func scheduleDeadlineCheck(_ context: ChannelHandlerContext) {
        guard !closed else { return }
        let idle = lastActivity + .milliseconds(settings.idleMs)
        let frame = frameStarted.map { $0 + .milliseconds(settings.frameReceiveMs) } ?? idle
        let at = min(idle, frame)
        deadlineCheck?.cancel()
        deadlineCheckAt = at
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadlineCheck = context.eventLoop.scheduleTask(deadline: at) {
            let (handler, context) = bound.value
            handler.checkDeadlines(context)
        }
    }

    func checkDeadlines(_ context: ChannelHandlerContext) {
        guard !closed else { return }
        let now = context.eventLoop.now
        if frameStarted != nil && (waitingForMemory || waitingForOffloaded || readHeld) {
            // The broker is the one not reading (its memory budget, the in-flight limit, a full
            // send buffer): the frame's clock starts again when it reads.
            frameStarted = now
        }
        if let started = frameStarted, now >= started + .milliseconds(settings.frameReceiveMs) {
            logger.info("closing connection from \(context.remoteAddress?.description ?? "?"): a request frame did not arrive whole within socket.request.receive.timeout.ms=\(settings.frameReceiveMs)")
            return close(context)
        }
        if unanswered == 0, framer.bufferedBytes == 0, now >= lastActivity + .milliseconds(settings.idleMs) {
            logger.debug("closing connection from \(context.remoteAddress?.description ?? "?"): idle for connections.max.idle.ms=\(settings.idleMs)")
            return close(context)
        }
        if unanswered > 0 { lastActivity = now }  // waiting on the broker is not idleness
        scheduleDeadlineCheck(context)
    }

    func close(_ context: ChannelHandlerContext) {
        guard !closed else { return }
        closed = true
        context.close(promise: nil)
    }
}

extension ConnectionHandler {
    /// Shared by every connection of the process.
    static let warnings = RateLimitedLog()
}
