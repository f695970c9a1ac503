import BrookCore
import BrookRecords
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the log learned about one batch while validating an append.
struct AppendedBatch {
    var start: Int          // position in the appended bytes
    var totalBytes: Int
    var lastOffsetDelta: Int32
    var lastOffset: Offset
    var maxTimestamp: Timestamp
}

/// One segment: `NNNNNNNNNNNNNNNNNNNN.log` holding batches from `baseOffset` on, with its
/// sparse `.index` and `.timeindex`.
final class LogSegment {
    let directory: String
    let baseOffset: Offset
    /// The `.log`, open while used (`OnDemandPool.files`).
    let log: SegmentLog
    let offsetIndex: OffsetIndex
    let timeIndex: TimeIndex
    private(set) var sizeBytes: Int
    /// One past the last offset held; `baseOffset` when empty.
    private(set) var nextOffset: Offset
    /// The largest batch max-timestamp held, and the last offset of the batch that reached it.
    private(set) var maxTimestamp = Timestamp.none
    private(set) var offsetOfMaxTimestamp: Offset
    /// The first batch's max timestamp, which `segment.ms` counts from (or the creation time).
    private(set) var rollingTimestamp: Timestamp?
    private var bytesSinceLastIndexEntry = 0
    private let indexIntervalBytes: Int
    /// The last batches appended, for reads at the tail without reading the file.
    var recent = RecentBatches()

    var isEmpty: Bool { sizeBytes == 0 }
    var logPath: String { log.path }

    static func fileName(_ base: Offset, _ suffix: String) -> String {
        let digits = String(base.value)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + suffix
    }

    /// Parses `00000000000000000123.log` (or another suffix) into 123.
    static func baseOffset(fileName: String, suffix: String) -> Offset? {
        guard fileName.hasSuffix(suffix) else { return nil }
        let digits = fileName.dropLast(suffix.count)
        guard digits.count == 20, digits.allSatisfy(\.isASCII), let value = Int64(digits), value >= 0 else { return nil }
        return Offset(value)
    }

    /// Opens (or, with `create`, creates) the segment's files. Positions and offsets are then
    /// set by `loadTail`, `recover` or, for a new segment, are zero.
    init(directory: String, baseOffset: Offset, config: LogConfig, create: Bool, writable: Bool,
         suffix: String = "", pools: SegmentPools) throws(StorageError) {
        self.directory = directory
        self.baseOffset = baseOffset
        indexIntervalBytes = config.indexIntervalBytes
        let path = { (ext: String) in directory + "/" + Self.fileName(baseOffset, ext) + suffix }
        log = try SegmentLog(path: path(".log"), create: create, pool: pools.files)
        offsetIndex = try OffsetIndex(path: path(".index"), baseOffset: baseOffset,
                                      maxBytes: config.segmentIndexBytes, writable: writable, pool: pools.maps)
        timeIndex = try TimeIndex(path: path(".timeindex"), baseOffset: baseOffset,
                                  maxBytes: config.segmentIndexBytes, writable: writable, pool: pools.maps)
        sizeBytes = try log.file().size()
        nextOffset = baseOffset
        offsetOfMaxTimestamp = baseOffset
        precondition(sizeBytes <= Limits.segmentBytesMax + Limits.batchBytesMax, "segment \(log.path) too large")
    }

    // MARK: appending

