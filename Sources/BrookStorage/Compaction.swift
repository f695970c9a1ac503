import BrookCore
import BrookRecords
import Logging

/// What one compaction pass did.
public struct CompactionResult: Sendable, Equatable {
    public var segmentsCleaned = 0
    public var recordsRemoved = 0
    public var bytesBefore = 0
    public var bytesAfter = 0
}

/// A 128-bit digest of a record key (two independent 64-bit hashes), so the cleaner's map costs
/// a fixed size per key however long the keys are. As Kafka's MD5-keyed map, it takes the
/// (here ~2^-128) chance of two keys colliding.
struct KeyDigest: Hashable {
    var high: UInt64
    var low: UInt64

    init(_ key: UnsafeRawBufferPointer) {
        var fnv: UInt64 = 0xCBF2_9CE4_8422_2325
        var mix: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(key.count)
        for byte in key {
            fnv = (fnv ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            mix = (mix ^ UInt64(byte)) &* 0xFF51_AFD7_ED55_8CCD
            mix ^= mix >> 29
        }
        high = fnv
        low = mix ^ (mix >> 32)
    }
}

extension PartitionLog {
    /// Keys the cleaner maps in one pass; segments beyond what fits wait for the next pass.
    static let compactionKeysMax = 1 << 21

    /// Compacts the inactive segments (`cleanup.policy` with `compact`): keeps the last record of
    /// each key, drops tombstones older than `delete.retention.ms`, never touches the active
    /// segment or records younger than `min.compaction.lag.ms`, and keeps every offset. Records
    /// inside compressed batches are kept as they are until the codecs land (issue 6).
    @discardableResult
    public func compact(bound: Offset? = nil) throws(StorageError) -> CompactionResult {
        guard config.cleanupCompact else { return CompactionResult() }
        let now = clock.now()
        let lagHorizon = now.ms - config.minCompactionLagMs
        // `bound` (a replicated partition's high watermark): only segments wholly below it.
        var cleanable = segments.dropLast().prefix { segment in segment.maxTimestamp.ms <= lagHorizon && bound.map { segment.nextOffset <= $0 } ?? true }
        var latest: [KeyDigest: Offset] = [:]
        var mapped = 0
        for (i, segment) in cleanable.enumerated() {
            guard try mapKeys(segment, into: &latest) else { mapped = i; break }
            mapped = i + 1
        }
        cleanable = cleanable.prefix(mapped)
        guard !cleanable.isEmpty else { return CompactionResult() }

        var result = CompactionResult()
        let tombstoneHorizon = Timestamp(ms: now.ms - config.deleteRetentionMs)
        for group in groups(Array(cleanable)) {
            try clean(group, latest: latest, tombstoneHorizon: tombstoneHorizon, result: &result)
        }
        logger.info("compacted", metadata: [
            "dir": "\(directory)", "segments": "\(result.segmentsCleaned)", "records_removed": "\(result.recordsRemoved)",
            "bytes_before": "\(result.bytesBefore)", "bytes_after": "\(result.bytesAfter)",
        ])
        return result
    }

    /// Records the newest offset of every key in `segment`; false when the map is full.
    private func mapKeys(_ segment: LogSegment, into latest: inout [KeyDigest: Offset]) throws(StorageError) -> Bool {
        let scanner = try BatchScanner(file: segment.log, end: segment.sizeBytes)
        var pending: [(KeyDigest, Offset)] = []
        while let (position, bytes) = try scanner.next() {
            let header = try segment.checkedHeader(bytes, at: position, check: .stored)
            try forEachRecord(bytes, header: header, segment: segment, position: position) { record, records, offset in
                if let key = record.key { pending.append((KeyDigest(UnsafeRawBufferPointer(rebasing: records[key])), offset)) }
            }
            scanner.advance(by: header.totalBytes)
        }
        let fresh = Set(pending.map(\.0)).subtracting(latest.keys).count
        guard latest.count + fresh <= Self.compactionKeysMax else { return false }
        for (digest, offset) in pending { latest[digest] = offset }
        return true
    }

