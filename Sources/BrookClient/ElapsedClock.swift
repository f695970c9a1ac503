import BrookCore

/// Milliseconds since the clock was made, on the monotonic clock: the clients' deadlines and
/// intervals (their pure cores take times as these numbers). One `clock_gettime`, no `Duration`
/// arithmetic: the producer reads it per `send`.
struct ElapsedClock: Sendable {
    let originMs = SystemClock().monotonicMs()

    func nowMs() -> Int64 { SystemClock().monotonicMs() - originMs }
}
