import BrookServer
@preconcurrency import Dispatch
import Logging
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One part of a node (the HTTP listener, the controller, the client listeners, the replica
/// manager, the broker's membership in the cluster, ...) as a swift-service-lifecycle service.
/// The parts start, in the order a node needs, before the group runs (a start that fails stops
/// the process with a readable error, as before); the group's graceful shutdown stops them in
/// the reverse order of its list, each once the one after it has stopped.
struct NodePart: Service, CustomStringConvertible {
    let description: String
    /// Stops the part; may block (closing channels, a controlled shutdown), so it runs on its
    /// own thread, not on Swift concurrency's.
    let stop: @Sendable () -> Void

    func run() async throws {
        // Until the group's graceful shutdown reaches this part (or the group is cancelled).
        try? await gracefulShutdown()
        let stop = self.stop
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                stop()
                done.resume()
            }
        }
    }
}

/// Runs a node's parts in one ServiceGroup until SIGTERM or SIGINT, which stops them in order
/// (a broker's controlled shutdown first, the controller last), then exits 0. A second signal,
/// or a shutdown longer than `timeoutMs`, ends the process at once with status 1: the logs then
/// lack their clean-shutdown markers and are recovered at the next start.
/// `first` (the tracing exporter) run before the parts and stop after them; one of them ending
/// on its own (an exporter that failed) leaves the node running.
/// The group learns of a signal from `watchdog`, made before the node bound anything: a SIGTERM
/// sent as soon as a port answered used to be lost (before the group's own signal handling was
/// set up in its task, or between the watchdog's SIG_IGN and its source) and the node never
/// stopped.
func runNode(_ parts: [NodePart], first: [any Service] = [], watchdog: ShutdownWatchdog, logger: Logger) -> Never {
    let group = ServiceGroup(configuration: ServiceGroupConfiguration(
        services: first.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0, successTerminationBehavior: .ignore,
                                                                               failureTerminationBehavior: .ignore) }
            + parts.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }
            + [ServiceGroupConfiguration.ServiceConfiguration(service: ShutdownRequest(signals: watchdog.requests),
                                                              successTerminationBehavior: .gracefullyShutdownGroup)],
        logger: logger))
    let finished = DispatchSemaphore(value: 0)
    Task {
        do { try await group.run() } catch { logger.error("the node's services ended with an error: \(error)") }
        finished.signal()
    }
    withExtendedLifetime(watchdog) { finished.wait() }
    logger.notice("stopped cleanly")
    exit(0)
}

/// Ends at the first signal (kept if it came before the group ran), which shuts the group down
/// gracefully; also ends when the group stops otherwise.
struct ShutdownRequest: Service {
    let signals: AsyncStream<Int32>

    func run() async {
        for await _ in signals.cancelOnGracefulShutdown() { return }
    }
}

/// Watches SIGTERM and SIGINT for the service group: the first marks the node stopping
/// (`/health` and `/ready` answer 503 from then on), starts the shutdown's clock and asks the
/// group to stop (`requests`); the second, or the clock's end, forces the exit.
final class ShutdownWatchdog {
    let sources: [any DispatchSourceSignal]
    let timer: any DispatchSourceTimer
    let requests: AsyncStream<Int32>

    init(timeoutMs: Int64, health: NodeHealth?, logger: Logger) {
        let (requests, request) = AsyncStream.makeStream(of: Int32.self, bufferingPolicy: .bufferingNewest(1))
        self.requests = requests
        let signals = Mutex(0)
        let queue = DispatchQueue(label: "brook.shutdown-watchdog")
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.setEventHandler {
            logger.critical("shutdown took longer than shutdown.timeout.ms=\(timeoutMs): stopping now, uncleanly")
            Glibc._exit(1)
        }
        // Resumed now with no deadline (a dispatch source released while suspended traps, and a
        // watchdog is released when the start fails); the first signal schedules it.
        timer.resume()
        self.timer = timer
        sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)  // the sources take them from here on
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                let count = signals.withLock { n in
                    n += 1
                    return n
                }
                if count == 1 {
                    logger.notice("shutting down (signal \(number)); a second signal stops at once")
                    health?.markStopping()
                    timer.schedule(deadline: .now() + .milliseconds(Int(timeoutMs)))
                    request.yield(number)
                } else {
                    logger.critical("a second signal (\(number)) during shutdown: stopping now, uncleanly")
                    Glibc._exit(1)
                }
            }
            source.resume()
            return source
        }
    }

    /// A start that failed: the sources stop (the process is about to exit with its error).
    deinit {
        for source in sources { source.cancel() }
        timer.cancel()
    }
}
