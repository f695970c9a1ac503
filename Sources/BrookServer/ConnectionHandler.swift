import BrookBroker
import BrookCore
import BrookProtocol
import Logging
import NIOCore

/// One client connection: decodes each frame, runs its handler, and writes the answers in the
/// order the requests came (a parked fetch holds back the answers behind it). Reading pauses
/// while too many requests are unanswered, while the socket's send buffer is full (a slow
/// reader), or while the broker's request memory is used up.
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    let broker: Broker
    let memory: RequestMemory
    let logger: Logger
    let zeroCopy: Bool
    var nextSequence = 0
    var nextToWrite = 0
    /// Answers completed out of order, by sequence; nil for requests without an answer.
    var completed: [Int: (EncodedResponse?, Int)] = [:]
    var unanswered = 0
    var readHeld = false
    var wroteSinceFlush = false
    var closed = false
    /// The client's address as group members show it ("/127.0.0.1"), read when the handler is added.
    var clientHost = "/unknown"

    init(broker: Broker, memory: RequestMemory, logger: Logger, zeroCopy: Bool) {
        self.broker = broker
        self.memory = memory
        self.logger = logger
        self.zeroCopy = zeroCopy
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // An accepted connection knows its peer from the start.
        if let ip = context.remoteAddress?.ipAddress { clientHost = "/" + ip }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        let frame = unwrapInboundIn(data)
        let size = frame.readableBytes
        let outcome: Outcome
        do {
            outcome = try broker.handle(frame: frame, eventLoop: context.eventLoop, clientHost: clientHost)
        } catch {
            logger.warning("closing connection from \(context.remoteAddress?.description ?? "?"): \(error)")
            return close(context)
        }
        let sequence = nextSequence
        nextSequence += 1
        unanswered += 1
        memory.acquire(size)
        switch outcome {
        case .respond(let response): complete(sequence, response, size, context: context)
        case .none: complete(sequence, nil, size, context: context)
        case .later(let future):
            future.hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] result in
                switch result {
                case .success(let response):
                    complete(sequence, response, size, context: context)
                    flushIfNeeded(context)
                case .failure(let error):
                    memory.release(size)
                    logger.warning("request failed: \(error)")
                    close(context)
                }
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
        nextToWrite += 1
        unanswered -= 1
        memory.release(size)
        guard let response else { return }
        write(response.writer, context: context)
        wroteSinceFlush = true
    }

    /// Writes the response bytes, with record data sent from its segment file (sendfile).
    func write(_ writer: WireWriter, context: ChannelHandlerContext) {
        var buffer = writer.buffer
        for (position, records) in writer.fileRecords {
            let before = buffer.readSlice(length: position - buffer.readerIndex)!
            if before.readableBytes > 0 { context.write(wrapOutboundOut(.byteBuffer(before)), promise: nil) }
            writeRecords(records, context: context)
        }
        if buffer.readableBytes > 0 { context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: nil) }
    }

    func writeRecords(_ records: any FileRecords, context: ChannelHandlerContext) {
        guard let log = records as? LogRecords, let file = log.slice.file else { return }
        if zeroCopy {
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
        } else {
            do {
                let bytes = try log.slice.readBytes(allocator: context.channel.allocator)
                context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: nil)
            } catch {
                logger.error("reading \(file.path) for a fetch: \(error)")
                close(context)
            }
        }
    }

    func flushIfNeeded(_ context: ChannelHandlerContext) {
        guard wroteSinceFlush else { return }
        wroteSinceFlush = false
        context.flush()
    }

    // MARK: backpressure

    var mayRead: Bool { unanswered < Limits.inflightRequestsPerConnectionMax }

    func read(context: ChannelHandlerContext) {
        guard mayRead, context.channel.isWritable else {
            readHeld = true
            return
        }
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let resume: @Sendable () -> Void = {
            loop.execute {
                let (handler, context) = bound.value
                handler.resumeReadingIfAllowed(context)
            }
        }
        guard memory.hasRoom(orWhenFreed: resume) else {
            readHeld = true
            return
        }
        context.read()
    }

    func resumeReadingIfAllowed(_ context: ChannelHandlerContext) {
        guard readHeld, !closed, mayRead, context.channel.isWritable else { return }
        readHeld = false
        read(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        resumeReadingIfAllowed(context)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        logger.warning("closing connection from \(context.remoteAddress?.description ?? "?"): \(error)")
        close(context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        for (_, (_, size)) in completed { memory.release(size) }
        completed.removeAll()
        context.fireChannelInactive()
    }

    func close(_ context: ChannelHandlerContext) {
        guard !closed else { return }
        closed = true
        context.close(promise: nil)
    }
}
