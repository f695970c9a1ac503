import BrookCore
import BrookProtocol

/// The settings the leader of a partition replicates by (Kafka's names).
public struct ReplicationConfig: Equatable, Sendable {
    /// `replica.lag.time.max.ms`: a follower that has not caught up with the leader's log end
    /// for this long leaves the ISR.
    public var replicaLagTimeMaxMs: Int64 = 30_000
    /// `min.insync.replicas`: acks=all produce is refused with NOT_ENOUGH_REPLICAS while the ISR
    /// is smaller.
    public var minInSyncReplicas = 1
    public init(replicaLagTimeMaxMs: Int64 = 30_000, minInSyncReplicas: Int = 1) {
        precondition(replicaLagTimeMaxMs > 0 && minInSyncReplicas >= 1, "replication settings are positive")
        self.replicaLagTimeMaxMs = replicaLagTimeMaxMs
        self.minInSyncReplicas = minInSyncReplicas
    }
}

/// An ISR change the leader asks the controller for (AlterPartition). `partitionEpoch` is the
/// epoch the change applies to: the controller refuses it if the partition moved on since.
public struct ISRProposal: Equatable, Sendable, CustomStringConvertible {
    public var leaderEpoch: LeaderEpoch
    public var partitionEpoch: PartitionEpoch
    public var isr: [NodeID]
    public init(leaderEpoch: LeaderEpoch, partitionEpoch: PartitionEpoch, isr: [NodeID]) {
        self.leaderEpoch = leaderEpoch
        self.partitionEpoch = partitionEpoch
        self.isr = isr
    }
    public var description: String { "isr \(isr) at partition epoch \(partitionEpoch), leader epoch \(leaderEpoch)" }
}

/// The leader's side of one partition's replication, as a pure state machine: the leader's log
/// end, follower fetches and time go in; the high watermark and ISR proposals come out.
///
/// - The high watermark (HW) is the smallest log end offset (LEO) of the *maximal* ISR: the
///   committed ISR plus a member whose addition is in flight (KIP-497). A shrink counts only
///   once the controller committed it, an expansion at once, so a record below the HW is on
///   every replica either ISR could elect. It never moves back, and stands still while the
///   controller names eligible leader replicas (KIP-966: the ISR is below min.insync.replicas),
///   so that they remain eligible.
/// - A follower is caught up when it fetched from the leader's LEO (or from the LEO the leader
///   had at its previous fetch, which it then was caught up to). One that has not been for
///   `replica.lag.time.max.ms` is proposed out of the ISR; one whose LEO reached the HW and
///   this leader's first offset is proposed in, when the controller says it is eligible.
/// - One proposal is in flight at a time; the answer or the next metadata settles it.
public struct PartitionReplication: Sendable {
    public struct Follower: Equatable, Sendable {
        /// nil until the follower's first fetch of this leader epoch.
        public var logEndOffset: Offset?
        public var lastCaughtUpMs: Int64
        var lastFetchMs: Int64
        var leaderEndAtLastFetch: Offset
        /// The time of its last fetch when the controller refused it into the ISR (-1: never):
        /// it is proposed again only after a later fetch, as Kafka proposes on a fetch. A replica
        /// that stopped fetching (its log dir failed there) but whose last fetch reached an idle
        /// partition's HW otherwise looked in sync for good, and was proposed, and refused
        /// INELIGIBLE_REPLICA, four times a second for minutes (a fault campaign's node logs).
        var refusedAtFetchMs: Int64 = -1
    }

    public let leader: NodeID
    public let leaderEpoch: LeaderEpoch
    /// The first offset this leader epoch wrote (the log end when it became leader).
    public let epochStartOffset: Offset
    /// When (monotonic ms) this replica began to lead in this epoch.
    public let ledSinceMs: Int64
    /// min.insync.replicas and replica.lag.time.max.ms; a topic's change of them applies at once.
    public var config: ReplicationConfig
    public private(set) var replicas: [NodeID]
    /// The ISR the controller committed.
    public private(set) var isr: [NodeID]
    /// The eligible leader replicas the controller committed with that ISR (KIP-966): while
    /// there are any, the HW stands still, since any of them may be the next leader.
    public private(set) var eligibleLeaders: [NodeID]
    public private(set) var partitionEpoch: PartitionEpoch
    public private(set) var inFlight: ISRProposal?
    public private(set) var logEndOffset: Offset
    public private(set) var highWatermark: Offset
    public private(set) var followers: [NodeID: Follower]

