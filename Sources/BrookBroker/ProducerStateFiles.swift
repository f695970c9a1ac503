import BrookCore
import BrookRecords
import BrookStorage
import BrookTxn
import Glibc
import Logging

/// A partition's producer state on disk: `<offset>.snapshot` files (the state up to an offset)
/// and `<segment base>.txnindex` files (its aborted transactions), beside the segments.
/// At open the newest snapshot not past the log end is loaded and the log after it replayed;
/// without one the whole log is.
enum ProducerStateFiles {
    /// Snapshots kept; older ones are deleted when a new one is written.
    static let snapshotsKept = 2
    /// How often a changed producer state is written (besides at close).
    static let snapshotIntervalMs: Int64 = 60_000

    /// Loads the producer state of the log in `directory`; returns it and its snapshot's offset.
    static func load(log: PartitionLog, directory: String, now: Int64, logger: Logger) throws(StorageError) -> (ProducerState, Offset) {
        let names = try FileSystem.list(directory)
        var state = ProducerState()
        var from = log.logStartOffset
        var snapshotOffset = Offset.zero
        let end = log.logEndOffset
        for (offset, name) in names.compactMap({ n in ProducerSnapshot.offset(fileName: n).map { ($0, n) } }).sorted(by: { $0.0 > $1.0 }) {
            guard offset <= end else {
                logger.info("producer snapshot past the log end; ignored", metadata: ["file": "\(directory)/\(name)"])
                continue
            }
            do {
                guard let bytes = try FileSystem.readBytes(directory + "/" + name, bytesMax: 64 << 20) else { continue }
                state = try ProducerSnapshot.decode(bytes)
                from = max(offset, log.logStartOffset)
                snapshotOffset = offset
                break
            } catch {
                logger.warning("unreadable producer snapshot; trying an older one", metadata: ["file": "\(directory)/\(name)", "error": "\(error)"])
            }
        }
        var indexed: [AbortedTxn] = []
        for name in names where name.hasSuffix(TxnIndex.suffix) {
            if let bytes = try FileSystem.readBytes(directory + "/" + name, bytesMax: 256 << 20) {
                indexed += TxnIndex.decode(bytes)
            }
        }
        // Aborts below the replay's start come from the index; the replay finds the rest again
        // (so none is listed twice, and a crash that lost an index entry loses nothing).
        state.restoreAborted(indexed.filter { $0.lastOffset < from && $0.lastOffset >= log.logStartOffset })
        let known = Set(indexed.map(\.lastOffset))
        let replayed = try replay(log: log, from: from, into: &state, now: now)
        // Aborts found in the log but missing from .txnindex (lost in a crash) are written again.
        for txn in state.aborted where txn.lastOffset >= from && !known.contains(txn.lastOffset) {
            let base = log.segmentBaseOffsets.last(where: { $0 <= txn.lastOffset }) ?? .zero
            try appendAborted(txn, directory: directory, segmentBase: base)
        }
        if replayed > 0 {
            logger.info("rebuilt producer state from the log", metadata: ["dir": "\(directory)", "batches": "\(replayed)",
                                                                              "from": "\(from)", "producers": "\(state.producers.count)"])
        }
        return (state, snapshotOffset)
    }

    /// Feeds every batch from `from` to the log end into `state`; returns how many had producers.
    static func replay(log: PartitionLog, from: Offset, into state: inout ProducerState, now: Int64) throws(StorageError) -> Int {
        var count = 0
        try log.forEachBatch(from: from) { header, batch in
            guard header.lastOffset >= from, header.producerID != .none else { return }
            let marker = header.attributes.isControl ? ControlBatch.markerAndCoordinatorEpoch(header, batch: batch) : nil
            if header.attributes.isControl && marker == nil { return }
            // A marker's coordinator epoch is read back too: a restarted or new leader refuses
            // markers from a replaced coordinator as the one that took the first did.
            state.appended(ProducerBatch(header, marker: marker?.marker), firstOffset: header.baseOffset,
                           coordinatorEpoch: marker?.coordinatorEpoch ?? -1, now: min(now, header.maxTimestamp.ms))
            count += 1
        }
        return count
    }

    /// Writes `state` as the snapshot at `offset` and deletes all but the newest ones.
    static func writeSnapshot(_ state: ProducerState, offset: Offset, directory: String) throws(StorageError) {
        try FileSystem.writeAtomically(directory + "/" + ProducerSnapshot.fileName(offset), bytes: ProducerSnapshot.encode(state), durable: false)
        let old = try FileSystem.list(directory).compactMap { n in ProducerSnapshot.offset(fileName: n).map { ($0, n) } }
            .sorted { $0.0 > $1.0 }.dropFirst(snapshotsKept)
        for (_, name) in old { try FileSystem.remove(directory + "/" + name) }
    }

    /// Appends an aborted transaction to the `.txnindex` of the segment holding its marker.
    static func appendAborted(_ txn: AbortedTxn, directory: String, segmentBase: Offset) throws(StorageError) {
        let path = directory + "/" + String(ProducerSnapshot.fileName(segmentBase).dropLast(".snapshot".count)) + TxnIndex.suffix
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        defer { Glibc.close(fd) }
        let bytes = TxnIndex.encode(txn)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw .io(operation: "write", path: path, errno: errno) }
    }

    /// The log was cut back to end at `offset`: aborted transactions whose marker was at or past
    /// it leave the `.txnindex` files (a file left empty goes).
    static func truncateIndexes(directory: String, from offset: Offset) throws(StorageError) {
        for name in try FileSystem.list(directory) where name.hasSuffix(TxnIndex.suffix) {
            let path = directory + "/" + name
            guard let bytes = try FileSystem.readBytes(path, bytesMax: 256 << 20) else { continue }
            let entries = TxnIndex.decode(bytes)
            let kept = entries.filter { $0.lastOffset < offset }
            guard kept.count < entries.count else { continue }
            if kept.isEmpty {
                try FileSystem.remove(path)
            } else {
                try FileSystem.writeAtomically(path, bytes: kept.flatMap(TxnIndex.encode), durable: true)
            }
        }
    }

    /// Deletes `.txnindex` files whose every entry lies below the log start (retention passed them).
    static func removeStaleIndexes(directory: String, logStart: Offset) throws(StorageError) {
        for name in try FileSystem.list(directory) where name.hasSuffix(TxnIndex.suffix) {
            guard let bytes = try FileSystem.readBytes(directory + "/" + name, bytesMax: 256 << 20) else { continue }
            if TxnIndex.decode(bytes).allSatisfy({ $0.lastOffset < logStart }) { try FileSystem.remove(directory + "/" + name) }
        }
    }
}
