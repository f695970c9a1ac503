import BrookCore
import BrookRecords
import BrookTxn
import NIOCore

/// Record batches: the validator (what a produce passes), the batch and record walkers (what
/// log readers, compaction, the coordinators' loads and the client run on stored or fetched
/// batches), and each codec's decompressor.
enum RecordFuzzing {
    static let batchTarget = FuzzTarget(
        name: "batch",
        input: "flags (1 byte: bits 0-1 the check, 0 produce, 1 stored, 2 checksum; bit 2 keep the CRCs as given, else each batch's CRC is fixed first), then record batches",
        inputBytesMax: 64 * 1024
    ) { bytes in
        var input = FuzzInput(bytes)
        let flags = input.byte()
        let check: BatchCheck = [.produce, .stored, .checksum, .stored][Int(flags & 3)]
        var batches = Array(input.rest())
        // A CRC over everything else keeps random bytes out of the records: fixed, the fuzzer
        // reaches the record parser and the codecs.
        if flags & 4 == 0 { batches.withUnsafeMutableBytes(fixChecksums) }
        batches.withUnsafeBytes { bytes in
            validateThenWalk(bytes, check: check)
            walkStored(bytes)
        }
        // What a traced request's span reads of its batches, unvalidated.
        let buffer = ByteBuffer(bytes: batches)
        precondition(BatchPeek.recordCount(buffer) >= 0)
        if let value = BatchPeek.firstRecordHeader("traceparent", in: buffer) { precondition(value.count <= 256) }
    }

    /// What the produce path does: validate, and what passes must walk cleanly, record by record.
    static func validateThenWalk(_ bytes: UnsafeRawBufferPointer, check: BatchCheck) {
        var inflated: [UInt8]?
        guard let header = try? RecordBatchValidator.validate(bytes, check: check, inflated: &inflated) else { return }
        precondition(header.totalBytes <= bytes.count, "a valid batch lies within its bytes")
        let batch = UnsafeRawBufferPointer(rebasing: bytes[0..<header.totalBytes])
        if check == .checksum {
            _ = try? header.forEachRecord(in: batch) { _, _ in }
            return
        }
        var records = 0
        var previousDelta: Int32 = -1
        do {
            try header.forEachRecord(in: batch) { record, section in
                precondition(record.range.upperBound <= section.count, "a record lies within its batch")
                precondition(record.offsetDelta > previousDelta && record.offsetDelta <= header.lastOffsetDelta,
                             "record offset deltas increase within the batch's")
                previousDelta = record.offsetDelta
                records += 1
            }
        } catch {
            preconditionFailure("a batch the validator passed (\(check)) does not walk: \(error)")
        }
        precondition(records == Int(header.recordCount), "walked \(records) of \(header.recordCount) records")
        if header.attributes.isControl { _ = ControlBatch.marker(header, batch: batch) }
    }

    /// What readers of a log do (InternalTopic, ProducerStateFiles, RaftStore, BrookClient):
    /// cut the bytes into batches, take a control batch's marker (ProducerStateFiles does so
    /// before any check), check each batch's CRC, walk its records.
    static func walkStored(_ bytes: UnsafeRawBufferPointer) {
        RecordBatchHeader.forEachBatch(in: bytes) { header, batch in
            if header.attributes.isControl { _ = ControlBatch.marker(header, batch: batch) }
            guard (try? RecordBatchValidator.validate(batch, check: .checksum)) != nil else { return }
            _ = try? header.forEachRecord(in: batch) { _, _ in }
        }
    }

    /// Recomputes the CRC of each batch in `bytes` whose length fits.
    static func fixChecksums(_ bytes: UnsafeMutableRawBufferPointer) {
        var position = 0
        while bytes.count - position >= RecordBatchHeader.Field.records {
            let rest = UnsafeMutableRawBufferPointer(rebasing: bytes[position...])
            guard let header = RecordBatchHeader.decode(UnsafeRawBufferPointer(rest)),
                  header.batchLength >= Int32(RecordBatchHeader.Field.records - RecordBatchHeader.logOverheadBytes),
                  header.totalBytes <= rest.count else { return }
            RecordBatchPatch.updateChecksum(UnsafeMutableRawBufferPointer(rebasing: rest[0..<header.totalBytes]))
            position += header.totalBytes
        }
    }

    /// Larger outputs (bombs) are only checked against the limit: recompressing them would
    /// slow the run without reaching new code.
    static let recompressedBytesMax = 1 << 20

    static let codecTarget = FuzzTarget(
        name: "codec",
        input: "codec (1 byte, modulo 5: none, gzip, snappy, lz4, zstd), limit (1 byte: 0 the batch limit, else n * 256 bytes), then compressed bytes",
        inputBytesMax: 64 * 1024
    ) { bytes in
        var input = FuzzInput(bytes)
        let codec = CompressionCodec.allCases[Int(input.byte()) % CompressionCodec.allCases.count]
        let limitByte = Int(input.byte())
        let limit = limitByte == 0 ? Codecs.decompressedBytesMax : limitByte * 256
        let compressed = input.rest()
        guard Codecs.isAvailable(codec), let plain = try? Codecs.decompress(codec, compressed, limit: limit) else { return }
        precondition(plain.count <= limit, "\(codec) decompressed \(plain.count) bytes, over its limit of \(limit)")
        guard plain.count <= recompressedBytesMax else { return }
        // What decompresses must compress and decompress back to itself (recompression relies on it).
        let again: [UInt8]
        do {
            let recompressed = try plain.withUnsafeBytes { b throws(CodecError) in try Codecs.compress(codec, b, level: nil) }
            again = try recompressed.withUnsafeBytes { b throws(CodecError) in try Codecs.decompress(codec, b, limit: limit) }
        } catch {
            preconditionFailure("\(codec): \(plain.count) decompressed bytes do not recompress: \(error)")
        }
        precondition(again == plain, "\(codec): recompression changes the bytes")
    }
}
