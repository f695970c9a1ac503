import BrookBroker
import BrookProtocol
import NIOConcurrencyHelpers
import Prometheus

/// The series one API has: made when the API is first asked for, kept for the process's life
/// (at most one per API key the broker serves, a version series per version it serves).
final class ApiSeries: Sendable {
    let name: String
    let queueTime: DurationHistogram
    let totalTime: DurationHistogram
    let requestBytes: Prometheus.Counter
    let responseBytes: Prometheus.Counter
    /// By version, made when first seen (under `RequestMetrics.lock`).
    let versions: NIOLockedValueBox<[Int16: Prometheus.Counter]>

    init(name: String, registry: PrometheusCollectorRegistry) {
        self.name = name
        let api = [("api", name)]
        queueTime = registry.makeDurationHistogram(
            descriptor: MetricName.make("brook_request_queue_seconds",
                                        "Time from a request's arrival until its handler ran (waits for the memory budget, an offloaded request before it)"),
            labels: api, buckets: RequestMetrics.latencyBuckets)
        totalTime = registry.makeDurationHistogram(
            descriptor: MetricName.make("brook_request_seconds", "Time from a request's arrival until its answer was written (a long-poll fetch's wait included)"),
            labels: api, buckets: RequestMetrics.latencyBuckets)
        requestBytes = registry.makeCounter(descriptor: MetricName.make("brook_request_bytes_total", "Bytes of requests received"), labels: api)
        responseBytes = registry.makeCounter(descriptor: MetricName.make("brook_response_bytes_total", "Bytes of answers sent"), labels: api)
        versions = NIOLockedValueBox([:])
    }
}

/// Requests by API and version, their errors by code, latency and bytes; connections by
/// listener. Recorded by the connection handlers (BrookServer), not by the broker library,
/// whose allocations the benchmarks hold: a series is made once and then only counted on.
public final class RequestMetrics: ResponseErrorObserver, Sendable {
    let registry: PrometheusCollectorRegistry
    let apis = NIOLockedValueBox<[Int16: ApiSeries]>([:])
    let errors = NIOLockedValueBox<[Int32: Prometheus.Counter]>([:])

    /// 100 us to 30 s.
    static let latencyBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30),
    ]

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    static func apiName(_ key: Int16) -> String {
        ApiCatalog.entry(forKey: key)?.name ?? "Unknown\(key)"
    }

    /// The series of `apiKey` (made on first use). Only keys the broker serves reach here: an
    /// unknown key closes its connection before.
    func series(_ apiKey: Int16) -> ApiSeries {
        apis.withLockedValue { table in
            if let found = table[apiKey] { return found }
            let made = ApiSeries(name: Self.apiName(apiKey), registry: registry)
            table[apiKey] = made
            return made
        }
    }

    func requestCounter(_ series: ApiSeries, version: Int16) -> Prometheus.Counter {
        series.versions.withLockedValue { table in
            if let found = table[version] { return found }
            let made = registry.makeCounter(
                descriptor: MetricName.make("brook_requests_total", "Requests handled, by API and version"),
                labels: [("api", series.name), ("version", String(version))])
            table[version] = made
            return made
        }
    }

    /// An API version's series, which a connection keeps for the requests after (no lock then).
    struct Handle {
        let api: ApiSeries
        let requests: Prometheus.Counter
    }

    func handle(apiKey: Int16, version: Int16) -> Handle {
        let api = series(apiKey)
        return Handle(api: api, requests: requestCounter(api, version: version))
    }

    /// One request answered (or not: acks=0): `receivedNs` when its bytes had come,
    /// `startedNs` when its handler ran, `doneNs` when its answer was written.
    func recordRequest(_ handle: Handle, requestBytes: Int, responseBytes: Int,
                       receivedNs: UInt64, startedNs: UInt64, doneNs: UInt64) {
        let api = handle.api
        handle.requests.increment()
        api.requestBytes.increment(by: Int64(requestBytes))
        if responseBytes > 0 { api.responseBytes.increment(by: Int64(responseBytes)) }
        api.queueTime.recordNanoseconds(Int64(startedNs &- min(receivedNs, startedNs)))
        api.totalTime.recordNanoseconds(Int64(doneNs &- min(receivedNs, doneNs)))
    }

    public func responseError(apiKey: Int16, code: ErrorCode) {
        let key = Int32(apiKey) << 16 | Int32(UInt16(bitPattern: code.rawValue))
        let counter = errors.withLockedValue { table in
            if let found = table[key] { return found }
            let made = registry.makeCounter(
                descriptor: MetricName.make("brook_request_errors_total", "Error codes in answers, by API and code (a Produce answer's per-partition codes each count)"),
                labels: [("api", Self.apiName(apiKey)), ("error", code.name)])
            table[key] = made
            return made
        }
        counter.increment()
    }
}

/// Connections by listener.
final class ListenerMetrics: Sendable {
    let open: Gauge
    let created: Prometheus.Counter

    init(listener: String, registry: PrometheusCollectorRegistry) {
        let labels = [("listener", listener)]
        open = registry.makeGauge(descriptor: MetricName.make("brook_connections", "Client connections open, by listener"), labels: labels)
        created = registry.makeCounter(descriptor: MetricName.make("brook_connections_created_total", "Client connections accepted, by listener"),
                                       labels: labels)
    }
}

/// A metric's name and help, as swift-prometheus takes them (the whole name in `metricName`).
enum MetricName {
    static func make(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
