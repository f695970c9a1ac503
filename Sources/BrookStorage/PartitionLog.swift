import BrookCore
import BrookRecords
import Logging
import NIOCore

/// Who writes an append, which decides what it may hold (Kafka's AppendOrigin).
public enum AppendOrigin: Sendable {
    /// A producer's request: no control batches, timestamps within the topic's bounds.
    case client
    /// The broker itself (coordinators' markers and records, the quorum's entries, tools).
    case `internal`
}

/// What an append did.
public struct AppendResult: Sendable, Equatable {
    public var firstOffset: Offset
    public var lastOffset: Offset
    public var recordCount: Int
    /// The broker's time stamped into the batches when `message.timestamp.type=LogAppendTime`.
    public var logAppendTime: Timestamp?

    public init(firstOffset: Offset, lastOffset: Offset, recordCount: Int, logAppendTime: Timestamp?) {
        self.firstOffset = firstOffset
        self.lastOffset = lastOffset
        self.recordCount = recordCount
        self.logAppendTime = logAppendTime
    }
}

/// A record offset and its timestamp, as ListOffsets returns them.
public struct TimestampedOffset: Sendable, Equatable {
    public var offset: Offset
    public var timestamp: Timestamp

    public init(offset: Offset, timestamp: Timestamp) {
        self.offset = offset
        self.timestamp = timestamp
    }
}

/// One partition's log: a directory `TOPIC-N` of segments. Not thread-safe: its owner serializes
/// calls (the broker runs each partition's appends and reads under one lock).
///
/// Durability follows Kafka: an append is in the page cache when it returns; `flush.messages` and
/// `flush.ms` add fsyncs; a rolled segment is fsynced soon after, off the append's thread
/// (`takeUnsynced` / `synced`), as Kafka flushes a rolled segment asynchronously. The recovery
/// point is the offset below which everything was fsynced; after a crash only the segments from
/// it on are scanned.
public final class PartitionLog {
    public let directory: String
    public private(set) var config: LogConfig
    /// Counts changes of `config`: batches validated under an older one are validated again.
    public private(set) var configVersion: UInt64 = 0
    /// The first offset a reader may ask for (advanced by retention and DeleteRecords).
    public private(set) var logStartOffset: Offset
    /// Everything below this offset is on disk (fsynced).
    public private(set) var recoveryPoint: Offset
    var segments: [LogSegment]
    let clock: any Clock
    let logger: Logger
    /// Where the segments' open files and index mappings come from.
    let pools: SegmentPools
    var unflushedRecords: Int64 = 0
    private var lastFlush: Timestamp
    private var activeCreatedAt: Timestamp
    var isClosed = false
    /// A compaction pass is between its plan and its end (CompactionPlan): no second one starts.
    var compacting = false
    /// Counts the changes that cut bytes already written (truncation): a copy of the files taken
    /// before one (DirectoryMirror) must start again. (Compaction renames new files over the
    /// old ones, which the copy tells apart by their inodes.)
    public internal(set) var rewrites: UInt64 = 0
    /// Rolled segments not yet fsynced, oldest first: the log file, the index files' paths and
    /// the offset just past the segment (the recovery point may move there once they are).
    private var unsynced: [RolledSegment] = []
    /// How many segments the last open had to scan and rebuild (0 after a clean shutdown).
    public internal(set) var segmentsRecoveredAtOpen = 0
    /// The recovery point this log was opened with: its batches from there on were not known
    /// to be on disk, so a leader epoch they carry may be missing from the epoch checkpoint
    /// (`unsavedLeaderEpochs`).
    public internal(set) var recoveryPointAtOpen: Offset
    /// A leader-epoch cache newer than its `leader-epoch-checkpoint` (a leadership taken writes
    /// no file: 10,000 of them at a start wrote for 2.3 s): written, durably, before the recovery
    /// point moves, so every batch below the recovery point has its epoch in a durable
    /// checkpoint. A crash before then loses only entries of batches past the recovery point,
    /// which the next open reads again (`recoveryPointAtOpen`), and entries of epochs that wrote
    /// nothing, which no replica needs. nil when the file is current.
    public var unsavedLeaderEpochs: LeaderEpochCache?