    /// Consecutive segments whose cleaned output fits one segment (size and 32-bit offsets).
    private func groups(_ segments: [LogSegment]) -> [[LogSegment]] {
        var groups: [[LogSegment]] = []
        var current: [LogSegment] = []
        var bytes = 0
        for segment in segments {
            let fitsSize = bytes + segment.sizeBytes <= min(config.segmentBytes, Limits.segmentBytesMax)
            let fitsOffsets = current.first.map { segment.nextOffset - $0.baseOffset <= Int64(Int32.max) } ?? true
            if !current.isEmpty && !(fitsSize && fitsOffsets) {
                groups.append(current)
                current = []
                bytes = 0
            }
            current.append(segment)
            bytes += segment.sizeBytes
        }
        if !current.isEmpty { groups.append(current) }
        return groups
    }

    /// Rewrites `group` into one segment holding only the records to keep, then swaps it in:
    /// `.cleaned` files are written and synced, renamed to `.swap`, the old segments deleted,
    /// and the swap renamed into place. `open` finishes a swap a crash interrupted.
    private func clean(_ group: [LogSegment], latest: [KeyDigest: Offset], tombstoneHorizon: Timestamp,
                       result: inout CompactionResult) throws(StorageError) {
        let base = group[0].baseOffset
        for name in [".log", ".index", ".timeindex"] {
            try FileSystem.remove(directory + "/" + LogSegment.fileName(base, name) + ".cleaned")
        }
        let cleaned = try LogSegment(directory: directory, baseOffset: base, config: config, create: true,
                                     writable: true, suffix: ".cleaned")
        var output: [UInt8] = []
        var outputBatches: [AppendedBatch] = []
        func flushOutput() throws(StorageError) {
            guard !outputBatches.isEmpty else { return }
            try typed { try output.withUnsafeBytes { try cleaned.append($0, batches: outputBatches) } }
            output.removeAll(keepingCapacity: true)
            outputBatches.removeAll(keepingCapacity: true)
        }
        for segment in group {
            result.bytesBefore += segment.sizeBytes
            let scanner = try BatchScanner(file: segment.log, end: segment.sizeBytes)
            while let (position, bytes) = try scanner.next() {
                let header = try segment.checkedHeader(bytes, at: position, check: .stored)
                scanner.advance(by: header.totalBytes)
                var kept: [UInt8] = []
                var keptCount: Int32 = 0
                try forEachRecord(bytes, header: header, segment: segment, position: position) { record, records, offset in
                    let isLatest = record.key.map { latest[KeyDigest(UnsafeRawBufferPointer(rebasing: records[$0]))] == offset } ?? true
                    let timestamp = Timestamp(ms: header.baseTimestamp.ms &+ record.timestampDelta)
                    let expiredTombstone = record.value == nil && record.key != nil && timestamp < tombstoneHorizon
                    if isLatest && !expiredTombstone {
                        kept.append(contentsOf: records[record.range])
                        keptCount += 1
                    }
                }
                let parsed = !header.attributes.isControl
                if parsed { result.recordsRemoved += Int(header.recordCount - keptCount) }
                if parsed && keptCount == 0 { continue }
                let batch: [UInt8]
                if !parsed || keptCount == header.recordCount {
                    batch = Array(bytes[0..<header.totalBytes])
                } else {
                    // The kept records in the batch's own codec (compressed batches are
                    // recompressed with the codec's default level).
                    let codec = header.attributes.compression ?? .none
                    var keptHeader = header
                    keptHeader.recordCount = keptCount
                    switch kept.withUnsafeBytes({ RecordBatchBuilder.recompressing(keptHeader, records: $0, codec: codec, level: nil) }) {
                    case .success(let bytes): batch = bytes
                    case .failure(let error):
                        throw .corruptSegment(path: segment.logPath, position: FilePosition(position), reason: "recompressing kept records: \(error)")
                    }
                }
                outputBatches.append(AppendedBatch(start: output.count, totalBytes: batch.count,
                                                   lastOffsetDelta: header.lastOffsetDelta, lastOffset: header.lastOffset, maxTimestamp: header.maxTimestamp))
                output += batch
                if output.count >= 1 << 20 { try flushOutput() }
            }
        }
        try flushOutput()
        try cleaned.seal(sync: true)
        result.segmentsCleaned += group.count
        result.bytesAfter += cleaned.sizeBytes
        try swapIn(cleaned, replacing: group)
    }

