import ArgumentParser
import BrookClient
import BrookCore
import BrookProtocol

/// `brook reassign`: partition moves (as kafka-reassign-partitions.sh), through
/// AlterPartitionReassignments and ListPartitionReassignments.
struct ReassignCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reassign", abstract: "Move partitions to other brokers (as kafka-reassign-partitions.sh).",
        subcommands: [Plan.self, Execute.self, List.self, Cancel.self])

    /// "t:0=1,2,3": a partition and its new replicas.
    struct Move: ExpressibleByArgument {
        let topic: String
        let partition: Int32
        let replicas: [Int32]
        init?(argument: String) {
            guard let eq = argument.lastIndex(of: "="), let colon = argument[..<eq].lastIndex(of: ":"),
                  let partition = Int32(argument[argument.index(after: colon)..<eq]) else { return nil }
            let ids = argument[argument.index(after: eq)...].split(separator: ",").compactMap { Int32($0) }
            guard !ids.isEmpty, ids.count == argument[argument.index(after: eq)...].split(separator: ",").count else { return nil }
            topic = String(argument[..<colon])
            self.partition = partition
            replicas = ids
        }
    }

    struct Plan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print moves that spread a topic's partitions over the given brokers (feed them to execute).")
        @OptionGroup var client: ClientOptions
        @Option(help: "The topic.") var topic: String
        @Option(help: "The brokers to place it on, comma-separated.") var brokers: String
        @Option(name: .customLong("replication-factor"), help: "Replicas per partition (default: as now).") var replicationFactor: Int?

        func run() async throws {
            let ids = brokers.split(separator: ",").compactMap { Int32($0) }
            guard !ids.isEmpty else { throw ValidationError("--brokers takes ids like 1,2,3") }
            let connection = try await client.connect()
            let metadata = try await connection.send(MetadataRequest(topics: [.init(name: topic)], allowAutoTopicCreation: false))
            guard let found = metadata.topics.first else { throw CommandFailure("plan: no such topic \(topic)") }
            try check(found.errorCode, nil, "plan \(topic)")
            for p in found.partitions.sorted(by: { $0.partitionIndex < $1.partitionIndex }) {
                let factor = min(replicationFactor ?? p.replicaNodes.count, ids.count)
                // Striped as the controller places new topics: partition i starts at broker i.
                let replicas = (0..<factor).map { ids[(Int(p.partitionIndex) + $0) % ids.count] }
                print("\(topic):\(p.partitionIndex)=\(replicas.map(String.init).joined(separator: ","))")
            }
        }
    }

    struct Execute: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start moves: TOPIC:PARTITION=BROKER,BROKER,...")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The moves, e.g. orders:0=2,3,1") var moves: [Move]

        func run() async throws {
            try await ReassignCommand.send(moves.map { ($0.topic, $0.partition, $0.replicas) }, client: client, verb: "moving")
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel running moves: TOPIC:PARTITION ...")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The partitions, e.g. orders:0") var partitions: [String]

        func run() async throws {
            var targets: [(String, Int32, [Int32]?)] = []
            for text in partitions {
                guard let colon = text.lastIndex(of: ":"), let p = Int32(text[text.index(after: colon)...]) else {
                    throw ValidationError("\(text): expected TOPIC:PARTITION")
                }
                targets.append((String(text[..<colon]), p, nil))
            }
            try await ReassignCommand.send(targets, client: client, verb: "cancelled")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the moves running now.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let connection = try await client.connect()
            let answer = try await connection.send(ListPartitionReassignmentsRequest(timeoutMs: 30_000, topics: nil))
            try check(answer.errorCode, answer.errorMessage, "list")
            for topic in answer.topics {
                for p in topic.partitions {
                    let list = { (ids: [NodeID]) in ids.map(\.description).joined(separator: ",") }
                    print("\(topic.name):\(p.partitionIndex)\treplicas=\(list(p.replicas))\tadding=\(list(p.addingReplicas))\tremoving=\(list(p.removingReplicas))")
                }
            }
        }
    }

    static func send(_ targets: [(String, Int32, [Int32]?)], client: ClientOptions, verb: String) async throws {
        let connection = try await client.connect()
        var byTopic: [String: [AlterPartitionReassignmentsRequest.ReassignableTopic.ReassignablePartition]] = [:]
        var order: [String] = []
        for (topic, partition, replicas) in targets {
            if byTopic[topic] == nil { order.append(topic) }
            byTopic[topic, default: []].append(.init(partitionIndex: partition, replicas: replicas?.map(NodeID.init)))
        }
        let answer = try await connection.send(AlterPartitionReassignmentsRequest(
            timeoutMs: 30_000, topics: order.map { .init(name: $0, partitions: byTopic[$0]!) }))
        try check(answer.errorCode, answer.errorMessage, "reassign")
        var failed = 0
        for topic in answer.responses {
            for p in topic.partitions {
                let code = ErrorCode(rawValue: p.errorCode)
                print("\(topic.name):\(p.partitionIndex)\t\(code == .none ? verb : "\(code)\(p.errorMessage.map { ": \($0)" } ?? "")")")
                if code != .none { failed += 1 }
            }
        }
        if failed > 0 { throw CommandFailure("reassign: \(failed) partitions refused") }
    }
}
