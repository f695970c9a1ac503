import ArgumentParser
import BrookClient
import BrookCore
import BrookProtocol

struct TopicCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topic", abstract: "Create, list, describe, alter and delete topics (as kafka-topics.sh).",
        subcommands: [Create.self, List.self, Describe.self, Alter.self, Delete.self, DeleteRecords.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a topic.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The topic name.") var topic: String
        @Option(help: "Partitions (default: the broker's num.partitions).") var partitions: Int32 = -1
        @Option(name: .customLong("replication-factor"), help: "Replicas per partition.") var replicationFactor: Int16 = -1
        @Option(name: .customLong("config"), help: "A topic config, key=value (repeatable).") var configs: [String] = []

        func run() async throws {
            let configs = try parsePairs(self.configs, option: "--config")
            let admin = try client.admin()
            try await admin.createTopics([NewTopic(topic, partitions: partitions, replicationFactor: replicationFactor, configs: configs)])
            await admin.close()
            print("Created topic \(topic).")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List topics.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let admin = try client.admin()
            for topic in try await admin.listTopics(includeInternal: true) { print(topic.name) }
            await admin.close()
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Describe topics: id, partitions, leaders, replicas, configs set.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Topics (default: all).") var topics: [String] = []

        func run() async throws {
            let admin = try client.admin()
            let described = try await admin.describeTopics(topics).sorted { $0.name < $1.name }
            let configs = try await admin.describeConfigs(described.map { .topic($0.name) })
            for topic in described {
                let set = (configs[.topic(topic.name)] ?? []).filter { $0.source == .topic }.map { "\($0.name)=\($0.value ?? "")" }
                print("Topic: \(topic.name)\tTopicId: \(topic.id)\tPartitionCount: \(topic.partitions.count)\tReplicationFactor: \(topic.partitions.first?.replicas.count ?? 0)\tConfigs: \(set.joined(separator: ","))")
                func list(_ nodes: [NodeID]) -> String { nodes.map(\.description).joined(separator: ",") }
                for p in topic.partitions {
                    print("\tTopic: \(topic.name)\tPartition: \(p.partition)\tLeader: \(p.leader)\tReplicas: \(list(p.replicas))\tIsr: \(list(p.isr))\tElr: \(list(p.elr))\tLastKnownElr: \(list(p.lastKnownElr))")
                }
            }
            await admin.close()
        }
    }

    struct Alter: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Raise a topic's partition count.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The topic name.") var topic: String
        @Option(help: "The new partition count.") var partitions: Int32

        func run() async throws {
            let admin = try client.admin()
            try await admin.createPartitions([topic: partitions])
            await admin.close()
            print("Topic \(topic) now has \(partitions) partitions.")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete topics and their data.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The topics.") var topics: [String]

        func run() async throws {
            let admin = try client.admin()
            try await admin.deleteTopics(topics)
            await admin.close()
            print("Deleted \(topics.joined(separator: ", ")).")
        }
    }
}

extension TopicCommand {
    struct DeleteRecords: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "delete-records",
            abstract: "Delete a topic's records before an offset (as kafka-delete-records.sh); prints each partition's new log start.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The topic.") var topic: String
        @Option(help: "A partition (repeatable; default: every partition).") var partition: [Int32] = []
        @Option(help: "Records before this offset go; -1: every record below the high watermark.") var before: Int64

        func validate() throws {
            guard before >= -1 else { throw ValidationError("--before takes an offset, or -1 for the high watermark") }
        }

        func run() async throws {
            let admin = try client.admin()
            var partitions = partition
            if partitions.isEmpty { partitions = try await admin.describeTopics([topic]).first?.partitions.map(\.partition) ?? [] }
            let starts = try await admin.deleteRecords(before: Dictionary(partitions.map { (TopicPartition(topic, $0), Offset(before)) }) { a, _ in a })
            await admin.close()
            printTable(["TOPIC", "PARTITION", "LOG-START-OFFSET"], starts.keys.sorted().map { [$0.topic, String($0.partition), starts[$0]!.description] })
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
            let resource: ConfigResource
            if let topic { resource = .topic(topic) } else if let broker, !broker.isEmpty {
                guard let id = Int32(broker) else { throw ValidationError("--broker takes a broker id, not '\(broker)'") }
                resource = .broker(NodeID(id))
            } else { resource = .brokerDefaults }
            let admin = try client.admin()
            for config in try await admin.describeConfigs(resource) {
                print("\(config.name)=\(config.value ?? "null")\t(\(config.source))")
            }
            await admin.close()
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
            let resource: ConfigResource = if let topic { .topic(topic) } else if let broker { .broker(NodeID(broker)) } else { .brokerDefaults }
            let admin = try client.admin()
            try await admin.alterConfigs(resource, set: set, delete: delete)
            await admin.close()
            print("Altered configs of \(resource).")
        }
    }
}
