import BrookCore
import BrookRaft
import BrookRecords
import BrookStorage
import Logging
import NIOCore

/// The durable side of one Raft node, on the storage engine:
/// - `log/`: the entries, one RecordBatch each in a partition log, entry index i at offset i-1,
///   the batch's partition leader epoch holding the entry's term (as Kafka's `__cluster_metadata`);
/// - `quorum-state`: term, vote and commit index, replaced atomically;
/// - `snapshot`: the latest snapshot with a CRC32C, replaced atomically.
/// Every `save` is fsynced before it returns: the driver sends nothing before.
public final class RaftStore {
    public let directory: String
    let log: PartitionLog
    let logger: Logger
    private(set) var snapshotIndex = LogIndex.zero

    static let stateName = "quorum-state"
    static let snapshotName = "snapshot"
    /// A snapshot larger than this is refused (the metadata image is small).
    public static let snapshotBytesMax = 256 << 20
    static let snapshotMagic: UInt32 = 0x4252_4B53 // "BRKS"

    public init(directory: String, logger: Logger) throws(StorageError) {
        self.directory = directory
        self.logger = logger
        try FileSystem.createDirectories(directory)
        var config = LogConfig()
        config.segmentBytes = 64 << 20
        log = try PartitionLog.open(directory: directory + "/log", config: config, logger: logger)
    }

    public func close() throws(StorageError) { try log.close() }

    static func offset(_ index: LogIndex) -> Offset { Offset(index.value - 1) }

    // MARK: load

    /// What the node finds at start. A crash between writing the hard state and the entries can
    /// leave a commit index past the log's end: it is lowered (commitment is learned again).
    public func load() throws(StorageError) -> PersistentState {
        var state = PersistentState()
        if let snapshot = try readSnapshot() {
            state.snapshot = snapshot
            snapshotIndex = snapshot.index
            if log.logEndOffset < Self.offset(snapshot.index + 1) || log.logStartOffset > Self.offset(snapshot.index + 1) {
                // The log ends before the snapshot, or was cut past it: it holds nothing useful.
                try log.truncateFully(startingAt: Self.offset(snapshot.index + 1))
            } else if log.logStartOffset < Self.offset(snapshot.index + 1) {
                try log.deleteRecords(before: Self.offset(snapshot.index + 1))
            }
        }
        state.entries = try readEntries(from: snapshotIndex + 1)
        if let text = try FileSystem.readText(directory + "/" + Self.stateName) {
            state.hardState = try Self.parseHardState(text, path: directory + "/" + Self.stateName)
        }
        let lastIndex = snapshotIndex + Int64(state.entries.count)
        state.hardState.commit = min(state.hardState.commit, lastIndex)
        if let lastTerm = state.entries.last?.term ?? state.snapshot?.term, lastTerm > state.hardState.term {
            // Entries of a term are written only after that term's hard state: never expected.
            throw .invalidArgument("\(directory): the log holds term \(lastTerm) past the persisted term \(state.hardState.term)")
        }
        return state
    }

    func readEntries(from first: LogIndex) throws(StorageError) -> [Entry] {
        var entries: [Entry] = []
        var offset = Self.offset(first)
        while offset < log.logEndOffset {
            let buffer = try log.read(from: offset, maxBytes: 1 << 20).readBytes()
            guard buffer.readableBytes > 0 else { break }
            let before = entries.count
            var failure: StorageError?
            _ = buffer.withUnsafeReadableBytes { bytes in
                RecordBatchHeader.forEachBatch(in: bytes) { header, batch in
                    guard failure == nil, header.baseOffset >= offset else { return }
                    do {
                        try header.forEachRecord(in: batch) { record, section in
                            let key = record.key.map { Array(section[$0]) } ?? []
                            let value = record.value.map { Array(section[$0]) } ?? []
                            guard key.count == 1, let kind = Entry.Kind(rawValue: key[0]) else {
                                failure = .invalidArgument("\(self.directory): the batch at offset \(header.baseOffset) is not a Raft entry")
                                return
                            }
                            entries.append(Entry(term: Term(Int64(header.partitionLeaderEpoch.value)),
                                                 index: LogIndex(header.baseOffset.value + 1), kind: kind, data: value))
                        }
                    } catch {
                        failure = .invalidArgument("\(self.directory): the batch at offset \(header.baseOffset) is unreadable: \(error)")
                    }
                }
            }
            if let failure { throw failure }
            guard entries.count > before else { break }
            offset = Self.offset(entries[entries.count - 1].index + 1)
        }
        return entries
    }

    // MARK: save

