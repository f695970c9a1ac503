/// Milliseconds since the clock was made, on the monotonic clock: the clients' deadlines and
/// intervals (their pure cores take times as these numbers).
struct ElapsedClock: Sendable {
    let origin = ContinuousClock.now

    func nowMs() -> Int64 {
        let elapsed = ContinuousClock.now - origin
        return elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
    }
}
