import BrookCore
@testable import BrookRecords
import Testing

func record(_ key: String?, _ value: String?, at ms: Int64 = 1_000, headers: [(String, String?)] = []) -> SimpleRecord {
    SimpleRecord(key: key.map { Array($0.utf8) }, value: value.map { Array($0.utf8) },
                 headers: headers.map { SimpleRecord.Header(key: Array($0.0.utf8), value: $0.1.map { Array($0.utf8) }) },
                 timestamp: Timestamp(ms: ms))
}

func validate(_ bytes: [UInt8], _ check: BatchCheck) throws(BatchDefect) -> RecordBatchHeader {
    let result = bytes.withUnsafeBytes { b in Result { () throws(BatchDefect) in try RecordBatchValidator.validate(b, check: check) } }
    return try result.get()
}

@Suite struct RecordBatchTests {
    @Test func varintRoundTrip() {
        var random = SeededRandom(seed: 7)
        var values: [Int64] = [0, 1, -1, 63, -64, 64, Int64(Int32.max), Int64(Int32.min), .max, .min]
        values += (0..<1000).map { _ in Int64(bitPattern: random.next()) >> Int64.random(in: 0...63, using: &random) }
        for value in values {
            var bytes: [UInt8] = []
            Varint.write(value, to: &bytes)
            #expect(bytes.count == Varint.size(value))
            var index = 0
            let back = bytes.withUnsafeBytes { Varint.readInt64($0, at: &index) }
            #expect(back == value)
            #expect(index == bytes.count)
        }
    }

    @Test func varintRejectsTruncatedAndOverlong() {
        var index = 0
        #expect([UInt8]([0x80, 0x80]).withUnsafeBytes { Varint.readInt64($0, at: &index) } == nil)
        index = 0
        #expect([UInt8](repeating: 0xFF, count: 11).withUnsafeBytes { Varint.readInt64($0, at: &index) } == nil)
        index = 0
        #expect([UInt8](repeating: 0xFF, count: 6).withUnsafeBytes { Varint.readInt32($0, at: &index) } == nil)
    }

    @Test func builtBatchValidatesAndParses() throws {
        let records = [record("k1", "v1", at: 1000, headers: [("h", "x"), ("n", nil)]),
                       record(nil, "v2", at: 1005), record("k3", nil, at: 999)]
        let bytes = RecordBatchBuilder.build(baseOffset: Offset(0), records: records)
        let header = try validate(bytes, .produce)
        #expect(header.recordCount == 3)
        #expect(header.lastOffsetDelta == 2)
        #expect(header.baseTimestamp == Timestamp(ms: 999))
        #expect(header.maxTimestamp == Timestamp(ms: 1005))
        #expect(header.totalBytes == bytes.count)
        #expect(header.producerID == .none)
        bytes.withUnsafeBytes { b in
            var index = RecordBatchHeader.Field.records
            let first = try! RecordParser.parse(b, at: &index)
            #expect(Array(b[first.key!]) == Array("k1".utf8))
            #expect(first.headers.count == 2)
            #expect(first.headers[1].value == nil)
            let second = try! RecordParser.parse(b, at: &index)
            #expect(second.key == nil && second.offsetDelta == 1 && second.timestampDelta == 6)
            let third = try! RecordParser.parse(b, at: &index)
            #expect(third.value == nil)
            #expect(index == b.count)
        }
    }

    @Test func everyFlippedCoveredByteIsCaught() {
        let bytes = RecordBatchBuilder.build(baseOffset: Offset(5), records: [record("key", "value"), record("a", "b")])
        // Bytes from the attributes on are covered by the CRC; magic and length are checked too.
        for position in ([RecordBatchHeader.Field.magic] + Array(RecordBatchHeader.Field.crc..<bytes.count)) {
            var damaged = bytes
            damaged[position] ^= 0x01
            #expect(throws: BatchDefect.self) { try validate(damaged, .checksum) }
        }
    }

    @Test func truncatedBatchIsRefused() {
        let bytes = RecordBatchBuilder.build(baseOffset: Offset(0), records: [record("k", "v")])
        for cut in [0, 10, 60, bytes.count - 1] {
            #expect(throws: BatchDefect.self) { try validate(Array(bytes[..<cut]), .checksum) }
        }
    }

