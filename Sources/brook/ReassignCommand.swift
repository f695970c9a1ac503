import ArgumentParser
import BrookClient
import BrookCore
import BrookProtocol

/// `brook reassign`: partition moves (as kafka-reassign-partitions.sh), through
/// AlterPartitionReassignments and ListPartitionReassignments.
struct ReassignCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reassign", abstract: "Move partitions to other brokers (as kafka-reassign-partitions.sh).",
        subcommands: [Plan.self, Execute.self, Verify.self, List.self, Cancel.self])

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
            let admin = try client.admin()
            defer { Task { await admin.close() } }
            guard let found = try await admin.describeTopics([topic]).first else { throw CommandFailure("plan: no such topic \(topic)") }
            for p in found.partitions.sorted(by: { $0.partition < $1.partition }) {
                let factor = min(replicationFactor ?? p.replicas.count, ids.count)
                // Striped as the controller places new topics: partition i starts at broker i.
                let replicas = (0..<factor).map { ids[(Int(p.partition) + $0) % ids.count] }
                print("\(topic):\(p.partition)=\(replicas.map(String.init).joined(separator: ","))")
            }
        }
    }

    struct Execute: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start moves: TOPIC:PARTITION=BROKER,BROKER,...")
        @OptionGroup var client: ClientOptions
        @Option(help: ArgumentHelp("Bytes per second for the copying of the moving replicas (as kafka-reassign-partitions --throttle).",
                                   discussion: "Sets leader.replication.throttled.rate and follower.replication.throttled.rate on every broker of the moves, and the topics' throttled replicas; `verify` removes them once the moves are done."))
        var throttle: Int64?
        @Argument(help: "The moves, e.g. orders:0=2,3,1") var moves: [Move]

        func run() async throws {
            let admin = try client.admin()
            defer { Task { await admin.close() } }
            if let throttle {
                guard throttle >= 0 else { throw ValidationError("--throttle takes bytes per second, at least 0") }
                try await ReassignCommand.setThrottles(throttle, for: moves, admin: admin)
            }
            try await ReassignCommand.send(Dictionary(moves.map { (TopicPartition($0.topic, $0.partition), $0.replicas.map(NodeID.init)) }) { _, last in last },
                                           admin: admin, verb: "moving")
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Say which moves are done; once all are, remove the replication throttles (as kafka-reassign-partitions --verify).")
        @OptionGroup var client: ClientOptions
        @Flag(name: .customLong("preserve-throttles"), help: "Keep the throttles even when every move is done.") var preserve = false
        @Argument(help: "The moves given to execute, e.g. orders:0=2,3,1") var moves: [Move]

        func run() async throws {
            let admin = try client.admin()
            defer { Task { await admin.close() } }
            let moving = Set(try await admin.listPartitionReassignments().keys.map { "\($0.topic):\($0.partition)" })
            let replicas = try await ReassignCommand.replicas(of: Set(moves.map(\.topic)), admin: admin)
            var done = 0
            for move in moves {
                let key = "\(move.topic):\(move.partition)"
                let now = replicas[move.topic]?[move.partition] ?? []
                if moving.contains(key) {
                    print("\(key)\tstill in progress")
                } else if now.map(\.value) == move.replicas {
                    print("\(key)\tcomplete")
                    done += 1
                } else {
                    print("\(key)\tnot moving, but its replicas are \(now.map(\.description).joined(separator: ",")): cancelled or never started")
                }
            }
            guard done == moves.count, !preserve else { return }
            try await ReassignCommand.clearThrottles(topics: Set(moves.map(\.topic)), admin: admin)
            print("Throttles removed.")
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel running moves: TOPIC:PARTITION ...")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The partitions, e.g. orders:0") var partitions: [String]

        func run() async throws {
            var targets: [TopicPartition: [NodeID]?] = [:]
            for text in partitions {
                guard let colon = text.lastIndex(of: ":"), let p = Int32(text[text.index(after: colon)...]) else {
                    throw ValidationError("\(text): expected TOPIC:PARTITION")
                }
                targets[TopicPartition(String(text[..<colon]), p)] = .some(nil)
            }
            let admin = try client.admin()
            defer { Task { await admin.close() } }
            try await ReassignCommand.send(targets, admin: admin, verb: "cancelled")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the moves running now.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let admin = try client.admin()
            defer { Task { await admin.close() } }
            let moves = try await admin.listPartitionReassignments()
            let list = { (ids: [NodeID]) in ids.map(\.description).joined(separator: ",") }
            for (partition, move) in moves.sorted(by: { $0.key < $1.key }) {
                print("\(partition.topic):\(partition.partition)\treplicas=\(list(move.replicas))\tadding=\(list(move.adding))\tremoving=\(list(move.removing))")
            }
        }
    }

    static let throttleRates = ["leader.replication.throttled.rate", "follower.replication.throttled.rate"]
    static let throttledReplicas = ["leader.replication.throttled.replicas", "follower.replication.throttled.replicas"]

    /// The replicas of every partition of `topics`, by topic and partition.
    static func replicas(of topics: Set<String>, admin: KafkaAdmin) async throws -> [String: [Int32: [NodeID]]] {
        var out: [String: [Int32: [NodeID]]] = [:]
        for topic in try await admin.describeTopics(topics.sorted()) {
            for p in topic.partitions { out[topic.name, default: [:]][p.partition] = p.replicas }
        }
        return out
    }

    /// Throttles the moves as Kafka's tool does: the rates on every broker that holds or gets a
    /// moving replica; on the leader side every current replica of a moving partition, on the
    /// follower side the replicas it gets.
    static func setThrottles(_ rate: Int64, for moves: [Move], admin: KafkaAdmin) async throws {
        let current = try await replicas(of: Set(moves.map(\.topic)), admin: admin)
        var brokers = Set<Int32>()
        var leaders: [String: [String]] = [:]
        var followers: [String: [String]] = [:]
        for move in moves {
            guard let now = current[move.topic]?[move.partition] else { throw CommandFailure("reassign: no partition \(move.topic):\(move.partition)") }
            brokers.formUnion(now.map(\.value))
            brokers.formUnion(move.replicas)
            leaders[move.topic, default: []] += now.map { "\(move.partition):\($0.value)" }
            followers[move.topic, default: []] += move.replicas.filter { id in !now.contains { $0.value == id } }.map { "\(move.partition):\($0)" }
        }
        for id in brokers.sorted() {
            try await admin.alterConfigs(.broker(NodeID(id)), set: Dictionary(uniqueKeysWithValues: throttleRates.map { ($0, "\(rate)") }))
        }
        for topic in leaders.keys.sorted() {
            try await admin.alterConfigs(.topic(topic), set: [
                throttledReplicas[0]: leaders[topic]!.joined(separator: ","),
                throttledReplicas[1]: (followers[topic] ?? []).joined(separator: ","),
            ])
        }
        print("Throttled at \(rate) bytes/s on brokers \(brokers.sorted().map(String.init).joined(separator: ",")).")
    }

    /// Removes the throttle rates from every broker and the throttled replicas from `topics`.
    static func clearThrottles(topics: Set<String>, admin: KafkaAdmin) async throws {
        for broker in try await admin.describeCluster().brokers {
            try await admin.alterConfigs(.broker(broker.id), delete: throttleRates)
        }
        for topic in topics.sorted() { try await admin.alterConfigs(.topic(topic), delete: throttledReplicas) }
    }

    /// Starts (or, nil, cancels) `moves` and prints each partition's outcome.
    static func send(_ moves: [TopicPartition: [NodeID]?], admin: KafkaAdmin, verb: String) async throws {
        let outcomes = try await admin.alterPartitionReassignments(moves)
        var failed = 0
        for (partition, refusal) in outcomes.sorted(by: { $0.key < $1.key }) {
            print("\(partition.topic):\(partition.partition)\t\(refusal.map { "\($0)" } ?? verb)")
            if refusal != nil { failed += 1 }
        }
        if failed > 0 { throw CommandFailure("reassign: \(failed) partitions refused") }
    }
}
