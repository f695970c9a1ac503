import BrookCore
import BrookRecords
import NIOCore

/// Batches checked for an append (`PartitionLog.validate`), with the settings they were
/// checked under.
public struct ValidatedBatches {
    var batches: [AppendedBatch]
    let configVersion: UInt64
}

/// The checks of an append that need nothing of the log but its settings: every batch's CRC,
/// records and timestamps, control batches from clients, keyless records on a compacted topic,
/// `max.message.bytes`, and the recompression a topic's `compression.type` asks for. Run before
/// the partition's lock is taken (Kafka validates before its log lock too), so decompressing a
/// large batch holds up no other request to the partition.
extension PartitionLog {
    /// Checks the batches in `records` under `config` (its `configVersion` said with them);
    /// `records` becomes the recompressed bytes when the topic's codec asks for them. `now` is
    /// the time a client's CreateTime timestamps are checked against.
    public static func validate(_ records: inout ByteBuffer, origin: AppendOrigin, config: LogConfig, configVersion: UInt64,
                                now: Int64) throws(StorageError) -> ValidatedBatches {
        guard records.readableBytes > 0 else { throw .invalidArgument("an append needs at least one batch") }
        guard records.readableBytes <= Limits.batchBytesMax else {
            throw .batchTooLarge(bytes: records.readableBytes, limit: Limits.batchBytesMax)
        }
        let (batches, recompressed) = try typed {
            try records.withUnsafeReadableBytes { bytes in try validate(bytes, origin: origin, config: config, now: now) }
        }
        if let recompressed { records = recompressed }
        return ValidatedBatches(batches: batches, configVersion: configVersion)
    }

    /// Checks every batch in `bytes`. When the topic's `compression.type` names a codec, batches
    /// in another codec are rebuilt with it, and the rebuilt bytes are returned.
    static func validate(_ bytes: UnsafeRawBufferPointer, origin: AppendOrigin, config: LogConfig,
                         now clientNow: Int64) throws(StorageError) -> ([AppendedBatch], ByteBuffer?) {
        let now = origin == .client ? clientNow : 0
        let timestamps = origin == .client && config.timestampType == .createTime ? timestampBounds(config, now: now) : nil
        var batches: [AppendedBatch] = []
        var rebuilt: ByteBuffer?  // made at the first batch that needs recompressing
        var position = 0
        // A compacted topic's keyless records, by index among all the request's records.
        var keylessIndexes: [Int32] = []
        var recordsBefore: Int32 = 0
        while position < bytes.count {
            let slice = UnsafeRawBufferPointer(rebasing: bytes[position...])
            let header: RecordBatchHeader
            var inflated: [UInt8]?
            do { header = try RecordBatchValidator.validate(slice, check: .produce, inflated: &inflated, timestamps: timestamps) } catch {
                if case .record(_, .timestamp(let ms)) = error { throw timestampRefused(config, ms, batch: batches.count, now: now) }
                throw .invalidBatch(index: batches.count, error)
            }
            let original = UnsafeRawBufferPointer(rebasing: slice[0..<header.totalBytes])
            let body = UnsafeRawBufferPointer(rebasing: original[RecordBatchHeader.Field.records...])
            let isControl = header.attributes.isControl
            if origin == .client {
                guard !isControl else { throw .controlBatchFromClient(index: batches.count) }
                if let timestamps { try checkMaxTimestamp(config, header, within: timestamps, batch: batches.count, now: now) }
            }
            if config.cleanupCompact && !isControl {
                let keyless = inflated.map { $0.withUnsafeBytes { keylessRecords($0, count: header.recordCount) } }
                    ?? keylessRecords(body, count: header.recordCount)
                keylessIndexes += keyless.map { recordsBefore + $0 }
            }
            recordsBefore += Int32(clamping: header.recordCount)
            var totalBytes = header.totalBytes
            if let target = config.compression, target != header.attributes.compression, !isControl {
                let level = config.compressionLevel
                let result = inflated.map { $0.withUnsafeBytes { RecordBatchBuilder.recompressing(header, records: $0, codec: target, level: level) } }
                    ?? RecordBatchBuilder.recompressing(header, records: body, codec: target, level: level)
                let batch: [UInt8]
                switch result {
                case .success(let bytes): batch = bytes
                case .failure(let error): throw .invalidBatch(index: batches.count, .compression(target, error))
                }
                if rebuilt == nil {
                    var buffer = ByteBuffer()
                    buffer.reserveCapacity(bytes.count + 64)
                    buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[0..<position]))
                    rebuilt = buffer
                }
                rebuilt!.writeBytes(batch)
                totalBytes = batch.count
            } else {
                rebuilt?.writeBytes(original)
            }
            guard totalBytes <= config.maxMessageBytes else {
                throw .batchTooLarge(bytes: totalBytes, limit: config.maxMessageBytes)
            }
            let start = rebuilt.map { $0.writerIndex - totalBytes } ?? position
            batches.append(AppendedBatch(start: start, totalBytes: totalBytes, lastOffsetDelta: header.lastOffsetDelta,
                                         lastOffset: header.lastOffset, maxTimestamp: header.maxTimestamp))
            position += header.totalBytes
        }
        guard keylessIndexes.isEmpty else { throw .missingKeyOnCompactedTopic(records: keylessIndexes) }
        return (batches, rebuilt)
    }

    /// A client's CreateTime bounds: `message.timestamp.before.max.ms` before and
    /// `message.timestamp.after.max.ms` after `now` (saturated at Int64's ends).
    static func timestampBounds(_ config: LogConfig, now: Int64) -> ClosedRange<Int64> {
        let lowest = Int64(clamping: Int128(now) - Int128(config.timestampBeforeMaxMs))
        let highest = Int64(clamping: Int128(now) + Int128(config.timestampAfterMaxMs))
        return lowest...highest
    }

    /// Every record's timestamp is checked as Kafka checks them; the header's largest one too,
    /// which Kafka does not: the time index and retention go by it, so a forged one would keep a
    /// segment forever or have it deleted at once.
    static func checkMaxTimestamp(_ config: LogConfig, _ header: RecordBatchHeader, within bounds: ClosedRange<Int64>, batch: Int,
                                  now: Int64) throws(StorageError) {
        let max = header.maxTimestamp.ms
        guard max == -1 || bounds.contains(max) else { throw timestampRefused(config, max, batch: batch, now: now) }
    }

    static func timestampRefused(_ config: LogConfig, _ ms: Int64, batch: Int, now: Int64) -> StorageError {
        .timestampOutOfRange(index: batch, timestamp: ms, now: now,
                             beforeMaxMs: config.timestampBeforeMaxMs, afterMaxMs: config.timestampAfterMaxMs)
    }

    /// Compacted topics keep the last value per key, so a keyless record has no meaning there.
    /// `records` is a batch's records section, decompressed.
    /// The indexes (within the batch) of its records without a key.
    static func keylessRecords(_ records: UnsafeRawBufferPointer, count: Int32) -> [Int32] {
        var index = 0
        var keyless: [Int32] = []
        for i in 0..<count {
            guard let record = try? RecordParser.parse(records, at: &index) else { break }
            if record.key == nil { keyless.append(i) }
        }
        return keyless
    }

}
