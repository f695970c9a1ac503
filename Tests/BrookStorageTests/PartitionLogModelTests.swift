import BrookCore
import BrookRecords
@testable import BrookStorage
import NIOCore
import Foundation
import Testing

/// Random appends, reads, lookups, reopenings, truncations and deletions, checked after every
/// step against a plain array of records. A failure names its seed; rerun it alone to replay.
@Suite struct PartitionLogModelTests {
    @Test(arguments: testSeeds(24))
    func logMatchesModel(seed: UInt64) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: seed)
        let clock = ManualClock()
        let config = smallConfig(segmentBytes: Int.random(in: 2_000...20_000, using: &random),
                                 indexInterval: Int.random(in: 0...1_500, using: &random))
        var log: PartitionLog? = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        var expected: [ModelRecord] = []
        var logStart = Offset.zero

        let trace = ProcessInfo.processInfo.environment["BROOK_TRACE_SEED"] == String(seed)
        for step in 0..<150 {
            let l = log!
            let choice = Int.random(in: 0..<100, using: &random)
            if trace { print("step \(step) op \(choice) start \(l.logStartOffset) leo \(l.logEndOffset) segs \(l.segmentBaseOffsets)") }
            switch choice {
            case 0..<55:  // append one to three batches in one call
                var bytes: [UInt8] = []
                var appended: [SimpleRecord] = []
                for _ in 0..<Int.random(in: 1...3, using: &random) {
                    let batch = randomRecords(Int.random(in: 1...12, using: &random), startMs: clock.now().ms, using: &random)
                    bytes += RecordBatchBuilder.build(baseOffset: Offset(0), records: batch)
                    appended += batch
                }
                var buf = buffer(bytes)
                let result = try l.append(&buf)
                #expect(result.firstOffset == l.logEndOffset - Int64(appended.count), "seed \(seed) step \(step)")
                expected += model(appended, from: result.firstOffset)
                clock.advance(ms: 20)
            case 55..<75:  // read from a random offset
                guard l.logEndOffset > logStart else { continue }
                let offset = Offset(Int64.random(in: logStart.value..<l.logEndOffset.value, using: &random))
                let maxBytes = Int.random(in: 0...4_000, using: &random)
                let slice = try l.read(from: offset, maxBytes: maxBytes)
                // A batch holding the log start offset may carry records below it.
                let got = try records(in: slice.readBytes()).filter { $0.offset >= logStart }
                #expect(!got.isEmpty, "seed \(seed): a read below the LEO returns at least one batch")
                #expect(got.first!.offset <= offset && got.contains { $0.offset == offset }, "seed \(seed) step \(step)")
                let want = expected.filter { $0.offset >= got.first!.offset && $0.offset <= got.last!.offset }
                #expect(got == want, "seed \(seed) step \(step)")
                #expect(slice.length <= maxBytes || got.map(\.offset).count <= 12, "seed \(seed): size bound")
            case 75..<83:  // lookup by timestamp
                guard let any = expected.randomElement(using: &random) else { continue }
                let target = Timestamp(ms: any.timestamp.ms + Int64.random(in: -3...3, using: &random))
                let want = expected.first { $0.timestamp >= target }
                let got = try l.offset(forTimestamp: target)
                #expect(got?.offset == want?.offset && got?.timestamp == want?.timestamp,
                        "seed \(seed) step \(step): target \(target) got \(String(describing: got)) want \(String(describing: want)) segments \(l.segmentBaseOffsets) start \(logStart)")
                let maxWant = expected.max { $0.timestamp < $1.timestamp || ($0.timestamp == $1.timestamp && $0.offset > $1.offset) }
                #expect(try l.maxTimestampOffset()?.offset == maxWant?.offset, "seed \(seed) step \(step)")
            case 83..<89:  // clean restart
                try l.close()
                log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
                #expect(log!.segmentsRecoveredAtOpen == 0, "a clean restart scans nothing")
            case 89..<93:  // crash: drop the log without closing it
                log = nil
                log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
            case 93..<96:  // DeleteRecords
                guard l.logEndOffset > logStart else { continue }
                let offset = Offset(Int64.random(in: logStart.value...l.logEndOffset.value, using: &random))
                logStart = try l.deleteRecords(before: offset)
                #expect(logStart == offset)
                expected.removeAll { $0.offset < offset }
                try l.applyRetention()
            default:  // follower truncation
                guard let cut = expected.randomElement(using: &random)?.offset else { continue }
                try l.truncate(to: cut)
                expected.removeAll { $0.offset >= l.logEndOffset }
                #expect(l.logEndOffset <= cut)
            }
            let current = log!
            #expect(current.logEndOffset == (expected.last.map { $0.offset + 1 } ?? current.logEndOffset), "seed \(seed) step \(step)")
            #expect(current.logStartOffset == logStart, "seed \(seed) step \(step)")
        }
        let all = try readAll(log!)
        #expect(all == expected, "seed \(seed): \(all.count) read, \(expected.count) expected, first diff \(String(describing: zip(all, expected).first { $0.0 != $0.1 })) \(all.first?.offset ?? Offset(-1)) \(expected.first?.offset ?? Offset(-1)) \(all.last?.offset ?? Offset(-1)) \(expected.last?.offset ?? Offset(-1))")
        try log!.close()
    }
}
