import BrookCore
import BrookProtocol
import BrookStorage
import NIOCore
import Synchronization

/// One partition this broker leads: its log under a lock, and the fetches parked on it.
/// A single node is the whole ISR, so the high watermark is the log end offset.
public final class Partition: Sendable {
    public let topic: String
    public let index: Int32
    public let logDirectory: String
    let log: Mutex<PartitionLog>
    let parked = Mutex<[ObjectIdentifier: @Sendable () -> Void]>([:])
    /// The leader epoch stamped into appended batches (constant until the cluster issue).
    public let leaderEpoch = LeaderEpoch(0)

    init(topic: String, index: Int32, logDirectory: String, log: sending PartitionLog) {
        self.topic = topic
        self.index = index
        self.logDirectory = logDirectory
        self.log = Mutex(log)
    }

    public var name: String { "\(topic)-\(index)" }

    public struct Offsets: Sendable {
        public var logStart: Offset
        public var highWatermark: Offset
    }

    public var offsets: Offsets {
        log.withLock { Offsets(logStart: $0.logStartOffset, highWatermark: $0.logEndOffset) }
    }

    /// Appends validated batches and wakes the fetches parked here; returns what the append did
    /// and the log start offset after it (read under the same lock).
    public func append(_ records: inout ByteBuffer) throws(StorageError) -> (AppendResult, logStart: Offset) {
        let epoch = leaderEpoch
        let result = try log.withLock { (log: inout PartitionLog) throws(StorageError) -> (AppendResult, logStart: Offset) in
            (try log.append(&records, leaderEpoch: epoch), log.logStartOffset)
        }
        wakeParked()
        return result
    }

    /// A request's current leader epoch checked against ours (-1: not given, always fine).
    public func checkLeaderEpoch(_ current: LeaderEpoch) -> ErrorCode? {
        guard current != LeaderEpoch(-1), current != leaderEpoch else { return nil }
        return current > leaderEpoch ? .unknownLeaderEpoch : .fencedLeaderEpoch
    }

    public struct ReadResult: Sendable {
        public var slice: LogSlice
        public var offsets: Offsets
    }

    /// Whole batches from `offset` up to the high watermark.
    public func read(from offset: Offset, maxBytes: Int, minOneBatch: Bool) throws(StorageError) -> ReadResult {
        try log.withLock { (log: inout PartitionLog) throws(StorageError) -> ReadResult in
            let slice = try log.read(from: offset, maxBytes: maxBytes, upperBound: log.logEndOffset, minOneBatch: minOneBatch)
            return ReadResult(slice: slice, offsets: Offsets(logStart: log.logStartOffset, highWatermark: log.logEndOffset))
        }
    }

    /// Runs `body` on the log under the partition's lock.
    public func withLog<T: Sendable>(_ body: (PartitionLog) throws(StorageError) -> T) throws(StorageError) -> T {
        try log.withLock { (log: inout PartitionLog) throws(StorageError) -> T in try body(log) }
    }

    /// Parks a fetch: `wake` runs (once) on the next append. Returns false when too many wait.
    func park(_ key: ObjectIdentifier, wake: @escaping @Sendable () -> Void) -> Bool {
        parked.withLock { waiting in
            guard waiting.count < Limits.parkedFetchesMax else { return false }
            waiting[key] = wake
            return true
        }
    }

    func unpark(_ key: ObjectIdentifier) {
        _ = parked.withLock { $0.removeValue(forKey: key) }
    }

    func wakeParked() {
        let woken = parked.withLock { waiting -> [@Sendable () -> Void] in
            guard !waiting.isEmpty else { return [] }
            defer { waiting.removeAll(keepingCapacity: true) }
            return Array(waiting.values)
        }
        for wake in woken { wake() }
    }
}

/// A log slice that the server sends from its file (sendfile) rather than from memory.
public final class LogRecords: FileRecords {
    public let slice: LogSlice
    public init(_ slice: LogSlice) { self.slice = slice }
    public var byteCount: Int { slice.length }
}
