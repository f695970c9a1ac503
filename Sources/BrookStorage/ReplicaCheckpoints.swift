import BrookCore
import BrookRecords

/// The small files a replicated partition keeps beside its segments, in Kafka's formats so that
/// the layout reads the same to a Kafka operator:
/// - `leader-epoch-checkpoint` in the partition directory: version 0, a count, then one
///   `epoch startOffset` line per leader epoch (the leader-epoch cache);
/// - `partition.metadata` in the partition directory: `version: 0` and `topic_id: <id>`, so a
///   directory is never taken for a later topic of the same name;
/// - `replication-offset-checkpoint` in each log directory: version 0, a count, then one
///   `topic partition highWatermark` line per partition.
/// Each is replaced atomically and fsynced; a file that does not parse is refused, never guessed.
public enum ReplicaCheckpoints {
    public static let leaderEpochFileName = "leader-epoch-checkpoint"
    public static let partitionMetadataFileName = "partition.metadata"
    public static let highWatermarkFileName = "replication-offset-checkpoint"
    /// More lines than this in one checkpoint is refused.
    public static let entriesMax = 1_000_000

    // MARK: leader epochs

    /// Without `durable` the file is replaced but not fsynced (entries whose loss in a crash loses
    /// nothing, or a syncfs of its file system follows).
    public static func writeLeaderEpochs(_ cache: LeaderEpochCache, directory: String, durable: Bool = true) throws(StorageError) {
        let lines = cache.entries.map { "\($0.epoch.value) \($0.startOffset.value)" }
        try write(lines, to: directory + "/" + leaderEpochFileName, durable: durable)
    }

    /// The cache recorded in `directory`; empty when there is none yet.
    public static func readLeaderEpochs(directory: String) throws(StorageError) -> LeaderEpochCache {
        let path = directory + "/" + leaderEpochFileName
        guard let rows = try read(path, fields: 2) else { return LeaderEpochCache() }
        var entries: [LeaderEpochCache.Entry] = []
        for row in rows {
            guard let epoch = Int32(row[0]), epoch >= 0, let start = Int64(row[1]), start >= 0 else {
                throw .corruptCheckpoint(path: path, reason: "'\(row.joined(separator: " "))' is not an epoch and an offset")
            }
            let entry = LeaderEpochCache.Entry(epoch: LeaderEpoch(epoch), startOffset: Offset(start))
            if let last = entries.last, !(last.epoch < entry.epoch && last.startOffset < entry.startOffset) {
                throw .corruptCheckpoint(path: path, reason: "epochs \(last) then \(entry) do not increase")
            }
            entries.append(entry)
        }
        return LeaderEpochCache(entries: entries)
    }

    // MARK: partition metadata

    public static func writePartitionMetadata(topicID: String, directory: String) throws(StorageError) {
        precondition(!topicID.isEmpty && !topicID.contains("\n"), "a topic id is one word")
        try FileSystem.writeAtomically(directory + "/" + partitionMetadataFileName, contents: "version: 0\ntopic_id: \(topicID)\n", durable: true)
    }

    /// The topic id recorded in `directory`, nil when there is none.
    public static func readPartitionMetadata(directory: String) throws(StorageError) -> String? {
        let path = directory + "/" + partitionMetadataFileName
        guard let text = try FileSystem.readFile(path, bytesMax: 4096) else { return nil }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingSpaces }
            guard parts.count == 2 else { throw .corruptCheckpoint(path: path, reason: "'\(line)' is not key: value") }
            fields[parts[0]] = parts[1]
        }
        guard fields["version"] == "0", let id = fields["topic_id"], !id.isEmpty else {
            throw .corruptCheckpoint(path: path, reason: "expected version: 0 and a topic_id")
        }
        return id
    }

    // MARK: high watermarks

    public struct HighWatermark: Equatable, Sendable {
        public var topic: String
        public var partition: Int32
        public var offset: Offset
        public init(topic: String, partition: Int32, offset: Offset) {
            self.topic = topic
            self.partition = partition
            self.offset = offset
        }
    }

    public static func writeHighWatermarks(_ marks: [HighWatermark], logDirectory: String) throws(StorageError) {
        let lines = marks.map { mark -> String in
            precondition(!mark.topic.contains(" ") && !mark.topic.contains("\n"), "topic names have no spaces")
            return "\(mark.topic) \(mark.partition) \(mark.offset.value)"
        }
        try write(lines, to: logDirectory + "/" + highWatermarkFileName)
    }

    public static func readHighWatermarks(logDirectory: String) throws(StorageError) -> [HighWatermark] {
        let path = logDirectory + "/" + highWatermarkFileName
        guard let rows = try read(path, fields: 3) else { return [] }
        return try rows.map { row throws(StorageError) in
            guard let partition = Int32(row[1]), partition >= 0, let offset = Int64(row[2]), offset >= 0 else {
                throw .corruptCheckpoint(path: path, reason: "'\(row.joined(separator: " "))' is not topic, partition and offset")
            }
            return HighWatermark(topic: row[0], partition: partition, offset: Offset(offset))
        }
    }

    // MARK: the shared format

    static func write(_ lines: [String], to path: String, durable: Bool = true) throws(StorageError) {
        precondition(lines.count <= entriesMax, "\(lines.count) checkpoint entries")
        let text = (["0", String(lines.count)] + lines).joined(separator: "\n") + "\n"
        try FileSystem.writeAtomically(path, contents: text, durable: durable)
    }

    /// The rows of a checkpoint file (each `fields` words), nil when the file does not exist.
    static func read(_ path: String, fields: Int) throws(StorageError) -> [[String]]? {
        guard let text = try FileSystem.readFile(path, bytesMax: 256 * 1024 * 1024) else { return nil }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 2, lines[0] == "0", let count = Int(lines[1]), count >= 0, count <= entriesMax else {
            throw .corruptCheckpoint(path: path, reason: "expected version 0 and a count")
        }
        let body = lines.dropFirst(2).filter { !$0.isEmpty }
        guard body.count == count else { throw .corruptCheckpoint(path: path, reason: "\(count) entries announced, \(body.count) found") }
        return try body.map { line throws(StorageError) in
            let words = line.split(separator: " ").map(String.init)
            guard words.count == fields else { throw .corruptCheckpoint(path: path, reason: "'\(line)' does not have \(fields) fields") }
            return words
        }
    }
}

private extension Substring {
    var trimmingSpaces: String { String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed()) }
}

extension LeaderEpochCache {
    /// The cache as the log's batches say it (each batch carries the epoch of the leader that
    /// wrote it): what a replica uses when its `leader-epoch-checkpoint` is missing or
    /// unreadable, as Kafka rebuilds it at load. Reads the whole log once.
    public static func rebuilt(from log: PartitionLog) throws(StorageError) -> LeaderEpochCache {
        var cache = LeaderEpochCache()
        try cache.extend(from: log, at: log.logStartOffset)
        return cache
    }

    /// Adds the epochs newer than the latest that the batches from `offset` on carry (a log's
    /// tail past the epochs its checkpoint has).
    public mutating func extend(from log: PartitionLog, at offset: Offset) throws(StorageError) {
        try log.forEachBatch(from: offset) { header, _ in
            let epoch = header.partitionLeaderEpoch
            guard epoch >= LeaderEpoch(0), latestEpoch.map({ epoch > $0 }) ?? true else { return }
            // An entry past this batch would be a checkpoint ahead of its log: not added to.
            guard entries.last.map({ $0.startOffset <= header.baseOffset }) ?? true else { return }
            assign(epoch, startOffset: header.baseOffset)
        }
    }
}
