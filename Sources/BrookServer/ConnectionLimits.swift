import BrookBroker
import Logging
import NIOConcurrencyHelpers

/// `max.connections` and `max.connections.per.ip` (with `max.connections.per.ip.overrides`):
/// the client connections open across the broker's listeners, in all and by peer address. A
/// connection beyond a limit is closed as it is accepted, before a byte of it is read, and said
/// at warning level (rate-limited). Kafka makes the acceptor wait at `max.connections`; closing
/// at once serves the same purpose without holding a socket in the backlog.
final class ConnectionLimits: Sendable {
    let total: Int
    let perIP: Int
    let overrides: [String: Int]
    private let counts = NIOLockedValueBox<(total: Int, byIP: [String: Int])>((0, [:]))

    init(config: BrokerConfig) {
        total = config.maxConnections
        perIP = config.maxConnectionsPerIP
        overrides = config.maxConnectionsPerIPOverrides
    }

    /// Takes a place for a connection from `ip`; nil when a limit is reached (the reason).
    func admit(_ ip: String) -> String? {
        let limit = overrides[ip] ?? perIP
        return counts.withLockedValue { counts in
            if counts.total >= total { return "max.connections=\(total) reached" }
            let open = counts.byIP[ip, default: 0]
            if open >= limit { return "max.connections.per.ip=\(limit) reached for \(ip)" }
            counts.total += 1
            counts.byIP[ip] = open + 1
            return nil
        }
    }

    /// Gives back the place of a connection that closed.
    func release(_ ip: String) {
        counts.withLockedValue { counts in
            precondition(counts.total > 0 && counts.byIP[ip, default: 0] > 0, "a connection released twice")
            counts.total -= 1
            let left = counts.byIP[ip]! - 1
            counts.byIP[ip] = left == 0 ? nil : left
        }
    }

    var open: Int { counts.withLockedValue { $0.total } }

    static let refusals = RateLimitedLog()
}
