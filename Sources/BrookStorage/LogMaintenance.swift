import BrookCore
import BrookRecords
import Logging

extension PartitionLog {
    // MARK: retention

    /// Applies `retention.ms` and `retention.bytes` (when `cleanup.policy` has `delete`) and drops
    /// segments wholly below the log start offset. Whole segments are deleted, oldest first; the
    /// active segment is rolled first when all of it has expired. Returns the segments deleted.
    /// `bound` (a replicated partition's high watermark): no segment holding a record at or past
    /// it is deleted, as in Kafka, so that retention never removes what the ISR does not all have.
    @discardableResult
    public func applyRetention(bound: Offset? = nil) throws(StorageError) -> Int {
        var detached: [String] = []
        let deleted = try applyRetention(bound: bound, detached: &detached)
        for path in detached { try FileSystem.remove(path) }
        return deleted
    }

    /// The same, for under a partition's lock: the deleted segments' files are only renamed
    /// (`LogSegment.detach`), their paths added to `detached` for the caller to remove after
    /// releasing the lock, and the checkpoint is written without an fsync. Unlinking 16 MiB
    /// segments and fsyncing under the lock of a partition written at 60 MB/s held its produce
    /// and fetch requests, and the event loops they ran on, for up to 330 ms (scripts/soak.py).
    /// Nothing needs the fsync: whole segments go, so a start takes the log start offset from
    /// the first segment left, whatever the checkpoint says.
    @discardableResult
    public func applyRetention(bound: Offset? = nil, detached: inout [String]) throws(StorageError) -> Int {
        var deleted = try deleteOldestSegments(detached: &detached) { segment, next in next.baseOffset <= self.logStartOffset }
        guard config.cleanupDelete else { return deleted }
        let below = { (next: LogSegment) in bound.map { next.baseOffset <= $0 } ?? true }
        if config.retentionMs >= 0 {
            let horizon = clock.now().ms - config.retentionMs
            // (An empty segment, such as compaction leaves at the front, holds nothing to keep.)
            let expired = { (segment: LogSegment) in segment.isEmpty || segment.maxTimestamp != .none && segment.maxTimestamp.ms < horizon }
            if !active.isEmpty && segments.allSatisfy(expired) && bound.map({ $0 >= logEndOffset }) ?? true { try roll() }
            deleted += try deleteOldestSegments(detached: &detached) { segment, next in expired(segment) && below(next) }
        }
        if config.retentionBytes >= 0 {
            var excess = Int64(sizeBytes) - config.retentionBytes
            deleted += try deleteOldestSegments(detached: &detached) { segment, next in
                guard below(next), excess >= Int64(segment.sizeBytes) else { return false }
                excess -= Int64(segment.sizeBytes)
                return true
            }
        }
        return deleted
    }

    /// Deletes segments from the front while `shouldDelete(segment, nextSegment)` holds, never
    /// the active one, and moves the log start offset up past them.
    /// With `detaching`, the files are renamed and their paths added to `detached` (see
    /// `applyRetention(bound:detached:)`), and the checkpoint is not fsynced.
    private func deleteOldestSegments(detaching: Bool = true, detached: inout [String],
                                      _ shouldDelete: (LogSegment, LogSegment) -> Bool) throws(StorageError) -> Int {
        var count = 0
        while segments.count > 1, shouldDelete(segments[0], segments[1]) {
            let segment = segments.removeFirst()
            if detaching { detached += try segment.detach() } else { try segment.delete() }
            setLogStartOffset(max(logStartOffset, segments[0].baseOffset))
            count += 1
            logger.info("deleted segment", metadata: [
                "file": "\(segment.logPath)", "log_start_offset": "\(logStartOffset)",
            ])
        }
        if count > 0 { try writeCheckpoint(durable: !detaching) }
        return count
    }

    // MARK: DeleteRecords and truncation

    /// Makes `offset` the new log start offset (Kafka's DeleteRecords): records below it are no
    /// longer served and whole segments below it are deleted. Returns the new log start offset.
    @discardableResult
    public func deleteRecords(before offset: Offset) throws(StorageError) -> Offset {
        guard offset >= .zero, offset <= logEndOffset else {
            throw .offsetOutOfRange(requested: offset, logStart: logStartOffset, logEnd: logEndOffset)
        }
        guard offset > logStartOffset else { return logStartOffset }
        setLogStartOffset(offset)
        try writeCheckpoint(durable: true)
        var none: [String] = []
        _ = try deleteOldestSegments(detaching: false, detached: &none) { _, next in next.baseOffset <= offset }
        return logStartOffset
    }

    /// Removes every record at or after `offset` (a follower discarding a divergent tail). The
    /// batch holding `offset` is removed whole, so the new LEO may be below `offset`.
    public func truncate(to offset: Offset) throws(StorageError) {
        guard offset < logEndOffset else { return }
        rewrites &+= 1
        guard offset > segments[0].baseOffset, offset >= logStartOffset else {
            try truncateFully(startingAt: offset)
            return
        }
        while segments.count > 1 && active.baseOffset >= offset {
            try segments.removeLast().delete()
        }
        try active.truncate(from: offset, config: config, logger: logger)
        if logEndOffset < logStartOffset {
            // The cut took a batch straddling the log start: nothing readable is left below it,
            // and offsets must never go back below the start.
            try truncateFully(startingAt: logStartOffset)
            return
        }
        setRecoveryPoint(min(recoveryPoint, logEndOffset))
        try writeCheckpoint(durable: true)
        logger.info("truncated log", metadata: ["dir": "\(directory)", "log_end_offset": "\(logEndOffset)"])
    }

    /// Deletes every segment and starts an empty log at `offset`.
    public func truncateFully(startingAt offset: Offset) throws(StorageError) {
        precondition(offset >= .zero, "offsets are never negative")
        rewrites &+= 1
        for segment in segments { try segment.delete() }
        segments = [try LogSegment(directory: directory, baseOffset: offset, config: config, create: true, writable: true, pools: pools)]
        setLogStartOffset(offset)
        setRecoveryPoint(offset)
        try writeCheckpoint(durable: true)
    }
}

extension LogSegment {
    /// Removes every batch at or after `offset` and leaves the segment ready for appends
    /// (indexes rebuilt and writable). A batch holding `offset` goes whole.
    func truncate(from offset: Offset, config: LogConfig, logger: Logger) throws(StorageError) {
        let cut = try translate(offset)?.position.value ?? Int64(sizeBytes)
        try log.file().truncate(to: Int(cut))
        _ = try recover(config: config, expectedFirstOffset: baseOffset, logger: logger, size: Int(cut))
    }
}