    private func swapIn(_ cleaned: LogSegment, replacing group: [LogSegment]) throws(StorageError) {
        let base = cleaned.baseOffset
        let path = { (ext: String) in self.directory + "/" + LogSegment.fileName(base, ext) }
        let first = segments.firstIndex { $0 === group[0] }!
        segments.removeSubrange(first..<(first + group.count))
        if cleaned.isEmpty {
            try cleaned.delete()
            for segment in group { try segment.delete() }
            // Nothing is left below the next segment (as a reopen would conclude too).
            if first == 0 { setLogStartOffset(max(logStartOffset, segments[0].baseOffset)) }
            try writeCheckpoint(durable: true)
            return
        }
        try cleaned.close()
        for ext in [".index", ".timeindex", ".log"] { try FileSystem.rename(path(ext) + ".cleaned", path(ext) + ".swap") }
        try FileSystem.syncDirectory(directory)
        for segment in group { try segment.delete() }
        for ext in [".index", ".timeindex", ".log"] { try FileSystem.rename(path(ext) + ".swap", path(ext)) }
        try FileSystem.syncDirectory(directory)
        let replacement = try LogSegment(directory: directory, baseOffset: base, config: config, create: false, writable: false)
        try replacement.loadTail()
        segments.insert(replacement, at: first)
    }

    /// Calls `body` with each record of a non-control batch (decompressed if need be), the
    /// buffer its ranges index, and its offset.
    private func forEachRecord(_ bytes: UnsafeRawBufferPointer, header: RecordBatchHeader, segment: LogSegment, position: Int,
                               _ body: (RecordView, UnsafeRawBufferPointer, Offset) -> Void) throws(StorageError) {
        guard !header.attributes.isControl else { return }
        do throws(BatchDefect) {
            try header.forEachRecord(in: bytes) { record, records in body(record, records, header.baseOffset + Int64(record.offsetDelta)) }
        } catch {
            throw .corruptSegment(path: segment.logPath, position: FilePosition(position), reason: error.description)
        }
    }

    /// Completes a compaction interrupted after its cleaned segment was renamed to `.swap`: the
    /// segments it replaces are deleted and the swap takes their place. `names` is the
    /// directory's listing; true when it completed one.
    static func completeSwaps(_ directory: String, names: [String], config: LogConfig, logger: Logger) throws(StorageError) -> Bool {
        var completed = false
        for name in names {
            guard let base = LogSegment.baseOffset(fileName: name, suffix: ".log.swap") else { continue }
            completed = true
            var swapConfig = config
            swapConfig.cleanupCompact = true
            let swap = try LogSegment(directory: directory, baseOffset: base, config: swapConfig, create: false,
                                      writable: true, suffix: ".swap")
            _ = try swap.recover(config: swapConfig, expectedFirstOffset: base, logger: logger)
            try swap.close()
            let end = swap.nextOffset
            for other in try FileSystem.list(directory) {
                guard let otherBase = LogSegment.baseOffset(fileName: other, suffix: ".log"), otherBase >= base, otherBase < end
                else { continue }
                for ext in [".log", ".index", ".timeindex"] { try FileSystem.remove(directory + "/" + LogSegment.fileName(otherBase, ext)) }
            }
            let path = { (ext: String) in directory + "/" + LogSegment.fileName(base, ext) }
            for ext in [".index", ".timeindex", ".log"] { try FileSystem.rename(path(ext) + ".swap", path(ext)) }
            try FileSystem.syncDirectory(directory)
            logger.warning("completed an interrupted compaction", metadata: ["file": "\(path(".log"))"])
        }
        return completed
    }
}
