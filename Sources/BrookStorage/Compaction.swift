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

/// A compaction pass in three steps, so that a partition's lock is never held for the work:
/// `PartitionLog.planCompaction` (under the lock) picks the segments to clean;
/// `CompactionPlan.clean` (without it) maps their keys and writes each group's cleaned segment
/// to `.cleaned` files, synced; `PartitionLog.swapIn` (under the lock, once per group) puts a
/// cleaned segment in its group's place if the group is still there as planned (a truncation,
/// retention, DeleteRecords or close since leaves it out), with renames only; `endCompaction`
/// allows the next plan. Unlinking what was replaced waits until after the lock.
///
/// Sendable although it holds segments: the clean step reads only their log files (immutable
/// references, positional reads below the sizes taken under the lock; a sealed segment is only
/// ever truncated under the lock, which `swapIn` then notices) and writes only its own files.
public struct CompactionPlan: @unchecked Sendable {
    struct Source {
        let segment: LogSegment
        /// The segment's log, held open for the pass (retention may delete the segment meanwhile).
        let file: SegmentFile
        let sizeBytes: Int
        let nextOffset: Offset
    }

    /// One group's cleaned segment (sealed, synced and closed), waiting for `swapIn`.
    public struct Cleaned: @unchecked Sendable {
        let sources: [Source]
        let cleaned: LogSegment
        /// The log's `rewrites` at the plan: a truncation since refuses the swap.
        let rewrites: UInt64
        /// The `.cleaned` files to remove when the swap does not happen.
        var paths: [String] { CompactionPlan.cleanedPaths(cleaned.directory, cleaned.baseOffset) }
    }

    /// The files a group's cleaned segment is written to, before its swap.
    static func cleanedPaths(_ directory: String, _ base: Offset) -> [String] {
        [".log", ".index", ".timeindex"].map { directory + "/" + LogSegment.fileName(base, $0) + ".cleaned" }
    }

    let directory: String
    let config: LogConfig
    let pools: SegmentPools
    let sources: [Source]
    let now: Timestamp
    public let rewrites: UInt64
    public let logger: Logger
}

extension PartitionLog {
    /// Keys the cleaner maps in one pass; segments beyond what fits wait for the next pass.
    static let compactionKeysMax = 1 << 21

    /// Compacts the inactive segments (`cleanup.policy` with `compact`): keeps the last record of
    /// each key, drops tombstones older than `delete.retention.ms`, never touches the active
    /// segment or records younger than `min.compaction.lag.ms`, and keeps every offset. The three
    /// steps of `CompactionPlan` in a row, for a caller that holds the log alone.
    @discardableResult
    public func compact(bound: Offset? = nil) throws(StorageError) -> CompactionResult {
        guard let plan = planCompaction(bound: bound) else { return CompactionResult() }
        defer { endCompaction() }
        var detached: [String] = []
        defer { for path in detached { try? FileSystem.remove(path) } }
        return try plan.run { (group) throws(StorageError) -> Bool in try swapIn(group, detached: &detached) }
    }

    /// The first step, under the partition's lock: the inactive segments wholly older than
    /// `min.compaction.lag.ms` and below `bound` (a replicated partition's high watermark), with
    /// their sizes; nil when there are none, compaction is off, or a pass is under way.
    public func planCompaction(bound: Offset? = nil) -> CompactionPlan? {
        guard config.cleanupCompact, !isClosed, !compacting else { return nil }
        let now = clock.now()
        let lagHorizon = now.ms - config.minCompactionLagMs
        let cleanable = segments.dropLast().prefix { segment in segment.maxTimestamp.ms <= lagHorizon && bound.map { segment.nextOffset <= $0 } ?? true }
        guard !cleanable.isEmpty else { return nil }
        var sources: [CompactionPlan.Source] = []
        for segment in cleanable {
            do throws(StorageError) {
                sources.append(.init(segment: segment, file: try segment.log.file(), sizeBytes: segment.sizeBytes, nextOffset: segment.nextOffset))
            } catch {
                logger.warning("compaction skipped: a segment could not be opened", metadata: ["file": "\(segment.logPath)", "error": "\(error)"])
                return nil
            }
        }
        compacting = true
        return CompactionPlan(directory: directory, config: config, pools: pools, sources: sources,
                              now: now, rewrites: rewrites, logger: logger)
    }

    /// The last step, under the lock: the next plan may start.
    public func endCompaction() { compacting = false }

