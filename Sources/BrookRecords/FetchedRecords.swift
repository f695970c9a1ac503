import BrookCore
import NIOCore

/// A record as a consumer sees it.
public struct ConsumedRecord: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Offset
    public var timestamp: Timestamp
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [SimpleRecord.Header]

    public var topicPartition: TopicPartition { TopicPartition(topic, partition) }

    public init(topic: String, partition: Int32, offset: Offset, timestamp: Timestamp,
                key: [UInt8]?, value: [UInt8]?, headers: [SimpleRecord.Header]) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// What one partition's fetched bytes hold for a consumer.
public struct FetchedRecords: Sendable {
    /// The records at or after the fetch's offset, in order: control batches, and in
    /// read_committed the batches of aborted transactions, left out.
    public var records: [ConsumedRecord]
    /// Where the next fetch starts: past the last whole batch (a control batch or an aborted
    /// one included), or the fetch's own offset when no whole batch came.
    public var nextOffset: Offset

    public init(records: [ConsumedRecord], nextOffset: Offset) {
        self.records = records
        self.nextOffset = nextOffset
    }
}

public enum RecordDecoding {
    /// The records at or after `from` in fetched batches (compressed ones decompressed). A
    /// partial batch at the end (a fetch cut at max bytes) is skipped; a damaged batch is an error.
    public static func records(in buffer: ByteBuffer, topic: String, partition: Int32, from: Offset) throws -> [ConsumedRecord] {
        try decode(buffer, topic: topic, partition: partition, from: from).records
    }

    /// Decodes one partition's fetched batches from `from`. With `aborted` (a read_committed
    /// fetch's aborted transactions: producer id and first offset), the transactional batches of
    /// each from its first offset up to its abort marker are skipped. With `verifyingCRC`, a
    /// batch whose CRC-32C does not match its bytes is an error (`check.crcs`).
    public static func decode(_ buffer: ByteBuffer, topic: String, partition: Int32, from: Offset,
                              aborted: [(producer: ProducerID, firstOffset: Offset)]? = nil,
                              verifyingCRC: Bool = false) throws -> FetchedRecords {
        var committed = CommittedBatches(aborted: aborted ?? [])
        return try buffer.withUnsafeReadableBytes { bytes in
            var out: [ConsumedRecord] = []
            var next = from
            var damaged: String?
            let decodable = try RecordBatchHeader.forEachBatch(in: bytes) { header, batch throws(FetchedDataError) in
                if verifyingCRC {
                    let covered = UnsafeRawBufferPointer(rebasing: batch[RecordBatchHeader.Field.attributes...])
                    guard CRC32C.checksum(covered) == header.crc else {
                        throw FetchedDataError("\(topic)-\(partition): the batch at offset \(header.baseOffset) fails its CRC check")
                    }
                }
                next = max(next, header.nextOffset)
                guard !committed.leavesOut(header), header.lastOffset >= from else { return }
                do throws(BatchDefect) {
                    try header.forEachRecord(in: batch) { view, records in
                        // Wrapping: the header and deltas are the broker's, unchecked.
                        let offset = Offset(header.baseOffset.value &+ Int64(view.offsetDelta))
                        guard offset >= from, damaged == nil else { return }
                        // A consumer's positions need each record after the last, and room for one more.
                        guard offset > (out.last?.offset ?? Offset(Int64.min)), offset.value < Int64.max else {
                            damaged = "record offset \(offset) out of order"
                            return
                        }
                        let timestamp = header.attributes.isLogAppendTime ? header.maxTimestamp
                            : Timestamp(ms: header.baseTimestamp.ms &+ view.timestampDelta)
                        out.append(ConsumedRecord(
                            topic: topic, partition: partition, offset: offset, timestamp: timestamp,
                            key: view.key.map { Array(records[$0]) }, value: view.value.map { Array(records[$0]) },
                            headers: view.headers.map { SimpleRecord.Header(key: Array(records[$0.key]), value: $0.value.map { Array(records[$0]) }) }))
                    }
                } catch { throw FetchedDataError("\(topic)-\(partition): batch at offset \(header.baseOffset): \(error)") }
                if let damaged { throw FetchedDataError("\(topic)-\(partition): batch at offset \(header.baseOffset): \(damaged)") }
            }
            guard decodable else { throw FetchedDataError("\(topic)-\(partition): undecodable batch header") }
            return FetchedRecords(records: out, nextOffset: next)
        }
    }
}

/// Which of a fetch's batches, in order, hold no record for a reader: control batches, and in
/// read_committed the transactional batches of each aborted transaction (the fetch's list:
/// producer id and first offset) from its first offset up to its abort marker.
public struct CommittedBatches {
    private var pending: ArraySlice<(producer: ProducerID, firstOffset: Offset)>
    private var open: Set<ProducerID> = []

    public init(aborted: [(producer: ProducerID, firstOffset: Offset)]) {
        pending = aborted.sorted { $0.firstOffset < $1.firstOffset }[...]
    }

    /// Whether the batch of `header` (the next one in the fetch) is left out.
    public mutating func leavesOut(_ header: RecordBatchHeader) -> Bool {
        while let first = pending.first, first.firstOffset <= header.lastOffset {
            open.insert(first.producer)
            pending = pending.dropFirst()
        }
        if header.attributes.isControl {
            // A transaction's marker ends it (an aborted one's is its abort marker).
            open.remove(header.producerID)
            return true
        }
        return header.attributes.isTransactional && open.contains(header.producerID)
    }
}

/// Fetched bytes that cannot be read: a damaged batch, a CRC mismatch, records out of order.
public struct FetchedDataError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
