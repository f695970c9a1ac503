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

    /// A connection to broker `id` (nil: the bootstrap server), found through Metadata.
    static func connect(_ client: ClientOptions, broker id: Int32?) async throws -> BrokerConnection {
        let bootstrap = try await client.connect()
        guard let id else { return bootstrap }
        let metadata = try await bootstrap.send(MetadataRequest(topics: [], allowAutoTopicCreation: false))
        await bootstrap.close()
        guard let found = metadata.brokers.first(where: { $0.nodeId == NodeID(id) }) else {
            throw CommandFailure("no broker \(id) in the cluster (brokers: \(metadata.brokers.map { "\($0.nodeId)" }.sorted().joined(separator: ", ")))")
        }
        do { return try await client.connect(to: "\(found.host):\(found.port)") } catch {
            throw CommandFailure("cannot reach broker \(id) at \(found.host):\(found.port): \(error)")
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a broker's log dirs, their space, and the replicas in each (future: a copy under way).")
        @OptionGroup var client: ClientOptions
        @Option(help: "The broker (default: the one --bootstrap-server names).") var broker: Int32?

        func run() async throws {
            let connection = try await LogDirsCommand.connect(client, broker: broker)
            let answer = try await connection.send(DescribeLogDirsRequest(topics: nil))
            await connection.close()
            try check(answer.errorCode, nil, "describe")
            for dir in answer.results {
                let space = dir.totalBytes >= 0 ? " (\(dir.usableBytes) of \(dir.totalBytes) bytes free)" : ""
                print("\(dir.logDir)\(dir.errorCode == 0 ? "" : " \(ErrorCode(rawValue: dir.errorCode))")\(space)")
                for topic in dir.topics.sorted(by: { $0.name < $1.name }) {
                    for p in topic.partitions.sorted(by: { $0.partitionIndex < $1.partitionIndex }) {
                        print("  \(topic.name)-\(p.partitionIndex) \(p.partitionSize) bytes\(p.isFutureKey ? " (future: a move's copy)" : "")")
                    }
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
            var byDir: [String: [String: [Int32]]] = [:]
            for move in moves { byDir[move.dir, default: [:]][move.topic, default: []].append(move.partition) }
            let request = AlterReplicaLogDirsRequest(dirs: byDir.sorted { $0.key < $1.key }.map { dir, topics in
                .init(path: dir, topics: topics.sorted { $0.key < $1.key }.map { .init(name: $0.key, partitions: $0.value) })
            })
            let connection = try await LogDirsCommand.connect(client, broker: broker)
            let answer = try await connection.send(request)
            await connection.close()
            var failed = 0
            for topic in answer.results {
                for p in topic.partitions {
                    let code = ErrorCode(rawValue: p.errorCode)
                    if p.errorCode != 0 { failed += 1 }
                    print("\(topic.topicName)-\(p.partitionIndex): \(p.errorCode == 0 ? "moving" : "\(code)")")
                }
            }
            if failed > 0 { throw CommandFailure("\(failed) of \(moves.count) moves refused") }
        }
    }
}
