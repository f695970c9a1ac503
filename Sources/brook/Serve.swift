import ArgumentParser
import BrookBroker
import BrookCore
import BrookServer
import BrookStorage
import Dispatch
import Logging

#if canImport(Glibc)
import Glibc
#endif

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run a broker (as Kafka's kafka-server-start.sh).",
        discussion: """
            With nothing given, a single node on 127.0.0.1:9092 with its data in ./brook-data. \
            Settings use Kafka's names (server.properties): node.id, listeners, \
            advertised.listeners, log.dirs, num.partitions, auto.create.topics.enable, \
            log.retention.ms, log.segment.bytes, ... SIGTERM or Ctrl-C shuts down cleanly.
            """)

    @Argument(help: "A server.properties file.")
    var properties: String?

    @Option(name: .customLong("override"), help: ArgumentHelp("A setting that wins over the file.", valueName: "key=value"))
    var overrides: [String] = []

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    func run() throws {
        var settings: [(String, String)] = []
        if let properties {
            guard let text = try FileSystem.readFile(properties) else {
                throw ValidationError("cannot read the properties file \(properties)")
            }
            settings += BrokerConfig.readProperties(text)
        }
        for item in overrides {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--override takes key=value, not '\(item)'") }
            settings.append((parts[0], parts[1]))
        }
        let config: BrokerConfig
        do { config = try BrokerConfig(settings) } catch { throw ValidationError("\(error)") }
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown log level \(logLevel)") }

        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "brook")
        raiseOpenFileLimit(logger: logger)

        let broker = try Broker(config: config, logger: logger)
        let server = BrookServer(broker: broker, logger: logger)
        let addresses = try server.start()
        let dirs = config.logDirs.map(absolutePath).joined(separator: ", ")
        logger.notice("Brook \(Version.brook) node \(config.nodeID) of cluster \(broker.clusterID) listening on \(addresses.map { "\($0)" }.joined(separator: ", ")), advertised as \(config.advertised), data in \(dirs)")

        // Shut down cleanly on SIGTERM / SIGINT: stop listening, close the logs, exit.
        runUntilSignalled(logger: logger) {
            server.shutdown()
            logger.notice("stopped cleanly")
        }
    }

    func raiseOpenFileLimit(logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 { logger.warning("could not raise the open file limit") }
    }
}

func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    var buffer = [CChar](repeating: 0, count: 4096)
    guard getcwd(&buffer, buffer.count) != nil else { return path }
    let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return cwd + "/" + path
}

/// Blocks until SIGTERM or SIGINT, then runs `stop` and exits 0. The handlers run on a global
/// queue: the calling thread only waits.
func runUntilSignalled(logger: Logger, _ stop: @escaping @Sendable () -> Void) -> Never {
    let numbers: [Int32] = [SIGTERM, SIGINT]
    let signals = numbers.map { number -> DispatchSourceSignal in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            logger.notice("shutting down (signal \(number))")
            stop()
            Glibc.exit(0)
        }
        source.resume()
        return source
    }
    withExtendedLifetime(signals) { DispatchSemaphore(value: 0).wait() }
    preconditionFailure("the signal handlers exit the process")
}