    public init(leader: NodeID, leaderEpoch: LeaderEpoch, partitionEpoch: PartitionEpoch, replicas: [NodeID], isr: [NodeID],
                elr: [NodeID] = [], logEndOffset: Offset, highWatermark: Offset, config: ReplicationConfig, nowMs: Int64) {
        precondition(isr.contains(leader) && replicas.contains(leader), "the leader \(leader) is a replica and in the ISR \(isr)")
        precondition(Set(isr).isSubset(of: replicas), "the ISR \(isr) is within the replicas \(replicas)")
        precondition(highWatermark <= logEndOffset, "HW \(highWatermark) past LEO \(logEndOffset)")
        self.leader = leader
        self.leaderEpoch = leaderEpoch
        self.partitionEpoch = partitionEpoch
        self.replicas = replicas
        self.isr = isr
        eligibleLeaders = elr
        self.logEndOffset = logEndOffset
        self.highWatermark = highWatermark
        epochStartOffset = logEndOffset
        ledSinceMs = nowMs
        self.config = config
        followers = [:]
        for replica in replicas where replica != leader {
            // A new leader gives every follower a full lag period to show up.
            followers[replica] = Follower(logEndOffset: nil, lastCaughtUpMs: nowMs, lastFetchMs: nowMs, leaderEndAtLastFetch: logEndOffset)
        }
        // A leader alone in its ISR has its whole log committed (after a restart its stored HW
        // may be behind, and nothing else would move it before the next append).
        advanceHighWatermark()
    }

    /// The ISR the high watermark and acks=all count: committed members plus one being added.
    public var maximalISR: [NodeID] {
        guard let inFlight else { return isr }
        return isr + inFlight.isr.filter { !isr.contains($0) }
    }

    /// acks=all may be accepted: the committed ISR has at least min.insync.replicas members.
    public var hasEnoughReplicas: Bool { isr.count >= config.minInSyncReplicas }

    // MARK: input

    /// The leader appended: its log now ends at `offset`. Returns true when the HW moved
    /// (possible alone in the ISR).
    @discardableResult
    public mutating func leaderAppended(logEnd offset: Offset) -> Bool {
        precondition(offset >= logEndOffset, "the leader's log end went back from \(logEndOffset) to \(offset)")
        logEndOffset = offset
        return advanceHighWatermark()
    }

    /// `replica` fetched from `fetchOffset` at `nowMs`, having everything below it. Returns true
    /// when the HW moved.
    @discardableResult
    public mutating func followerFetched(_ replica: NodeID, fetchOffset: Offset, nowMs: Int64) -> Bool {
        guard var follower = followers[replica] else { return false }
        precondition(fetchOffset <= logEndOffset, "\(replica) fetched from \(fetchOffset), past the leader's end \(logEndOffset): it must truncate first")
        follower.logEndOffset = fetchOffset
        if fetchOffset >= logEndOffset {
            follower.lastCaughtUpMs = max(follower.lastCaughtUpMs, nowMs)
        } else if fetchOffset >= follower.leaderEndAtLastFetch {
            follower.lastCaughtUpMs = max(follower.lastCaughtUpMs, follower.lastFetchMs)
        }
        follower.lastFetchMs = nowMs
        follower.leaderEndAtLastFetch = logEndOffset
        followers[replica] = follower
        return advanceHighWatermark()
    }

    /// The ISR change to ask the controller for now, if any: at most one in flight. A shrink
    /// (followers lagging longer than replica.lag.time.max.ms) comes before an expansion.
    /// `eligible` says whether a broker may join the ISR (registered, unfenced, not shutting down).
    public mutating func proposal(nowMs: Int64, eligible: (NodeID) -> Bool) -> ISRProposal? {
        guard inFlight == nil else { return nil }
        // Checked before anything is made: most passes over a healthy partition find nothing.
        let (leader, followers, lagMaxMs) = (leader, followers, config.replicaLagTimeMaxMs)
        func lags(_ id: NodeID) -> Bool { id != leader && nowMs - (followers[id]?.lastCaughtUpMs ?? nowMs) > lagMaxMs }
        var next: [NodeID]?
        if isr.contains(where: lags) {
            next = isr.filter { !lags($0) }
        } else if replicas.contains(where: { !isr.contains($0) }), let joining = replicas.first(where: { isInSync($0) && eligible($0) && fetchedSinceRefusal($0) }) {
            next = isr + [joining]
        }
        guard let next else { return nil }
        let proposal = ISRProposal(leaderEpoch: leaderEpoch, partitionEpoch: partitionEpoch, isr: next)
        inFlight = proposal
        return proposal
    }

    /// The expansion to ask for right after `replica`'s fetch, if that fetch brought it to the
    /// high watermark (Kafka checks at each fetch too). Checked and marked in flight in the same
    /// step as the fetch, so the HW cannot pass the joining follower between the two: from here
    /// on it counts in the maximal ISR.
    public mutating func expansion(after replica: NodeID, eligible: Bool) -> ISRProposal? {
        guard inFlight == nil, eligible, replicas.contains(replica), isInSync(replica), fetchedSinceRefusal(replica) else { return nil }
        let proposal = ISRProposal(leaderEpoch: leaderEpoch, partitionEpoch: partitionEpoch, isr: isr + [replica])
        inFlight = proposal
        return proposal
    }

