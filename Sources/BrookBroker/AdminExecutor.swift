import Dispatch
import NIOCore

/// Where topic changes run (CreateTopics, CreatePartitions, DeleteTopics): opening or removing
/// thousands of partition directories takes seconds, which must not stall an event loop and the
/// connections on it. Changes run one at a time, in the order they came.
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

/// Runs the change at once on the caller's thread (tests on an EmbeddedEventLoop).
public struct InlineAdminExecutor: AdminExecutor {
    public init() {}

    public func run<T: Sendable>(on eventLoop: any EventLoop, _ work: @escaping @Sendable () -> T) -> EventLoopFuture<T> {
        eventLoop.makeSucceededFuture(work())
    }
}
