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
            let admin = try client.admin()
            defer { Task { await admin.close() } }
            let live = try await admin.describeCluster().brokers.map(\.id.value).filter { $0 != id }.sorted()
            let topics = try await admin.describeTopics(try await admin.listTopics(includeInternal: true).map(\.name))
            var load: [Int32: Int] = Dictionary(uniqueKeysWithValues: live.map { ($0, 0) })
            for topic in topics { for p in topic.partitions { for r in p.replicas where load[r.value] != nil { load[r.value]! += 1 } } }
            var moves: [TopicPartition: [NodeID]?] = [:]
            for topic in topics.sorted(by: { $0.name < $1.name }) {
                for p in topic.partitions.sorted(by: { $0.partition < $1.partition }) where p.replicas.contains(NodeID(id)) {
                    let current = p.replicas.map(\.value)
                    guard let substitute = live.filter({ !current.contains($0) }).min(by: { (load[$0]!, $0) < (load[$1]!, $1) }) else {
                        throw CommandFailure("decommission: \(topic.name)-\(p.partition) has replicas on every other live broker; its replication factor cannot be kept")
                    }
                    load[substitute]! += 1
                    moves[TopicPartition(topic.name, p.partition)] = current.map { NodeID($0 == id ? substitute : $0) }
                }
            }
            guard !moves.isEmpty else {
                print("broker \(id) holds no replicas")
                return
            }
            try await ReassignCommand.send(moves, admin: admin, verb: "moving")
            let deadline = Date().addingTimeInterval(timeoutS)
            while true {
                let now = try await admin.describeTopics(Array(Set(moves.keys.map(\.topic))).sorted())
                let left = now.reduce(0) { $0 + $1.partitions.filter { $0.replicas.contains(NodeID(id)) }.count }
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
            let admin = try client.admin()
            defer { Task { await admin.close() } }
            try await admin.unregisterBroker(NodeID(id))
            print("broker \(id) unregistered")
        }
    }
}
