import BrookClient
import BrookCore
import Foundation

/// One replica of the metadata log as the console's quorum page shows it.
struct QuorumReplicaView: Encodable {
    var id: Int32
    var leader: Bool
    /// `host:port` of a voter's controller listener, when the answer says.
    var endpoint: String?
    var logEndOffset: Int64
    /// Entries behind the high watermark (0 when level or ahead; nil when the log end is unknown).
    var lag: Int64?
    /// Milliseconds since the leader last heard from it / since it last held the whole log.
    var lastFetchAgoMs: Int64?
    var lastCaughtUpAgoMs: Int64?
}

struct QuorumView: Encodable {
    var leader: Int32
    var epoch: Int32
    var highWatermark: Int64
    var voters: [QuorumReplicaView]
    var observers: [QuorumReplicaView]
}

extension Console {
    /// The controller quorum (DescribeQuorum through the admin client): times are made relative
    /// to this broker's clock, which the page shows as "ago".
    func quorumView(_ client: ClusterClient) async throws -> QuorumView {
        let quorum = try await admin(client).describeMetadataQuorum()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        func view(_ r: QuorumInfo.Replica, voter: Bool) -> QuorumReplicaView {
            let endpoint = voter ? quorum.nodes[r.id]?.first.map { $0.host.contains(":") ? "[\($0.host)]:\($0.port)" : "\($0.host):\($0.port)" } : nil
            return QuorumReplicaView(id: r.id.value, leader: voter && r.id == quorum.leaderID, endpoint: endpoint, logEndOffset: r.logEndOffset,
                                     lag: r.logEndOffset >= 0 ? max(0, quorum.highWatermark - r.logEndOffset) : nil,
                                     lastFetchAgoMs: r.lastFetchTimestampMs.map { max(0, now - $0) },
                                     lastCaughtUpAgoMs: r.lastCaughtUpTimestampMs.map { max(0, now - $0) })
        }
        return QuorumView(leader: quorum.leaderID.value, epoch: quorum.leaderEpoch.value, highWatermark: quorum.highWatermark,
                          voters: quorum.voters.map { view($0, voter: true) }, observers: quorum.observers.map { view($0, voter: false) })
    }
}
