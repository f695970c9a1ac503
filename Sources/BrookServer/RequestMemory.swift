import Synchronization

/// `queued.max.request.bytes`: one budget for every request byte the broker holds, over all
/// connections, from the moment a frame's size is read (its whole declared size is reserved
/// then, as Kafka's memory pool does) until its answer goes out. A frame that does not fit waits,
/// and its connection stops reading, until enough is released; so frames still arriving, queued
/// requests and parked ones all count, and memory stays bounded whatever clients declare.
public final class RequestMemory: Sendable {
    struct State {
        var bytes = 0
        var waiting: [@Sendable () -> Void] = []
    }

    let state = Mutex(State())
    public let bytesMax: Int

    public init(bytesMax: Int) {
        precondition(bytesMax > 0, "queued.max.request.bytes must be positive")
        self.bytesMax = bytesMax
    }

    public var bytes: Int { state.withLock { $0.bytes } }

    /// Reserves `n` bytes when they fit under the cap (or nothing is reserved at all, so that one
    /// frame larger than the cap can still pass alone); otherwise the closure `makeResume` makes
    /// (only then: the common case allocates nothing) runs once some bytes are released, and the
    /// caller tries again then.
    func reserve(_ n: Int, orWhenFreed makeResume: () -> @Sendable () -> Void) -> Bool {
        precondition(n >= 0, "a negative reservation")
        return state.withLock { s in
            if s.bytes == 0 || s.bytes + n <= bytesMax {
                s.bytes += n
                return true
            }
            s.waiting.append(makeResume())
            return false
        }
    }

    func release(_ n: Int) {
        guard n > 0 else { return }
        let resumed = state.withLock { s -> [@Sendable () -> Void] in
            s.bytes -= n
            precondition(s.bytes >= 0, "request memory released twice")
            guard !s.waiting.isEmpty else { return [] }
            defer { s.waiting.removeAll() }
            return s.waiting
        }
        for resume in resumed { resume() }
    }
}
