import BrookCore
import BrookRecords
@testable import BrookStorage
import Foundation
import NIOCore
import Testing

/// DirectoryMirror, the copy a move between log dirs makes while the log serves: whatever the
/// log does between passes (appends, rolls, truncation, retention, DeleteRecords), the final
/// pass over the closed log leaves a directory that opens as the same log, byte for byte.
@Suite struct DirectoryMirrorTests {
    func append(_ log: PartitionLog, _ n: Int, clock: ManualClock, random: inout SeededRandom) throws {
        let batch = randomRecords(n, startMs: clock.now().ms, using: &random).map {
            var r = $0
            r.timestamp = clock.now()
            return r
        }
        var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: batch))
        _ = try log.append(&bytes)
    }

    func files(_ directory: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            out[name] = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
        }
        return out
    }

    @Test(arguments: testSeeds(8))
    func theFinalPassLeavesTheLogByteForByte(seed: UInt64) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: seed)
        let clock = ManualClock()
        var config = smallConfig(segmentBytes: 4096)
        config.cleanupCompact = seed % 2 == 0
        let log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        let mirror = DirectoryMirror(source: dir.partition, target: dir.path + "/copy.future")
        var passes = 0
        var compactions = 0
        for _ in 0..<Int.random(in: 20...60, using: &random) {
            switch Int.random(in: 0..<10, using: &random) {
            case 0 where log.logEndOffset > log.logStartOffset + 10:
                try log.truncate(to: log.logEndOffset - Int64.random(in: 1...10, using: &random))
            case 1 where log.segmentCount > 2:
                _ = try log.deleteRecords(before: log.segmentBaseOffsets[1])
            case 2, 3:
                try mirror.pass(DirectoryListing.of(log), final: false)
                passes += 1
            case 4 where config.cleanupCompact && log.segmentCount > 3:
                _ = try log.compact()
                compactions += 1
            default:
                try append(log, Int.random(in: 1...20, using: &random), clock: clock, random: &random)
            }
            clock.advance(ms: 10)
        }
        let expected = try readAll(log)
        let end = log.logEndOffset, start = log.logStartOffset
        try log.close()
        try mirror.pass(DirectoryListing.of(log), final: true)
        #expect(try files(mirror.target) == files(dir.partition), "seed \(seed), \(passes) passes, \(compactions) compactions")
        let copy = try PartitionLog.open(directory: mirror.target, config: config, clock: clock, logger: quietLogger)
        #expect(copy.segmentsRecoveredAtOpen == 0)
        #expect(copy.logEndOffset == end && copy.logStartOffset == start)
        #expect(try readAll(copy) == expected)
        try copy.close()
    }

    @Test func aPassCopiesOnlyWhatWasAppendedSinceTheLast() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: 7)
        let clock = ManualClock()
        let log = try PartitionLog.open(directory: dir.partition, config: smallConfig(segmentBytes: 1 << 20), clock: clock, logger: quietLogger)
        for _ in 0..<50 { try append(log, 10, clock: clock, random: &random) }
        let mirror = DirectoryMirror(source: dir.partition, target: dir.path + "/copy.future")
        let first = try mirror.pass(DirectoryListing.of(log), final: false)
        #expect(first == Int64(log.sizeBytes))
        #expect(try mirror.pass(DirectoryListing.of(log), final: false) == 0)
        #expect(try mirror.behind(DirectoryListing.of(log)) == 0)
        let before = log.sizeBytes
        try append(log, 10, clock: clock, random: &random)
        #expect(try mirror.behind(DirectoryListing.of(log)) == Int64(log.sizeBytes - before))
        #expect(try mirror.pass(DirectoryListing.of(log), final: false) == Int64(log.sizeBytes - before))
        // A truncation starts the copy again.
        try log.truncate(to: log.logEndOffset - 5)
        #expect(try mirror.pass(DirectoryListing.of(log), final: false) == Int64(log.sizeBytes))
        try log.close()
    }
}