    @Test func produceRequiresContiguousOffsetDeltas() {
        // lastOffsetDelta 3 for 2 records: allowed in a log (compaction), not from a producer.
        var body: [UInt8] = []
        RecordBatchBuilder.appendRecord(record("a", "1"), offsetDelta: 0, baseTimestamp: Timestamp(ms: 1000), to: &body)
        RecordBatchBuilder.appendRecord(record("b", "2"), offsetDelta: 3, baseTimestamp: Timestamp(ms: 1000), to: &body)
        let bytes = RecordBatchBuilder.assemble(
            baseOffset: Offset(0), lastOffsetDelta: 3, recordCount: 2, baseTimestamp: Timestamp(ms: 1000),
            maxTimestamp: Timestamp(ms: 1000), attributes: BatchAttributes(), producer: .none,
            leaderEpoch: LeaderEpoch(0), recordBytes: body)
        #expect(throws: BatchDefect.self) { try validate(bytes, .produce) }
        #expect((try? validate(bytes, .stored)) != nil)
    }

    @Test func recordCountMustMatchRecords() {
        var body: [UInt8] = []
        RecordBatchBuilder.appendRecord(record("a", "1"), offsetDelta: 0, baseTimestamp: Timestamp(ms: 1), to: &body)
        let claimsTwo = RecordBatchBuilder.assemble(
            baseOffset: Offset(0), lastOffsetDelta: 1, recordCount: 2, baseTimestamp: Timestamp(ms: 1),
            maxTimestamp: Timestamp(ms: 1), attributes: BatchAttributes(), producer: .none,
            leaderEpoch: LeaderEpoch(0), recordBytes: body)
        #expect(throws: BatchDefect.self) { try validate(claimsTwo, .produce) }
        let claimsZero = RecordBatchBuilder.assemble(
            baseOffset: Offset(0), lastOffsetDelta: 0, recordCount: 0, baseTimestamp: Timestamp(ms: 1),
            maxTimestamp: Timestamp(ms: 1), attributes: BatchAttributes(), producer: .none,
            leaderEpoch: LeaderEpoch(0), recordBytes: body)
        #expect(throws: BatchDefect.self) { try validate(claimsZero, .produce) }
    }

    @Test func wrongMagicAndUnknownCodecAreRefused() {
        var bytes = RecordBatchBuilder.build(baseOffset: Offset(0), records: [record("k", "v")])
        bytes[RecordBatchHeader.Field.magic] = 1
        #expect(throws: BatchDefect.unsupportedMagic(1)) { try validate(bytes, .checksum) }
        var codec = RecordBatchBuilder.build(baseOffset: Offset(0), records: [record("k", "v")],
                                             attributes: BatchAttributes(raw: 6))
        codec.withUnsafeMutableBytes { RecordBatchPatch.updateChecksum($0) }
        #expect(throws: BatchDefect.unknownCompression(6)) { try validate(codec, .checksum) }
    }

    @Test func patchingOffsetsKeepsTheChecksum() throws {
        var bytes = RecordBatchBuilder.build(baseOffset: Offset(0), records: [record("k", "v")])
        bytes.withUnsafeMutableBytes { RecordBatchPatch.setBaseOffset($0, Offset(1234)); RecordBatchPatch.setLeaderEpoch($0, LeaderEpoch(9)) }
        let header = try validate(bytes, .produce)
        #expect(header.baseOffset == Offset(1234))
        #expect(header.partitionLeaderEpoch == LeaderEpoch(9))
        bytes.withUnsafeMutableBytes { RecordBatchPatch.setLogAppendTime($0, Timestamp(ms: 77)) }
        let stamped = try validate(bytes, .produce)
        #expect(stamped.attributes.isLogAppendTime && stamped.maxTimestamp == Timestamp(ms: 77))
    }

    /// Random bytes never crash the validator; they are refused with a defect.
    @Test func randomGarbageIsRefusedNotCrashing() {
        var random = SeededRandom(seed: 99)
        let valid = RecordBatchBuilder.build(baseOffset: Offset(0), records: (0..<5).map { record("k\($0)", "v\($0)") })
        for _ in 0..<2000 {
            var bytes = valid
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            }
            // Fix the CRC so that the record parser, not the checksum, meets the damage.
            bytes.withUnsafeMutableBytes { RecordBatchPatch.updateChecksum($0) }
            _ = try? validate(bytes, .produce)
            _ = try? validate(Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &random))), .stored)
        }
    }
}