    static let checkpointName = "brook.checkpoint"
    static let cleanShutdownName = ".brook-clean-shutdown"

    var active: LogSegment { segments[segments.count - 1] }
    /// LEO: the offset the next appended record gets.
    public var logEndOffset: Offset { active.nextOffset }
    public var segmentCount: Int { segments.count }
    /// Rolled segments waiting for their fsync (each holds its log's file open until then).
    var unsyncedCount: Int { unsynced.count }
    public var sizeBytes: Int { segments.reduce(0) { $0 + $1.sizeBytes } }
    public var segmentBaseOffsets: [Offset] { segments.map(\.baseOffset) }

    init(directory: String, config: LogConfig, clock: any Clock, logger: Logger, pools: SegmentPools, segments: [LogSegment],
         logStartOffset: Offset, recoveryPoint: Offset) {
        precondition(!segments.isEmpty, "a log always has an active segment")
        self.directory = directory
        self.pools = pools
        self.config = config
        self.clock = clock
        self.logger = logger
        self.segments = segments
        self.logStartOffset = logStartOffset
        self.recoveryPoint = recoveryPoint
        recoveryPointAtOpen = recoveryPoint
        lastFlush = clock.now()
        activeCreatedAt = clock.now()
    }

    deinit {
        if !isClosed { logger.debug("partition log released without close (next open recovers)", metadata: ["dir": "\(directory)"]) }
    }

    /// Applies new settings (AlterConfigs); they take effect from the next append or roll.
    public func update(config: LogConfig) {
        self.config = config
        configVersion &+= 1
    }

    // MARK: append

    /// Validates the batches in `records` (one or more RecordBatch v2), assigns them the next
    /// offsets by patching their headers, and writes them as they came. All or nothing: one
    /// invalid batch refuses the whole append. A client's append (`origin`) may hold no control
    /// batch, and its CreateTime timestamps must lie within the topic's bounds around now.
    @discardableResult
    public func append(_ records: inout ByteBuffer, leaderEpoch: LeaderEpoch = LeaderEpoch(0),
                       origin: AppendOrigin = .internal) throws(StorageError) -> AppendResult {
        guard !isClosed else { throw .closed }
        let validated = try Self.validate(&records, origin: origin, config: config, configVersion: configVersion, now: clock.now().ms)
        return try append(&records, validated: validated, leaderEpoch: leaderEpoch, origin: origin)
    }

    /// The second step of an append whose batches were validated beforehand (`validate`, which
    /// needs no lock: the broker runs it before taking the partition's, so decompressing one
    /// request's batches holds up no other request to the partition). Batches validated under
    /// settings that changed since are validated again.
    public func append(_ records: inout ByteBuffer, validated: ValidatedBatches, leaderEpoch: LeaderEpoch = LeaderEpoch(0),
                       origin: AppendOrigin = .internal) throws(StorageError) -> AppendResult {
        guard !isClosed else { throw .closed }
        var batches = validated.batches
        if validated.configVersion != configVersion {
            batches = try Self.validate(&records, origin: origin, config: config, configVersion: configVersion, now: clock.now().ms).batches
        }
        precondition(!batches.isEmpty, "a validated append holds a batch")
        let appendTime: Timestamp? = config.timestampType == .logAppendTime ? clock.now() : nil
        var next = logEndOffset
        records.withUnsafeMutableReadableBytes { bytes in
            for i in batches.indices {
                let batch = UnsafeMutableRawBufferPointer(rebasing: bytes[batches[i].start..<(batches[i].start + batches[i].totalBytes)])
                RecordBatchPatch.setBaseOffset(batch, next)
                RecordBatchPatch.setLeaderEpoch(batch, leaderEpoch)
                if let appendTime {
                    RecordBatchPatch.setLogAppendTime(batch, appendTime)
                    batches[i].maxTimestamp = appendTime
                }
                batches[i].lastOffset = next + Int64(batches[i].lastOffsetDelta)
                next = batches[i].lastOffset + 1
            }
        }
        let firstOffset = logEndOffset
        let lastOffset = batches[batches.count - 1].lastOffset
        try rollIfNeeded(adding: records.readableBytes, lastOffset: lastOffset)
        try typed { try records.withUnsafeReadableBytes { bytes in try active.append(bytes, batches: batches) } }
        let count = Int(lastOffset - firstOffset) + 1
        unflushedRecords += Int64(count)
        try flushIfDue()
        return AppendResult(firstOffset: firstOffset, lastOffset: lastOffset, recordCount: count, logAppendTime: appendTime)
    }

