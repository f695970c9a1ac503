import BrookCore
import BrookRecords
@testable import BrookStorage
import NIOCore
import Testing

/// What a follower's log does: append the leader's batches as they came, cut a divergent tail,
/// and keep its epochs, high watermark and topic id in Kafka's checkpoint files.
@Suite struct ReplicaStorageTests {
    func batch(_ base: Int64, count: Int, epoch: Int32, value: String = "v") -> [UInt8] {
        let records = (0..<count).map { SimpleRecord(key: nil, value: Array("\(value)\($0)".utf8), timestamp: Timestamp(ms: 1000 + Int64($0))) }
        return RecordBatchBuilder.build(baseOffset: Offset(base), records: records, leaderEpoch: LeaderEpoch(epoch))
    }

    func open(_ dir: TemporaryDirectory) throws -> PartitionLog {
        try PartitionLog.open(directory: dir.partition, config: smallConfig(), clock: SystemClock(), logger: quietLogger)
    }

    /// Gaps between batches in a log that is not compacted (an offset-preserving mirror's, a
    /// follower's of it) survive a crash: recovery cuts only where offsets go back.
    @Test func gapsSurviveCrashRecovery() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var log: PartitionLog? = try open(dir)
        try log!.appendReplicated(buffer(batch(0, count: 3, epoch: 0) + batch(7, count: 2, epoch: 0) + batch(20, count: 1, epoch: 1)))
        #expect(log!.logEndOffset == Offset(21))
        log = nil  // no close: the next open recovers
        let reopened = try open(dir)
        #expect(reopened.segmentsRecoveredAtOpen >= 1)
        #expect(reopened.logEndOffset == Offset(21))
    }

    @Test func aFollowerKeepsTheLeadersOffsetsAndEpochs() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let log = try open(dir)
        let appended = try log.appendReplicated(buffer(batch(0, count: 3, epoch: 0) + batch(3, count: 2, epoch: 2)))
        #expect(appended == [ReplicatedBatch(baseOffset: Offset(0), lastOffset: Offset(2), leaderEpoch: LeaderEpoch(0)),
                             ReplicatedBatch(baseOffset: Offset(3), lastOffset: Offset(4), leaderEpoch: LeaderEpoch(2))])
        #expect(log.logEndOffset == Offset(5))
        // A compacted leader's gap is kept as a gap.
        try log.appendReplicated(buffer(batch(9, count: 1, epoch: 2)))
        #expect(log.logEndOffset == Offset(10))
        let slice = try log.read(from: Offset(3), maxBytes: 1 << 20)
        var epochs: [Int32] = []
        try slice.readBytes().withUnsafeReadableBytes { bytes in
            var at = 0
            while at < bytes.count {
                let header = try RecordBatchValidator.validate(UnsafeRawBufferPointer(rebasing: bytes[at...]), check: .checksum)
                epochs.append(header.partitionLeaderEpoch.value)
                at += header.totalBytes
            }
        }
        #expect(epochs == [2, 2])
        try log.close()
    }

    @Test func anOverlappingOrDamagedAppendIsRefusedWhole() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let log = try open(dir)
        try log.appendReplicated(buffer(batch(0, count: 3, epoch: 1)))
        #expect(throws: StorageError.self) { try log.appendReplicated(buffer(batch(2, count: 2, epoch: 1))) }
        #expect(throws: StorageError.self) { try log.appendReplicated(buffer(batch(3, count: 1, epoch: 1) + batch(3, count: 1, epoch: 1))) }
        #expect(throws: StorageError.self) { try log.appendReplicated(buffer(batch(3, count: 1, epoch: 2) + batch(4, count: 1, epoch: 1))) }
        var damaged = batch(3, count: 2, epoch: 1)
        damaged[damaged.count - 1] ^= 0xFF
        #expect(throws: StorageError.self) { try log.appendReplicated(buffer(damaged)) }
        #expect(log.logEndOffset == Offset(3))
        try log.close()
    }

    @Test func aDivergentTailIsCutAndReplacedAndSurvivesReopen() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var log = try open(dir)
        try log.appendReplicated(buffer(batch(0, count: 4, epoch: 1) + batch(4, count: 4, epoch: 2, value: "old")))
        try log.truncate(to: Offset(4))
        #expect(log.logEndOffset == Offset(4))
        try log.appendReplicated(buffer(batch(4, count: 2, epoch: 3, value: "new")))
        try log.close()
        log = try open(dir)
        #expect(log.logEndOffset == Offset(6))
        let slice = try log.read(from: Offset(4), maxBytes: 1 << 20)
        let (records, next) = try recordsAndNext(in: try slice.readBytes())
        #expect(records.map { String(decoding: $0.value ?? [], as: UTF8.self) } == ["new0", "new1"])
        #expect(next == Offset(6))
        try log.close()
    }

    @Test func checkpointsRoundTripInKafkasFormat() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        try FileSystem.createDirectory(dir.partition)
        let cache = LeaderEpochCache(entries: [.init(epoch: LeaderEpoch(0), startOffset: Offset(0)), .init(epoch: LeaderEpoch(3), startOffset: Offset(42))])
        try ReplicaCheckpoints.writeLeaderEpochs(cache, directory: dir.partition)
        #expect(try FileSystem.readFile(dir.partition + "/leader-epoch-checkpoint") == "0\n2\n0 0\n3 42\n")
        #expect(try ReplicaCheckpoints.readLeaderEpochs(directory: dir.partition) == cache)
        #expect(try ReplicaCheckpoints.readLeaderEpochs(directory: dir.path + "/missing") == LeaderEpochCache())

        try ReplicaCheckpoints.writePartitionMetadata(topicID: "q3YAXN1bTOWhr-0bTmmJkA", directory: dir.partition)
        #expect(try FileSystem.readFile(dir.partition + "/partition.metadata") == "version: 0\ntopic_id: q3YAXN1bTOWhr-0bTmmJkA\n")
        #expect(try ReplicaCheckpoints.readPartitionMetadata(directory: dir.partition) == "q3YAXN1bTOWhr-0bTmmJkA")

        let marks = [ReplicaCheckpoints.HighWatermark(topic: "orders", partition: 0, offset: Offset(17)),
                     ReplicaCheckpoints.HighWatermark(topic: "orders", partition: 1, offset: Offset(0))]
        try ReplicaCheckpoints.writeHighWatermarks(marks, logDirectory: dir.path)
        #expect(try ReplicaCheckpoints.readHighWatermarks(logDirectory: dir.path) == marks)
    }

    @Test func logDirectoriesAreMadeWithTheirParents() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let nested = dir.path + "/a/b/c"
        try FileSystem.createDirectories(nested)
        try FileSystem.createDirectories(nested)  // again: already there
        try FileSystem.writeAtomically(nested + "/f", contents: "x", durable: false)
        #expect(try FileSystem.readFile(nested + "/f") == "x")
        try FileSystem.writeAtomically(dir.path + "/file", contents: "x", durable: false)
        #expect(throws: StorageError.self) { try FileSystem.createDirectories(dir.path + "/file/sub") }
    }

    @Test func aDamagedCheckpointIsRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        try FileSystem.createDirectory(dir.partition)
        let path = dir.partition + "/leader-epoch-checkpoint"
        for text in ["", "1\n0\n", "0\n2\n0 0\n", "0\n1\n0\n", "0\n2\n3 10\n2 20\n", "0\n1\n-1 0\n", "0\nx\n"] {
            try FileSystem.writeAtomically(path, contents: text, durable: false)
            #expect(throws: StorageError.self, "\(text.debugDescription)") { try ReplicaCheckpoints.readLeaderEpochs(directory: dir.partition) }
        }
        try FileSystem.writeAtomically(dir.partition + "/partition.metadata", contents: "version: 1\ntopic_id: x\n", durable: false)
        #expect(throws: StorageError.self) { try ReplicaCheckpoints.readPartitionMetadata(directory: dir.partition) }
    }
}