    /// Persists what `ready` asks (Ready's steps 1-3) and fsyncs it.
    public func save(_ ready: Ready) throws(StorageError) {
        if let snapshot = ready.snapshot {
            try writeSnapshot(snapshot)
            try log.truncateFully(startingAt: Self.offset(snapshot.index + 1))
        }
        // The hard state goes first: a term is on disk before any entry of it.
        if let hardState = ready.hardState { try writeHardState(hardState) }
        if let first = ready.entries.first {
            if Self.offset(first.index) < log.logEndOffset { try log.truncate(to: Self.offset(first.index)) }
            precondition(log.logEndOffset == Self.offset(first.index), "entry \(first.index) would leave a hole in \(directory)")
            for entry in ready.entries { try append(entry) }
            try log.flush()
        }
    }

    func append(_ entry: Entry) throws(StorageError) {
        precondition(entry.term.value <= Int64(Int32.max), "terms fit the batch's 32-bit leader epoch")
        let record = SimpleRecord(key: [entry.kind.rawValue], value: entry.data, timestamp: Timestamp(ms: 0))
        var batch = ByteBuffer(bytes: RecordBatchBuilder.build(baseOffset: Self.offset(entry.index), records: [record]))
        let result = try log.append(&batch, leaderEpoch: LeaderEpoch(Int32(entry.term.value)))
        precondition(result.firstOffset == Self.offset(entry.index), "entry \(entry.index) landed at offset \(result.firstOffset)")
    }

    /// Makes `snapshot` (taken by this node) durable, then drops the entries it covers.
    public func install(_ snapshot: Snapshot) throws(StorageError) {
        try writeSnapshot(snapshot)
        try log.deleteRecords(before: min(Self.offset(snapshot.index + 1), log.logEndOffset))
    }

    // MARK: files

    func writeHardState(_ hardState: HardState) throws(StorageError) {
        let text = "version=1\nterm=\(hardState.term.value)\nvotedFor=\(hardState.votedFor.map { String($0.value) } ?? "-1")\ncommit=\(hardState.commit.value)\n"
        try FileSystem.writeAtomically(directory + "/" + Self.stateName, contents: text, durable: true)
    }

    static func parseHardState(_ text: String, path: String) throws(StorageError) -> HardState {
        var fields: [String: Int64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let value = Int64(parts[1]) else { throw .invalidArgument("\(path): unreadable line \(line)") }
            fields[String(parts[0])] = value
        }
        guard fields["version"] == 1, let term = fields["term"], let vote = fields["votedFor"], let commit = fields["commit"],
              term >= 0, commit >= 0, vote >= -1, vote <= Int64(Int32.max) else {
            throw .invalidArgument("\(path): not a version 1 quorum state")
        }
        return HardState(term: Term(term), votedFor: vote < 0 ? nil : NodeID(Int32(vote)), commit: LogIndex(commit))
    }

    func writeSnapshot(_ snapshot: Snapshot) throws(StorageError) {
        var buffer = ByteBuffer()
        buffer.writeInteger(Self.snapshotMagic)
        buffer.writeInteger(snapshot.index.value)
        buffer.writeInteger(snapshot.term.value)
        let configuration = snapshot.configuration.encoded
        buffer.writeInteger(UInt32(configuration.count))
        buffer.writeBytes(configuration)
        buffer.writeInteger(UInt32(snapshot.data.count))
        buffer.writeBytes(snapshot.data)
        let crc = CRC32C.checksum(buffer, from: 0, length: buffer.readableBytes)
        buffer.writeInteger(crc)
        try FileSystem.writeAtomically(directory + "/" + Self.snapshotName, bytes: Array(buffer.readableBytesView), durable: true)
        snapshotIndex = snapshot.index
    }

    func readSnapshot() throws(StorageError) -> Snapshot? {
        let path = directory + "/" + Self.snapshotName
        guard let bytes = try FileSystem.readBytes(path, bytesMax: Self.snapshotBytesMax) else { return nil }
        var buffer = ByteBuffer(bytes: bytes)
        let corrupt = StorageError.invalidArgument("\(path): corrupt snapshot")
        guard bytes.count >= 28, CRC32C.checksum(buffer, from: 0, length: bytes.count - 4) == buffer.getInteger(at: bytes.count - 4, as: UInt32.self),
              buffer.readInteger(as: UInt32.self) == Self.snapshotMagic,
              let index = buffer.readInteger(as: Int64.self), let term = buffer.readInteger(as: Int64.self),
              let configurationCount = buffer.readInteger(as: UInt32.self), let configurationBytes = buffer.readBytes(length: Int(configurationCount)),
              let configuration = Configuration(encoded: configurationBytes),
              let dataCount = buffer.readInteger(as: UInt32.self), let data = buffer.readBytes(length: Int(dataCount)),
              buffer.readableBytes == 4 else { throw corrupt }
        return Snapshot(index: LogIndex(index), term: Term(term), configuration: configuration, data: data)
    }
}
