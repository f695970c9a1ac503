import Logging
import NIOCore
import Synchronization

/// Lines a client can cause at will (malformed frames, refused requests): at most
/// `perWindowMax` per window go to the log, then one line says how many were left out, so a
/// hostile client (or a leader change under many producers) cannot fill the disk with the
/// broker's log.
public final class RateLimitedLog: Sendable {
    struct State {
        var windowStart = NIODeadline.now()
        var logged = 0
        var suppressed = 0
    }

    let perWindowMax: Int
    let window: TimeAmount
    let state = Mutex(State())

    public init(perWindowMax: Int = 20, window: TimeAmount = .seconds(60)) {
        precondition(perWindowMax > 0, "a rate limit lets something through")
        self.perWindowMax = perWindowMax
        self.window = window
    }

    public func warn(_ logger: Logger, _ message: @autoclosure () -> String) {
        log(logger, .warning, message())
    }

    public func log(_ logger: Logger, _ level: Logger.Level, _ message: @autoclosure () -> String) {
        let now = NIODeadline.now()
        let (allowed, leftOut) = state.withLock { s -> (Bool, Int) in
            var leftOut = 0
            if now - s.windowStart >= window {
                leftOut = s.suppressed
                s = State(windowStart: now, logged: 0, suppressed: 0)
            }
            guard s.logged < perWindowMax else {
                s.suppressed += 1
                return (false, leftOut)
            }
            s.logged += 1
            return (true, leftOut)
        }
        if leftOut > 0 { logger.log(level: level, "\(leftOut) similar lines were left out of the log in the last \(window.nanoseconds / 1_000_000_000) s") }
        if allowed { logger.log(level: level, "\(message())") }
    }
}

