import ArgumentParser
import BrookClient
import BrookCore
import BrookProtocol

struct ClientOptions: ParsableArguments {
    @Option(name: .customLong("bootstrap-server"), help: "The broker to talk to, host:port.")
    var bootstrapServer = "127.0.0.1:9092"

    func connect() async throws -> BrokerConnection {
        do { return try await BrokerConnection.connect(bootstrapServer) } catch { throw CleanExit.message("error: \(error)") }
    }
}

/// `key=value` pairs as Kafka's tools take them (`--config retention.ms=1000`).
func parsePairs(_ items: [String], option: String) throws -> [String: String] {
    var pairs: [String: String] = [:]
    for item in items.flatMap({ $0.split(separator: ",").map(String.init) }) {
        let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("\(option) takes key=value, not '\(item)'") }
        pairs[parts[0]] = parts[1]
    }
    return pairs
}

/// Fails the command with the broker's error code and message.
func check(_ code: Int16, _ message: String?, _ what: String) throws {
    guard code != 0 else { return }
    throw CommandFailure("\(what): \(ErrorCode(rawValue: code))\(message.map { ": \($0)" } ?? "")")
}

struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
