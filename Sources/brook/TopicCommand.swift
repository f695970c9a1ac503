import ArgumentParser
import BrookClient
import BrookCore
import BrookProtocol

struct TopicCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topic", abstract: "Create, list, describe, alter and delete topics (as kafka-topics.sh).",
        subcommands: [Create.self, List.self, Describe.self, Alter.self, Delete.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a topic.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The topic name.") var topic: String
        @Option(help: "Partitions (default: the broker's num.partitions).") var partitions: Int32 = -1
        @Option(name: .customLong("replication-factor"), help: "Replicas per partition.") var replicationFactor: Int16 = -1
        @Option(name: .customLong("config"), help: "A topic config, key=value (repeatable).") var configs: [String] = []

        func run() async throws {
            let configs = try parsePairs(self.configs, option: "--config")
            let connection = try await client.connect()
            let answer = try await connection.send(CreateTopicsRequest(topics: [.init(
                name: topic, numPartitions: partitions, replicationFactor: replicationFactor,
                configs: configs.sorted { $0.key < $1.key }.map { .init(name: $0.key, value: $0.value) })]))
            for result in answer.topics { try check(result.errorCode, result.errorMessage, "create \(result.name)") }
            print("Created topic \(topic).")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List topics.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let connection = try await client.connect()
            let answer = try await connection.send(MetadataRequest(topics: nil, allowAutoTopicCreation: false))
            for name in answer.topics.compactMap(\.name).sorted() { print(name) }
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Describe topics: id, partitions, leaders, replicas, configs set.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Topics (default: all).") var topics: [String] = []

        func run() async throws {
            let connection = try await client.connect()
            let answer = try await connection.send(MetadataRequest(
                topics: topics.isEmpty ? nil : topics.map { .init(name: $0) }, allowAutoTopicCreation: false))
            for topic in answer.topics.sorted(by: { ($0.name ?? "") < ($1.name ?? "") }) {
                let name = topic.name ?? "?"
                try check(topic.errorCode, nil, "describe \(name)")
                let configs = try await connection.send(DescribeConfigsRequest(resources: [.init(resourceType: 2, resourceName: name)]))
                let set = configs.results.first?.configs.filter { $0.configSource == 1 }.map { "\($0.name)=\($0.value ?? "")" } ?? []
                print("Topic: \(name)\tTopicId: \(topic.topicId)\tPartitionCount: \(topic.partitions.count)\tReplicationFactor: \(topic.partitions.first?.replicaNodes.count ?? 0)\tConfigs: \(set.joined(separator: ","))")
                for p in topic.partitions.sorted(by: { $0.partitionIndex < $1.partitionIndex }) {
                    print("\tTopic: \(name)\tPartition: \(p.partitionIndex)\tLeader: \(p.leaderId)\tReplicas: \(p.replicaNodes.map(\.description).joined(separator: ","))\tIsr: \(p.isrNodes.map(\.description).joined(separator: ","))")
                }
            }
        }
    }

    struct Alter: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Raise a topic's partition count.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The topic name.") var topic: String
        @Option(help: "The new partition count.") var partitions: Int32

        func run() async throws {
            let connection = try await client.connect()
            let answer = try await connection.send(CreatePartitionsRequest(topics: [.init(name: topic, count: partitions)], timeoutMs: 30_000))
            for result in answer.results { try check(result.errorCode, result.errorMessage, "alter \(result.name)") }
            print("Topic \(topic) now has \(partitions) partitions.")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete topics and their data.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The topics.") var topics: [String]

        func run() async throws {
            let connection = try await client.connect()
            let version = try connection.version(for: DeleteTopicsRequest.self)
            let request = version >= 6
                ? DeleteTopicsRequest(topics: topics.map { .init(name: $0) }, timeoutMs: 30_000)
                : DeleteTopicsRequest(topicNames: topics, timeoutMs: 30_000)
            let answer = try await connection.send(request, version: version)
            for result in answer.responses { try check(result.errorCode, result.errorMessage, "delete \(result.name ?? "?")") }
            print("Deleted \(topics.joined(separator: ", ")).")
        }
    }
}

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Describe and alter topic and broker configs (as kafka-configs.sh).",
        subcommands: [Describe.self, Alter.self])

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every config of a topic (or the broker), with its source.")
        @OptionGroup var client: ClientOptions
        @Option(help: "A topic.") var topic: String?
        @Option(help: "A broker id.") var broker: String?

        func run() async throws {
            guard (topic == nil) != (broker == nil) else { throw ValidationError("give --topic or --broker") }
            let connection = try await client.connect()
            let answer = try await connection.send(DescribeConfigsRequest(resources: [
                .init(resourceType: topic != nil ? 2 : 4, resourceName: topic ?? broker ?? "")]))
            let sources: [Int8: String] = [1: "topic", 2: "dynamic broker config", 3: "dynamic default broker config", 4: "static broker config", 5: "default"]
            for result in answer.results {
                try check(result.errorCode, result.errorMessage, "describe \(result.resourceName)")
                for config in result.configs {
                    print("\(config.name)=\(config.value ?? "null")\t(\(sources[config.configSource] ?? "source \(config.configSource)"))")
                }
            }
        }
    }

    struct Alter: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set or delete a topic's configs, or in a cluster a broker's dynamic ones (IncrementalAlterConfigs).")
        @OptionGroup var client: ClientOptions
        @Option(help: "The topic.") var topic: String?
        @Option(help: "A broker id (its dynamic configs, e.g. leader.replication.throttled.rate).") var broker: Int32?
        @Flag(name: .customLong("broker-defaults"), help: "Every broker's dynamic configs (kafka-configs --entity-default).") var brokerDefaults = false
        @Option(name: .customLong("add-config"), help: "key=value to set (repeatable, or comma-separated).") var add: [String] = []
        @Option(name: .customLong("delete-config"), help: "A config to return to its default (repeatable).") var delete: [String] = []

        func run() async throws {
            let set = try parsePairs(add, option: "--add-config")
            guard !set.isEmpty || !delete.isEmpty else { throw ValidationError("give --add-config or --delete-config") }
            guard [topic != nil, broker != nil, brokerDefaults].filter({ $0 }).count == 1 else {
                throw ValidationError("give one of --topic, --broker and --broker-defaults")
            }
            let connection = try await client.connect()
            let configs = set.sorted { $0.key < $1.key }.map { IncrementalAlterConfigsRequest.AlterConfigsResource.AlterableConfig(name: $0.key, configOperation: 0, value: $0.value) }
                + delete.map { .init(name: $0, configOperation: 1, value: nil) }
            let (type, name, what): (Int8, String, String) = if let topic { (2, topic, "topic \(topic)") }
                else if let broker { (4, "\(broker)", "broker \(broker)") } else { (4, "", "every broker") }
            let answer = try await connection.send(IncrementalAlterConfigsRequest(resources: [.init(resourceType: type, resourceName: name, configs: configs)]))
            for result in answer.responses { try check(result.errorCode, result.errorMessage, "alter \(what)") }
            print("Altered configs of \(what).")
        }
    }
}
