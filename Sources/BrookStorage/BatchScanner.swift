import BrookCore
import BrookRecords

/// Reads a segment file's batches in order through one reusable buffer, in large chunks:
/// recovery, index rebuilds, compaction and dumps walk whole files with it.
/// `next()` gives each batch's position and bytes (valid until the following call), without
/// judging them: a batch whose length runs past the end of the file comes back short, and the
/// caller's validation names the defect.
final class BatchScanner {
    let file: SegmentFile
    private(set) var position: Int
    let end: Int
    private var buffer: UnsafeMutableRawBufferPointer
    private var bufferStart = 0
    private var bufferCount = 0

    init(file: SegmentFile, from position: Int = 0, end: Int? = nil, chunkBytes: Int = Limits.scanChunkBytes) throws(StorageError) {
        self.file = file
        self.position = position
        if let end { self.end = end } else { self.end = try file.size() }
        buffer = .allocate(byteCount: max(chunkBytes, RecordBatchHeader.Field.records), alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// The bytes at the current position (a whole batch when the file holds one there), or nil at the end.
    func next() throws(StorageError) -> (position: Int, bytes: UnsafeRawBufferPointer)? {
        guard position < end else { return nil }
        var available = try fill(RecordBatchHeader.prefixBytes)
        var wanted = RecordBatchHeader.Field.records
        if available >= RecordBatchHeader.prefixBytes,
           let prefix = RecordBatchHeader.decodePrefix(UnsafeRawBufferPointer(rebasing: buffer[(position - bufferStart)...])),
           prefix.batchLength >= 0, prefix.totalBytes <= Limits.batchBytesMax {
            wanted = max(prefix.totalBytes, wanted)
        }
        available = try fill(wanted)
        let start = position - bufferStart
        return (position, UnsafeRawBufferPointer(rebasing: buffer[start..<(start + min(available, wanted))]))
    }

    /// The offsets and size of the batch at the current position, reading only its first bytes;
    /// nil at the end or when fewer bytes than a prefix remain.
    func nextPrefix() throws(StorageError) -> (position: Int, prefix: RecordBatchHeader.Prefix)? {
        guard position < end else { return nil }
        guard try fill(RecordBatchHeader.prefixBytes) == RecordBatchHeader.prefixBytes,
              let prefix = RecordBatchHeader.decodePrefix(UnsafeRawBufferPointer(rebasing: buffer[(position - bufferStart)...]))
        else { return nil }
        return (position, prefix)
    }

    /// Moves past the batch just returned.
    func advance(by bytes: Int) {
        precondition(bytes > 0, "a scan must move forward")
        position += bytes
    }

    /// Ensures up to `count` bytes from `position` are buffered; returns how many are.
    private func fill(_ count: Int) throws(StorageError) -> Int {
        let wanted = min(count, end - position)
        if position >= bufferStart && position + wanted <= bufferStart + bufferCount { return wanted }
        if wanted > buffer.count {
            buffer.deallocate()
            buffer = .allocate(byteCount: wanted, alignment: 16)
        }
        let length = min(buffer.count, end - position)
        let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length]), at: position)
        bufferStart = position
        bufferCount = n
        return min(wanted, n)
    }
}
