import BrookCore
import Logging

extension PartitionLog {
    /// Opens the partition log in `directory`, creating it when missing. After a clean shutdown
    /// the segments are trusted and only their tails are read; otherwise every segment from the
    /// recovery point on is scanned, its indexes rebuilt, and the log cut at the first torn or
    /// corrupt batch (logged with its file and position). No invalid batch is ever served.
    /// `durable: false` leaves the checkpoint it writes (and the clean-shutdown marker's removal)
    /// to the page cache: the caller opening many logs at a start makes them durable at once
    /// (FileSystem.syncFilesystem) before anything is appended, instead of fsyncs per log.
    public static func open(directory: String, config: LogConfig = LogConfig(), clock: any Clock = SystemClock(),
                            logger: Logger = Logger(label: "brook.storage"), durable: Bool = true,
                            pools: SegmentPools = .shared) throws(StorageError) -> PartitionLog {
        try FileSystem.createDirectory(directory)
        let checkpoint = try readCheckpoint(directory)
        let markerPath = directory + "/" + cleanShutdownName
        let clean = FileSystem.exists(markerPath)
        // One listing, taken again only when the cleanup changed the directory.
        var names = try FileSystem.list(directory)
        let removed = try removeLeftovers(directory, names: names, logger: logger)
        let swapped = try completeSwaps(directory, names: names, config: config, logger: logger, pools: pools)
        if removed || swapped { names = try FileSystem.list(directory) }
        let bases = names.compactMap { LogSegment.baseOffset(fileName: $0, suffix: ".log") }.sorted()
        // From here on a crash must be recovered: the marker goes before anything is written.
        try FileSystem.remove(markerPath)

        var segments: [LogSegment] = []
        var recovered = false
        var recoveredCount = 0
        for (i, base) in bases.enumerated() {
            let isLast = i == bases.count - 1
            let segment = try LogSegment(directory: directory, baseOffset: base, config: config, create: false, writable: isLast, pools: pools)
            let belowRecoveryPoint = !isLast && bases[i + 1] <= checkpoint.recoveryPoint
            var trusted = false
            if clean || belowRecoveryPoint {
                do {
                    try segment.loadTail()
                    trusted = true
                } catch {
                    logger.warning("segment failed its load checks; rebuilding it", metadata: [
                        "file": "\(segment.logPath)", "reason": "\(error)",
                    ])
                }
            }
            segments.append(segment)
            guard !trusted else { continue }
            recovered = true
            recoveredCount += 1
            let expectedFirst = segments.count > 1 ? segments[segments.count - 2].nextOffset : base
            let defect = try segment.recover(config: config, expectedFirstOffset: expectedFirst, logger: logger)
            if defect != nil && !isLast {
                // Everything after a corrupt batch is untrusted: drop the later segments.
                for later in bases[(i + 1)...] {
                    logger.warning("deleting segment after a corrupt one", metadata: ["base_offset": "\(later)", "dir": "\(directory)"])
                    let doomed = try LogSegment(directory: directory, baseOffset: later, config: config, create: false, writable: false, pools: pools)
                    try doomed.delete()
                }
                break
            }
            // A recovered segment that is not the last is sealed as a roll would have done.
            if !isLast { try segment.seal(sync: true) }
        }

        var logStart = checkpoint.logStartOffset
        if segments.isEmpty {
            segments.append(try LogSegment(directory: directory, baseOffset: logStart, config: config, create: true, writable: true, pools: pools))
        }
        logStart = max(logStart, segments[0].baseOffset)
        let log = PartitionLog(directory: directory, config: config, clock: clock, logger: logger, pools: pools, segments: segments,
                               logStartOffset: logStart, recoveryPoint: checkpoint.recoveryPoint)
        if logStart > log.logEndOffset {
            // Data below the start was lost or deleted: never hand out an offset twice.
            try log.truncateFully(startingAt: logStart)
        }
        log.segmentsRecoveredAtOpen = recoveredCount
        // A recovered tail is valid but not necessarily on disk: the recovery point stays where
        // it was (so a second crash scans it again) instead of paying an fsync of the whole tail.
        log.setRecoveryPoint(recovered ? min(checkpoint.recoveryPoint, log.logEndOffset) : log.logEndOffset)
        log.recoveryPointAtOpen = log.recoveryPoint
        // Written only when it changes (a clean close leaves it as a clean open finds it).
        if !checkpoint.read || checkpoint.logStartOffset != log.logStartOffset || checkpoint.recoveryPoint != log.recoveryPoint {
            try log.writeCheckpoint(durable: durable)
        }
        logger.info("opened partition log", metadata: [
            "dir": "\(directory)", "clean": "\(clean)", "segments": "\(log.segmentCount)",
            "log_start_offset": "\(log.logStartOffset)", "log_end_offset": "\(log.logEndOffset)",
        ])
        return log
    }

    struct Checkpoint {
        var logStartOffset = Offset.zero
        var recoveryPoint = Offset.zero
        /// Both values were read from the file (not defaults).
        var read = false
    }

    static func readCheckpoint(_ directory: String) throws(StorageError) -> Checkpoint {
        var checkpoint = Checkpoint()
        guard let text = try FileSystem.readText(directory + "/" + checkpointName) else { return checkpoint }
        var found = 0
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let value = Int64(parts[1]), value >= 0 else { continue }
            switch parts[0] {
            case "logStartOffset": checkpoint.logStartOffset = Offset(value); found += 1
            case "recoveryPoint": checkpoint.recoveryPoint = Offset(value); found += 1
            default: break
            }
        }
        // Set before the return (a `defer` ran after the value was returned, so every open
        // rewrote an unchanged checkpoint: a file created and renamed per partition at a start).
        checkpoint.read = found == 2
        return checkpoint
    }

    /// Temporary files of an interrupted write or compaction, segments retention had detached
    /// but not yet removed, and indexes without a log, among
    /// `names` (the directory's listing); true when it removed one.
    static func removeLeftovers(_ directory: String, names: [String], logger: Logger) throws(StorageError) -> Bool {
        let logs = Set(names.filter { $0.hasSuffix(".log") }.map { String($0.dropLast(4)) })
        var removed = false
        for name in names {
            let orphanIndex = (name.hasSuffix(".index") || name.hasSuffix(".timeindex"))
                && !logs.contains(String(name.prefix(while: { $0 != "." })))
            if name.hasSuffix(".cleaned") || name.hasSuffix(".tmp") || name.hasSuffix(LogSegment.deletedSuffix) || orphanIndex {
                logger.info("removing leftover file", metadata: ["file": "\(directory)/\(name)"])
                try FileSystem.remove(directory + "/" + name)
                removed = true
            }
        }
        return removed
    }
}
