import BrookCore

/// Which leader epoch wrote which offsets of a replica's log: one entry per epoch, the first
/// offset that epoch wrote (Kafka's leader-epoch cache, KIP-101). Followers and returning
/// leaders compare theirs with the leader's to find where their logs diverge, so they truncate
/// exactly the records no ISR holds, and never one below the high watermark.
///
/// A pure value: the replica persists it (`leader-epoch-checkpoint`) whenever it changes.
public struct LeaderEpochCache: Equatable, Sendable {
    public struct Entry: Equatable, Sendable, CustomStringConvertible {
        public var epoch: LeaderEpoch
        public var startOffset: Offset
        public init(epoch: LeaderEpoch, startOffset: Offset) {
            self.epoch = epoch
            self.startOffset = startOffset
        }
        public var description: String { "\(epoch)@\(startOffset)" }
    }

    /// Strictly increasing in both epoch and start offset.
    public private(set) var entries: [Entry]

    /// More epochs than this in one log means leaders change without end: older entries go
    /// (they are below any follower's divergence point after so many elections).
    public static let entriesMax = 100_000

    public init(entries: [Entry] = []) {
        for (a, b) in zip(entries, entries.dropFirst()) {
            precondition(a.epoch < b.epoch && a.startOffset < b.startOffset, "epoch cache entries must increase: \(a) then \(b)")
        }
        self.entries = entries
    }

    public var latestEpoch: LeaderEpoch? { entries.last?.epoch }

    /// A batch of `epoch` was appended at `startOffset`. Only a newer epoch adds an entry; an
    /// append of the latest epoch changes nothing.
    public mutating func assign(_ epoch: LeaderEpoch, startOffset: Offset) {
        if let last = entries.last {
            if epoch == last.epoch { return }
            precondition(epoch > last.epoch, "epoch \(epoch) appended after epoch \(last.epoch): a fenced leader's batch")
            if startOffset == last.startOffset {
                // The previous epoch wrote nothing: the newer one replaces it.
                entries.removeLast()
            } else {
                precondition(startOffset > last.startOffset, "epoch \(epoch) starts at \(startOffset), before epoch \(last.epoch) at \(last.startOffset)")
            }
        }
        entries.append(Entry(epoch: epoch, startOffset: startOffset))
        if entries.count > Self.entriesMax { entries.removeFirst(entries.count - Self.entriesMax) }
    }

    /// The log was truncated to end at `offset`: epochs that started at or after it go. A
    /// follower told to truncate at or past its log end calls this with its log end all the
    /// same: an epoch it began as leader but wrote nothing in must go, or its next fetch would
    /// name that epoch again (Kafka does the same).
    public mutating func truncate(from offset: Offset) {
        while let last = entries.last, last.startOffset >= offset { entries.removeLast() }
    }

    /// The log's start moved to `offset` (retention, DeleteRecords): the epoch covering it now
    /// starts there, earlier ones go.
    public mutating func truncate(before offset: Offset) {
        guard let covering = entries.lastIndex(where: { $0.startOffset <= offset }) else { return }
        entries.removeFirst(covering)
        entries[0].startOffset = max(entries[0].startOffset, offset)
    }

    /// OffsetForLeaderEpoch's answer for `requested` in a log ending at `logEnd`: the largest
    /// epoch not above `requested` and the offset where it ended (where the next epoch began,
    /// or the log's end when it is the latest). `nil` when the epoch is newer than any here,
    /// or the cache is empty (Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET).
    public func endOffset(for requested: LeaderEpoch, logEnd: Offset) -> (epoch: LeaderEpoch, endOffset: Offset)? {
        guard let last = entries.last, requested != .none else { return nil }
        if requested == last.epoch { return (requested, logEnd) }
        guard let higher = entries.firstIndex(where: { $0.epoch > requested }) else { return nil }
        // Older than every epoch here: it ended where our first epoch began.
        if higher == 0 { return (requested, entries[0].startOffset) }
        return (entries[higher - 1].epoch, entries[higher].startOffset)
    }

    /// Where a follower must cut its log, given the leader's answer for the follower's last
    /// epoch (a diverging epoch in a fetch answer, or an OffsetForLeaderEpoch answer):
    /// - no answer (the leader knows no such epoch): back to the follower's high watermark,
    ///   which the leader is known to hold;
    /// - otherwise the smaller of the leader's end for that epoch and the follower's own end
    ///   for it. When the two disagree on the epoch, the next fetch checks again from there.
    public func truncationOffset(leaderAnswer: (epoch: LeaderEpoch, endOffset: Offset)?, logEnd: Offset,
                                 highWatermark: Offset) -> Offset {
        guard let answer = leaderAnswer else { return min(highWatermark, logEnd) }
        guard let own = endOffset(for: answer.epoch, logEnd: logEnd) else { return min(highWatermark, logEnd) }
        return min(own.endOffset, answer.endOffset, logEnd)
    }
}