    /// The controller committed an ISR for this partition (the AlterPartition answer, or a
    /// metadata change such as a fenced follower removed). Ends any proposal in flight.
    public mutating func isrCommitted(_ committed: [NodeID], elr: [NodeID], partitionEpoch epoch: PartitionEpoch) {
        // An older answer overtaken by metadata, or the state we have told again: a proposal in
        // flight stays in flight (its answer comes with a newer epoch).
        guard epoch > partitionEpoch else { return }
        precondition(committed.contains(leader), "the committed ISR \(committed) lost its leader \(leader) without a new leader epoch")
        isr = committed
        eligibleLeaders = elr
        partitionEpoch = epoch
        inFlight = nil
        advanceHighWatermark()
    }

    /// The controller answered our proposal with the state it committed: the proposal ends
    /// whatever that state's epoch (metadata may have brought it, or a newer one, first).
    public mutating func proposalCommitted(_ committed: [NodeID], elr: [NodeID], partitionEpoch epoch: PartitionEpoch) {
        inFlight = nil
        isrCommitted(committed, elr: elr, partitionEpoch: epoch)
    }

    /// The controller refused `proposal` for good (not committed): propose again later from the
    /// committed ISR. An answer for an older proposal changes nothing.
    ///
    /// When the outcome is unknown (no answer, the controller changed) or the controller says the
    /// partition moved on (INVALID_UPDATE_VERSION), the proposal must stay in flight: it may have
    /// been committed, and until the metadata says so the joining member counts for the HW
    /// (Kafka's AlterPartitionManager does the same). The caller sends it again, or metadata
    /// with a newer partition epoch ends it.
    public mutating func proposalRefused(_ proposal: ISRProposal) {
        guard inFlight == proposal else { return }
        inFlight = nil
        for joining in proposal.isr where !isr.contains(joining) {
            if let fetched = followers[joining]?.lastFetchMs { followers[joining]!.refusedAtFetchMs = fetched }
        }
    }

    /// Whether `replica` fetched since the controller last refused it into the ISR.
    func fetchedSinceRefusal(_ replica: NodeID) -> Bool {
        guard let follower = followers[replica] else { return true }
        return follower.lastFetchMs > follower.refusedAtFetchMs
    }

    /// For tests and callers that know no proposal can be pending.
    public mutating func proposalFailed() {
        inFlight = nil
    }

    /// Whether an answer with `code` ends a proposal for good (it was not committed).
    public static func refusesForGood(_ code: ErrorCode) -> Bool {
        ![.requestTimedOut, .notController, .invalidUpdateVersion, .unknownServerError].contains(code)
    }

    /// The replicas that may join the ISR (`eligible`: registered and unfenced) but are out of
    /// it while this replica has led for over `afterMs`, each described for an operator: where
    /// it fetched from and when, against the HW and this epoch's first offset, and the proposal
    /// in flight. A follower that stays out of the ISR with nothing else said was the shape of a
    /// liveness failure the fault campaign met (docs/reliability.md).
    public func outOfSyncReport(nowMs: Int64, afterMs: Int64, eligible: (NodeID) -> Bool) -> [String] {
        guard nowMs - ledSinceMs > afterMs, replicas.contains(where: { $0 != leader && !isr.contains($0) }) else { return [] }
        return replicas.filter { $0 != leader && !maximalISR.contains($0) && eligible($0) }.map { replica in
            let seen: String
            if let follower = followers[replica], let end = follower.logEndOffset {
                seen = "fetched from \(end) \(nowMs - follower.lastFetchMs) ms ago"
            } else {
                seen = "has not fetched in leader epoch \(leaderEpoch)"
            }
            return "replica \(replica) \(seen) (HW \(highWatermark), epoch start \(epochStartOffset), log end \(logEndOffset)"
                + (inFlight.map { ", in flight: \($0)" } ?? "") + ")"
        }
    }

    // MARK: helpers

    /// Kafka's rule for joining the ISR: the follower holds everything below the HW and has
    /// reached the first offset of this leader epoch.
    func isInSync(_ replica: NodeID) -> Bool {
        guard !maximalISR.contains(replica), let end = followers[replica]?.logEndOffset else { return false }
        return end >= highWatermark && end >= epochStartOffset
    }

    @discardableResult
    mutating func advanceHighWatermark() -> Bool {
        // KIP-966: while the partition has eligible leader replicas (the controller names them
        // when the ISR goes below min ISR, and empties the list when it is back) the HW stands
        // still, so each of them holds every committed record and may lead after a clean
        // election. The controller's list, not this broker's min.insync.replicas, decides: the
        // two can never disagree.
        guard eligibleLeaders.isEmpty else { return false }
        var low = logEndOffset
        for member in maximalISR where member != leader {
            guard let end = followers[member]?.logEndOffset else { return false }
            low = min(low, end)
        }
        guard low > highWatermark else { return false }
        highWatermark = low
        return true
    }
}
