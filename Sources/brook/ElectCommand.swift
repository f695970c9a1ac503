import ArgumentParser
import BrookClient
import BrookCore
import BrookProtocol

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
        let connection = try await client.connect()
        var targets: [ElectLeadersRequest.TopicPartitions]?
        if let topic {
            var partitions = partition
            if partitions.isEmpty {
                let metadata = try await connection.send(MetadataRequest(topics: [.init(name: topic)], allowAutoTopicCreation: false))
                guard let found = metadata.topics.first else { throw CommandFailure("elect: no such topic \(topic)") }
                try check(found.errorCode, nil, "elect \(topic)")
                partitions = found.partitions.map(\.partitionIndex).sorted()
            }
            targets = [.init(topic: topic, partitions: partitions)]
        }
        let answer = try await connection.send(ElectLeadersRequest(electionType: kind == .preferred ? 0 : 1, topicPartitions: targets,
                                                                   timeoutMs: 30_000))
        try check(answer.errorCode, nil, "elect")
        var failed = 0
        for result in answer.replicaElectionResults {
            for p in result.partitionResult.sorted(by: { $0.partitionId < $1.partitionId }) {
                let code = ErrorCode(rawValue: p.errorCode)
                let outcome = code == .none ? "elected" : "\(code)\(p.errorMessage.map { ": \($0)" } ?? "")"
                print("\(result.topic)-\(p.partitionId)\t\(outcome)")
                if code != .none && code != .electionNotNeeded { failed += 1 }
            }
        }
        if failed > 0 { throw CommandFailure("elect: \(failed) partitions could not be elected") }
    }
}
