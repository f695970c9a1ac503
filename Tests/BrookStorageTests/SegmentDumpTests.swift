import BrookCore
import BrookRecords
@testable import BrookStorage
import Foundation
import NIOCore
import Testing

@Suite struct SegmentDumpTests {
    func makeLog(_ dir: TemporaryDirectory) throws -> String {
        let log = try PartitionLog.open(directory: dir.partition, config: smallConfig(segmentBytes: 1 << 20, indexInterval: 64),
                                        logger: quietLogger)
        for i in 0..<20 {
            let records = [SimpleRecord(key: Array("key\(i)".utf8), value: Array("value\(i)".utf8),
                                        headers: [.init(key: Array("h".utf8), value: Array("x".utf8))],
                                        timestamp: Timestamp(ms: 1_700_000_000_000 + Int64(i)))]
            var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: records))
            try log.append(&bytes)
        }
        try log.close()
        return dir.partition + "/" + LogSegment.fileName(.zero, "")
    }

    @Test func dumpsBatchesRecordsAndCheckedIndexes() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let base = try makeLog(dir)
        var lines: [String] = []
        let dump = SegmentDump(printRecords: true) { lines.append($0) }
        let summary = try dump.dump(path: base + ".log")
        #expect(summary.batches == 20 && summary.records == 20 && summary.problems.isEmpty)
        #expect(lines.contains { $0.hasPrefix("baseOffset: 19 lastOffset: 19 count: 1 ") && $0.hasSuffix("isvalid: true") })
        #expect(lines.contains { $0.contains("| offset: 7 CreateTime: 1700000000007") && $0.contains("headers: [h=x] key: key7 payload: value7") })
        let index = try dump.dump(path: base + ".index")
        #expect(index.records > 5 && index.problems.isEmpty)
        let timeIndex = try dump.dump(path: base + ".timeindex")
        #expect(timeIndex.records > 5 && timeIndex.problems.isEmpty)
    }

    @Test func reportsDamage() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let base = try makeLog(dir)
        let dump = SegmentDump(printRecords: false) { _ in }
        // An index entry pointing at the wrong batch.
        let index = try SegmentFile(path: base + ".index", create: false)
        var entry = try index.read(count: 8, at: 8)
        entry[3] &+= 1
        try entry.withUnsafeBytes { try index.write($0, at: 8) }
        #expect(try !dump.dump(path: base + ".index").problems.isEmpty)
        // A flipped byte in the log stops the dump at that batch.
        let log = try SegmentFile(path: base + ".log", create: false)
        var byte = try log.read(count: 1, at: 500)
        byte[0] ^= 0x40
        try byte.withUnsafeBytes { try log.write($0, at: 500) }
        let summary = try dump.dump(path: base + ".log")
        #expect(summary.problems.count == 1 && summary.batches < 20)
        #expect(throws: StorageError.self) { try dump.dump(path: dir.path + "/notes.txt") }
    }
}
