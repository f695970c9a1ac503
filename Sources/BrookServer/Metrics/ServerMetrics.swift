import BrookBroker
import BrookClient
import BrookCore
import BrookGroups
import BrookQuorum
import BrookStorage
import NIOConcurrencyHelpers
import Prometheus

/// A node's metrics in one swift-prometheus registry: what the connections count as requests
/// go by (RequestMetrics), and what is read from the broker, the controller and the process
/// each time `/metrics` is asked for (partition offsets and sizes, consumer lag, group and
/// transaction states, the quorum, CPU and memory). Series of what no longer exists (a deleted
/// topic, a group's partition) are taken out at the scrape that no longer sees it.
public final class ServerMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    public let requests: RequestMetrics
    let listeners = NIOLockedValueBox<[String: ListenerMetrics]>([:])
    let sources = NIOLockedValueBox(Sources())
    let scrape: NIOLockedValueBox<Scrape>
    let saves: DurationHistogram

    struct Sources: Sendable {
        var broker: Broker?
        var memory: RequestMemory?
        var quorum: QuorumStats?
        var mqtt: MQTTGateway?
        var mirror: (name: String, status: @Sendable () -> MirrorStatus)?
        var limits: Limits = Limits()
    }

    struct Limits: Sendable {
        var partitionSeries = true
        var lagSeriesMax = 10_000
    }

    public init() {
        requests = RequestMetrics(registry: registry)
        scrape = NIOLockedValueBox(Scrape(registry: registry))
        saves = registry.makeDurationHistogram(
            descriptor: MetricName.make("brook_raft_log_save_seconds", "Time to save the Raft log (write and fsync) on this controller"),
            buckets: RequestMetrics.latencyBuckets)
        Scrape.registerBuildInfo(registry)
    }

    func listener(_ name: String) -> ListenerMetrics {
        listeners.withLockedValue { table in
            if let found = table[name] { return found }
            let made = ListenerMetrics(listener: name, registry: registry)
            table[name] = made
            return made
        }
    }

    /// The broker whose partitions, groups and transactions are reported.
    public func attach(broker: Broker) {
        sources.withLockedValue {
            $0.broker = broker
            $0.limits = Limits(partitionSeries: broker.config.metricsPartitionSeries, lagSeriesMax: broker.config.metricsLagSeriesMax)
        }
    }

    func attach(mqtt: MQTTGateway) { sources.withLockedValue { $0.mqtt = mqtt } }

    /// A mirror (`brook mirror run --http-listener`): its records copied, lag and checkpoints.
    public func attach(mirror name: String, status: @escaping @Sendable () -> MirrorStatus) {
        sources.withLockedValue { $0.mirror = (name, status) }
    }

    func attach(memory: RequestMemory) { sources.withLockedValue { $0.memory = memory } }

    /// The controller whose quorum is reported; `observeSave` goes into its options.
    public func attach(quorum: QuorumStats) { sources.withLockedValue { $0.quorum = quorum } }

    public var observeSave: @Sendable (UInt64) -> Void {
        let saves = self.saves
        return { nanos in saves.recordNanoseconds(Int64(clamping: nanos)) }
    }

    /// Reads every source, then the whole registry in Prometheus's text format. Scrapes run
    /// one at a time; a scrape reads partitions' locks one by one, never more than one at once.
    public func render(nowMs: Int64 = SystemClock().now().ms) -> [UInt8] {
        let sources = self.sources.withLockedValue { $0 }
        return scrape.withLockedValue { scrape in
            scrape.collect(sources, nowMs: nowMs)
            return registry.emitToBuffer()
        }
    }
}