    func rollIfNeeded(adding bytes: Int, lastOffset: Offset) throws(StorageError) {
        let segmentAge = clock.now().ms - activeCreatedAt.ms
        if active.isFull(adding: bytes, lastOffset: lastOffset, segmentBytes: config.segmentBytes)
            || (!active.isEmpty && segmentAge > config.segmentMs) {
            try roll()
        }
    }

    /// Starts a new active segment at the LEO; the old one is sealed and fsynced, so the
    /// recovery point moves up to the new segment.
    func roll() throws(StorageError) {
        let base = logEndOffset
        guard base > active.baseOffset || !active.isEmpty else { return }
        precondition(segments.count < Limits.segmentsPerPartitionMax, "too many segments in \(directory)")
        // No fsync here: a roll happens inside an append, under the partition's lock and on a
        // request's event loop, where fsyncing 16 MiB took 55-65 ms under load (scripts/soak.py).
        let rolled = try active.log.file()  // before the seal: nothing is left half done if it fails
        try active.seal(sync: false)
        unsynced.append(RolledSegment(log: rolled, indexPaths: [active.offsetIndex.file.path, active.timeIndex.file.path], end: base))
        let segment = try LogSegment(directory: directory, baseOffset: base, config: config, create: true, writable: true, pools: pools)
        segments.append(segment)
        activeCreatedAt = clock.now()
        logger.debug("rolled segment", metadata: ["dir": "\(directory)", "base_offset": "\(base)"])
    }

    /// A rolled segment to fsync.
    public struct RolledSegment: Sendable {
        let log: SegmentFile
        let indexPaths: [String]
        let end: Offset

        /// The log by its open file (deleted meanwhile or not), the indexes by path if still there.
        public func sync() throws(StorageError) {
            try log.sync()
            for path in indexPaths { try FileSystem.syncIfExists(path) }
        }
    }

    /// Rolled segments to fsync (taken: the caller syncs them, without the partition's lock,
    /// then calls `synced` with the rest); nil when there are none.
    public func takeUnsynced() -> (segments: [RolledSegment], upTo: Offset, rewrites: UInt64)? {
        guard let last = unsynced.last else { return nil }
        defer { unsynced = [] }
        return (unsynced, last.end, rewrites)
    }

    /// The files `takeUnsynced` gave are fsynced: the recovery point moves up to `upTo`, unless
    /// the log was cut since (`rewrites`), when what lies below `upTo` may be newer bytes.
    public func synced(upTo: Offset, rewrites: UInt64) throws(StorageError) {
        guard !isClosed, rewrites == self.rewrites, upTo > recoveryPoint, upTo <= logEndOffset else { return }
        try saveLeaderEpochs(durable: true)
        recoveryPoint = upTo
        try writeCheckpoint(durable: false)
    }

    // MARK: flush

    /// fsyncs when `flush.messages` records or `flush.ms` milliseconds have gone unflushed.
    public func flushIfDue() throws(StorageError) {
        guard unflushedRecords > 0 else { return }
        if unflushedRecords >= config.flushMessages
            || (config.flushMs != .max && clock.now().ms - lastFlush.ms >= config.flushMs) {
            try flush()
        }
    }

