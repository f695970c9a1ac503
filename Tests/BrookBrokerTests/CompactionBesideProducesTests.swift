@testable import BrookBroker
import BrookCore
import BrookRecords
import Foundation
import Synchronization
import Testing

/// The log cleaner runs beside produces and fetches on the partition it compacts: the keys
/// are mapped and the cleaned segments written without the partition's lock, and only the
/// swaps take it. Whatever interleaves, every record read is one that was written at its
/// offset, and each key's last value stays.
@Suite struct CompactionBesideProducesTests {
    @Test func theCleanerRunsBesideProducesAndFetches() throws {
        let root = makeTemporaryDirectory()
        let h = try BrokerHarness([], directory: root)
        defer { h.close() }
        try h.createTopic("c", configs: ["cleanup.policy": "compact", "segment.bytes": "2048"])
        let partition = try #require(h.broker.topics.partition("c", 0))
        var written: [Int64: String] = [:]
        var last: [String: Int64] = [:]
        func produce(_ i: Int) throws {
            let key = "k\(i % 25)", value = "v\(i)-" + String(repeating: "x", count: i % 40)
            let bytes = RecordBatchBuilder.build(baseOffset: .zero, records: [
                SimpleRecord(key: Array(key.utf8), value: Array(value.utf8), timestamp: h.clock.now()),
            ])
            let answer = try h.produce("c", bytes)
            #expect(answer.errorCode == 0)
            written[answer.baseOffset.value] = value
            last[key] = answer.baseOffset.value
        }
        for i in 0..<300 { try produce(i) }
        let passes = Atomic<Int>(0)
        let failures = Mutex<[String]>([])
        let cleaner = Thread {
            for _ in 0..<30 {
                do { try partition.maintainLog(retention: true, compaction: true) } catch {
                    failures.withLock { $0.append("\(error)") }
                }
                passes.add(1, ordering: .relaxed)
            }
        }
        cleaner.start()
        var i = 300
        while passes.load(ordering: .relaxed) < 30 || i < 600 {
            try produce(i)
            i += 1
            _ = try h.fetch("c", offset: Int64(i % 300))
        }
        try partition.maintainLog(retention: true, compaction: true)
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")

        var read: [(offset: Int64, value: String)] = []
        // The cleaner moves no log start: a read from 0 gets the records that are left.
        #expect(try h.listOffset("c", timestamp: -2).offset == .zero)
        var next: Int64 = 0
        while next < Int64(written.count) {
            let got = try fetchedRecords(h.fetch("c", offset: next).records)
            guard let end = got.last?.offset else { break }
            read += got.filter { $0.offset >= next }
            next = end + 1
        }
        #expect(read.allSatisfy { written[$0.offset] == $0.value }, "a record read is not the one written at its offset")
        #expect(zip(read, read.dropFirst()).allSatisfy { $0.offset < $1.offset })
        let offsets = Set(read.map(\.offset))
        #expect(last.values.allSatisfy { offsets.contains($0) }, "a key's last value is gone: \(last.filter { !offsets.contains($0.value) }) read \(read.count) up to \(read.last?.offset ?? -1) of \(written.count)")
        #expect(read.count < written.count, "nothing was compacted: \(read.count) of \(written.count)")
    }
}
