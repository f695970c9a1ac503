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
            do { quorum = try await admin.describeMetadataQuorum() } catch {
                await admin.close()
                throw error
            }
            await admin.close()
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            if replication {
                print(Self.replicationTable(quorum, nowMs: now), terminator: "")
            } else {
                print(Self.statusText(quorum, nowMs: now), terminator: "")
            }
        }

        static func statusText(_ q: QuorumInfo, nowMs: Int64) -> String {
            let followers = q.voters.filter { $0.id != q.leaderID }
            let maxLag = followers.map { max(0, q.highWatermark - $0.logEndOffset) }.max() ?? 0
            let maxLagMs = followers.map { f in f.lastCaughtUpTimestampMs.map { max(0, nowMs - $0) } ?? -1 }.max() ?? 0
            func voter(_ r: QuorumInfo.Replica) -> String {
                guard let endpoint = q.nodes[r.id]?.first else { return "\(r.id)" }
                return "\(r.id)@\(endpoint.host.contains(":") ? "[\(endpoint.host)]" : endpoint.host):\(endpoint.port)"
            }
            return """
                LeaderId:               \(q.leaderID)
                LeaderEpoch:            \(q.leaderEpoch)
                HighWatermark:          \(q.highWatermark)
                MaxFollowerLag:         \(maxLag)
                MaxFollowerLagTimeMs:   \(maxLagMs)
                CurrentVoters:          [\(q.voters.map(voter).joined(separator: ","))]
                CurrentObservers:       [\(q.observers.map { "\($0.id)" }.joined(separator: ","))]

                """
        }

        static func replicationTable(_ q: QuorumInfo, nowMs: Int64) -> String {
            var rows = [["NodeId", "LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp", "Status"]]
            func row(_ r: QuorumInfo.Replica, _ status: String) -> [String] {
                [String(r.id.value), String(r.logEndOffset), String(r.logEndOffset < 0 ? -1 : max(0, q.highWatermark - r.logEndOffset)),
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