    /// fsyncs the active segment and moves the recovery point to the LEO.
    public func flush() throws(StorageError) {
        guard !isClosed else { throw .closed }
        for rolled in unsynced { try rolled.sync() }
        unsynced = []
        try active.sync()
        unflushedRecords = 0
        lastFlush = clock.now()
        if recoveryPoint != logEndOffset {
            try saveLeaderEpochs(durable: true)
            recoveryPoint = logEndOffset
            try writeCheckpoint(durable: true)
        }
    }

    /// Writes `unsavedLeaderEpochs` (before the recovery point moves past their batches).
    func saveLeaderEpochs(durable: Bool) throws(StorageError) {
        guard let epochs = unsavedLeaderEpochs else { return }
        try ReplicaCheckpoints.writeLeaderEpochs(epochs, directory: directory, durable: durable)
        unsavedLeaderEpochs = nil
    }

    // MARK: read

    /// Whole batches from the one holding `offset`, up to `maxBytes` (but at least one batch
    /// when `minOneBatch`), stopping before any batch that reaches `upperBound` (exclusive,
    /// default the LEO; the broker passes the high watermark).
    public func read(from offset: Offset, maxBytes: Int, upperBound: Offset? = nil,
                     minOneBatch: Bool = true) throws(StorageError) -> LogSlice {
        guard !isClosed else { throw .closed }
        let end = logEndOffset
        guard offset >= logStartOffset, offset <= end else {
            throw .offsetOutOfRange(requested: offset, logStart: logStartOffset, logEnd: end)
        }
        let bound = min(upperBound ?? end, end)
        guard offset < bound, maxBytes >= 0 else { return .empty }
        var i = segmentIndex(containing: offset)
        while i < segments.count {
            let segment = segments[i]
            if let (start, prefix) = try segment.translate(offset) {
                guard prefix.lastOffset < bound else { return .empty }
                // Whole batches below the bound: stop at the batch holding the bound.
                let boundPosition = bound < segment.nextOffset
                    ? (try segment.translate(bound, from: start)?.position ?? FilePosition(segment.sizeBytes))
                    : FilePosition(segment.sizeBytes)
                let byteLimit = FilePosition(min(start.value + Int64(maxBytes), boundPosition.value))
                var stop = try segment.lastBatchEnd(from: start, notAfter: byteLimit)
                if stop == start {
                    guard minOneBatch else { return .empty }
                    stop = start + prefix.totalBytes
                }
                return LogSlice(file: try segment.log.file(), position: start, length: stop - start, firstBatchOffset: prefix.baseOffset)
            }
            i += 1  // the offset fell in a gap (compaction) at this segment's end
        }
        return .empty
    }

