import BrookCore
import BrookRecords

/// Kafka's DumpLogSegments for Brook's files: prints a `.log`'s batches (and, on request, each
/// record), and checks a `.index` or `.timeindex` against the `.log` beside it.
public struct SegmentDump {
    public struct Summary: Sendable, Equatable {
        public var batches = 0
        public var records = 0
        /// Defects found: invalid batches, index entries that disagree with the log.
        public var problems: [String] = []
    }

    public let printRecords: Bool
    /// How a record's key and value are printed instead of as text (Kafka's
    /// `--cluster-metadata-decoder`: the metadata log's entries as records).
    public let decoder: (([UInt8]?, [UInt8]?) -> String)?
    let emit: (String) -> Void

    public init(printRecords: Bool, decoder: (([UInt8]?, [UInt8]?) -> String)? = nil, emit: @escaping (String) -> Void) {
        self.printRecords = printRecords || decoder != nil
        self.decoder = decoder
        self.emit = emit
    }

    public func dump(path: String) throws(StorageError) -> Summary {
        emit("Dumping \(path)")
        if path.hasSuffix(".log") { return try dumpLog(path) }
        if path.hasSuffix(".index") { return try dumpIndex(path, timeIndex: false) }
        if path.hasSuffix(".timeindex") { return try dumpIndex(path, timeIndex: true) }
        throw .invalidArgument("\(path): not a .log, .index or .timeindex file")
    }

    private func baseOffset(_ path: String, suffix: String) throws(StorageError) -> Offset {
        let name = String(path.split(separator: "/").last ?? "")
        guard let base = LogSegment.baseOffset(fileName: name, suffix: suffix) else {
            throw .invalidArgument("\(path): a segment file is named by its 20-digit base offset")
        }
        return base
    }

    private func dumpLog(_ path: String) throws(StorageError) -> Summary {
        let base = try baseOffset(path, suffix: ".log")
        emit("Log starting offset: \(base)")
        var summary = Summary()
        let file = try SegmentFile(path: path, create: false, readOnly: true)
        let scanner = try BatchScanner(file: file)
        while let (position, bytes) = try scanner.next() {
            let header: RecordBatchHeader
            do { header = try RecordBatchValidator.validate(bytes, check: .stored) } catch {
                let problem = "invalid batch at position \(position): \(error)"
                emit("Found \(problem); nothing after it can be trusted")
                summary.problems.append(problem)
                break
            }
            summary.batches += 1
            summary.records += Int(header.recordCount)
            emit(describe(header, position: position))
            if printRecords { printRecordLines(bytes, header: header) }
            scanner.advance(by: header.totalBytes)
        }
        return summary
    }

    private func describe(_ h: RecordBatchHeader, position: Int) -> String {
        let lastSequence = h.baseSequence < 0 ? -1 : h.baseSequence &+ h.lastOffsetDelta
        let timeType = h.attributes.isLogAppendTime ? "LogAppendTime" : "CreateTime"
        let codec = h.attributes.compression?.description ?? "unknown"
        return "baseOffset: \(h.baseOffset) lastOffset: \(h.lastOffset) count: \(h.recordCount) "
            + "baseSequence: \(h.baseSequence) lastSequence: \(lastSequence) producerId: \(h.producerID) "
            + "producerEpoch: \(h.producerEpoch) partitionLeaderEpoch: \(h.partitionLeaderEpoch) "
            + "isTransactional: \(h.attributes.isTransactional) isControl: \(h.attributes.isControl) "
            + "position: \(position) \(timeType): \(h.maxTimestamp) size: \(h.totalBytes) magic: \(h.magic) "
            + "compresscodec: \(codec) crc: \(h.crc) isvalid: true"
    }

