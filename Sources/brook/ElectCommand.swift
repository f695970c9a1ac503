import ArgumentParser
import BrookClient
import BrookCore

/// `brook elect`: ElectLeaders, as kafka-leader-election.sh.
struct ElectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "elect",
        abstract: "Elect partition leaders (as kafka-leader-election.sh): the preferred replica, or an unclean one.",
        discussion: """
            Without --topic, every partition (only those where an election was tried are listed). \
            `unclean` elects only where no replica leads, and may lose records the new leader lacks.
            """)

    enum Kind: String, ExpressibleByArgument { case preferred, unclean }

    @OptionGroup var client: ClientOptions
    @Option(name: .customLong("type"), help: "preferred or unclean.") var kind: Kind = .preferred
    @Option(help: "The topic (default: every partition of every topic).") var topic: String?
    @Option(help: "Partitions of --topic (repeatable; default: all of them).") var partition: [Int32] = []

    func validate() throws {
        if topic == nil && !partition.isEmpty { throw ValidationError("--partition needs --topic") }
    }

    func run() async throws {
        let admin = try client.admin()
        var targets: [TopicPartition]?
        if let topic {
            var partitions = partition
            if partitions.isEmpty { partitions = try await admin.describeTopics([topic])[0].partitions.map(\.partition) }
            targets = partitions.map { TopicPartition(topic, $0) }
        }
        let outcomes = try await admin.electLeaders(kind == .preferred ? .preferred : .unclean, partitions: targets)
        await admin.close()
        var failed = 0
        for (partition, error) in outcomes.sorted(by: { $0.key < $1.key }) {
            print("\(partition)\t\(error.map { "\($0.code ?? .unknownServerError)\($0.message.isEmpty ? "" : ": \($0.message)")" } ?? "elected")")
            if let error, error.code != .electionNotNeeded { failed += 1 }
        }
        if failed > 0 { throw CommandFailure("elect: \(failed) partitions could not be elected") }
    }
}
