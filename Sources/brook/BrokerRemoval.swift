import ArgumentParser
import BrookClient
import BrookCore
import BrookProtocol
import Foundation

/// Taking a broker out of a cluster, as a Kafka operator does it: move its replicas to the
/// other brokers (`decommission`, kafka-reassign-partitions.sh's job), stop it, then remove its
/// registration (`unregister`, as kafka-cluster.sh unregister).
extension ClusterCommand {
    struct Decommission: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move every replica off a broker (keeping each partition's replication factor) and wait until none is left.",
            discussion: """
                Each partition with a replica on --id gets, in its place, the live broker that holds the
                fewest replicas and none of that partition. The moves run as reassignments (followers
                catch up first, then the broker leaves). Then stop the broker and run
                `brook cluster unregister --id N`.
                """)
        @OptionGroup var client: ClientOptions
        @Option(help: "The broker to drain.") var id: Int32
        @Option(name: .customLong("timeout-s"), help: "How long to wait for the moves.") var timeoutS: Double = 600

        func run() async throws {
            let connection = try await client.connect()
            let metadata = try await connection.send(MetadataRequest(topics: nil, allowAutoTopicCreation: false))
            let live = metadata.brokers.map(\.nodeId.value).filter { $0 != id }.sorted()
            var load: [Int32: Int] = Dictionary(uniqueKeysWithValues: live.map { ($0, 0) })
            for topic in metadata.topics { for p in topic.partitions { for r in p.replicaNodes where load[r.value] != nil { load[r.value]! += 1 } } }
            var moves: [(String, Int32, [Int32]?)] = []
            for topic in metadata.topics.sorted(by: { ($0.name ?? "") < ($1.name ?? "") }) {
                for p in topic.partitions.sorted(by: { $0.partitionIndex < $1.partitionIndex }) where p.replicaNodes.contains(NodeID(id)) {
                    let current = p.replicaNodes.map(\.value)
                    guard let substitute = live.filter({ !current.contains($0) }).min(by: { (load[$0]!, $0) < (load[$1]!, $1) }) else {
                        throw CommandFailure("decommission: \(topic.name ?? "?")-\(p.partitionIndex) has replicas on every other live broker; its replication factor cannot be kept")
                    }
                    load[substitute]! += 1
                    moves.append((topic.name ?? "", p.partitionIndex, current.map { $0 == id ? substitute : $0 }))
                }
            }
            guard !moves.isEmpty else {
                print("broker \(id) holds no replicas")
                return
            }
            try await ReassignCommand.send(moves, client: client, verb: "moving")
            let deadline = Date().addingTimeInterval(timeoutS)
            while true {
                let now = try await connection.send(MetadataRequest(topics: nil, allowAutoTopicCreation: false))
                let left = now.topics.reduce(0) { $0 + $1.partitions.filter { $0.replicaNodes.contains(NodeID(id)) }.count }
                if left == 0 { break }
                guard Date() < deadline else { throw CommandFailure("decommission: \(left) partitions still have a replica on broker \(id) after \(Int(timeoutS)) s") }
                try await Task.sleep(nanoseconds: 500_000_000)
            }
            print("broker \(id) holds no replicas: \(moves.count) moved. Stop it, then: brook cluster unregister --id \(id)")
        }
    }

    struct Unregister: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a stopped broker's registration (UnregisterBroker, as kafka-cluster.sh unregister).",
            discussion: "Replicas still on it stay listed as offline until moved; a broker still running registers again.")
        @OptionGroup var client: ClientOptions
        @Option(help: "The broker to unregister.") var id: Int32

        func run() async throws {
            let connection = try await client.connect()
            let answer = try await connection.send(UnregisterBrokerRequest(brokerId: NodeID(id)))
            try check(answer.errorCode, answer.errorMessage, "unregister broker \(id)")
            print("broker \(id) unregistered")
        }
    }
}
