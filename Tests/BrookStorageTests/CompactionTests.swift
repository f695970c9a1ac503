import BrookCore
import BrookRecords
@testable import BrookStorage
import Foundation
import NIOCore
import Testing

@Suite struct CompactionTests {
    func compactConfig(segmentBytes: Int = 4096) throws -> LogConfig {
        var config = try LogConfig(["cleanup.policy": "compact", "delete.retention.ms": "100000"])
        config.segmentBytes = segmentBytes
        config.indexIntervalBytes = 256
        config.segmentIndexBytes = 4096
        return config
    }

    /// What compaction must leave: below the active segment, the last record of each key (a
    /// tombstone only while young); from the active segment on, everything.
    func compacted(_ records: [ModelRecord], activeBase: Offset, tombstoneHorizon: Timestamp) -> [ModelRecord] {
        var last: [[UInt8]: Offset] = [:]
        for r in records where r.offset < activeBase { last[r.key!] = r.offset }
        return records.filter { r in
            guard r.offset < activeBase else { return true }
            return last[r.key!] == r.offset && !(r.value == nil && r.timestamp < tombstoneHorizon)
        }
    }

    func produce(_ log: PartitionLog, keys: Int, count: Int, clock: ManualClock, random: inout SeededRandom,
                 tombstoneChance: Int = 10) throws -> [ModelRecord] {
        var out: [ModelRecord] = []
        for _ in 0..<count {
            let batch = (0..<Int.random(in: 1...8, using: &random)).map { _ in
                let key = "key-\(Int.random(in: 0..<keys, using: &random))"
                let tombstone = Int.random(in: 0..<100, using: &random) < tombstoneChance
                return record(key, tombstone ? nil : String(repeating: "v", count: Int.random(in: 1...60, using: &random)),
                              at: clock.now().ms)
            }
            var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: batch))
            out += model(batch, from: try log.append(&bytes).firstOffset)
            clock.advance(ms: 10)
        }
        return out
    }

    @Test(arguments: testSeeds(12))
    func keepsTheLastValuePerKeyAndEveryOffset(seed: UInt64) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: seed)
        let clock = ManualClock()
        let config = try compactConfig()
        var log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        var all = try produce(log, keys: Int.random(in: 3...40, using: &random), count: 200, clock: clock, random: &random)
        let activeBase = log.segmentBaseOffsets.last!
        clock.advance(ms: Int64.random(in: 0...4_000, using: &random))
        let horizon = Timestamp(ms: clock.now().ms - config.deleteRetentionMs)
        let before = log.sizeBytes
        let result = try log.compact()
        all = compacted(all, activeBase: activeBase, tombstoneHorizon: horizon)
        let got = try readAll(log)
        #expect(got == all, "seed \(seed): \(Set(got.map(\.offset)).symmetricDifference(all.map(\.offset)).sorted()) \(log.segmentBaseOffsets)")
        #expect(result.recordsRemoved > 0 && log.sizeBytes < before)
        #expect(log.logEndOffset == all.last!.offset + 1)
        // Compacting again changes nothing; a crash and a clean restart both keep it.
        #expect(try log.compact().recordsRemoved == 0)
        log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        #expect(try readAll(log) == all, "seed \(seed) after recovery")
        try log.close()
        log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        #expect(try readAll(log) == all, "seed \(seed) after clean restart")
        // Reads inside a gap left by compaction land on the next record.
        for (a, b) in zip(all, all.dropFirst()) where b.offset > a.offset + 1 {
            #expect(try readAll(log, from: a.offset + 1, maxBytes: 10).first == b, "seed \(seed)")
        }
        try log.close()
    }

    @Test func tombstonesGoAfterDeleteRetention() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let clock = ManualClock()
        let config = try compactConfig(segmentBytes: 200)
        let log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        for r in [record("a", "1", at: clock.now().ms), record("a", nil, at: clock.now().ms), record("b", "2", at: clock.now().ms)] {
            var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: [r]))
            try log.append(&bytes)
        }
        try log.compact()
        #expect(try readAll(log).map { $0.offset.value } == [1, 2])  // the young tombstone stays
        clock.advance(ms: config.deleteRetentionMs + 1)
        try log.compact()
        #expect(try readAll(log).map { $0.offset.value } == [2])
    }

    @Test func youngRecordsWaitForTheCompactionLag() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: 3)
        let clock = ManualClock()
        var config = try compactConfig()
        config.minCompactionLagMs = 60_000
        let log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        let all = try produce(log, keys: 3, count: 100, clock: clock, random: &random)
        #expect(try log.compact() == CompactionResult())
        #expect(try readAll(log) == all)
        clock.advance(ms: 60_000)
        #expect(try log.compact().recordsRemoved > 0)
    }

    /// A crash after the cleaned segment became `.swap` but before it replaced the old ones:
    /// the next open finishes the swap and the log reads as the completed compaction.
    @Test func interruptedSwapIsCompletedOnOpen() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: 4)
        let clock = ManualClock()
        let small = try compactConfig(segmentBytes: 2048)
        let log = try PartitionLog.open(directory: dir.partition, config: small, clock: clock, logger: quietLogger)
        _ = try produce(log, keys: 5, count: 100, clock: clock, random: &random, tombstoneChance: 0)
        #expect(log.segmentCount > 4)
        try log.close()
        let fm = FileManager.default
        let crashed = dir.path + "/crashed"
        try fm.copyItem(atPath: dir.partition, toPath: crashed)
        // One group: every inactive segment becomes one cleaned segment at offset 0.
        let large = try compactConfig(segmentBytes: 1 << 20)
        let done = try PartitionLog.open(directory: dir.partition, config: large, clock: clock, logger: quietLogger)
        try done.compact()
        #expect(done.segmentCount == 2)
        let want = try readAll(done)
        try done.close()
        // Put the cleaned segment beside the old ones as a swap, as a crash would leave it.
        for ext in [".log", ".index", ".timeindex"] {
            let name = LogSegment.fileName(.zero, ext)
            try fm.copyItem(atPath: dir.partition + "/" + name, toPath: crashed + "/" + name + ".swap")
        }
        try fm.removeItem(atPath: crashed + "/" + PartitionLog.cleanShutdownName)
        let recovered = try PartitionLog.open(directory: crashed, config: large, clock: clock, logger: quietLogger)
        #expect(try readAll(recovered) == want)
        #expect(recovered.segmentCount == 2)
        #expect(try FileSystem.list(crashed).allSatisfy { !$0.hasSuffix(".swap") })
    }

    /// The keys are mapped and the cleaned segments written without the partition's lock:
    /// appends (rolling new segments) and reads go on between the plan and the swap, and the
    /// swap keeps what they wrote.
    @Test(arguments: testSeeds(6))
    func appendsGoOnBetweenThePlanAndTheSwap(seed: UInt64) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: seed)
        let clock = ManualClock()
        let config = try compactConfig()
        let log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        let keys = Int.random(in: 3...30, using: &random)
        var all = try produce(log, keys: keys, count: 150, clock: clock, random: &random)
        let activeBase = log.segmentBaseOffsets.last!
        let horizon = Timestamp(ms: clock.now().ms - config.deleteRetentionMs)
        let plan = try #require(log.planCompaction())
        #expect(log.planCompaction() == nil)  // one pass at a time
        let (groups, result) = try plan.clean()
        #expect(!groups.isEmpty && result.recordsRemoved > 0)
        // Meanwhile: more appends, rolling segments, and reads of everything.
        let later = try produce(log, keys: keys, count: 100, clock: clock, random: &random)
        #expect(try readAll(log) == all + later)
        var detached: [String] = []
        for group in groups { #expect(try log.swapIn(group, detached: &detached)) }
        log.endCompaction()
        for path in detached { try FileSystem.remove(path) }
        all = compacted(all, activeBase: activeBase, tombstoneHorizon: horizon) + later
        #expect(try readAll(log) == all, "seed \(seed)")
        #expect(try FileSystem.list(dir.partition).allSatisfy { !$0.hasSuffix(".cleaned") && !$0.hasSuffix(".deleted") && !$0.hasSuffix(".swap") })
        try log.close()
        let reopened = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        #expect(try readAll(reopened) == all, "seed \(seed) after a restart")
        #expect(reopened.planCompaction() != nil)
        try reopened.close()
    }

    /// A truncation into the planned segments, or a close, between the plan and the swap: the
    /// cleaned segments are not swapped in (they would bring back what was cut) and their files go.
    @Test(arguments: [false, true])
    func aGroupChangedSinceThePlanIsLeftAlone(closing: Bool) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: 11)
        let clock = ManualClock()
        let config = try compactConfig()
        let log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        let all = try produce(log, keys: 5, count: 150, clock: clock, random: &random, tombstoneChance: 0)
        let plan = try #require(log.planCompaction())
        let (groups, result) = try plan.clean()
        #expect(result.recordsRemoved > 0)
        let cut = log.segmentBaseOffsets[2]
        if closing { try log.close() } else { try log.truncate(to: cut) }
        var detached: [String] = []
        for group in groups {
            #expect(try !log.swapIn(group, detached: &detached))
            plan.discard(group)
        }
        #expect(detached.isEmpty)
        #expect(try FileSystem.list(dir.partition).allSatisfy { !$0.hasSuffix(".cleaned") && !$0.hasSuffix(".swap") })
        if closing {
            let reopened = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
            #expect(try readAll(reopened) == all)
            try reopened.close()
        } else {
            log.endCompaction()
            #expect(try readAll(log) == all.filter { $0.offset < cut })
            #expect(try log.compact().recordsRemoved > 0)  // the next pass cleans what is left
            try log.close()
        }
    }

    /// A first group whose every record a later one replaced stays as an empty segment: the log
    /// start offset stays where it was (before a restart and after, clean or not), and a read
    /// from it gets the records that follow, as Kafka answers, not OFFSET_OUT_OF_RANGE.
    @Test(arguments: [false, true])
    func anEmptiedFirstGroupKeepsTheLogStart(crash: Bool) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let clock = ManualClock()
        let config = try compactConfig(segmentBytes: 300)
        var log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        for i in 0..<60 {
            var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: [record("a", "value-\(i)", at: clock.now().ms)]))
            try log.append(&bytes)
        }
        #expect(log.segmentCount > 5)
        try log.compact()
        let left = try readAll(log)
        #expect(left.count < 10 && left.last?.value == Array("value-59".utf8), "\(left.map(\.offset))")
        #expect(log.logStartOffset == .zero && log.segmentBaseOffsets.first == .zero)
        #expect(try readAll(log, from: .zero, maxBytes: 10).first == left.first)
        if !crash { try log.close() }  // (else opened again as after a kill: no clean-shutdown marker)
        log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        #expect(log.logStartOffset == .zero)
        #expect(try readAll(log) == left)
        // Compacting again keeps it so.
        try log.compact()
        let again = try readAll(log)
        #expect(log.logStartOffset == .zero && again == left)
        try log.close()
    }
}