    /// Writes already-validated batches (offsets assigned) at the end of the segment and indexes
    /// them. On a failed write the file is cut back, so the segment is unchanged.
    func append(_ bytes: UnsafeRawBufferPointer, batches: [AppendedBatch]) throws(StorageError) {
        precondition(!batches.isEmpty && batches[0].lastOffset >= nextOffset, "append must move the log forward")
        let start = sizeBytes
        let file = try log.file()
        do {
            try file.write(bytes, at: start)
        } catch {
            try? file.truncate(to: start)
            throw error
        }
        let saved = (nextOffset, maxTimestamp, offsetOfMaxTimestamp, rollingTimestamp, bytesSinceLastIndexEntry,
                     offsetIndex.file.entryCount, timeIndex.file.entryCount)
        do throws(StorageError) {
            for batch in batches {
                try index(batchAt: FilePosition(start + batch.start), totalBytes: batch.totalBytes,
                          lastOffset: batch.lastOffset, maxTimestamp: batch.maxTimestamp)
            }
        } catch {
            // An index that could not be mapped: the segment back as it was, the bytes cut off.
            (nextOffset, maxTimestamp, offsetOfMaxTimestamp, rollingTimestamp, bytesSinceLastIndexEntry) =
                (saved.0, saved.1, saved.2, saved.3, saved.4)
            offsetIndex.file.truncate(toEntries: saved.5)
            timeIndex.file.truncate(toEntries: saved.6)
            try? file.truncate(to: start)
            throw error
        }
        sizeBytes = start + bytes.count
        var previousNext = saved.0
        for batch in batches {
            let prefix = RecordBatchHeader.Prefix(baseOffset: batch.lastOffset - Int64(batch.lastOffsetDelta),
                                                  batchLength: Int32(batch.totalBytes - RecordBatchHeader.logOverheadBytes),
                                                  magic: 2, lastOffsetDelta: batch.lastOffsetDelta)
            recent.appended(position: start + batch.start, prefix: prefix, nextOffset: previousNext)
            previousNext = batch.lastOffset + 1
        }
    }

    private func index(batchAt position: FilePosition, totalBytes: Int, lastOffset: Offset,
                       maxTimestamp batchMax: Timestamp) throws(StorageError) {
        if rollingTimestamp == nil { rollingTimestamp = batchMax }
        if batchMax > maxTimestamp {
            maxTimestamp = batchMax
            offsetOfMaxTimestamp = lastOffset
        }
        if bytesSinceLastIndexEntry > indexIntervalBytes {
            try offsetIndex.append(offset: lastOffset, position: position)
            try timeIndex.maybeAppend(timestamp: maxTimestamp, offset: offsetOfMaxTimestamp)
            bytesSinceLastIndexEntry = 0
        }
        bytesSinceLastIndexEntry += totalBytes
        nextOffset = lastOffset + 1
    }

    /// True when another `bytes` of batches whose last offset is `lastOffset` would not fit.
    func isFull(adding bytes: Int, lastOffset: Offset, segmentBytes: Int) -> Bool {
        guard !isEmpty else { return false }
        return sizeBytes + bytes > min(segmentBytes, Limits.segmentBytesMax)
            || offsetIndex.file.isFull || timeIndex.file.isFull
            || lastOffset - baseOffset > Int64(Int32.max)
    }

    // MARK: reading

    /// The first batch whose last offset is at or after `offset`, scanning from the index entry
    /// at or below it; nil when this segment holds none.
    func translate(_ offset: Offset, from minimum: FilePosition = .zero) throws(StorageError)
        -> (position: FilePosition, prefix: RecordBatchHeader.Prefix)? {
        switch recent.translate(offset, from: Int(minimum.value)) {
        case .found(let position, let prefix): return (FilePosition(position), prefix)
        case .pastEnd: return nil
        case .unknown: break
        }
        let start = max(try offsetIndex.lookup(offset), minimum)
        let scanner = try BatchScanner(file: log.file(), from: Int(start.value), end: sizeBytes, chunkBytes: 8192)
        while let (position, prefix) = try scanner.nextPrefix() {
            guard prefix.totalBytes >= RecordBatchHeader.Field.records else {
                throw .corruptSegment(path: log.path, position: FilePosition(position), reason: "batch length \(prefix.batchLength)")
            }
            if prefix.lastOffset >= offset { return (FilePosition(position), prefix) }
            scanner.advance(by: prefix.totalBytes)
        }
        return nil
    }

