import Dispatch
import NIOCore

/// Where work runs off the event loops. Topic changes (CreateTopics, CreatePartitions,
/// DeleteTopics; `QueueAdminExecutor`): opening or removing thousands of partition directories
/// takes seconds, which must not stall an event loop and the connections on it; they run one
/// at a time, in the order they came. Heavy request work (`ConcurrentExecutor`) runs in parallel.
public protocol AdminExecutor: Sendable {
    func run<T: Sendable>(on eventLoop: any EventLoop, _ work: @escaping @Sendable () -> T) -> EventLoopFuture<T>
}

/// The broker's: one serial queue off the event loops.
public struct QueueAdminExecutor: AdminExecutor {
    let queue = DispatchQueue(label: "brook.admin")
    public init() {}

    public func run<T: Sendable>(on eventLoop: any EventLoop, _ work: @escaping @Sendable () -> T) -> EventLoopFuture<T> {
        let promise = eventLoop.makePromise(of: T.self)
        queue.async { promise.succeed(work()) }
        return promise.futureResult
    }
}

/// Work moved off the event loops to run in parallel (large decompression): a concurrent queue,
/// whose threads Dispatch bounds by the cores.
public struct ConcurrentExecutor: AdminExecutor {
    let queue = DispatchQueue(label: "brook.work", attributes: .concurrent)
    public init() {}

    public func run<T: Sendable>(on eventLoop: any EventLoop, _ work: @escaping @Sendable () -> T) -> EventLoopFuture<T> {
        let promise = eventLoop.makePromise(of: T.self)
        queue.async { promise.succeed(work()) }
        return promise.futureResult
    }
}

/// Runs the change at once on the caller's thread (tests on an EmbeddedEventLoop).
public struct InlineAdminExecutor: AdminExecutor {
    public init() {}

    public func run<T: Sendable>(on eventLoop: any EventLoop, _ work: @escaping @Sendable () -> T) -> EventLoopFuture<T> {
        eventLoop.makeSucceededFuture(work())
    }
}
