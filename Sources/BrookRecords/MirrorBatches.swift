import BrookCore

/// Why batches cannot go into a mirror topic as they are.
public struct MirrorBatchError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The batches of an offset-preserving mirror topic (`brook mirror --preserve-offsets`): the
/// source's committed data batches, whole, at their own offsets. What a mirror topic holds is
/// the source's committed records: aborted transactions and transaction markers are left out
/// (their offsets stay unused, as compaction leaves offsets unused), and the batches carry no
/// producer (no id, epoch, sequence or transactional flag), so no producer state forms from
/// them on any replica, and producers that write after a promotion start clean.
public enum MirrorBatches {
    /// The mirror's side: the committed data batches among a read_committed fetch's whole
    /// batches (`aborted`: the fetch's aborted transactions, producer id and first offset),
    /// their bytes as they came, how many batches and records; and where the next fetch starts
    /// (past the last whole batch, nil when none came whole).
    public static func committed(_ bytes: UnsafeRawBufferPointer, aborted: [(producer: ProducerID, firstOffset: Offset)])
        -> (batches: [UInt8], count: Int, records: Int, next: Offset?) {
        var committed = CommittedBatches(aborted: aborted)
        var kept: [UInt8] = []
        var count = 0
        var records = 0
        var next: Offset?
        RecordBatchHeader.forEachBatch(in: bytes) { header, batch in
            next = header.nextOffset
            guard !committed.leavesOut(header) else { return }
            kept += batch
            count += 1
            records += Int(max(0, header.recordCount))
        }
        return (kept, count, records, next)
    }

    /// The target leader's side: the batches from `logEnd` on, ready to append at their own
    /// offsets. Those wholly before `logEnd` (copied already: a mirror that sends again after
    /// a lost answer) are skipped; each one kept has its CRC checked, then gets `leaderEpoch`,
    /// loses its producer fields and transactional flag, and gets its CRC recomputed. Refused:
    /// a control batch, a batch that fails its CRC or straddles `logEnd`, batches out of order,
    /// bytes that are not whole batches. nil when nothing is new.
    public static func forAppend(_ bytes: UnsafeRawBufferPointer, logEnd: Offset,
                                 leaderEpoch: LeaderEpoch) throws(MirrorBatchError) -> (bytes: [UInt8], first: Offset, last: Offset)? {
        var out: [UInt8] = []
        var first: Offset?
        var last = Offset(-1)
        var position = 0
        var previousEnd: Offset?
        while position < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[position...])
            guard let header = RecordBatchHeader.decode(rest), header.magic == 2, header.totalBytes >= RecordBatchHeader.Field.records,
                  header.totalBytes <= rest.count, header.lastOffsetDelta >= 0 else {
                throw MirrorBatchError("bytes at \(position) are not a whole record batch")
            }
            let batch = UnsafeRawBufferPointer(rebasing: rest[0..<header.totalBytes])
            position += header.totalBytes
            guard !header.attributes.isControl else { throw MirrorBatchError("a mirror topic takes no control batch (offset \(header.baseOffset))") }
            if let previousEnd, header.baseOffset <= previousEnd {
                throw MirrorBatchError("the batch at \(header.baseOffset) is not after the one before it")
            }
            previousEnd = header.lastOffset
            if header.lastOffset < logEnd { continue }
            guard header.baseOffset >= logEnd else {
                throw MirrorBatchError("the batch at \(header.baseOffset)...\(header.lastOffset) straddles the log end \(logEnd)")
            }
            // A segment holds offsets within 2^31 of its base, and the log rolls at its end.
            guard header.lastOffset.value - logEnd.value < Int64(Int32.max) else {
                throw MirrorBatchError("the batch at \(header.baseOffset) is more than 2^31 offsets past the log end \(logEnd)")
            }
            let covered = UnsafeRawBufferPointer(rebasing: batch[RecordBatchHeader.Field.attributes...])
            guard CRC32C.checksum(covered) == header.crc else { throw MirrorBatchError("the batch at \(header.baseOffset) fails its CRC check") }
            let start = out.count
            out += batch
            out.withUnsafeMutableBytes { all in
                let b = UnsafeMutableRawBufferPointer(rebasing: all[start..<(start + header.totalBytes)])
                b.setInt32(leaderEpoch.value, at: RecordBatchHeader.Field.partitionLeaderEpoch)
                b.setInt16(header.attributes.raw & ~0x10, at: RecordBatchHeader.Field.attributes)
                b.setInt64(-1, at: RecordBatchHeader.Field.producerID)
                b.setInt16(-1, at: RecordBatchHeader.Field.producerEpoch)
                b.setInt32(-1, at: RecordBatchHeader.Field.baseSequence)
                let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[RecordBatchHeader.Field.attributes...]))
                b.storeBytes(of: crc.bigEndian, toByteOffset: RecordBatchHeader.Field.crc, as: UInt32.self)
            }
            if first == nil { first = header.baseOffset }
            last = header.lastOffset
        }
        guard let first else { return nil }
        return (out, first, last)
    }
}
