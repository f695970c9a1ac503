import BrookCore
import BrookRecords
@testable import BrookStorage
import Foundation
import NIOCore
import Testing

@Suite struct RetentionAndAppendTests {
    func fill(_ log: PartitionLog, segments: Int, clock: ManualClock, random: inout SeededRandom) throws -> [ModelRecord] {
        var expected: [ModelRecord] = []
        while log.segmentCount < segments {
            let batch = randomRecords(5, startMs: clock.now().ms, using: &random).map {
                var r = $0
                r.timestamp = clock.now()
                return r
            }
            var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: batch))
            expected += model(batch, from: try log.append(&bytes).firstOffset)
        }
        return expected
    }

    @Test func retentionByTimeDeletesExpiredSegments() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: 1)
        let clock = ManualClock()
        var config = smallConfig(segmentBytes: 4096)
        config.retentionMs = 60_000
        let log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        _ = try fill(log, segments: 4, clock: clock, random: &random)
        clock.advance(ms: 30_000)
        let young = try fill(log, segments: 7, clock: clock, random: &random)
        #expect(try log.applyRetention() == 0)
        clock.advance(ms: 40_000)  // the first batches are now 70 s old, the later ones 40 s
        #expect(try log.applyRetention() == 3)
        // The segment where the young records begin may start with old ones: it is kept whole.
        #expect(log.logStartOffset == log.segmentBaseOffsets[0] && log.logStartOffset <= young.first!.offset)
        #expect(log.logStartOffset > young.first!.offset - 40)
        #expect(try readAll(log).last == young.last)
        #expect(throws: StorageError.self) { try log.read(from: .zero, maxBytes: 100) }
        clock.advance(ms: 60_000)  // everything expired: the active segment rolls and goes too
        #expect(try log.applyRetention() == 4)
        #expect(log.segmentCount == 1 && log.logStartOffset == log.logEndOffset)
        #expect(log.logEndOffset == young.last!.offset + 1)
        #expect(try log.read(from: log.logEndOffset, maxBytes: 100).isEmpty)
        try log.close()
        let reopened = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        #expect(reopened.logStartOffset == young.last!.offset + 1 && reopened.logEndOffset == young.last!.offset + 1)
    }

    @Test func retentionBySizeKeepsTheNewestBytes() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: 2)
        let clock = ManualClock()
        var config = smallConfig(segmentBytes: 4096)
        config.retentionBytes = 10_000
        let log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        let all = try fill(log, segments: 10, clock: clock, random: &random)
        let deleted = try log.applyRetention()
        #expect(deleted > 0)
        #expect(log.sizeBytes <= 10_000 + 4096)
        #expect(log.sizeBytes > 10_000 - 4096)
        #expect(try readAll(log) == all.filter { $0.offset >= log.logStartOffset })
    }

    /// Retention under a partition's lock only renames the segments it deletes: the caller
    /// removes them after the lock. A start removes any it did not get to, and takes the log
    /// start from the first segment left even if the checkpoint (not fsynced) is older.
    @Test func retentionDetachesSegmentsForRemovalOutsideTheLock() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: 4)
        let clock = ManualClock()
        var config = smallConfig(segmentBytes: 4096)
        config.retentionBytes = 10_000
        let log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        let all = try fill(log, segments: 10, clock: clock, random: &random)
        let checkpoint = try FileSystem.readFile(dir.partition + "/" + PartitionLog.checkpointName)
        let oldest = log.segmentBaseOffsets[0]
        var detached: [String] = []
        let deleted = try log.applyRetention(detached: &detached)
        #expect(deleted > 0 && detached.count >= deleted)
        #expect(detached.allSatisfy { $0.hasSuffix(".deleted") && FileManager.default.fileExists(atPath: $0) })
        #expect(detached.contains { $0.hasSuffix(String(format: "%020lld.log.deleted", oldest.value)) })
        #expect(try readAll(log) == all.filter { $0.offset >= log.logStartOffset })
        let start = log.logStartOffset
        try log.close()
        // A crash before the removal and with the checkpoint of before: both are put right.
        if let checkpoint { try FileSystem.writeAtomically(dir.partition + "/" + PartitionLog.checkpointName, contents: checkpoint, durable: false) }
        let reopened = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        #expect(reopened.logStartOffset == start)
        #expect(detached.allSatisfy { !FileManager.default.fileExists(atPath: $0) })
        #expect(try readAll(reopened) == all.filter { $0.offset >= start })
        try reopened.close()
    }

    @Test func compactOnlyTopicsAreNotDeletedByTime() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: 3)
        let clock = ManualClock()
        var config = try LogConfig(["cleanup.policy": "compact", "retention.ms": "1000"])
        config.segmentBytes = 4096
        let log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        _ = try fill(log, segments: 3, clock: clock, random: &random)
        clock.advance(ms: 10_000)
        #expect(try log.applyRetention() == 0)
    }

    @Test func segmentsRollByTime() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let clock = ManualClock()
        var config = LogConfig()
        config.segmentMs = 1_000
        let log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        for _ in 0..<3 {
            var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: [record("k", "v", at: clock.now().ms)]))
            try log.append(&bytes)
            clock.advance(ms: 1_500)
        }
        #expect(log.segmentBaseOffsets == [Offset(0), Offset(1), Offset(2)])
    }

    @Test func appendIsAllOrNothing() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let log = try PartitionLog.open(directory: dir.partition, logger: quietLogger)
        var good = RecordBatchBuilder.build(baseOffset: .zero, records: [record("a", "1")])
        var bad = RecordBatchBuilder.build(baseOffset: .zero, records: [record("b", "2")])
        bad[bad.count - 1] ^= 0xFF
        var both = buffer(good + bad)
        #expect {
            try log.append(&both)
        } throws: { error in
            guard case StorageError.invalidBatch(index: 1, .checksum) = error else { return false }
            return true
        }
        #expect(log.logEndOffset == .zero && log.sizeBytes == 0)
        good = RecordBatchBuilder.build(baseOffset: Offset(999), records: [record("a", "1"), record("b", "2")])
        var ok = buffer(good + good)
        let result = try log.append(&ok)
        #expect(result.firstOffset == .zero && result.lastOffset == Offset(3) && result.recordCount == 4)
    }

    @Test func oversizedBatchesAndKeylessCompactedRecordsAreRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var config = try LogConfig(["max.message.bytes": "200", "cleanup.policy": "compact,delete"])
        #expect(config.cleanupCompact && config.cleanupDelete)
        let log = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger)
        var big = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: [record("k", String(repeating: "x", count: 300))]))
        #expect(throws: StorageError.self) { try log.append(&big) }
        // Every keyless record is named, by its index among the request's records.
        var keyless = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: [record("k", "v"), record(nil, "v")])
                             + RecordBatchBuilder.build(baseOffset: .zero, records: [record(nil, "a"), record("k", "b"), record(nil, "c")]))
        #expect {
            try log.append(&keyless)
        } throws: { error in
            guard case StorageError.missingKeyOnCompactedTopic(let records) = error else { return false }
            return records == [1, 2, 4]
        }
        config.maxMessageBytes = 1_000_000
        #expect(throws: StorageError.self) { try LogConfig(["retention.ms": "soon"]) }
        #expect(throws: StorageError.self) { try LogConfig(["no.such.config": "1"]) }
    }

    /// The broker validates a client's batches before it takes the partition's lock; settings
    /// changed in between (here the topic became compacted) have them validated again under
    /// the lock, so the append follows the settings of the moment it writes.
    @Test func batchesValidatedUnderOlderSettingsAreValidatedAgain() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let log = try PartitionLog.open(directory: dir.partition, config: LogConfig(), logger: quietLogger)
        var keyless = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: [record(nil, "v")]))
        let validated = try PartitionLog.validate(&keyless, origin: .client, config: log.config, configVersion: log.configVersion,
                                                  now: SystemClock().now().ms)
        log.update(config: try LogConfig(["cleanup.policy": "compact"]))
        #expect(throws: StorageError.self) { try log.append(&keyless, validated: validated, origin: .client) }
        #expect(log.logEndOffset == .zero)
        // Under unchanged settings the validated batches are written as they are.
        var keyed = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: [record("k", "v")]))
        let checked = try PartitionLog.validate(&keyed, origin: .client, config: log.config, configVersion: log.configVersion,
                                                now: SystemClock().now().ms)
        #expect(try log.append(&keyed, validated: checked, origin: .client).lastOffset == .zero)
    }

    @Test func logAppendTimeIsStamped() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let clock = ManualClock(Timestamp(ms: 5_000_000))
        let config = try LogConfig(["message.timestamp.type": "LogAppendTime"])
        let log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: [record("k", "v", at: 1)]))
        let result = try log.append(&bytes)
        #expect(result.logAppendTime == Timestamp(ms: 5_000_000))
        #expect(try readAll(log).map(\.timestamp) == [Timestamp(ms: 5_000_000)])
        #expect(try log.offset(forTimestamp: Timestamp(ms: 4_999_999))?.offset == .zero)
    }

    @Test func readBoundsAndUpperBound() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let log = try PartitionLog.open(directory: dir.partition, logger: quietLogger)
        for i in 0..<5 {
            var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: [record("k\(i)", "a"), record("k\(i)", "b")]))
            try log.append(&bytes)
        }
        #expect(throws: StorageError.self) { try log.read(from: Offset(11), maxBytes: 1000) }
        #expect(throws: StorageError.self) { try log.read(from: Offset(-1), maxBytes: 1000) }
        #expect(try log.read(from: Offset(10), maxBytes: 1000).isEmpty)
        // High-watermark bound: only batches wholly below offset 6.
        let bounded = try records(in: log.read(from: Offset(1), maxBytes: 100_000, upperBound: Offset(6)).readBytes())
        #expect(bounded.map(\.offset.value) == [0, 1, 2, 3, 4, 5])
        // A max of 1 byte still returns the batch holding the offset, unless told not to.
        let one = try log.read(from: Offset(3), maxBytes: 1)
        #expect(try records(in: one.readBytes()).map(\.offset.value) == [2, 3])
        #expect(try log.read(from: Offset(3), maxBytes: 1, minOneBatch: false).isEmpty)
    }

    @Test func sealedIndexesAreTrimmedFiles() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var random = SeededRandom(seed: 4)
        let clock = ManualClock()
        let log = try PartitionLog.open(directory: dir.partition, config: smallConfig(segmentBytes: 8192, indexInterval: 256),
                                        clock: clock, logger: quietLogger)
        _ = try fill(log, segments: 3, clock: clock, random: &random)
        let attributes = try FileManager.default.attributesOfItem(atPath: dir.partition + "/" + LogSegment.fileName(.zero, ".index"))
        let bytes = (attributes[.size] as! NSNumber).intValue
        #expect(bytes > 0 && bytes % 8 == 0 && bytes < 8192 / 256 * 8 + 8)
        try log.close()
    }
}

@Suite struct FlushTests {
    @Test func flushMessagesMovesTheRecoveryPoint() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let config = try LogConfig(["flush.messages": "3"])
        let log = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger)
        var one = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: [record("a", "1"), record("b", "2")]))
        try log.append(&one)
        #expect(log.recoveryPoint == .zero)  // two records: below flush.messages, left to the page cache
        var two = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: [record("c", "3")]))
        try log.append(&two)
        #expect(log.recoveryPoint == Offset(3))
        #expect(try PartitionLog.readCheckpoint(dir.partition).recoveryPoint == Offset(3))
    }

    @Test func flushMsIsCheckedOnAppendAndOnDemand() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let clock = ManualClock()
        let config = try LogConfig(["flush.ms": "1000"])
        let log = try PartitionLog.open(directory: dir.partition, config: config, clock: clock, logger: quietLogger)
        var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: [record("a", "1")]))
        try log.append(&bytes)
        #expect(log.recoveryPoint == .zero)
        clock.advance(ms: 1_000)
        try log.flushIfDue()
        #expect(log.recoveryPoint == Offset(1))
    }
}
