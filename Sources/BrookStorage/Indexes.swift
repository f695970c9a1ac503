import BrookCore

/// The sparse offset index (`.index`): 8-byte entries of (offset - baseOffset: i32, position: i32),
/// big endian as Kafka's, one per `index.interval.bytes` of log. As in Kafka, an entry names the
/// last offset of a batch and the position where that batch starts.
final class OffsetIndex {
    static let entryBytes = 8
    let baseOffset: Offset
    let file: MappedIndexFile

    init(path: String, baseOffset: Offset, maxBytes: Int, writable: Bool, pool: OnDemandPool) throws(StorageError) {
        self.baseOffset = baseOffset
        file = try MappedIndexFile(path: path, entryBytes: Self.entryBytes, maxBytes: maxBytes, writable: writable, pool: pool)
    }

    func entry(_ i: Int) throws(StorageError) -> (offset: Offset, position: FilePosition) {
        let base = baseOffset
        return try file.entry(i) { p in (base + Int64(p.bigEndianInt32(at: 0)), FilePosition(Int64(p.bigEndianInt32(at: 4)))) }
    }

    func last() throws(StorageError) -> (offset: Offset, position: FilePosition)? {
        file.entryCount == 0 ? nil : try entry(file.entryCount - 1)
    }

    func append(offset: Offset, position: FilePosition) throws(StorageError) {
        let relative = offset - baseOffset
        precondition(relative >= 0 && relative <= Int64(Int32.max), "offset \(offset) does not fit segment \(baseOffset)")
        precondition(position.value <= Int64(Int32.max), "position \(position) beyond 32 bits")
        if let last = try last() { precondition(offset > last.offset && position > last.position, "index entries must increase") }
        try file.append { p in
            p.storeBigEndian(Int32(relative), at: 0)
            p.storeBigEndian(Int32(position.value), at: 4)
        }
    }

    /// The position to start scanning from for `target`: that of the last entry at or below it.
    func lookup(_ target: Offset) throws(StorageError) -> FilePosition {
        let relative = target - baseOffset
        guard relative >= 0 else { return .zero }
        let clamped = Int32(clamping: relative)
        guard let i = try file.lastIndex(where: { $0.bigEndianInt32(at: 0) <= clamped }) else { return .zero }
        return try entry(i).position
    }

    /// Drops the entries for offsets at or after `offset`.
    func truncate(from offset: Offset) throws(StorageError) {
        let base = baseOffset
        let keep = try file.lastIndex(where: { base + Int64($0.bigEndianInt32(at: 0)) < offset }).map { $0 + 1 } ?? 0
        file.truncate(toEntries: keep)
    }

    /// Entries increase strictly and point inside a log of `logBytes`.
    func sanityCheck(logBytes: Int) throws(StorageError) -> String? {
        var previous: (offset: Offset, position: FilePosition)?
        for i in 0..<file.entryCount {
            let e = try entry(i)
            if e.position.value >= Int64(logBytes) { return "entry \(i) points at \(e.position), past the log's \(logBytes) bytes" }
            if let previous, e.offset <= previous.offset || e.position <= previous.position {
                return "entry \(i) (\(e.offset), \(e.position)) does not increase"
            }
            if e.offset < baseOffset { return "entry \(i) offset \(e.offset) below the segment base" }
            previous = e
        }
        return nil
    }
}

/// The time index (`.timeindex`): 12-byte entries of (timestamp: i64, offset - baseOffset: i32),
/// big endian. Each entry is the largest timestamp seen so far in the segment and the offset
/// (last of its batch) where it was reached; timestamps strictly increase.
final class TimeIndex {
    static let entryBytes = 12
    let baseOffset: Offset
    let file: MappedIndexFile

    init(path: String, baseOffset: Offset, maxBytes: Int, writable: Bool, pool: OnDemandPool) throws(StorageError) {
        self.baseOffset = baseOffset
        file = try MappedIndexFile(path: path, entryBytes: Self.entryBytes, maxBytes: maxBytes, writable: writable, pool: pool)
    }

    func entry(_ i: Int) throws(StorageError) -> (timestamp: Timestamp, offset: Offset) {
        let base = baseOffset
        return try file.entry(i) { p in (Timestamp(ms: p.bigEndianInt64(at: 0)), base + Int64(p.bigEndianInt32(at: 8))) }
    }

    func last() throws(StorageError) -> (timestamp: Timestamp, offset: Offset)? {
        file.entryCount == 0 ? nil : try entry(file.entryCount - 1)
    }

    /// Appends when `timestamp` is above the last entry's (and the index has room).
    func maybeAppend(timestamp: Timestamp, offset: Offset) throws(StorageError) {
        if let last = try last(), timestamp <= last.timestamp { return }
        guard !file.isFull else { return }
        let relative = offset - baseOffset
        precondition(relative >= 0 && relative <= Int64(Int32.max), "offset \(offset) does not fit segment \(baseOffset)")
        try file.append { p in
            p.storeBigEndian(timestamp.ms, at: 0)
            p.storeBigEndian(Int32(relative), at: 8)
        }
    }

    /// The last entry whose timestamp is below `target`: every record up to its offset is older
    /// than `target`, so a search for `target` may start after it.
    func lastEntry(before target: Timestamp) throws(StorageError) -> (timestamp: Timestamp, offset: Offset)? {
        guard let i = try file.lastIndex(where: { $0.bigEndianInt64(at: 0) < target.ms }) else { return nil }
        return try entry(i)
    }

    func truncate(from offset: Offset) throws(StorageError) {
        let base = baseOffset
        let keep = try file.lastIndex(where: { base + Int64($0.bigEndianInt32(at: 8)) < offset }).map { $0 + 1 } ?? 0
        file.truncate(toEntries: keep)
    }

    func sanityCheck() throws(StorageError) -> String? {
        var previous: (timestamp: Timestamp, offset: Offset)?
        for i in 0..<file.entryCount {
            let e = try entry(i)
            if let previous, e.timestamp <= previous.timestamp || e.offset < previous.offset {
                return "entry \(i) (\(e.timestamp), \(e.offset)) does not increase"
            }
            previous = e
        }
        return nil
    }
}