    private func printRecordLines(_ bytes: UnsafeRawBufferPointer, header: RecordBatchHeader) {
        do throws(BatchDefect) {
            try header.forEachRecord(in: bytes) { record, records in
                let text = { (range: Range<Int>?) -> String in
                    guard let range else { return "null" }
                    return String(decoding: records[range], as: UTF8.self)
                }
                let offset = header.baseOffset + Int64(record.offsetDelta)
                let timestamp = header.attributes.isLogAppendTime ? header.maxTimestamp.ms : header.baseTimestamp.ms &+ record.timestampDelta
                let sequence = header.baseSequence < 0 ? -1 : header.baseSequence &+ record.offsetDelta
                if let decoder {
                    emit("| offset: \(offset) " + decoder(record.key.map { Array(records[$0]) }, record.value.map { Array(records[$0]) }))
                    return
                }
                let headers = record.headers.map { "\(text($0.key))=\(text($0.value))" }.joined(separator: ",")
                emit("| offset: \(offset) \(header.attributes.isLogAppendTime ? "LogAppendTime" : "CreateTime"): \(timestamp) "
                    + "keySize: \(record.key?.count ?? -1) valueSize: \(record.value?.count ?? -1) sequence: \(sequence) "
                    + "headers: [\(headers)] key: \(text(record.key)) payload: \(text(record.value))")
            }
        } catch {
            emit("| records unreadable: \(error)")
        }
    }

    /// Prints the entries and checks each against the log: an offset index entry must name the
    /// last offset of the batch starting at its position; a time index entry the last offset
    /// and max timestamp of a batch. Entries must increase.
    private func dumpIndex(_ path: String, timeIndex: Bool) throws(StorageError) -> Summary {
        let suffix = timeIndex ? ".timeindex" : ".index"
        let base = try baseOffset(path, suffix: suffix)
        let logPath = String(path.dropLast(suffix.count)) + ".log"
        let log = try SegmentFile(path: logPath, create: false, readOnly: true)
        let logSize = try log.size()
        let entryBytes = timeIndex ? TimeIndex.entryBytes : OffsetIndex.entryBytes
        let file = try SegmentFile(path: path, create: false, readOnly: true)
        let size = try file.size()
        guard size <= Limits.indexBytesMax else { throw .corruptIndex(path: path, reason: "\(size) bytes is above any index size") }
        let raw = try file.read(count: size, at: 0)
        var summary = Summary()
        if size % entryBytes != 0 { summary.problems.append("size \(size) is not a multiple of \(entryBytes)") }
        // Where each batch starts, and what it holds (one pass over the log).
        var batches: [Int: RecordBatchHeader] = [:]
        var byLastOffset: [Offset: RecordBatchHeader] = [:]
        let scanner = try BatchScanner(file: log)
        while let (position, bytes) = try scanner.next(), let header = try? RecordBatchValidator.validate(bytes, check: .checksum) {
            batches[position] = header
            byLastOffset[header.lastOffset] = header
            scanner.advance(by: header.totalBytes)
        }
        var previousKey: Int64 = .min
        raw.withUnsafeBytes { bytes in
            for i in 0..<(size / entryBytes) {
                let p = UnsafeRawPointer(bytes.baseAddress!) + i * entryBytes
                var problem: String?
                let key: Int64
                if timeIndex {
                    let timestamp = p.bigEndianInt64(at: 0)
                    let offset = base + Int64(p.bigEndianInt32(at: 8))
                    key = timestamp
                    emit("timestamp: \(timestamp) offset: \(offset)")
                    if let batch = byLastOffset[offset] {
                        if batch.maxTimestamp.ms != timestamp { problem = "entry \(i): batch ending at \(offset) has max timestamp \(batch.maxTimestamp), index says \(timestamp)" }
                    } else {
                        problem = "entry \(i): no batch ends at offset \(offset)"
                    }
                } else {
                    let offset = base + Int64(p.bigEndianInt32(at: 0))
                    let position = Int(p.bigEndianInt32(at: 4))
                    key = offset.value
                    emit("offset: \(offset) position: \(position)")
                    if position >= logSize {
                        problem = "entry \(i): position \(position) is past the log's \(logSize) bytes"
                    } else if let batch = batches[position] {
                        if batch.lastOffset != offset { problem = "entry \(i): index offset \(offset), log offset \(batch.lastOffset)" }
                    } else {
                        problem = "entry \(i): no batch starts at position \(position)"
                    }
                }
                if key <= previousKey { problem = problem ?? "entry \(i) does not increase (zeros past the last entry mean an index not trimmed by a clean shutdown)" }
                previousKey = key
                if let problem { summary.problems.append(problem) }
                summary.records += 1
            }
        }
        for problem in summary.problems { emit("Mismatch: \(problem)") }
        return summary
    }
}
