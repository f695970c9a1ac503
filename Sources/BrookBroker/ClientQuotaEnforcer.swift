import BrookCluster
import BrookProtocol
import Synchronization

/// Client quotas on produced and fetched bytes (`producer_byte_rate`, `consumer_byte_rate`) and
/// on request handling time (`request_percentage`: the percent of one thread's time an entity's
/// requests may take, measured as the time its handlers run), as Kafka enforces them: the entity that defines the quota for a connection's user and client id
/// is the first of Kafka's order of precedence that has a value (QuotaEntity.candidates); its
/// rate is measured over `quota.window.num` (11) samples of `quota.window.size.seconds` (1 s),
/// shared by every connection the entity covers (a default entity's quota applies to each user
/// or client id on its own). A request that takes the rate above the quota is answered at once
/// with the throttle time Kafka computes, ((rate - quota) / quota) x the measured window, and its
/// connection is not read for that long (KIP-219).
public final class ClientQuotaEnforcer: Sendable {
    public enum Kind: Sendable {
        /// Bytes produced, bytes fetched, request time (recorded as percent-seconds: a request
        /// that runs 2 ms records 0.2, so that the rate per second is a percentage).
        case produce, fetch, request

        var key: String {
            switch self {
            case .produce: "producer_byte_rate"
            case .fetch: "consumer_byte_rate"
            case .request: "request_percentage"
            }
        }
    }

    static let samples = 11
    static let sampleMs: Int64 = 1000
    /// Sensors kept at most; the least recently used go first past it.
    static let sensorsMax = 100_000

    struct SensorKey: Hashable {
        var kind: Kind
        var user: String?
        var clientID: String?
    }

    /// Bytes per sample window, oldest first.
    struct Sensor {
        var windows: [(startMs: Int64, bytes: Double)] = []
        var lastUsedMs: Int64 = 0

        mutating func record(_ bytes: Double, nowMs: Int64) {
            let start = nowMs - nowMs % ClientQuotaEnforcer.sampleMs
            if windows.last?.startMs == start { windows[windows.count - 1].bytes += bytes } else { windows.append((start, bytes)) }
            let horizon = nowMs - Int64(ClientQuotaEnforcer.samples) * ClientQuotaEnforcer.sampleMs
            windows.removeAll { $0.startMs <= horizon }
            lastUsedMs = nowMs
        }

        /// Bytes per second over the samples, the window at least (samples - 1) long (Kafka's
        /// Rate: a young sensor does not read as a burst).
        func rate(nowMs: Int64) -> (perSecond: Double, windowMs: Int64) {
            let total = windows.reduce(0) { $0 + $1.bytes }
            let oldest = windows.first?.startMs ?? nowMs
            let windowMs = max(nowMs - oldest, Int64(ClientQuotaEnforcer.samples - 1) * ClientQuotaEnforcer.sampleMs)
            return (total * 1000 / Double(windowMs), windowMs)
        }
    }

    private let sensors = Mutex<[SensorKey: Sensor]>([:])

    public init() {}

    /// Records `amount` (bytes, or percent-seconds for `.request`) for the connection of
    /// `principal` (`User:NAME`) and `clientID`; the throttle time in ms (0 under its quota or
    /// without one).
    public func record(_ kind: Kind, amount: Double, principal: String, clientID: String?, nowMs: Int64,
                       quotas: [QuotaEntity: [String: Double]]) -> Int64 {
        guard !quotas.isEmpty else { return 0 }
        let user = principal.hasPrefix("User:") ? String(principal.dropFirst(5)) : principal
        let client = clientID ?? ""
        var found: (entity: QuotaEntity, quota: Double)?
        for entity in QuotaEntity.candidates(user: user, clientID: client) {
            if let quota = quotas[entity]?[kind.key] { found = (entity, quota); break }
        }
        guard let (entity, quota) = found, quota > 0 else { return 0 }
        let key = SensorKey(kind: kind, user: entity.user == nil ? nil : user, clientID: entity.clientID == nil ? nil : client)
        return sensors.withLock { sensors in
            if sensors[key] == nil, sensors.count >= Self.sensorsMax,
               let stalest = sensors.min(by: { $0.value.lastUsedMs < $1.value.lastUsedMs })?.key {
                sensors[stalest] = nil
            }
            sensors[key, default: Sensor()].record(amount, nowMs: nowMs)
            let (rate, windowMs) = sensors[key]!.rate(nowMs: nowMs)
            guard rate > quota else { return 0 }
            let throttle = (rate - quota) / quota * Double(windowMs)
            return min(Int64(throttle.rounded(.up)), Int64(Self.samples) * Self.sampleMs)
        }
    }
}

extension RequestContext {
    /// Records this request's bytes against the connection's quota (none for a replica's fetch:
    /// replication is not a client's traffic); the throttle time for its response, and the
    /// connection is not read for that long once the response is out.
    /// `bytes` is counted only when some quota exists (the produce and fetch paths pay nothing
    /// otherwise).
    func throttle(_ kind: ClientQuotaEnforcer.Kind, bytes: () -> Int) -> Int32 {
        guard let quotas = broker.cluster.current?.image.clientQuotas, !quotas.isEmpty else { return 0 }
        let ms = broker.quotas.record(kind, amount: Double(bytes()), principal: connection?.principal ?? "User:ANONYMOUS",
                                      clientID: header.clientID, nowMs: broker.clock.now().ms, quotas: quotas)
        if ms > 0 { connection?.throttle(ms) }
        return Int32(clamping: ms)
    }

    /// Whether some entity has a `request_percentage` (read once per request: an atomic load).
    var measuresRequestTime: Bool { broker.cluster.hasRequestQuotas }

    /// Records `nanoseconds` of this request's handling against the connection's
    /// `request_percentage`; the throttle time (the connection is muted that long, as for bytes).
    func throttleRequest(nanoseconds: UInt64) -> Int32 {
        guard let quotas = broker.cluster.current?.image.clientQuotas, !quotas.isEmpty else { return 0 }
        let percentSeconds = Double(nanoseconds) / 1e9 * 100
        let ms = broker.quotas.record(.request, amount: percentSeconds, principal: connection?.principal ?? "User:ANONYMOUS",
                                      clientID: header.clientID, nowMs: broker.clock.now().ms, quotas: quotas)
        if ms > 0 { connection?.throttle(ms) }
        return Int32(clamping: ms)
    }
}

extension ThrottledResponse {
    /// The response with at least `ms` of throttle time.
    func throttled(atLeast ms: Int32) -> Self {
        var copy = self
        copy.throttleTimeMs = max(copy.throttleTimeMs, ms)
        return copy
    }
}

/// `response` with at least `ms` of throttle time if its type has the field (Kafka's responses
/// from v1 or so; the older versions leave it out when encoded).
func throttled<R>(_ response: R, atLeast ms: Int32) -> R {
    guard let has = response as? any ThrottledResponse else { return response }
    return has.throttled(atLeast: ms) as? R ?? response
}
