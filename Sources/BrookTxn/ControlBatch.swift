import BrookCore
import BrookRecords

/// Transaction markers: control batches holding one record whose key is version i16 (0) and
/// type i16 (0 abort, 1 commit), and whose value is version i16 (0) and coordinator epoch i32.
public enum ControlBatch {
    public static func build(producerID: ProducerID, epoch: ProducerEpoch, commit: Bool, coordinatorEpoch: Int32,
                             timestamp: Timestamp) -> [UInt8] {
        var value = ByteWriter()
        value.int16(0)
        value.int32(coordinatorEpoch)
        let record = SimpleRecord(key: [0, 0, 0, commit ? 1 : 0], value: value.bytes, timestamp: timestamp)
        return RecordBatchBuilder.build(baseOffset: .zero, records: [record],
                                        attributes: BatchAttributes(transactional: true, control: true),
                                        producer: .init(id: producerID, epoch: epoch, baseSequence: -1))
    }

    /// The marker a control batch holds (nil when it is not a valid transaction marker).
    /// `batch` is the whole batch, possibly unchecked (a log scan): its header and CRC are
    /// checked before its record is read, as the record walker traps on an impossible length
    /// or record count (found writing the fuzz target batch).
    public static func marker(_ header: RecordBatchHeader, batch: UnsafeRawBufferPointer) -> ProducerBatch.Marker? {
        markerAndCoordinatorEpoch(header, batch: batch)?.marker
    }

    /// The marker and the coordinator epoch it carries (-1 when its value is too short to say),
    /// so that a log replay knows the last coordinator epoch of each producer as the appends did.
    public static func markerAndCoordinatorEpoch(_ header: RecordBatchHeader, batch: UnsafeRawBufferPointer)
        -> (marker: ProducerBatch.Marker, coordinatorEpoch: Int32)? {
        guard header.attributes.isControl, batch.count >= header.totalBytes,
              (try? RecordBatchValidator.validate(batch, check: .checksum)) == header else { return nil }
        var found: (ProducerBatch.Marker, Int32)?
        try? header.forEachRecord(in: batch) { record, records in
            guard found == nil, let key = record.key, key.count >= 4 else { return }
            let bytes = records[key]
            let type = Int16(bytes[bytes.startIndex + 2]) << 8 | Int16(bytes[bytes.startIndex + 3])
            guard let marker: ProducerBatch.Marker = type == 1 ? .commit : type == 0 ? .abort : nil else { return }
            var epoch: Int32 = -1
            if let value = record.value, value.count >= 6 {
                let v = records[value]
                epoch = (2..<6).reduce(Int32(0)) { $0 << 8 | Int32(v[v.startIndex + $1]) }
            }
            found = (marker, epoch)
        }
        return found
    }
}

extension ProducerBatch {
    /// What a batch header says about its producer (`marker` for a control batch).
    public init(_ header: RecordBatchHeader, marker: Marker? = nil) {
        self.init(producerID: header.producerID, epoch: header.producerEpoch, baseSequence: header.baseSequence,
                  offsetDelta: header.lastOffsetDelta, isTransactional: header.attributes.isTransactional,
                  marker: marker, maxTimestamp: header.maxTimestamp.ms)
    }
}
