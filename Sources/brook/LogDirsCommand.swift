import ArgumentParser
import BrookClient
import BrookCore
import BrookProtocol

/// `brook log-dirs`: a broker's log directories and the replicas in each (as kafka-log-dirs.sh),
/// and moves of replicas between them (the `log_dirs` of kafka-reassign-partitions.sh's JSON),
/// through DescribeLogDirs and AlterReplicaLogDirs sent to that broker.
struct LogDirsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log-dirs", abstract: "A broker's log directories, and moving replicas between them (as kafka-log-dirs.sh).",
        subcommands: [Describe.self, Move.self])

    /// Broker `id` checked against the cluster's (nil: the bootstrap server), for a readable
    /// error when there is no such broker.
    static func broker(_ id: Int32?, admin: KafkaAdmin) async throws -> NodeID? {
        guard let id else { return nil }
        let brokers = try await admin.describeCluster().brokers
        guard brokers.contains(where: { $0.id == NodeID(id) }) else {
            throw CommandFailure("no broker \(id) in the cluster (brokers: \(brokers.map { "\($0.id)" }.joined(separator: ", ")))")
        }
        return NodeID(id)
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a broker's log dirs, their space, and the replicas in each (future: a copy under way).")
        @OptionGroup var client: ClientOptions
        @Option(help: "The broker (default: the one --bootstrap-server names).") var broker: Int32?

        func run() async throws {
            let admin = try client.admin()
            defer { Task { await admin.close() } }
            let dirs = try await admin.describeLogDirs(broker: try await LogDirsCommand.broker(broker, admin: admin))
            for dir in dirs {
                let space = dir.totalBytes >= 0 ? " (\(dir.usableBytes) of \(dir.totalBytes) bytes free)" : ""
                print("\(dir.path)\(dir.error.map { " \($0)" } ?? "")\(space)")
                for replica in dir.replicas {
                    print("  \(replica.partition) \(replica.sizeBytes) bytes\(replica.isFuture ? " (future: a move's copy)" : "")")
                }
            }
        }
    }

    /// "t:0=/data/b": a replica and the log dir it moves to.
    struct Target: ExpressibleByArgument {
        let topic: String
        let partition: Int32
        let dir: String
        init?(argument: String) {
            guard let eq = argument.firstIndex(of: "="), let colon = argument[..<eq].lastIndex(of: ":"),
                  let partition = Int32(argument[argument.index(after: colon)..<eq]) else { return nil }
            topic = String(argument[..<colon])
            self.partition = partition
            dir = String(argument[argument.index(after: eq)...])
            guard !topic.isEmpty, !dir.isEmpty else { return nil }
        }
    }

    struct Move: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move a broker's replicas to other log dirs of that broker: TOPIC:PARTITION=DIR ... (its current dir cancels a move).",
            discussion: "The replica serves on while a copy catches up in the new dir; `describe` shows the copy as future until it takes the replica's place.")
        @OptionGroup var client: ClientOptions
        @Option(help: "The broker holding the replicas (default: the one --bootstrap-server names).") var broker: Int32?
        @Argument(help: "The moves, e.g. orders:0=/data/disk2") var moves: [Target]

        func run() async throws {
            var targets: [TopicPartition: String] = [:]
            for move in moves { targets[TopicPartition(move.topic, move.partition)] = move.dir }
            let admin = try client.admin()
            defer { Task { await admin.close() } }
            let outcomes = try await admin.alterReplicaLogDirs(targets, broker: try await LogDirsCommand.broker(broker, admin: admin))
            var failed = 0
            for (partition, refusal) in outcomes.sorted(by: { $0.key < $1.key }) {
                if let refusal, let code = refusal.code {
                    failed += 1
                    print("\(partition): \(code)")
                } else {
                    print("\(partition): moving")
                }
            }
            if failed > 0 { throw CommandFailure("\(failed) of \(moves.count) moves refused") }
        }
    }
}
