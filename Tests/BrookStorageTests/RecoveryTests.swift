import BrookCore
import BrookRecords
@testable import BrookStorage
import Foundation
import NIOCore
import Testing

/// Crash recovery: a log killed mid-write and then damaged at a random byte keeps every batch
/// before the damage and serves nothing from it on.
@Suite struct RecoveryTests {
    enum Damage: CaseIterable { case cut, flip, garbageTail }

    /// Batches of a segment file: (position, size, base offset).
    static func boundaries(_ path: String) throws -> [(position: Int, size: Int, base: Offset)] {
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        var out: [(Int, Int, Offset)] = []
        var position = 0
        while position < data.count {
            let prefix = data[position...].withUnsafeBytes { RecordBatchHeader.decodePrefix($0)! }
            out.append((position, prefix.totalBytes, prefix.baseOffset))
            position += prefix.totalBytes
        }
        return out
    }

    @Test(arguments: testSeeds(60))
    func damagedTailIsCutAtTheLastValidBatch(seed: UInt64) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: seed)
        let config = smallConfig(segmentBytes: 64 * 1024, indexInterval: 512)
        var log: PartitionLog? = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger)
        var expected: [ModelRecord] = []
        for _ in 0..<Int.random(in: 20...120, using: &random) {
            let batch = randomRecords(Int.random(in: 1...10, using: &random), startMs: 1_700_000_000_000, using: &random)
            var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: batch))
            let result = try log!.append(&bytes)
            expected += model(batch, from: result.firstOffset)
        }
        let activeBase = log!.segmentBaseOffsets.last!
        let path = dir.partition + "/" + LogSegment.fileName(activeBase, ".log")
        log = nil  // killed: no flush, no clean-shutdown marker

        let batches = try Self.boundaries(path)
        let size = batches.last.map { $0.position + $0.size } ?? 0
        let file = try SegmentFile(path: path, create: false)
        var survivingEnd = Offset(Int64.max)  // first offset that must be gone
        switch Damage.allCases.randomElement(using: &random)! {
        case .cut where size > 0:
            let cut = Int.random(in: 0..<size, using: &random)
            try file.truncate(to: cut)
            survivingEnd = batches.first { $0.position + $0.size > cut }!.base
        case .flip where size > 0:
            let victim = batches.randomElement(using: &random)!
            // Every byte but the leader epoch (which the format leaves outside the CRC) is checked.
            let inBatch = [Int](0..<12) + [Int](16..<victim.size)
            let position = victim.position + inBatch.randomElement(using: &random)!
            var byte = try file.read(count: 1, at: position)
            byte[0] ^= UInt8(1 << Int.random(in: 0..<8, using: &random))
            try byte.withUnsafeBytes { try file.write($0, at: position) }
            survivingEnd = victim.base
        default:  // a torn append: random bytes after the last whole batch
            let junk = (0..<Int.random(in: 1...200, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            try junk.withUnsafeBytes { try file.write($0, at: size) }
        }
        expected.removeAll { $0.offset >= survivingEnd }

        let reopened = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger)
        #expect(reopened.segmentsRecoveredAtOpen >= 1)
        let wantEnd = expected.last.map { $0.offset + 1 } ?? activeBase
        #expect(reopened.logEndOffset == wantEnd, "seed \(seed)")
        #expect(try readAll(reopened) == expected, "seed \(seed)")
        // The log takes appends again where it was cut, and survives a clean restart.
        let more = randomRecords(3, startMs: 1_700_000_000_000, using: &random)
        var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: more))
        let result = try reopened.append(&bytes)
        #expect(result.firstOffset == wantEnd)
        expected += model(more, from: result.firstOffset)
        try reopened.close()
        let again = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger)
        #expect(again.segmentsRecoveredAtOpen == 0)
        #expect(try readAll(again) == expected, "seed \(seed)")
        try again.close()
    }

    /// Batches of 5 records until the log has `segments` segments; what it holds.
    func fillWithRolls(_ log: PartitionLog, segments: Int, random: inout SeededRandom) throws -> [ModelRecord] {
        var expected: [ModelRecord] = []
        while log.segmentCount < segments {
            let batch = randomRecords(5, startMs: 1_700_000_000_000, using: &random)
            var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: batch))
            expected += model(batch, from: try log.append(&bytes).firstOffset)
        }
        return expected
    }

    /// A crash after a roll scans only the segments from the recovery point on, which moves
    /// past the rolled segments once they are fsynced (by maintenance, off the append).
    @Test func rolledSegmentsAreNotScannedAgain() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: 5)
        let config = smallConfig(segmentBytes: 8 * 1024, indexInterval: 256)
        var log: PartitionLog? = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger)
        let expected = try fillWithRolls(log!, segments: 6, random: &random)
        #expect(log!.recoveryPoint == .zero, "a roll does not fsync")
        let rolled = try #require(log!.takeUnsynced())
        #expect(rolled.segments.count == 5 && log!.takeUnsynced() == nil)
        for segment in rolled.segments { try segment.sync() }
        try log!.synced(upTo: rolled.upTo, rewrites: rolled.rewrites)
        #expect(log!.recoveryPoint == log!.segmentBaseOffsets.last)
        log = nil
        let reopened = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger)
        #expect(reopened.segmentsRecoveredAtOpen == 1)
        #expect(try readAll(reopened) == expected)
    }

    /// A clean open leaves an unchanged checkpoint alone (it was rewritten at every open: a
    /// file created and renamed per partition at each start). The file keeps its inode.
    @Test func aCleanOpenDoesNotRewriteTheCheckpoint() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: 7)
        let config = smallConfig(segmentBytes: 8 * 1024, indexInterval: 256)
        let log = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger)
        _ = try fillWithRolls(log, segments: 2, random: &random)
        try log.close()
        let path = dir.partition + "/" + PartitionLog.checkpointName
        let inode = { () throws -> UInt64 in
            try #require(FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? UInt64)
        }
        let before = try inode()
        let reopened = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger)
        #expect(reopened.segmentsRecoveredAtOpen == 0)
        #expect(try inode() == before)
        try reopened.close()
    }

    /// A shutdown's close in its three steps: the next open is clean only after all three, and
    /// a crash after the first or second (no marker yet) is recovered with nothing lost.
    @Test(arguments: [1, 2, 3])
    func aShutdownCloseIsCleanOnlyOnceItsMarkerIsWritten(steps: Int) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: UInt64(8 + steps))
        let config = smallConfig(segmentBytes: 8 * 1024, indexInterval: 256)
        let log = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger)
        let expected = try fillWithRolls(log, segments: 3, random: &random)
        try log.beginShutdownClose()
        if steps >= 2 { try log.writeShutdownCheckpoint() }
        if steps >= 3 { try log.leaveShutdownMarker() }
        #expect(FileManager.default.fileExists(atPath: dir.partition + "/" + PartitionLog.cleanShutdownName) == (steps == 3))
        let reopened = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger)
        #expect((reopened.segmentsRecoveredAtOpen == 0) == (steps == 3))
        if steps >= 2 { #expect(reopened.recoveryPoint == reopened.logEndOffset) }
        #expect(try readAll(reopened) == expected)
        try reopened.close()
    }

    /// Rolled segments not yet fsynced are scanned after a crash; a sync that a truncation
    /// overtook does not move the recovery point (what lies below it may be newer bytes).
    @Test func unsyncedRolledSegmentsAreScannedAndATruncationVoidsTheirSync() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: 6)
        let config = smallConfig(segmentBytes: 8 * 1024, indexInterval: 256)
        var log: PartitionLog? = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger)
        var expected = try fillWithRolls(log!, segments: 4, random: &random)
        let rolled = try #require(log!.takeUnsynced())
        try log!.truncate(to: log!.segmentBaseOffsets[1])
        expected = expected.filter { $0.offset < log!.logEndOffset }
        try log!.synced(upTo: rolled.upTo, rewrites: rolled.rewrites)
        #expect(log!.recoveryPoint == .zero)
        log = nil
        let reopened = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger)
        #expect(reopened.segmentsRecoveredAtOpen == reopened.segmentCount, "everything from the recovery point, 0")
        #expect(try readAll(reopened) == expected)
    }

    /// An index that does not match its log (here: overwritten with junk) is rebuilt, even after
    /// a clean shutdown.
    @Test func brokenIndexIsRebuilt() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: 8)
        let config = smallConfig(segmentBytes: 8 * 1024, indexInterval: 128)
        let log = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger)
        var expected: [ModelRecord] = []
        while log.segmentCount < 3 {
            let batch = randomRecords(4, startMs: 1_700_000_000_000, using: &random)
            var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: batch))
            expected += model(batch, from: try log.append(&bytes).firstOffset)
        }
        try log.close()
        let index = try SegmentFile(path: dir.partition + "/" + LogSegment.fileName(.zero, ".index"), create: false)
        let junk = [UInt8](repeating: 0x7F, count: 16)
        try junk.withUnsafeBytes { try index.write($0, at: 0) }
        let reopened = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger)
        #expect(reopened.segmentsRecoveredAtOpen == 1)
        #expect(try readAll(reopened, maxBytes: 200) == expected)
    }

    /// A full disk refuses the append with a typed error and leaves the log as it was.
    @Test func failedWriteLeavesTheLogUnchanged() throws {
        guard FileManager.default.fileExists(atPath: "/dev/full") else { return }
        let segment = try SegmentFile(path: "/dev/full", create: false)
        let bytes = [UInt8](repeating: 1, count: 4096)
        #expect(throws: StorageError.self) { try bytes.withUnsafeBytes { try segment.write($0, at: 0) } }
    }
}
