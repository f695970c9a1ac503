import BrookBroker
import Logging
import NIOCore
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The log lines a client (or a leader change under many producers) can cause at will are
/// bounded per window, and the next window says how many were left out.
@Suite struct RateLimitedLogTests {
    final class Lines: Sendable {
        let all = Mutex<[(Logger.Level, String)]>([])
    }

    struct Capture: LogHandler {
        let lines: Lines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
                 file: String, function: String, line: UInt) {
            lines.all.withLock { $0.append((level, message.description)) }
        }
    }

    @Test func atMostSoManyLinesPerWindowThenTheCountLeftOut() throws {
        let lines = Lines()
        let logger = Logger(label: "test") { _ in Capture(lines: lines) }
        let limited = RateLimitedLog(perWindowMax: 3, window: .milliseconds(50))
        for i in 0..<10 { limited.log(logger, .info, "refused \(i)") }
        #expect(lines.all.withLock { $0.map(\.1) } == ["refused 0", "refused 1", "refused 2"])
        #expect(lines.all.withLock { $0.allSatisfy { $0.0 == .info } })
        usleep(60_000)
        limited.warn(logger, "again")
        let after = lines.all.withLock { $0.suffix(2) }
        #expect(after.map(\.1) == ["7 similar lines were left out of the log in the last 0 s", "again"])
        #expect(after.map(\.0) == [.warning, .warning])
    }
}
