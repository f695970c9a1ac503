import BrookCore
import BrookRecords
@testable import BrookStorage
import Foundation
import Testing

/// The positions of a segment's last batches answer tail reads as a scan of the file would.
@Suite struct RecentBatchesTests {
    struct Batch {
        var position: Int
        var prefix: RecordBatchHeader.Prefix
        var end: Int { position + prefix.totalBytes }
    }

    /// Batches laid end to end from position 0, offsets rising with gaps (compaction leaves
    /// them), of random sizes.
    static func batches(_ count: Int, using random: inout SeededRandom) -> [Batch] {
        var out: [Batch] = []
        var position = 0
        var offset = Int64.random(in: 0...50, using: &random)
        for _ in 0..<count {
            offset += Int64.random(in: 0...3, using: &random)  // a gap now and then
            let delta = Int32.random(in: 0...9, using: &random)
            let prefix = RecordBatchHeader.Prefix(baseOffset: Offset(offset), batchLength: Int32.random(in: 49...400, using: &random),
                                                  magic: 2, lastOffsetDelta: delta)
            out.append(Batch(position: position, prefix: prefix))
            position += prefix.totalBytes
            offset += Int64(delta) + 1
        }
        return out
    }

    /// What a scan from `minimum` finds: the first batch there or later whose last offset
    /// reaches `offset`.
    static func scan(_ all: [Batch], _ offset: Offset, from minimum: Int) -> Batch? {
        all.first { $0.position >= minimum && $0.prefix.lastOffset >= offset }
    }

    @Test(arguments: testSeeds(40))
    func answersAsAScanOfTheFileWould(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let all = Self.batches(Int.random(in: 1...30, using: &random), using: &random)
        var recent = RecentBatches()
        var next = Offset(0)
        for batch in all {
            recent.appended(position: batch.position, prefix: batch.prefix, nextOffset: next)
            next = batch.prefix.lastOffset + 1
        }
        let kept = all.suffix(RecentBatches.capacity)
        #expect(recent.entries.map(\.position) == kept.map(\.position), "seed \(seed)")
        let lowest = all.first!.prefix.baseOffset.value - 3
        for _ in 0..<200 {
            let offset = Offset(Int64.random(in: lowest...(next.value + 3), using: &random))
            // Reads name batch starts as minimums; sometimes a position inside one.
            let pick = all.randomElement(using: &random)!
            let minimum = Bool.random(using: &random) ? 0 : pick.position + (Int.random(in: 0..<4, using: &random) == 0 ? 5 : 0)
            let want = Self.scan(all, offset, from: minimum)
            switch recent.translate(offset, from: minimum) {
            case .found(let position, let prefix):
                #expect(position == want?.position && prefix == want?.prefix, "seed \(seed): offset \(offset) from \(minimum)")
            case .pastEnd:
                #expect(want == nil, "seed \(seed): offset \(offset) from \(minimum) is in a batch at \(want?.position ?? -1)")
            case .unknown:
                // Only what lies before the remembered batches, or a minimum inside the last one.
                let inLast = minimum > all.last!.position && minimum < all.last!.end
                #expect(offset < recent.coveredFrom || inLast, "seed \(seed): offset \(offset) from \(minimum) not answered")
            }
            // The end of the last whole batch from a batch's start up to a limit.
            let start = all.randomElement(using: &random)!.position
            let limit = Int.random(in: start...(all.last!.end + 50), using: &random)
            var end = start
            for batch in all where batch.position >= start {
                guard batch.end <= limit else { break }
                end = batch.end
            }
            if let got = recent.lastBatchEnd(from: start, notAfter: limit) {
                #expect(got == end, "seed \(seed): from \(start) to \(limit)")
            } else {
                #expect(start < kept.first!.position, "seed \(seed): from \(start) not answered")
            }
        }
    }

    @Test func nothingIsKnownOnceCleared() {
        var recent = RecentBatches()
        let prefix = RecordBatchHeader.Prefix(baseOffset: Offset(10), batchLength: 100, magic: 2, lastOffsetDelta: 4)
        recent.appended(position: 0, prefix: prefix, nextOffset: Offset(10))
        #expect(recent.translate(Offset(12)) == .found(position: 0, prefix: prefix))
        #expect(recent.translate(Offset(15)) == .pastEnd)
        #expect(recent.translate(Offset(9)) == .unknown)
        recent.clear()
        #expect(recent.translate(Offset(12)) == .unknown)
        #expect(recent.lastBatchEnd(from: 0, notAfter: 1000) == nil)
    }

    /// Reads of a log at its tail, through the remembered batches, give what the same reads
    /// give through the file once the segment forgets them.
    @Test(arguments: testSeeds(8))
    func tailReadsMatchReadsFromTheFile(seed: UInt64) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: seed)
        let clock = ManualClock()
        let log = try PartitionLog.open(directory: dir.partition, config: smallConfig(segmentBytes: 1_000_000, indexInterval: 4096),
                                        clock: clock, logger: quietLogger)
        defer { try? log.close() }
        for _ in 0..<Int.random(in: 5...40, using: &random) {
            var buf = buffer(RecordBatchBuilder.build(baseOffset: Offset(0),
                                                      records: randomRecords(Int.random(in: 1...5, using: &random), startMs: clock.now().ms, using: &random)))
            _ = try log.append(&buf)
        }
        let segment = try #require(log.segments.last)
        #expect(!segment.recent.entries.isEmpty)
        var asked: [(Offset, Int, Offset?)] = []
        for _ in 0..<50 {
            let offset = Offset(Int64.random(in: 0..<log.logEndOffset.value, using: &random))
            let bound: Offset? = Bool.random(using: &random) ? nil : Offset(Int64.random(in: offset.value...log.logEndOffset.value, using: &random))
            asked.append((offset, Int.random(in: 0...3_000, using: &random), bound))
        }
        let viaRecent = try asked.map { try log.read(from: $0.0, maxBytes: $0.1, upperBound: $0.2) }
        segment.recent.clear()
        let viaFile = try asked.map { try log.read(from: $0.0, maxBytes: $0.1, upperBound: $0.2) }
        for (i, (a, b)) in zip(viaRecent, viaFile).enumerated() {
            #expect(a.position == b.position && a.length == b.length && a.firstBatchOffset == b.firstBatchOffset,
                    "seed \(seed): read \(asked[i])")
        }
    }
}