    /// The end of the last whole batch that starts at or after `start` and ends at or before
    /// `limit`; `start` itself when the first batch does not fit.
    func lastBatchEnd(from start: FilePosition, notAfter limit: FilePosition) throws(StorageError) -> FilePosition {
        guard limit > start else { return start }
        if let end = recent.lastBatchEnd(from: Int(start.value), notAfter: Int(limit.value)) { return FilePosition(end) }
        // Jump to the last indexed batch below the limit, then walk.
        var from = start
        if let i = try offsetIndex.file.lastIndex(where: { Int64($0.bigEndianInt32(at: 4)) <= limit.value }) {
            from = max(from, try offsetIndex.entry(i).position)
        }
        let scanner = try BatchScanner(file: log.file(), from: Int(from.value), end: Int(limit.value), chunkBytes: 8192)
        var end = from
        while let (position, prefix) = try scanner.nextPrefix() {
            guard prefix.totalBytes >= RecordBatchHeader.Field.records else {
                throw .corruptSegment(path: log.path, position: FilePosition(position), reason: "batch length \(prefix.batchLength)")
            }
            guard position + prefix.totalBytes <= Int(limit.value) else { break }
            end = FilePosition(position + prefix.totalBytes)
            scanner.advance(by: prefix.totalBytes)
        }
        return end
    }

    /// Validates the batch read at `position`; a defect becomes a typed error naming this file.
    func checkedHeader(_ bytes: UnsafeRawBufferPointer, at position: Int, check: BatchCheck) throws(StorageError) -> RecordBatchHeader {
        do { return try RecordBatchValidator.validate(bytes, check: check) } catch {
            throw .corruptSegment(path: log.path, position: FilePosition(position), reason: error.description)
        }
    }

    // MARK: loading and recovery

    /// For a segment closed cleanly: finds the next offset and max timestamp by reading what
    /// follows the last index entries (at most an index interval and a batch).
    func loadTail() throws(StorageError) {
        var problem = try offsetIndex.sanityCheck(logBytes: sizeBytes)
        if problem == nil { problem = try timeIndex.sanityCheck() }
        if let reason = problem {
            throw .corruptIndex(path: offsetIndex.file.path, reason: reason)
        }
        if let last = try timeIndex.last() {
            maxTimestamp = last.timestamp
            offsetOfMaxTimestamp = last.offset
        }
        let start = try offsetIndex.last()?.position ?? .zero
        let scanner = try BatchScanner(file: log.file(), from: Int(start.value), end: sizeBytes, chunkBytes: 64 * 1024)
        while let (position, bytes) = try scanner.next() {
            let header = try checkedHeader(bytes, at: position, check: .checksum)
            if rollingTimestamp == nil && position == 0 { rollingTimestamp = header.maxTimestamp }
            if header.maxTimestamp > maxTimestamp {
                maxTimestamp = header.maxTimestamp
                offsetOfMaxTimestamp = header.lastOffset
            }
            nextOffset = header.nextOffset
            bytesSinceLastIndexEntry = position + header.totalBytes - Int(start.value)
            scanner.advance(by: header.totalBytes)
        }
        if rollingTimestamp == nil, sizeBytes > 0 { rollingTimestamp = maxTimestamp }
    }

