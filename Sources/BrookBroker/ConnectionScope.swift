import NIOCore

/// Why a waiting request ended without an answer: its connection closed first.
public struct ConnectionClosed: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "the connection closed while the request waited" }
}

/// What one client connection has waiting in the broker (parked fetches today): each waiting
/// thing registers how to cancel itself, and the connection cancels them all when it closes,
/// so nothing a client left behind outlives it. Touched only on the connection's event loop.
public final class ConnectionScope: @unchecked Sendable {
    public let eventLoop: any EventLoop
    private var cancels: [Int: () -> Void] = [:]
    private var nextToken = 0
    public private(set) var isClosed = false

    public init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// How many waiting things the connection holds.
    public var waitingCount: Int {
        eventLoop.preconditionInEventLoop()
        return cancels.count
    }

    /// Registers `cancel`, run once if the connection closes first; nil when it has closed already
    /// (the caller then cancels at once).
    func register(_ cancel: @escaping () -> Void) -> Int? {
        eventLoop.preconditionInEventLoop()
        guard !isClosed else { return nil }
        nextToken += 1
        cancels[nextToken] = cancel
        return nextToken
    }

    func unregister(_ token: Int) {
        eventLoop.preconditionInEventLoop()
        cancels[token] = nil
    }

    /// Cancels everything still waiting; later registrations are refused.
    public func close() {
        eventLoop.preconditionInEventLoop()
        guard !isClosed else { return }
        isClosed = true
        let pending = cancels
        cancels.removeAll()
        for (_, cancel) in pending.sorted(by: { $0.key < $1.key }) { cancel() }
    }
}
