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
        @Option(help: ArgumentHelp("Bytes per second for the copying of the moving replicas (as kafka-reassign-partitions --throttle).",
                                   discussion: "Sets leader.replication.throttled.rate and follower.replication.throttled.rate on every broker of the moves, and the topics' throttled replicas; `verify` removes them once the moves are done."))
        var throttle: Int64?
        @Argument(help: "The moves, e.g. orders:0=2,3,1") var moves: [Move]

        func run() async throws {
            if let throttle {
                guard throttle >= 0 else { throw ValidationError("--throttle takes bytes per second, at least 0") }
                try await ReassignCommand.setThrottles(throttle, for: moves, client: client)
            }
            try await ReassignCommand.send(moves.map { ($0.topic, $0.partition, $0.replicas) }, client: client, verb: "moving")
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Say which moves are done; once all are, remove the replication throttles (as kafka-reassign-partitions --verify).")
        @OptionGroup var client: ClientOptions
        @Flag(name: .customLong("preserve-throttles"), help: "Keep the throttles even when every move is done.") var preserve = false
        @Argument(help: "The moves given to execute, e.g. orders:0=2,3,1") var moves: [Move]

        func run() async throws {
            let connection = try await client.connect()
            let running = try await connection.send(ListPartitionReassignmentsRequest(timeoutMs: 30_000, topics: nil))
            try check(running.errorCode, running.errorMessage, "verify")
            let moving = Set(running.topics.flatMap { t in t.partitions.map { "\(t.name):\($0.partitionIndex)" } })
            let replicas = try await ReassignCommand.replicas(of: Set(moves.map(\.topic)), connection: connection)
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
            try await ReassignCommand.clearThrottles(topics: Set(moves.map(\.topic)), connection: connection)
            print("Throttles removed.")
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

    static let throttleRates = ["leader.replication.throttled.rate", "follower.replication.throttled.rate"]
    static let throttledReplicas = ["leader.replication.throttled.replicas", "follower.replication.throttled.replicas"]
    typealias Alterable = IncrementalAlterConfigsRequest.AlterConfigsResource.AlterableConfig

    /// The replicas of every partition of `topics`, by topic and partition.
    static func replicas(of topics: Set<String>, connection: BrokerConnection) async throws -> [String: [Int32: [NodeID]]] {
        let metadata = try await connection.send(MetadataRequest(topics: topics.sorted().map { .init(name: $0) }, allowAutoTopicCreation: false))
        var out: [String: [Int32: [NodeID]]] = [:]
        for topic in metadata.topics {
            guard let name = topic.name else { continue }
            try check(topic.errorCode, nil, "topic \(name)")
            for p in topic.partitions { out[name, default: [:]][p.partitionIndex] = p.replicaNodes }
        }
        return out
    }

    /// Throttles the moves as Kafka's tool does: the rates on every broker that holds or gets a
    /// moving replica; on the leader side every current replica of a moving partition, on the
    /// follower side the replicas it gets.
    static func setThrottles(_ rate: Int64, for moves: [Move], client: ClientOptions) async throws {
        let connection = try await client.connect()
        let current = try await replicas(of: Set(moves.map(\.topic)), connection: connection)
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
        var resources: [IncrementalAlterConfigsRequest.AlterConfigsResource] = brokers.sorted().map { id in
            .init(resourceType: 4, resourceName: "\(id)", configs: throttleRates.map { Alterable(name: $0, configOperation: 0, value: "\(rate)") })
        }
        for topic in leaders.keys.sorted() {
            resources.append(.init(resourceType: 2, resourceName: topic, configs: [
                Alterable(name: throttledReplicas[0], configOperation: 0, value: leaders[topic]!.joined(separator: ",")),
                Alterable(name: throttledReplicas[1], configOperation: 0, value: (followers[topic] ?? []).joined(separator: ",")),
            ]))
        }
        let answer = try await connection.send(IncrementalAlterConfigsRequest(resources: resources))
        for result in answer.responses { try check(result.errorCode, result.errorMessage, "throttle \(result.resourceName)") }
        print("Throttled at \(rate) bytes/s on brokers \(brokers.sorted().map(String.init).joined(separator: ",")).")
    }

    /// Removes the throttle rates from every broker and the throttled replicas from `topics`.
    static func clearThrottles(topics: Set<String>, connection: BrokerConnection) async throws {
        let cluster = try await connection.send(MetadataRequest(topics: [], allowAutoTopicCreation: false))
        var resources: [IncrementalAlterConfigsRequest.AlterConfigsResource] = cluster.brokers.map(\.nodeId).sorted().map { id in
            .init(resourceType: 4, resourceName: "\(id.value)", configs: throttleRates.map { Alterable(name: $0, configOperation: 1, value: nil) })
        }
        resources += topics.sorted().map { .init(resourceType: 2, resourceName: $0, configs: throttledReplicas.map { Alterable(name: $0, configOperation: 1, value: nil) }) }
        let answer = try await connection.send(IncrementalAlterConfigsRequest(resources: resources))
        for result in answer.responses { try check(result.errorCode, result.errorMessage, "remove the throttle of \(result.resourceName)") }
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
