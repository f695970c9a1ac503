import ArgumentParser
import BrookClient
import BrookCore
import Foundation

/// `brook metadata-quorum describe`: DescribeQuorum through any broker, as
/// kafka-metadata-quorum.sh --bootstrap-server ... describe.
struct MetadataQuorumCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metadata-quorum",
        abstract: "Describe the metadata quorum through a broker (as kafka-metadata-quorum.sh).",
        subcommands: [Describe.self])

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The quorum's leader, epoch and high watermark (--status, the default), or each replica's progress (--replication).")

        @OptionGroup var client: ClientOptions
        @Flag(help: "The leader, its epoch, the high watermark, the followers' largest lag and the voters and observers.") var status = false
        @Flag(help: "One line per voter and observer: its log end offset, lag and when it last fetched and caught up.") var replication = false

        func validate() throws {
            if status && replication { throw ValidationError("give --status or --replication, not both") }
        }

        func run() async throws {
            let admin = try client.admin()
            let quorum: QuorumInfo
            var clusterID = ""
            do {
                quorum = try await admin.describeMetadataQuorum()
                if !replication { clusterID = try await admin.describeCluster().clusterID }
            } catch {
                await admin.close()
                throw error
            }
            await admin.close()
            print(replication ? Self.replicationTable(quorum) : Self.statusText(quorum, clusterID: clusterID), terminator: "")
        }

        /// As kafka-metadata-quorum.sh: the followers' largest lag is the leader's log end less
        /// the furthest-behind voter's, its time the leader's last caught-up time less that voter's.
        static func statusText(_ q: QuorumInfo, clusterID: String) -> String {
            let leader = q.voters.first { $0.id == q.leaderID }
            let behind = q.voters.filter { $0.id != q.leaderID }.min { $0.logEndOffset < $1.logEndOffset }
            var maxLag: Int64 = 0
            var maxLagMs: Int64 = 0
            if let leader, let behind {
                maxLag = max(0, leader.logEndOffset - behind.logEndOffset)
                if let led = leader.lastCaughtUpTimestampMs { maxLagMs = behind.lastCaughtUpTimestampMs.map { max(0, led - $0) } ?? -1 }
            }
            func voter(_ r: QuorumInfo.Replica) -> String {
                guard let endpoint = q.nodes[r.id]?.first else { return "\(r.id)" }
                return "\(r.id)@\(endpoint.host.contains(":") ? "[\(endpoint.host)]" : endpoint.host):\(endpoint.port)"
            }
            return """
                ClusterId:              \(clusterID)
                LeaderId:               \(q.leaderID)
                LeaderEpoch:            \(q.leaderEpoch)
                HighWatermark:          \(q.highWatermark)
                MaxFollowerLag:         \(maxLag)
                MaxFollowerLagTimeMs:   \(maxLagMs)
                CurrentVoters:          [\(q.voters.map(voter).joined(separator: ","))]
                CurrentObservers:       [\(q.observers.map { "\($0.id)" }.joined(separator: ","))]

                """
        }

        static func replicationTable(_ q: QuorumInfo) -> String {
            // Lag as Kafka's tool shows it: behind the leader's log end.
            let leaderEnd = q.voters.first { $0.id == q.leaderID }?.logEndOffset ?? q.highWatermark
            var rows = [["NodeId", "LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp", "Status"]]
            func row(_ r: QuorumInfo.Replica, _ status: String) -> [String] {
                [String(r.id.value), String(r.logEndOffset), String(r.logEndOffset < 0 ? -1 : max(0, leaderEnd - r.logEndOffset)),
                 r.lastFetchTimestampMs.map(String.init) ?? "-1", r.lastCaughtUpTimestampMs.map(String.init) ?? "-1", status]
            }
            for r in q.voters { rows.append(row(r, r.id == q.leaderID ? "Leader" : "Follower")) }
            for r in q.observers { rows.append(row(r, "Observer")) }
            let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max()! }
            return rows.map { cells in
                zip(cells, widths).map { $0.0.padding(toLength: $0.1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                    .replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
            }.joined(separator: "\n") + "\n"
        }
    }
}
