import BrookCore
import BrookRecords

/// Every failure of the storage engine, typed, with the file and position it concerns.
public enum StorageError: Error, Sendable, CustomStringConvertible {
    /// A system call failed (`errno` is the C error number).
    case io(operation: String, path: String, errno: Int32)
    /// The disk is full (ENOSPC or EDQUOT); the log was rolled back to its state before the write.
    case diskFull(path: String)
    /// The batch at `index` of an append failed validation; nothing of the append was written.
    case invalidBatch(index: Int, BatchDefect)
    /// A batch above `max.message.bytes`.
    case batchTooLarge(bytes: Int, limit: Int)
    /// Keyless record on a compacted topic (Kafka answers INVALID_RECORD).
    /// Records without a key for a compacted topic: their indexes among the request's records
    /// for the partition (counted across its batches), as Kafka's record errors name them.
    case missingKeyOnCompactedTopic(records: [Int32])
    /// A control batch (transaction marker) in a client's append: only coordinators write them
    /// (Kafka answers INVALID_RECORD).
    case controlBatchFromClient(index: Int)
    /// A CreateTime batch whose timestamps fall outside `message.timestamp.before.max.ms` /
    /// `message.timestamp.after.max.ms` around the broker's clock (INVALID_TIMESTAMP).
    case timestampOutOfRange(index: Int, timestamp: Int64, now: Int64, beforeMaxMs: Int64, afterMaxMs: Int64)
    case offsetOutOfRange(requested: Offset, logStart: Offset, logEnd: Offset)
    /// A segment file holds bytes that are not a valid batch where one must be.
    case corruptSegment(path: String, position: FilePosition, reason: String)
    case corruptIndex(path: String, reason: String)
    /// A checkpoint file (leader epochs, high watermarks, partition metadata) does not parse.
    case corruptCheckpoint(path: String, reason: String)
    case invalidConfig(key: String, value: String, reason: String)
    case invalidArgument(String)
    /// The log was closed.
    case closed

    public var description: String {
        switch self {
        case .io(let operation, let path, let errno):
            "\(operation) failed on \(path): \(String(cString: strerror(errno))) (errno \(errno))"
        case .diskFull(let path): "disk full while writing \(path): free space and retry"
        case .invalidBatch(let index, let defect): "batch \(index) of the request is invalid: \(defect)"
        case .batchTooLarge(let bytes, let limit): "batch of \(bytes) bytes exceeds max.message.bytes=\(limit)"
        case .missingKeyOnCompactedTopic(let records):
            "compacted topics require every record to have a key: \(records.count) record(s) without one"
        case .controlBatchFromClient(let index): "batch \(index) of the request is a control batch: clients may not write control records"
        case .timestampOutOfRange(let index, let timestamp, let now, let before, let after):
            "batch \(index) of the request has timestamp \(timestamp), outside [now - \(before), now + \(after)] ms of the broker's time \(now) "
                + "(message.timestamp.before.max.ms / message.timestamp.after.max.ms)"
        case .offsetOutOfRange(let requested, let start, let end):
            "offset \(requested) is outside the log [\(start), \(end))"
        case .corruptSegment(let path, let position, let reason): "corrupt segment \(path) at position \(position): \(reason)"
        case .corruptIndex(let path, let reason): "corrupt index \(path): \(reason)"
        case .corruptCheckpoint(let path, let reason): "corrupt checkpoint \(path): \(reason)"
        case .invalidConfig(let key, let value, let reason): "invalid \(key)=\(value): \(reason)"
        case .invalidArgument(let message): message
        case .closed: "the log is closed"
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs `body` (whose only errors are `StorageError`s) through an untyped-`rethrows` API such as
/// `withUnsafeBytes`, and gives the error its type back.
@inline(__always)
func typed<T>(_ body: () throws -> T) throws(StorageError) -> T {
    do { return try body() } catch let error as StorageError { throw error } catch {
        preconditionFailure("storage code threw a foreign error: \(error)")
    }
}