    /// The third step, under the lock: puts `group`'s cleaned segment in the place of the
    /// segments it replaces, if they are all still there as planned, none became the active
    /// segment and nothing was truncated since the plan; false when not (then `CompactionPlan.discard` removes its files). The replaced
    /// segments are renamed `NAME.deleted`, their paths added to `detached` for the caller to
    /// remove after the lock. The renames are made durable in the order a crash needs: the
    /// cleaned files as `.swap` first (a start completes the swap from there), then the rest.
    public func swapIn(_ group: CompactionPlan.Cleaned, detached: inout [String]) throws(StorageError) -> Bool {
        guard !isClosed, compacting, group.rewrites == rewrites, let first = segments.firstIndex(where: { $0 === group.sources[0].segment }),
              first + group.sources.count < segments.count,
              group.sources.enumerated().allSatisfy({ i, source in
                  segments[first + i] === source.segment && source.segment.sizeBytes == source.sizeBytes && source.segment.nextOffset == source.nextOffset
              })
        else { return false }
        let cleaned = group.cleaned
        let base = cleaned.baseOffset
        let path = { (ext: String) in self.directory + "/" + LogSegment.fileName(base, ext) }
        if cleaned.isEmpty && first > 0 {
            // Nothing left: the offsets become a gap, which reads step over.
            for source in group.sources { detached += try source.segment.detach() }
            segments.removeSubrange(first..<(first + group.sources.count))
            detached += group.paths
            return true
        }
        // (An empty first group stays as an empty segment: the log start offset is not the
        // cleaner's to move, and a start takes it from the first segment's base at least, so a
        // consumer at an offset below would be answered OFFSET_OUT_OF_RANGE, not the records
        // that follow, as Kafka answers.)
        for ext in [".index", ".timeindex", ".log"] { try FileSystem.rename(path(ext) + ".cleaned", path(ext) + ".swap") }
        try FileSystem.syncDirectory(directory)
        for source in group.sources { detached += try source.segment.detach() }
        segments.removeSubrange(first..<(first + group.sources.count))
        for ext in [".index", ".timeindex", ".log"] { try FileSystem.rename(path(ext) + ".swap", path(ext)) }
        try FileSystem.syncDirectory(directory)
        let replacement = try LogSegment(directory: directory, baseOffset: base, config: config, create: false, writable: false, pools: pools)
        try replacement.loadTail()
        segments.insert(replacement, at: first)
        return true
    }
}

extension CompactionPlan {
    /// The second step, without the partition's lock: maps the keys of as many planned segments
    /// as the key map holds, then writes each group of them cleaned. On an error, the files
    /// written so far are removed.
    public func clean() throws(StorageError) -> ([Cleaned], CompactionResult) {
        var latest: [KeyDigest: Offset] = [:]
        var mapped = 0
        for (i, source) in sources.enumerated() {
            guard try mapKeys(source, into: &latest) else { mapped = i; break }
            mapped = i + 1
        }
        var result = CompactionResult()
        var out: [Cleaned] = []
        let tombstoneHorizon = Timestamp(ms: now.ms - config.deleteRetentionMs)
        do throws(StorageError) {
            for group in groups(Array(sources.prefix(mapped))) {
                out.append(try clean(group, latest: latest, tombstoneHorizon: tombstoneHorizon, result: &result))
            }
        } catch {
            for group in out { discard(group) }
            throw error
        }
        return (out, result)
    }

    /// The second and third steps: `clean`, then `swap` (which takes the lock and calls
    /// `PartitionLog.swapIn`) for each group in turn; what is not swapped in is removed.
    public func run(swapping swap: (Cleaned) throws(StorageError) -> Bool) throws(StorageError) -> CompactionResult {
        let (groups, result) = try clean()
        for (i, group) in groups.enumerated() {
            let swapped: Bool
            do throws(StorageError) { swapped = try swap(group) } catch {
                for left in groups[i...] { discard(left) }
                throw error
            }
            if !swapped { discard(group) }
        }
        logDone(result)
        return result
    }

    /// Removes the files of a cleaned group that was not swapped in.
    public func discard(_ group: Cleaned) {
        for path in group.paths { try? FileSystem.remove(path) }
    }

    private func logDone(_ result: CompactionResult) {
        guard result.segmentsCleaned > 0 else { return }
        logger.info("compacted", metadata: [
            "dir": "\(directory)", "segments": "\(result.segmentsCleaned)", "records_removed": "\(result.recordsRemoved)",
            "bytes_before": "\(result.bytesBefore)", "bytes_after": "\(result.bytesAfter)",
        ])
    }

    /// Records the newest offset of every key in `source`; false when the map is full.
    private func mapKeys(_ source: Source, into latest: inout [KeyDigest: Offset]) throws(StorageError) -> Bool {
        let segment = source.segment
        let scanner = try BatchScanner(file: source.file, end: source.sizeBytes)
        var pending: [(KeyDigest, Offset)] = []
        while let (position, bytes) = try scanner.next() {
            let header = try segment.checkedHeader(bytes, at: position, check: .stored)
            try Self.forEachRecord(bytes, header: header, segment: segment, position: position) { record, records, offset in
                if let key = record.key { pending.append((KeyDigest(UnsafeRawBufferPointer(rebasing: records[key])), offset)) }
            }
            scanner.advance(by: header.totalBytes)
        }
        let fresh = Set(pending.map(\.0)).subtracting(latest.keys).count
        guard latest.count + fresh <= PartitionLog.compactionKeysMax else { return false }
        for (digest, offset) in pending { latest[digest] = offset }
        return true
    }

