import BrookCore
import BrookRecords
import NIOCore

/// A record as a consumer sees it.
public struct ConsumedRecord: Sendable {
    public var partition: Int32
    public var offset: Offset
    public var timestamp: Timestamp
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [SimpleRecord.Header]
}

public enum RecordDecoding {
    /// The records at or after `from` in fetched batches (compressed ones decompressed). A
    /// partial batch at the end (a fetch cut at max bytes) is skipped; a damaged batch is an error.
    public static func records(in buffer: ByteBuffer, partition: Int32, from: Offset) throws -> [ConsumedRecord] {
        try buffer.withUnsafeReadableBytes { bytes in
            var out: [ConsumedRecord] = []
            let decodable = try RecordBatchHeader.forEachBatch(in: bytes) { header, batch throws(ClientError) in
                if header.attributes.isControl { return }
                do throws(BatchDefect) {
                    try header.forEachRecord(in: batch) { view, records in
                        let offset = header.baseOffset + Int64(view.offsetDelta)
                        guard offset >= from else { return }
                        let timestamp = header.attributes.isLogAppendTime ? header.maxTimestamp : Timestamp(ms: header.baseTimestamp.ms + view.timestampDelta)
                        out.append(ConsumedRecord(
                            partition: partition, offset: offset, timestamp: timestamp,
                            key: view.key.map { Array(records[$0]) }, value: view.value.map { Array(records[$0]) },
                            headers: view.headers.map { SimpleRecord.Header(key: Array(records[$0.key]), value: $0.value.map { Array(records[$0]) }) }))
                    }
                } catch { throw ClientError("batch at offset \(header.baseOffset): \(error)") }
            }
            guard decodable else { throw ClientError("undecodable batch header") }
            return out
        }
    }
}