    /// Rebuilds the indexes from the log, checking every batch, and cuts the file at the first
    /// invalid one. Returns the defect found there (nil when the whole file was valid).
    func recover(config: LogConfig, expectedFirstOffset: Offset, logger: Logger, size: Int? = nil) throws(StorageError) -> String? {
        if let size { sizeBytes = size }
        recent.clear()
        try offsetIndex.file.reset(maxBytes: config.segmentIndexBytes)
        try timeIndex.file.reset(maxBytes: config.segmentIndexBytes)
        nextOffset = baseOffset
        maxTimestamp = .none
        offsetOfMaxTimestamp = baseOffset
        rollingTimestamp = nil
        bytesSinceLastIndexEntry = 0
        var minimumOffset = max(expectedFirstOffset, baseOffset)
        let scanner = try BatchScanner(file: log.file(), end: sizeBytes)
        var validBytes = 0
        var defect: String?
        while let (position, bytes) = try scanner.next() {
            let header: RecordBatchHeader
            do {
                header = try RecordBatchValidator.validate(bytes, check: .checksum)
            } catch {
                defect = error.description
                break
            }
            // The base offset lies outside the CRC: check it against its neighbours. Gaps
            // between batches are fine (compaction leaves them, and so do an offset-preserving
            // mirror's topics, where the source's aborted transactions and markers were), as
            // in Kafka's recovery; going back is not.
            let inOrder = header.baseOffset >= minimumOffset
            guard inOrder, header.lastOffset - baseOffset <= Int64(Int32.max) else {
                defect = "batch offsets \(header.baseOffset)...\(header.lastOffset) out of order (expected \(minimumOffset) or later)"
                break
            }
            // An index that cannot be written (say, not mapped) fails the recovery; it is no
            // defect of the log's to cut.
            try index(batchAt: FilePosition(position), totalBytes: header.totalBytes,
                      lastOffset: header.lastOffset, maxTimestamp: header.maxTimestamp)
            minimumOffset = header.nextOffset
            validBytes = position + header.totalBytes
            scanner.advance(by: header.totalBytes)
        }
        if let defect {
            logger.warning("truncating corrupt or torn segment tail", metadata: [
                "file": "\(log.path)", "position": "\(validBytes)", "bytes_dropped": "\(sizeBytes - validBytes)",
                "reason": "\(defect)",
            ])
            try log.file().truncate(to: validBytes)
            sizeBytes = validBytes
        }
        return defect
    }

    /// Called when the segment stops being the active one: a last time index entry (so a clean
    /// load knows its max timestamp), indexes trimmed, everything synced.
    func seal(sync: Bool) throws(StorageError) {
        recent.clear()  // reads at the tail read the new segment; this one is read from its file
        if !isEmpty {
            try timeIndex.maybeAppend(timestamp: maxTimestamp, offset: offsetOfMaxTimestamp)
        }
        if sync { try log.file().sync() }
        try offsetIndex.file.seal(sync: sync)
        try timeIndex.file.seal(sync: sync)
    }

    func sync() throws(StorageError) {
        try log.file().sync()
        try offsetIndex.file.sync()
        try timeIndex.file.sync()
    }

    func close() throws(StorageError) {
        try offsetIndex.file.close()
        try timeIndex.file.close()
        log.close()
    }

    /// Deletes the segment's files. Readers holding the log file keep reading it.
    func delete() throws(StorageError) {
        try offsetIndex.file.close()
        try timeIndex.file.close()
        log.close()
        for path in [log.path, offsetIndex.file.path, timeIndex.file.path] { try FileSystem.remove(path) }
    }

    /// The first half of a deletion, for under a partition's lock: the index maps are closed
    /// and the files renamed `NAME.deleted` (metadata only, and no later segment can take their
    /// names); the paths returned are removed once the lock is released (`FileSystem.remove`).
    /// A read still sending from the log keeps its file open. A start removes leftovers.
    func detach() throws(StorageError) -> [String] {
        try offsetIndex.file.close()
        try timeIndex.file.close()
        log.close()
        var renamed: [String] = []
        for path in [log.path, offsetIndex.file.path, timeIndex.file.path] {
            let target = path + Self.deletedSuffix
            do throws(StorageError) { try FileSystem.rename(path, target) } catch {
                if case .io(_, _, let code) = error, code == ENOENT { continue }  // an index never written
                throw error
            }
            renamed.append(target)
        }
        return renamed
    }

    static let deletedSuffix = ".deleted"
}