    /// Consecutive segments whose cleaned output fits one segment (size and 32-bit offsets).
    private func groups(_ sources: [Source]) -> [[Source]] {
        var groups: [[Source]] = []
        var current: [Source] = []
        var bytes = 0
        for source in sources {
            let fitsSize = bytes + source.sizeBytes <= min(config.segmentBytes, Limits.segmentBytesMax)
            let fitsOffsets = current.first.map { source.nextOffset - $0.segment.baseOffset <= Int64(Int32.max) } ?? true
            if !current.isEmpty && !(fitsSize && fitsOffsets) {
                groups.append(current)
                current = []
                bytes = 0
            }
            current.append(source)
            bytes += source.sizeBytes
        }
        if !current.isEmpty { groups.append(current) }
        return groups
    }

    /// Rewrites `group` into one segment holding only the records to keep, in `.cleaned` files,
    /// sealed, synced and closed, for `PartitionLog.swapIn`.
    private func clean(_ group: [Source], latest: [KeyDigest: Offset], tombstoneHorizon: Timestamp,
                       result: inout CompactionResult) throws(StorageError) -> Cleaned {
        let base = group[0].segment.baseOffset
        for path in Self.cleanedPaths(directory, base) { try FileSystem.remove(path) }
        let cleaned = try LogSegment(directory: directory, baseOffset: base, config: config, create: true,
                                     writable: true, suffix: ".cleaned", pools: pools)
        let written = Cleaned(sources: group, cleaned: cleaned, rewrites: rewrites)
        do throws(StorageError) {
            try write(group, into: cleaned, latest: latest, tombstoneHorizon: tombstoneHorizon, result: &result)
            try cleaned.seal(sync: true)
            try cleaned.close()
        } catch {
            discard(written)
            throw error
        }
        result.segmentsCleaned += group.count
        result.bytesAfter += cleaned.sizeBytes
        return written
    }

    private func write(_ group: [Source], into cleaned: LogSegment, latest: [KeyDigest: Offset], tombstoneHorizon: Timestamp,
                       result: inout CompactionResult) throws(StorageError) {
        var output: [UInt8] = []
        var outputBatches: [AppendedBatch] = []
        func flushOutput() throws(StorageError) {
            guard !outputBatches.isEmpty else { return }
            try typed { try output.withUnsafeBytes { try cleaned.append($0, batches: outputBatches) } }
            output.removeAll(keepingCapacity: true)
            outputBatches.removeAll(keepingCapacity: true)
        }
        for source in group {
            let segment = source.segment
            result.bytesBefore += source.sizeBytes
            let scanner = try BatchScanner(file: source.file, end: source.sizeBytes)
            while let (position, bytes) = try scanner.next() {
                let header = try segment.checkedHeader(bytes, at: position, check: .stored)
                scanner.advance(by: header.totalBytes)
                var kept: [UInt8] = []
                var keptCount: Int32 = 0
                try Self.forEachRecord(bytes, header: header, segment: segment, position: position) { record, records, offset in
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
    }

    /// Calls `body` with each record of a non-control batch (decompressed if need be), the
    /// buffer its ranges index, and its offset.
    private static func forEachRecord(_ bytes: UnsafeRawBufferPointer, header: RecordBatchHeader, segment: LogSegment, position: Int,
                               _ body: (RecordView, UnsafeRawBufferPointer, Offset) -> Void) throws(StorageError) {
        guard !header.attributes.isControl else { return }
        do throws(BatchDefect) {
            try header.forEachRecord(in: bytes) { record, records in body(record, records, header.baseOffset + Int64(record.offsetDelta)) }
        } catch {
            throw .corruptSegment(path: segment.logPath, position: FilePosition(position), reason: error.description)
        }
    }

}

extension PartitionLog {
    /// Completes a compaction interrupted after its cleaned segment was renamed to `.swap`: the
    /// segments it replaces are deleted and the swap takes their place. `names` is the
    /// directory's listing; true when it completed one.
    static func completeSwaps(_ directory: String, names: [String], config: LogConfig, logger: Logger,
                              pools: SegmentPools) throws(StorageError) -> Bool {
        var completed = false
        for name in names {
            guard let base = LogSegment.baseOffset(fileName: name, suffix: ".log.swap") else { continue }
            completed = true
            var swapConfig = config
            swapConfig.cleanupCompact = true
            let swap = try LogSegment(directory: directory, baseOffset: base, config: swapConfig, create: false,
                                      writable: true, suffix: ".swap", pools: pools)
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
