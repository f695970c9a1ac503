import BrookCluster
import BrookProtocol
import Synchronization

/// Client quotas on produced and fetched bytes (`producer_byte_rate`, `consumer_byte_rate`), on
/// request handling time (`request_percentage`: the percent of one thread's time an entity's
/// requests may take, measured as the time its handlers run) and on partitions created and
/// deleted (`controller_mutation_rate`), as Kafka enforces them: the entity that defines the
/// quota for a connection's user and client id
/// is the first of Kafka's order of precedence that has a value (QuotaEntity.candidates); its
/// rate is measured over `quota.window.num` (11) samples of `quota.window.size.seconds` (1 s),
/// shared by every connection the entity covers (a default entity's quota applies to each user
/// or client id on its own). A request that takes the rate above the quota is answered at once
/// with the throttle time Kafka computes, ((rate - quota) / quota) x the measured window, and its
/// connection is not read for that long (KIP-219).
public final class ClientQuotaEnforcer: Sendable {
    public enum Kind: Sendable {
        /// Bytes produced, bytes fetched, request time (recorded as percent-seconds: a request
        /// that runs 2 ms records 0.2, so that the rate per second is a percentage), partitions
        /// created and deleted (KIP-599's controller mutations).
        case produce, fetch, request, mutation

        var key: String {
            switch self {
            case .produce: "producer_byte_rate"
            case .fetch: "consumer_byte_rate"
            case .request: "request_percentage"
            case .mutation: "controller_mutation_rate"
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
            // Samples past the horizon are left out here too (they are dropped when recording).
            let horizon = nowMs - Int64(ClientQuotaEnforcer.samples) * ClientQuotaEnforcer.sampleMs
            let live = windows.drop { $0.startMs <= horizon }
            let total = live.reduce(0) { $0 + $1.bytes }
            let oldest = live.first?.startMs ?? nowMs
            let windowMs = max(nowMs - oldest, Int64(ClientQuotaEnforcer.samples - 1) * ClientQuotaEnforcer.sampleMs)
            return (total * 1000 / Double(windowMs), windowMs)
        }
    }

    private let sensors = Mutex<[SensorKey: Sensor]>([:])

    public init() {}

    /// KIP-599's admission of `mutations` (partitions to create or delete): taken, and nil, when
    /// the entity's `controller_mutation_rate` is not exceeded at this moment (the mutations are
    /// recorded, and may take the rate past it, as Kafka lets one request do); else not taken,
    /// and the throttle time in ms until the rate is back under the quota.
    public func admit(mutations: Int, principal: String, clientID: String?, nowMs: Int64,
                      quotas: [QuotaEntity: [String: Double]]) -> Int64? {
        guard let (key, quota) = sensorKey(.mutation, principal: principal, clientID: clientID, quotas: quotas) else { return nil }
        return sensors.withLock { sensors in
            let (rate, windowMs) = sensors[key]?.rate(nowMs: nowMs) ?? (0, 0)
            if rate > quota { return Self.throttleMs(rate: rate, quota: quota, windowMs: windowMs) }
            Self.makeRoom(&sensors, for: key)
            sensors[key, default: Sensor()].record(Double(mutations), nowMs: nowMs)
            return nil
        }
    }

    /// The sensor of the entity whose quota of `kind` covers the connection, and that quota.
    func sensorKey(_ kind: Kind, principal: String, clientID: String?, quotas: [QuotaEntity: [String: Double]]) -> (SensorKey, Double)? {
        guard !quotas.isEmpty else { return nil }
        let user = principal.hasPrefix("User:") ? String(principal.dropFirst(5)) : principal
        let client = clientID ?? ""
        for entity in QuotaEntity.candidates(user: user, clientID: client) {
            guard let quota = quotas[entity]?[kind.key] else { continue }
            guard quota > 0 else { return nil }
            return (SensorKey(kind: kind, user: entity.user == nil ? nil : user, clientID: entity.clientID == nil ? nil : client), quota)
        }
        return nil
    }

    static func makeRoom(_ sensors: inout [SensorKey: Sensor], for key: SensorKey) {
        if sensors[key] == nil, sensors.count >= sensorsMax,
           let stalest = sensors.min(by: { $0.value.lastUsedMs < $1.value.lastUsedMs })?.key {
            sensors[stalest] = nil
        }
    }

