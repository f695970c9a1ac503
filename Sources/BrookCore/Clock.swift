import Synchronization

/// The wall clock, injected so that time-driven logic (retention, roll, timeouts) is tested
/// without sleeping.
public protocol Clock: Sendable {
    func now() -> Timestamp
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The real clock: `CLOCK_REALTIME` in milliseconds.
public struct SystemClock: Clock {
    public init() {}
    public func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(ms: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }
}

/// A clock that moves only when told to.
public final class ManualClock: Clock {
    private let current: Mutex<Int64>
    public init(_ start: Timestamp = Timestamp(ms: 1_700_000_000_000)) { current = Mutex(start.ms) }
    public func now() -> Timestamp { Timestamp(ms: current.withLock { $0 }) }
    public func advance(ms: Int64) {
        precondition(ms >= 0, "a clock never goes back")
        current.withLock { $0 += ms }
    }
}
