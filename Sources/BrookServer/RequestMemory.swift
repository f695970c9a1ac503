import Synchronization

/// `queued.max.request.bytes`: bytes of requests read but not yet answered, over every
/// connection. Past the cap, connections stop reading; each is resumed when bytes are released.
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

    func acquire(_ n: Int) { state.withLock { $0.bytes += n } }

    func release(_ n: Int) {
        let resumed = state.withLock { s -> [@Sendable () -> Void] in
            s.bytes -= n
            precondition(s.bytes >= 0, "request memory released twice")
            guard s.bytes < bytesMax, !s.waiting.isEmpty else { return [] }
            defer { s.waiting.removeAll() }
            return s.waiting
        }
        for resume in resumed { resume() }
    }

    /// True when there is room; otherwise `resume` runs once there is.
    func hasRoom(orWhenFreed resume: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { s in
            if s.bytes < bytesMax { return true }
            s.waiting.append(resume)
            return false
        }
    }
}