    /// Records `amount` (bytes, or percent-seconds for `.request`) for the connection of
    /// `principal` (`User:NAME`) and `clientID`; the throttle time in ms (0 under its quota or
    /// without one).
    public func record(_ kind: Kind, amount: Double, principal: String, clientID: String?, nowMs: Int64,
                       quotas: [QuotaEntity: [String: Double]]) -> Int64 {
        guard let (key, quota) = sensorKey(kind, principal: principal, clientID: clientID, quotas: quotas) else { return 0 }
        return sensors.withLock { sensors in
            Self.makeRoom(&sensors, for: key)
            sensors[key, default: Sensor()].record(amount, nowMs: nowMs)
            let (rate, windowMs) = sensors[key]!.rate(nowMs: nowMs)
            return rate > quota ? Self.throttleMs(rate: rate, quota: quota, windowMs: windowMs) : 0
        }
    }

    /// Kafka's throttle time for a rate over its quota: ((rate - quota) / quota) x the measured
    /// window, at most the whole window.
    static func throttleMs(rate: Double, quota: Double, windowMs: Int64) -> Int64 {
        min(Int64(((rate - quota) / quota * Double(windowMs)).rounded(.up)), Int64(samples) * sampleMs)
    }
}

extension RequestContext {
    /// Records this request's bytes against the connection's quota (none for a replica's fetch:
    /// replication is not a client's traffic); the throttle time for its response, and the
    /// connection is not read for that long once the response is out.
    /// `amount` (bytes, or percent-seconds for `.request`) is counted only when some quota exists:
    /// the produce and fetch paths pay an atomic load otherwise.
    func throttle(_ kind: ClientQuotaEnforcer.Kind, amount: () -> Double) -> Int32 {
        guard broker.cluster.hasClientQuotas, let quotas = broker.cluster.current?.image.clientQuotas, !quotas.isEmpty else { return 0 }
        let ms = broker.quotas.record(kind, amount: amount(), principal: connection?.principal ?? "User:ANONYMOUS",
                                      clientID: header.clientID, nowMs: broker.clock.now().ms, quotas: quotas)
        if ms > 0 { connection?.throttle(ms) }
        return Int32(clamping: ms)
    }

    /// Whether some entity has a `request_percentage` (read once per request: an atomic load).
    var measuresRequestTime: Bool { broker.cluster.hasRequestQuotas }

    /// Records `nanoseconds` of this request's handling against the connection's
    /// `request_percentage`; the throttle time (the connection is muted that long, as for bytes).
    func throttleRequest(nanoseconds: UInt64) -> Int32 {
        throttle(.request) { Double(nanoseconds) / 1e9 * 100 }
    }
}

extension RequestContext {
    /// KIP-599 for a request that creates or deletes `mutations` partitions: nil when taken
    /// (or no `controller_mutation_rate` applies), else the throttle time in ms; the topic is
    /// then refused with THROTTLING_QUOTA_EXCEEDED. `strict` false (the API's versions before
    /// KIP-599) takes every mutation and only throttles.
    func admitMutations(_ mutations: Int, strict: Bool) -> Int32? {
        guard mutations > 0 else { return nil }
        guard strict else {
            _ = throttle(.mutation) { Double(mutations) }
            return nil
        }
        guard broker.cluster.hasClientQuotas, let quotas = broker.cluster.current?.image.clientQuotas, !quotas.isEmpty,
              let ms = broker.quotas.admit(mutations: mutations, principal: connection?.principal ?? "User:ANONYMOUS",
                                           clientID: header.clientID, nowMs: broker.clock.now().ms, quotas: quotas) else { return nil }
        connection?.throttle(ms)
        return Int32(clamping: ms)
    }

    static let mutationQuotaMessage = "The throttling quota has been exceeded."

    /// KIP-599 over a request's topics in order: those taken, those refused, and the largest
    /// throttle time of the refusals (nothing is refused when `validateOnly`).
    func admitEach<Topic>(_ topics: [Topic], strict: Bool, validateOnly: Bool,
                          mutations: (Topic) -> Int) -> (taken: [Topic], refused: [Topic], throttleMs: Int32) {
        var taken: [Topic] = [], refused: [Topic] = [], throttleMs: Int32 = 0
        for topic in topics {
            if !validateOnly, let ms = admitMutations(mutations(topic), strict: strict) {
                throttleMs = max(throttleMs, ms)
                refused.append(topic)
            } else {
                taken.append(topic)
            }
        }
        return (taken, refused, throttleMs)
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
