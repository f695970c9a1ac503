import BrookCore
import BrookRecords
import NIOCore

/// One batch a follower appended: where its leader epoch begins, for the leader-epoch cache.
public struct ReplicatedBatch: Equatable, Sendable {
    public var baseOffset: Offset
    public var lastOffset: Offset
    public var leaderEpoch: LeaderEpoch
}

extension PartitionLog {
    /// A follower's append: batches fetched from the partition's leader, written as they came,
    /// with the leader's offsets, leader epochs, timestamps and compression. Each batch must be
    /// whole with a good CRC and well-formed records (what a log may hold, gaps of compaction
    /// included), and start past the previous one, the first at or past the log end. All or
    /// nothing. Returns the batches appended, for the leader-epoch cache.
    @discardableResult
    public func appendReplicated(_ records: ByteBuffer) throws(StorageError) -> [ReplicatedBatch] {
        guard !isClosed else { throw .closed }
        guard records.readableBytes > 0 else { return [] }
        guard records.readableBytes <= Limits.batchBytesMax else {
            throw .batchTooLarge(bytes: records.readableBytes, limit: Limits.batchBytesMax)
        }
        let start = logEndOffset
        let (batches, appended) = try typed { try records.withUnsafeReadableBytes { bytes in try replicatedBatches(bytes, from: start) } }
        guard let last = appended.last else { return [] }
        try rollIfNeeded(adding: records.readableBytes, lastOffset: last.lastOffset)
        try typed { try records.withUnsafeReadableBytes { bytes in try active.append(bytes, batches: batches) } }
        unflushedRecords += last.lastOffset - start + 1
        try flushIfDue()
        return appended
    }

    private func replicatedBatches(_ bytes: UnsafeRawBufferPointer, from start: Offset) throws(StorageError) -> ([AppendedBatch], [ReplicatedBatch]) {
        var batches: [AppendedBatch] = []
        var appended: [ReplicatedBatch] = []
        var next = start
        var position = 0
        while position < bytes.count {
            let slice = UnsafeRawBufferPointer(rebasing: bytes[position...])
            let header: RecordBatchHeader
            var inflated: [UInt8]?
            do { header = try RecordBatchValidator.validate(slice, check: .stored, inflated: &inflated) } catch {
                throw .invalidBatch(index: batches.count, error)
            }
            guard header.baseOffset >= next else {
                throw .invalidArgument("replicated batch \(batches.count) starts at \(header.baseOffset), below \(next): it overlaps the log")
            }
            if let previous = appended.last, header.partitionLeaderEpoch < previous.leaderEpoch {
                throw .invalidArgument("replicated batch \(batches.count) has leader epoch \(header.partitionLeaderEpoch) after \(previous.leaderEpoch)")
            }
            batches.append(AppendedBatch(start: position, totalBytes: header.totalBytes, lastOffsetDelta: header.lastOffsetDelta,
                                         lastOffset: header.lastOffset, maxTimestamp: header.maxTimestamp))
            appended.append(ReplicatedBatch(baseOffset: header.baseOffset, lastOffset: header.lastOffset, leaderEpoch: header.partitionLeaderEpoch))
            next = header.lastOffset + 1
            position += header.totalBytes
        }
        return (batches, appended)
    }
}