    /// The index of the last segment whose base offset is at or below `offset` (0 if none).
    func segmentIndex(containing offset: Offset) -> Int {
        var low = 0
        var high = segments.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if segments[middle].baseOffset <= offset { low = middle } else { high = middle - 1 }
        }
        return low
    }

    // MARK: lookups by time

    /// The first record whose timestamp is at or after `target` (ListOffsets by timestamp);
    /// nil when every record is older.
    public func offset(forTimestamp target: Timestamp) throws(StorageError) -> TimestampedOffset? {
        guard !isClosed else { throw .closed }
        for segment in segments where segment.maxTimestamp >= target && segment.nextOffset > logStartOffset {
            var from = max(logStartOffset, segment.baseOffset)
            if let entry = try segment.timeIndex.lastEntry(before: target) { from = max(from, entry.offset + 1) }
            guard let (position, _) = try segment.translate(from) else { continue }
            let scanner = try BatchScanner(file: segment.log.file(), from: Int(position.value), end: segment.sizeBytes, chunkBytes: 64 * 1024)
            while let (batchPosition, bytes) = try scanner.next() {
                let header = try checkedHeader(bytes, segment: segment, position: batchPosition)
                if header.maxTimestamp >= target, header.lastOffset >= logStartOffset,
                   let found = firstRecord(in: bytes, header: header, from: logStartOffset, where: { $0 >= target }) {
                    return found
                }
                scanner.advance(by: header.totalBytes)
            }
        }
        return nil
    }

    /// The record with the largest timestamp (ListOffsets MAX_TIMESTAMP); the first one if tied.
    public func maxTimestampOffset() throws(StorageError) -> TimestampedOffset? {
        guard !isClosed else { throw .closed }
        guard let segment = segments.filter({ !$0.isEmpty }).max(by: { $0.maxTimestamp < $1.maxTimestamp }),
              segment.maxTimestamp != .none
        else { return nil }
        if segment.offsetOfMaxTimestamp >= logStartOffset, let (position, _) = try segment.translate(segment.offsetOfMaxTimestamp) {
            let scanner = try BatchScanner(file: segment.log.file(), from: Int(position.value), end: segment.sizeBytes, chunkBytes: 64 * 1024)
            if let (batchPosition, bytes) = try scanner.next() {
                let header = try checkedHeader(bytes, segment: segment, position: batchPosition)
                if let found = firstRecord(in: bytes, header: header, from: logStartOffset, where: { $0 >= segment.maxTimestamp }) {
                    return found
                }
            }
        }
        // The newest record was deleted (DeleteRecords): find the largest remaining one the slow way.
        var best: TimestampedOffset?
        for segment in segments where segment.nextOffset > logStartOffset {
            let scanner = try BatchScanner(file: segment.log.file(), end: segment.sizeBytes)
            while let (position, bytes) = try scanner.next() {
                let header = try checkedHeader(bytes, segment: segment, position: position)
                scanner.advance(by: header.totalBytes)
                guard header.lastOffset >= logStartOffset, best.map({ header.maxTimestamp > $0.timestamp }) ?? true else { continue }
                if let candidate = newestRecord(in: bytes, header: header, from: logStartOffset),
                   best.map({ candidate.timestamp > $0.timestamp }) ?? true {
                    best = candidate
                }
            }
        }
        return best
    }

    /// A served batch that fails its CRC is refused, and logged with its file and position.
    private func checkedHeader(_ bytes: UnsafeRawBufferPointer, segment: LogSegment, position: Int) throws(StorageError) -> RecordBatchHeader {
        do { return try segment.checkedHeader(bytes, at: position, check: .checksum) } catch {
            logger.error("corrupt batch in segment", metadata: ["error": "\(error)"])
            throw error
        }
    }

    /// The first record of a batch, at or after `minimum`, whose timestamp satisfies `matches`
    /// (a compressed batch is decompressed to look). A LogAppendTime batch's records all carry
    /// its max timestamp.
    private func firstRecord(in bytes: UnsafeRawBufferPointer, header: RecordBatchHeader, from minimum: Offset,
                             where matches: (Timestamp) -> Bool) -> TimestampedOffset? {
        if header.attributes.isLogAppendTime {
            guard matches(header.maxTimestamp) else { return nil }
            return TimestampedOffset(offset: max(header.baseOffset, minimum), timestamp: header.maxTimestamp)
        }
        var found: TimestampedOffset?
        try? header.forEachRecord(in: bytes) { record, _ in
            guard found == nil else { return }
            let timestamp = Timestamp(ms: header.baseTimestamp.ms &+ record.timestampDelta)
            let offset = header.baseOffset + Int64(record.offsetDelta)
            if offset >= minimum && matches(timestamp) { found = TimestampedOffset(offset: offset, timestamp: timestamp) }
        }
        return found
    }

    /// The first record, at or after `minimum`, holding the batch's largest timestamp among them.
    private func newestRecord(in bytes: UnsafeRawBufferPointer, header: RecordBatchHeader,
                              from minimum: Offset) -> TimestampedOffset? {
        if header.attributes.isLogAppendTime { return firstRecord(in: bytes, header: header, from: minimum) { _ in true } }
        var newest: TimestampedOffset?
        try? header.forEachRecord(in: bytes) { record, _ in
            let timestamp = Timestamp(ms: header.baseTimestamp.ms &+ record.timestampDelta)
            let offset = header.baseOffset + Int64(record.offsetDelta)
            if offset >= minimum && timestamp > newest?.timestamp ?? Timestamp(ms: .min) {
                newest = TimestampedOffset(offset: offset, timestamp: timestamp)
            }
        }
        return newest
    }

    // MARK: close

    /// Flushes, trims the indexes and leaves the clean-shutdown marker that makes the next open fast.
    public func close() throws(StorageError) {
        guard !isClosed else { return }
        try flush()
        try saveLeaderEpochs(durable: true)
        // Closed from here on, even if what follows fails: the segments' indexes unmap.
        isClosed = true
        for segment in segments { try segment.close() }
        try writeCheckpoint(durable: true)
        try FileSystem.writeAtomically(directory + "/" + Self.cleanShutdownName, contents: "clean\n", durable: true)
        try FileSystem.syncDirectory(directory)
    }

    /// A shutdown's close of many logs, in three steps that each end with one syncfs of the log
    /// dir (`FileSystem.syncFilesystem`) instead of some five fsyncs a partition (measured at
    /// 10,000 partitions: no shorter stop on this machine yet, docs/storage.md):
    /// 1. `beginShutdownClose`: closed, indexes trimmed, nothing fsynced;
    /// 2. `writeShutdownCheckpoint`: the recovery point at the log end, once the syncfs after 1
    ///    made the data durable;
    /// 3. `leaveShutdownMarker`: the clean-shutdown marker, once the syncfs after 2 made the
    ///    checkpoint durable.
    /// A crash between any two leaves a log that the next open recovers: no checkpoint claims
    /// data before it is on disk, and no marker a checkpoint.
    public func beginShutdownClose() throws(StorageError) {
        guard !isClosed else { throw .closed }
        isClosed = true
        for segment in segments { try segment.close() }
    }

    /// Step 2 of a shutdown's close (`beginShutdownClose`).
    public func writeShutdownCheckpoint() throws(StorageError) {
        precondition(isClosed, "the shutdown checkpoint follows beginShutdownClose")
        unsynced = []
        unflushedRecords = 0
        try saveLeaderEpochs(durable: false)
        recoveryPoint = logEndOffset
        try writeCheckpoint(durable: false)
    }

    /// Step 3 of a shutdown's close (`beginShutdownClose`).
    public func leaveShutdownMarker() throws(StorageError) {
        precondition(isClosed, "the shutdown marker follows beginShutdownClose")
        try FileSystem.writeAtomically(directory + "/" + Self.cleanShutdownName, contents: "clean\n", durable: false)
    }

    func writeCheckpoint(durable: Bool) throws(StorageError) {
        let text = "version=1\nlogStartOffset=\(logStartOffset.value)\nrecoveryPoint=\(recoveryPoint.value)\n"
        try FileSystem.writeAtomically(directory + "/" + Self.checkpointName, contents: text, durable: durable)
    }

    func setLogStartOffset(_ offset: Offset) { logStartOffset = offset }
    func setRecoveryPoint(_ offset: Offset) { recoveryPoint = offset }
}

extension PartitionLog {
    /// Every batch from `offset` to the log end, in order (the whole-log scans that rebuild a
    /// replica's state: producer state, the leader-epoch cache), 1 MiB read at a time; stops at
    /// a batch that does not move the scan forward.
    public func forEachBatch(from offset: Offset, _ body: (RecordBatchHeader, UnsafeRawBufferPointer) -> Void) throws(StorageError) {
        var next = offset
        let end = logEndOffset
        while next < end {
            let slice = try read(from: next, maxBytes: 1 << 20, upperBound: end, minOneBatch: true)
            guard !slice.isEmpty else { break }
            let bytes = try slice.readBytes()
            let before = next
            bytes.withUnsafeReadableBytes { raw in
                _ = RecordBatchHeader.forEachBatch(in: raw) { header, batch in
                    next = header.nextOffset
                    body(header, batch)
                }
            }
            guard next > before else { break }
        }
    }
}
