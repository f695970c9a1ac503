import Synchronization

/// The wall clock, injected so that time-driven logic (retention, roll, timeouts) is tested
/// without sleeping.
public protocol Clock: Sendable {
    func now() -> Timestamp
    /// Milliseconds on a clock that no wall-clock step moves (CLOCK_MONOTONIC): for durations
    /// such as timeouts, where a jump of the wall clock must not count as time passed.
    func monotonicMs() -> Int64
}

extension Clock {
    public func monotonicMs() -> Int64 { now().ms }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The real clock: `CLOCK_REALTIME` in milliseconds.
public struct SystemClock: Clock {
    public init() {}
    public func now() -> Timestamp { Timestamp(ms: Self.milliseconds(CLOCK_REALTIME)) }
    public func monotonicMs() -> Int64 { Self.milliseconds(CLOCK_MONOTONIC) }
    static func milliseconds(_ clock: clockid_t) -> Int64 {
        var spec = timespec()
        clock_gettime(clock, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}

/// A clock that moves only when told to: `advance` moves time, `step` only the wall clock (as
/// an NTP step does).
public final class ManualClock: Clock {
    private let current: Mutex<(monotonic: Int64, wallOffset: Int64)>
    public init(_ start: Timestamp = Timestamp(ms: 1_700_000_000_000)) { current = Mutex((start.ms, 0)) }
    public func now() -> Timestamp { Timestamp(ms: current.withLock { $0.monotonic + $0.wallOffset }) }
    public func monotonicMs() -> Int64 { current.withLock { $0.monotonic } }
    public func advance(ms: Int64) {
        precondition(ms >= 0, "a clock never goes back")
        current.withLock { $0.monotonic += ms }
    }
    public func step(wallMs: Int64) { current.withLock { $0.wallOffset += wallMs } }
}

/// The wall clock as it stood at creation, moved on since by the monotonic clock only: a step
/// of the system's wall clock (NTP) does not move it. For logic that mixes durations with
/// timestamps it keeps (the group coordinator: session deadlines beside commit times), where
/// a step would otherwise end every session at once. It drifts from the system's wall clock by
/// the steps taken since, which a restart clears.
public struct SteadyWallClock: Clock {
    let base: any Clock
    let anchorWallMs: Int64
    let anchorMonotonicMs: Int64
    public init(_ base: any Clock) {
        self.base = base
        anchorWallMs = base.now().ms
        anchorMonotonicMs = base.monotonicMs()
    }
    public func now() -> Timestamp { Timestamp(ms: anchorWallMs + (base.monotonicMs() - anchorMonotonicMs)) }
    public func monotonicMs() -> Int64 { base.monotonicMs() }
}
