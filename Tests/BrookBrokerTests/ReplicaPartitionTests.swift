import BrookBroker
import BrookCluster
import BrookCore
import BrookProtocol
import BrookRecords
import BrookStorage
import BrookTxn
import Foundation
import NIOCore
import Testing

/// A partition's replication paths (PartitionReplica.swift) driven directly, as ReplicaManager
/// and the replica fetcher drive them, on a cluster-mode broker with no quorum: its partitions
/// start as followers and take the roles the tests give them.
@Suite struct ReplicaPartitionTests {
    /// A broker whose partitions start as followers (`process.roles`), and one partition of it.
    func clusterPartition(_ topic: String = "r") throws -> (BrokerHarness, Partition) {
        let h = try BrokerHarness([("process.roles", "broker,controller")])
        do {
            let created = try h.broker.topics.create(name: topic, partitions: 1, configs: [:])
            return (h, created.partitions[0]!)
        } catch {
            h.close()
            throw error
        }
    }

    /// Makes this broker (node 1) lead `partition` as ReplicaManager does from a PartitionInfo.
    func lead(_ partition: Partition, epoch: Int32, replicas: [Int32] = [1], isr: [Int32] = [1], partitionEpoch: Int32 = 0,
              nowMs: Int64 = 0) {
        let info = PartitionInfo(replicas: replicas.map(NodeID.init), isr: isr.map(NodeID.init), leader: NodeID(1),
                                 leaderEpoch: LeaderEpoch(epoch), partitionEpoch: PartitionEpoch(partitionEpoch))
        partition.becomeLeader(info, config: ReplicationConfig(), nowMs: nowMs, node: NodeID(1))
    }

    /// Appends one batch of `values` as a client's produce does.
    @discardableResult
    func append(_ partition: Partition, _ values: [String]) throws -> AppendResult {
        var records = ByteBuffer(bytes: batch(values, timestamps: values.map { _ in 1_000 }))
        return try partition.append(&records, now: 1_000).result
    }

    /// A batch as a leader sends it: real offsets from `base`, its leader epoch, maybe a producer.
    func leaderBatch(base: Int64, count: Int, epoch: Int32, producer: RecordBatchBuilder.Producer = .none,
                     transactional: Bool = false) -> [UInt8] {
        RecordBatchBuilder.build(baseOffset: Offset(base),
                                 records: (0..<count).map { SimpleRecord(key: nil, value: Array("r\(base + Int64($0))".utf8), timestamp: Timestamp(ms: 1_000)) },
                                 attributes: BatchAttributes(transactional: transactional), producer: producer, leaderEpoch: LeaderEpoch(epoch))
    }

    /// A transaction marker as a leader sends it: ControlBatch's batch (as appendMarker writes it)
    /// at `base`, in `epoch`. The base offset (bytes 0-7) and the partition leader epoch (12-15)
    /// lie before the part the CRC covers, so they are set in place.
    func leaderMarker(base: Int64, epoch: Int32, producer: ProducerID, commit: Bool) -> [UInt8] {
        var bytes = ControlBatch.build(producerID: producer, epoch: ProducerEpoch(0), commit: commit, coordinatorEpoch: 0,
                                       timestamp: Timestamp(ms: 1_000))
        withUnsafeBytes(of: base.bigEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        withUnsafeBytes(of: epoch.bigEndian) { bytes.replaceSubrange(12..<16, with: $0) }
        return bytes
    }

    /// Shuts `old`'s broker down (its directory stays) and starts a cluster-mode broker on the
    /// same directory: the partitions come back from disk as after a restart.
    func restart(_ old: BrokerHarness) throws -> BrokerHarness {
        old.broker.shutdown()
        try? old.loop.syncShutdownGracefully()
        return try BrokerHarness([("process.roles", "broker,controller")], clock: old.clock, directory: old.directory)
    }

    /// `restart`, and the harness's partition "r" 0 there.
    func restarted(_ old: BrokerHarness) throws -> (BrokerHarness, Partition) {
        let h = try restart(old)
        return (h, try #require(h.broker.topics.partition("r", 0)))
    }

    /// The aborted transactions in `partition`'s `.txnindex` files, by marker offset.
    func txnIndexEntries(_ partition: Partition) throws -> [AbortedTxn] {
        var entries: [AbortedTxn] = []
        for name in try FileSystem.list(partition.logDirectory).sorted() where name.hasSuffix(TxnIndex.suffix) {
            entries += TxnIndex.decode(try #require(try FileSystem.readBytes(partition.logDirectory + "/" + name, bytesMax: 1 << 20)))
        }
        return entries.sorted { $0.lastOffset < $1.lastOffset }
    }

    /// The aborted transactions a read_committed read from `offset` lists.
    func abortsListed(_ partition: Partition, from offset: Int64 = 0) throws -> [String] {
        try partition.read(from: Offset(offset), maxBytes: 1 << 20, minOneBatch: true, readCommitted: true).aborted
            .map { "\($0.producerID.value):\($0.firstOffset.value)-\($0.lastOffset.value)" }
    }

    /// OffsetForLeaderEpoch's answer as "epoch@endOffset" (nil: Kafka's UNDEFINED).
    /// A refusal reads "refused(code)".
    func ended(_ partition: Partition, _ epoch: Int32, current: Int32 = -1) -> String? {
        let (code, found) = partition.lastOffset(forEpoch: LeaderEpoch(epoch), current: LeaderEpoch(current))
        guard code == .none else { return "refused(\(code))" }
        return found.map { "\($0.epoch.value)@\($0.endOffset.value)" }
    }

    func logEnd(_ partition: Partition) throws -> Offset {
        try partition.withLog { $0.logEndOffset }
    }

    /// The leader's check of a follower fetch, as "read", "refused(code)" or "diverging(epoch@offset)".
    func check(_ partition: Partition, from follower: Int32 = 2, fetchOffset: Int64, lastFetchedEpoch: LeaderEpoch = .none,
               nowMs: Int64 = 0) -> String {
        let (check, _) = partition.followerFetch(NodeID(follower), fetchOffset: Offset(fetchOffset), lastFetchedEpoch: lastFetchedEpoch,
                                                 nowMs: nowMs)
        switch check {
        case .read: return "read"
        case .refused(let code): return "refused(\(code.rawValue))"
        case .diverging(let epoch, let offset): return "diverging(\(epoch.value)@\(offset.value))"
        }
    }

    // MARK: settings

    @Test func aChangeOfMinInsyncReplicasAppliesToTheLeaderAtOnce() throws {
        let (h, p) = try clusterPartition()
        defer { h.close() }
        lead(p, epoch: 0, replicas: [1, 2], isr: [1, 2])
        #expect(p.hasEnoughReplicas)
        p.replicationConfigChanged(ReplicationConfig(minInSyncReplicas: 3))
        #expect(!p.hasEnoughReplicas)
        p.replicationConfigChanged(ReplicationConfig(minInSyncReplicas: 2))
        #expect(p.hasEnoughReplicas)
    }

    // MARK: a sequence gap right after a leader change

    /// A client's batch from producer 7, epoch 0, at `sequence`: the error code of its append (0: written).
    func produce(_ partition: Partition, sequence: Int32, count: Int = 1) -> Int16 {
        let producer = RecordBatchBuilder.Producer(id: ProducerID(7), epoch: ProducerEpoch(0), baseSequence: sequence)
        var records = ByteBuffer(bytes: RecordBatchBuilder.build(
            baseOffset: .zero, records: (0..<count).map { _ in SimpleRecord(key: nil, value: Array("v".utf8), timestamp: Timestamp(ms: 1_000)) },
            producer: producer))
        do throws(Partition.AppendError) {
            _ = try partition.append(&records, now: 1_000)
            return 0
        } catch {
            if case .producer(let code, _) = error { return code.rawValue }
            return -1
        }
    }

    /// A partition that followed broker 2 in epoch 1, holding producer 7's batch of sequences
    /// 0-2 from it, and now leads in epoch 2.
    func ledAfterProducer7Replicated() throws -> (BrokerHarness, Partition) {
        let (h, p) = try clusterPartition()
        p.becomeFollower(leader: NodeID(2), epoch: LeaderEpoch(1))
        let producer = RecordBatchBuilder.Producer(id: ProducerID(7), epoch: ProducerEpoch(0), baseSequence: 0)
        do {
            try p.appendFromLeader(ByteBuffer(bytes: leaderBatch(base: 0, count: 3, epoch: 1, producer: producer)), leaderHighWatermark: Offset(3))
        } catch {
            h.close()
            throw error
        }
        lead(p, epoch: 2, nowMs: h.clock.monotonicMs())
        return (h, p)
    }

    /// Seed 424242's duplicate: the producer's batches 0-2 were replicated from the old leader,
    /// 3 was refused in the moment before this replica took the leadership, and 4 arrives
    /// first. It is answered NOT_LEADER_OR_FOLLOWER (retried after 3), not
    /// OUT_OF_ORDER_SEQUENCE_NUMBER (which librdkafka answers with an epoch bump that writes the
    /// old leader's batches again). Once the producer has written here, a gap is out of order.
    @Test func aSequenceGapBeforeTheProducersFirstWriteToANewLeaderIsRetriable() throws {
        let (h, p) = try ledAfterProducer7Replicated()
        defer { h.close() }

        #expect(produce(p, sequence: 4) == ErrorCode.notLeaderOrFollower.rawValue)
        #expect(produce(p, sequence: 2) == ErrorCode.outOfOrderSequenceNumber.rawValue)  // behind, not a gap
        #expect(produce(p, sequence: 0, count: 3) == 0)  // a retry of the replicated batch: its offsets, nothing written
        #expect(try logEnd(p) == Offset(3))
        #expect(produce(p, sequence: 4) == ErrorCode.notLeaderOrFollower.rawValue)
        #expect(produce(p, sequence: 3) == 0)
        #expect(produce(p, sequence: 5) == ErrorCode.outOfOrderSequenceNumber.rawValue)
        #expect(produce(p, sequence: 4) == 0)
        #expect(try logEnd(p) == Offset(5))
    }

    /// The rule lasts `leaderChangeGapMs` from the leadership, for producers that wrote before it.
    @Test func aSequenceGapLongAfterALeaderChangeIsOutOfOrder() throws {
        let (h, p) = try ledAfterProducer7Replicated()
        defer { h.close() }
        h.clock.advance(ms: 59_999)
        #expect(produce(p, sequence: 4) == ErrorCode.notLeaderOrFollower.rawValue)
        h.clock.advance(ms: 1)
        #expect(produce(p, sequence: 4) == ErrorCode.outOfOrderSequenceNumber.rawValue)
    }

    // MARK: OffsetForLeaderEpoch

    @Test func epochsEndWhereTheNextLeaderEpochBegan() throws {
        let (h, p) = try clusterPartition()
        defer { h.close() }
        #expect(!p.isLeader)
        lead(p, epoch: 0)
        #expect(p.role == .leader(LeaderEpoch(0)))
        try append(p, ["a", "b"])
        try append(p, ["c"])
        #expect(ended(p, 0) == "0@3")
        // Leading again in a newer epoch (epoch 1 never led here).
        lead(p, epoch: 2, partitionEpoch: 1)
        #expect(p.role == .leader(LeaderEpoch(2)))
        #expect(try append(p, ["d", "e"]).firstOffset == Offset(3))
        #expect(try logEnd(p) == Offset(5))

        #expect(ended(p, 0) == "0@3")
        // An epoch this log never saw: the newest older one, ending where epoch 2 began.
        #expect(ended(p, 1) == "0@3")
        #expect(ended(p, 2) == "2@5")
        #expect(ended(p, 5) == nil)
        #expect(ended(p, -1) == nil)
        // The leading epoch ends at the log end, which moves with each append.
        try append(p, ["f"])
        #expect(ended(p, 2) == "2@6")
        #expect(ended(p, 1) == "0@3")

        // The same answers through the handler, and the current epoch checked.
        let request = OffsetForLeaderEpochRequest(replicaId: NodeID(-1), topics: [.init(topic: "r", partitions: [
            .init(partition: 0, currentLeaderEpoch: LeaderEpoch(2), leaderEpoch: LeaderEpoch(1)),
            .init(partition: 0, currentLeaderEpoch: LeaderEpoch(-1), leaderEpoch: LeaderEpoch(5)),
            .init(partition: 0, currentLeaderEpoch: LeaderEpoch(0), leaderEpoch: LeaderEpoch(0)),
        ])])
        let answers = try h.send(request, version: 4).topics[0].partitions
        #expect(answers.map(\.errorCode) == [0, 0, ErrorCode.fencedLeaderEpoch.rawValue])
        #expect(answers[0].leaderEpoch == LeaderEpoch(0))
        #expect(answers[0].endOffset == Offset(3))
        #expect(answers[1].leaderEpoch == LeaderEpoch(-1))
        #expect(answers[1].endOffset == Offset(-1))
    }

    /// Seed 1713708041 (CI): a copier's consumer started reading a partition over from its first
    /// offset. Among the ways there: OffsetForLeaderEpoch's check of the leadership and its answer
    /// were two steps, so a replica that stopped leading between them answered UNDEFINED, which a
    /// consumer takes for a truncated log (and resets by `auto.offset.reset`). The replica's own
    /// state decides now, under one lock, even while its role still reads as the leader's.
    @Test func aReplicaThatStoppedLeadingDoesNotAnswerUndefined() throws {
        let (h, p) = try clusterPartition()
        defer { h.close() }
        lead(p, epoch: 1)
        try append(p, ["a", "b"])
        #expect(ended(p, 1, current: 1) == "1@2")
        #expect(ended(p, 1, current: 2) == "refused(\(ErrorCode.unknownLeaderEpoch))")
        #expect(ended(p, 1, current: 0) == "refused(\(ErrorCode.fencedLeaderEpoch))")
        p.becomeFollower(leader: NodeID(2), epoch: LeaderEpoch(2))
        #expect(ended(p, 1) == "refused(\(ErrorCode.notLeaderOrFollower))")
        // The moment between: the replica follows, the role still reads as leading.
        p.become(.leader(LeaderEpoch(2)))
        let request = OffsetForLeaderEpochRequest(replicaId: NodeID(-1), topics: [.init(topic: "r", partitions: [
            .init(partition: 0, currentLeaderEpoch: LeaderEpoch(2), leaderEpoch: LeaderEpoch(1)),
        ])])
        let answer = try h.send(request, version: 4).topics[0].partitions[0]
        #expect(answer.errorCode == ErrorCode.notLeaderOrFollower.rawValue)
        #expect(answer.endOffset == Offset(-1))
    }

    /// The leader's notice of an eligible replica out of its ISR: after 30 s of leadership, then
    /// at most every 30 s. (Its first version overflowed on its first call, at every start.)
    @Test func aReplicaOutOfTheISRIsNoticedEvery30Seconds() throws {
        let (h, p) = try clusterPartition()
        defer { h.close() }
        lead(p, epoch: 1, replicas: [1, 2], isr: [1], nowMs: 0)
        #expect(p.outOfSyncNotice(nowMs: 1_000, eligible: { _ in true }) == nil)
        let said = p.outOfSyncNotice(nowMs: 31_000, eligible: { _ in true })
        #expect(said?.hasPrefix("replica 2 has not fetched in leader epoch 1") == true)
        #expect(p.outOfSyncNotice(nowMs: 40_000, eligible: { _ in true }) == nil)
        #expect(p.outOfSyncNotice(nowMs: 61_000, eligible: { _ in true }) != nil)
        #expect(p.outOfSyncNotice(nowMs: 200_000, eligible: { _ in false }) == nil, "a fenced broker is not expected back")
    }

    @Test func aSingleNodeAnswersItsOneEpochAtTheHighWatermark() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("s")
        let p = try #require(h.broker.topics.partition("s", 0))
        #expect(!p.isReplicating)
        #expect(ended(p, 0) == "0@0")
        try append(p, ["a", "b", "c"])
        try append(p, ["d"])
        #expect(p.offsets.highWatermark == Offset(4))
        #expect(ended(p, 0) == "0@4")
        #expect(ended(p, -1) == nil)
        #expect(ended(p, 1) == nil)
    }

    // MARK: a follower behind the leader's log start

    @Test func aFollowerRestartsEmptyAtTheLeadersLogStart() throws {
        let (h, p) = try clusterPartition()
        defer { h.close() }
        p.becomeFollower(leader: NodeID(2), epoch: LeaderEpoch(1))
        let producer = { (seq: Int32) in RecordBatchBuilder.Producer(id: ProducerID(7), epoch: ProducerEpoch(0), baseSequence: seq) }
        let records = leaderBatch(base: 0, count: 3, epoch: 1, producer: producer(0)) + leaderBatch(base: 3, count: 2, epoch: 1, producer: producer(3))
        try p.appendFromLeader(ByteBuffer(bytes: records), leaderHighWatermark: Offset(2))
        #expect(p.followerPosition.fetchOffset == Offset(5))
        #expect(p.followerPosition.lastEpoch == LeaderEpoch(1))
        #expect(p.offsets.highWatermark == Offset(2))
        #expect(p.producers[ProducerID(7)] != nil)

        #expect(try p.restartAtLeaderLogStart(Offset(100)) == Offset(100))
        #expect(try logEnd(p) == Offset(100))
        #expect(p.offsets.logStart == Offset(100))
        #expect(p.offsets.highWatermark == Offset(100))
        #expect(p.followerPosition.fetchOffset == Offset(100))
        #expect(p.followerPosition.lastEpoch == LeaderEpoch.none)
        // The producer state went with the log (and is not brought back from a snapshot).
        #expect(p.producers.isEmpty)
        #expect(try p.read(from: Offset(100), maxBytes: 1 << 20, minOneBatch: true).slice.isEmpty)

        // A leader log start at or below our end: nothing to do.
        #expect(try p.restartAtLeaderLogStart(Offset(50)) == Offset(100))
        #expect(try p.restartAtLeaderLogStart(Offset(100)) == Offset(100))
        #expect(p.offsets.logStart == Offset(100))
        #expect(try logEnd(p) == Offset(100))

        // Copying goes on from there, and the epoch cache starts again.
        try p.appendFromLeader(ByteBuffer(bytes: leaderBatch(base: 100, count: 2, epoch: 3)), leaderHighWatermark: Offset(102))
        #expect(p.followerPosition.fetchOffset == Offset(102))
        #expect(p.followerPosition.lastEpoch == LeaderEpoch(3))
        #expect(p.offsets.highWatermark == Offset(102))
        #expect(p.offsets.logStart == Offset(100))
        #expect(try p.restartAtLeaderLogStart(Offset(101)) == Offset(102))
        #expect(try logEnd(p) == Offset(102))
    }

    @Test func aLeaderDoesNotRestartAtAnotherLogStart() throws {
        let (h, p) = try clusterPartition()
        defer { h.close() }
        lead(p, epoch: 0)
        try append(p, ["a", "b"])
        #expect(throws: StorageError.self) { try p.restartAtLeaderLogStart(Offset(100)) }
        #expect(throws: StorageError.self) { try p.restartAtLeaderLogStart(Offset(1)) }
        #expect(try logEnd(p) == Offset(2))
        #expect(p.offsets.logStart == Offset(0))
        #expect(p.isLeader)
    }

    @Test func aFollowerFetchBelowTheLeadersLogStartIsOutOfRange() throws {
        let (h, p) = try clusterPartition()
        defer { h.close() }
        // Alone in the ISR: the HW follows the log end.
        lead(p, epoch: 0, replicas: [1, 2], isr: [1])
        try append(p, ["a", "b", "c"])
        try append(p, ["d", "e"])
        #expect(p.offsets.highWatermark == Offset(5))
        // Before the log start moves, a fetch from 0 is read.
        #expect(check(p, fetchOffset: 0) == "read")
        #expect(try p.deleteRecords(before: Offset(3)) == Offset(3))
        #expect(p.offsets.logStart == Offset(3))

        let outOfRange = "refused(\(ErrorCode.offsetOutOfRange.rawValue))"
        #expect(check(p, fetchOffset: 0) == outOfRange)
        #expect(check(p, fetchOffset: 2) == outOfRange)
        #expect(check(p, fetchOffset: 0, lastFetchedEpoch: LeaderEpoch(0)) == outOfRange)
        #expect(check(p, fetchOffset: 3) == "read")
        #expect(check(p, fetchOffset: 5, lastFetchedEpoch: LeaderEpoch(0)) == "read")
        // Past the log end too.
        #expect(check(p, fetchOffset: 6) == outOfRange)
        // A follower does not answer followers.
        p.becomeFollower(leader: NodeID(2), epoch: LeaderEpoch(1))
        #expect(check(p, fetchOffset: 3) == "refused(\(ErrorCode.notLeaderOrFollower.rawValue))")
    }

    // MARK: DeleteRecords in a cluster

    @Test func deleteRecordsStopsAtTheHighWatermark() throws {
        let (h, p) = try clusterPartition()
        defer { h.close() }
        lead(p, epoch: 0, replicas: [1, 2], isr: [1, 2])
        try append(p, ["a", "b", "c"])
        #expect(try logEnd(p) == Offset(3))
        // The follower has fetched nothing: no record is committed yet.
        #expect(p.offsets.highWatermark == Offset(0))

        func refused(_ offset: Int64) -> Bool {
            do throws(StorageError) {
                _ = try p.deleteRecords(before: Offset(offset))
                return false
            } catch {
                if case .offsetOutOfRange = error { return true }
                return false
            }
        }
        #expect(refused(3))
        #expect(refused(1))
        #expect(refused(-1))
        #expect(p.offsets.logStart == Offset(0))
        #expect(try p.deleteRecords(before: nil) == Offset(0))
        #expect(p.offsets.logStart == Offset(0))

        // The follower has the first two records: the HW, and what may be deleted, moves to 2.
        #expect(check(p, fetchOffset: 2, lastFetchedEpoch: LeaderEpoch(0)) == "read")
        #expect(p.offsets.highWatermark == Offset(2))
        #expect(refused(3))
        #expect(p.offsets.logStart == Offset(0))
        #expect(try p.deleteRecords(before: nil) == Offset(2))
        #expect(p.offsets.logStart == Offset(2))
        #expect(try logEnd(p) == Offset(3))
        // The epoch cache follows the log start; the leading epoch still ends at the log end.
        #expect(ended(p, 0) == "0@3")
    }

    // MARK: restarts

    @Test func aRestartedLeaderServesUpToItsCheckpointedHighWatermark() throws {
        var (h, p) = try clusterPartition()
        defer { h.close() }
        p.becomeFollower(leader: NodeID(2), epoch: LeaderEpoch(1))
        try p.appendFromLeader(ByteBuffer(bytes: leaderBatch(base: 0, count: 3, epoch: 1) + leaderBatch(base: 3, count: 2, epoch: 1)),
                               leaderHighWatermark: Offset(3))
        #expect(p.checkpointHighWatermark == Offset(3))
        // Without the checkpoint a new leader with a follower in its ISR starts at HW 0 ...
        (h, p) = try restarted(h)
        lead(p, epoch: 2, replicas: [1, 2], isr: [1, 2])
        #expect(p.offsets.highWatermark == .zero)
        // ... with it, at what it had (and never past its log end).
        (h, p) = try restarted(h)
        p.restoreHighWatermark(Offset(3))
        p.restoreHighWatermark(Offset(1))
        lead(p, epoch: 3, replicas: [1, 2], isr: [1, 2])
        #expect(p.offsets.highWatermark == Offset(3))
        #expect(try p.read(from: .zero, maxBytes: 1 << 20, minOneBatch: true).slice.length > 0)
        (h, p) = try restarted(h)
        p.restoreHighWatermark(Offset(99))
        #expect(p.checkpointHighWatermark == Offset(5))
    }

    @Test func aLostEpochCheckpointIsRebuiltFromTheLogAndEntriesPastItsEndGo() throws {
        var (h, p) = try clusterPartition()
        defer { h.close() }
        p.becomeFollower(leader: NodeID(2), epoch: LeaderEpoch(3))
        try p.appendFromLeader(ByteBuffer(bytes: leaderBatch(base: 0, count: 2, epoch: 1) + leaderBatch(base: 2, count: 2, epoch: 3)),
                               leaderHighWatermark: Offset(4))
        #expect(p.followerPosition.lastEpoch == LeaderEpoch(3))
        let checkpoint = p.logDirectory + "/" + ReplicaCheckpoints.leaderEpochFileName
        // Lost: rebuilt from the batches' epochs (an empty cache would skip the divergence check).
        h = try restart(h)
        try FileSystem.remove(checkpoint)
        p = try #require(h.broker.topics.partition("r", 0))
        #expect(p.followerPosition.lastEpoch == LeaderEpoch(3))
        // Written with the log's next move of its recovery point, or its close.
        h = try restart(h)
        #expect(try ReplicaCheckpoints.readLeaderEpochs(directory: p.logDirectory).entries.map(\.description) == ["1@0", "3@2"])
        // An entry past the log end (written before a crash lost the records): dropped at load.
        h = try restart(h)
        try ReplicaCheckpoints.writeLeaderEpochs(LeaderEpochCache(entries: [.init(epoch: LeaderEpoch(1), startOffset: .zero),
                                                                            .init(epoch: LeaderEpoch(3), startOffset: Offset(2)),
                                                                            .init(epoch: LeaderEpoch(5), startOffset: Offset(9))]),
                                                 directory: p.logDirectory)
        p = try #require(h.broker.topics.partition("r", 0))
        #expect(p.followerPosition.lastEpoch == LeaderEpoch(3))
    }

    /// A leadership writes no epoch checkpoint (10,000 of them at a start wrote for 2.3 s): the
    /// log writes it, durably, before its recovery point passes a batch of the epoch. A crash
    /// before that keeps the batches, and the next start reads their epochs from the log's tail.
    @Test func aLeadershipsEpochReachesItsCheckpointBeforeTheRecoveryPointPassesIt() throws {
        let (h, p) = try clusterPartition()
        defer { h.close() }
        let saved = { (directory: String) throws -> [String] in
            try ReplicaCheckpoints.readLeaderEpochs(directory: directory).entries.map(\.description)
        }
        lead(p, epoch: 2)
        try append(p, ["a", "b"])
        #expect(try saved(p.logDirectory) == [])
        try p.withLog { log throws(StorageError) in try log.flush() }
        #expect(try saved(p.logDirectory) == ["2@0"])
        lead(p, epoch: 4)
        try append(p, ["c"])
        #expect(try saved(p.logDirectory) == ["2@0"])
        // A crash now: the broker's files as its page cache holds them, opened by another broker.
        let crashed = h.directory + "-crashed"
        try FileManager.default.copyItem(atPath: h.directory, toPath: crashed)
        defer { try? FileManager.default.removeItem(atPath: crashed) }
        let c = try BrokerHarness([("process.roles", "broker,controller")], clock: h.clock, directory: crashed)
        let q = try #require(c.broker.topics.partition("r", 0))
        #expect(q.followerPosition.lastEpoch == LeaderEpoch(4))
        c.broker.shutdown()
        try? c.loop.syncShutdownGracefully()
        #expect(try saved(q.logDirectory) == ["2@0", "4@2"])
        // The flush that moves the recovery point writes the checkpoint first.
        try p.withLog { log throws(StorageError) in try log.flush() }
        #expect(try saved(p.logDirectory) == ["2@0", "4@2"])
        // A leadership that wrote nothing leaves the file as it is until the log moves on.
        lead(p, epoch: 6)
        try p.withLog { log throws(StorageError) in try log.flush() }
        #expect(try saved(p.logDirectory) == ["2@0", "4@2"])
        try append(p, ["d"])
        try p.withLog { log throws(StorageError) in try log.flush() }
        #expect(try saved(p.logDirectory) == ["2@0", "4@2", "6@3"])
    }

    @Test func aFollowersLogStartFollowsTheLeaders() throws {
        let (h, p) = try clusterPartition()
        defer { h.close() }
        p.becomeFollower(leader: NodeID(2), epoch: LeaderEpoch(1))
        try p.appendFromLeader(ByteBuffer(bytes: leaderBatch(base: 0, count: 3, epoch: 1) + leaderBatch(base: 3, count: 3, epoch: 1)),
                               leaderHighWatermark: Offset(6))
        try p.followLeaderLogStart(Offset(4))
        #expect(p.offsets.logStart == Offset(4))
        try p.followLeaderLogStart(Offset(2))  // never back
        try p.followLeaderLogStart(Offset(50))  // not past this replica's end (restartAtLeaderLogStart does that)
        #expect(p.offsets.logStart == Offset(4))
        lead(p, epoch: 2)
        try p.followLeaderLogStart(Offset(5))  // a leader's own log start is its business
        #expect(p.offsets.logStart == Offset(4))
    }

    /// Found in review: the aborts a follower copied were in its producer state only, not in the
    /// `.txnindex`; after a restart (the snapshot at the log end) read_committed no longer listed
    /// them, and a consumer of the follower made leader saw the aborted records.
    @Test func theAbortsAFollowerCopiedSurviveARestart() throws {
        var (h, p) = try clusterPartition()
        defer { h.close() }
        p.becomeFollower(leader: NodeID(2), epoch: LeaderEpoch(1))
        let producer = RecordBatchBuilder.Producer(id: ProducerID(7), epoch: ProducerEpoch(0), baseSequence: 0)
        let records = leaderBatch(base: 0, count: 2, epoch: 1, producer: producer, transactional: true)
            + leaderMarker(base: 2, epoch: 1, producer: ProducerID(7), commit: false)
            + leaderBatch(base: 3, count: 1, epoch: 1)
        try p.appendFromLeader(ByteBuffer(bytes: records), leaderHighWatermark: Offset(4))
        #expect(try logEnd(p) == Offset(4))
        #expect(try abortsListed(p) == ["7:0-2"])
        #expect(try txnIndexEntries(p).map(\.lastOffset) == [Offset(2)])

        (h, p) = try restarted(h)
        #expect(try logEnd(p) == Offset(4))
        lead(p, epoch: 2)
        // An append, so that the HW is at the log end whatever becomeLeader does with it.
        try append(p, ["x"])
        #expect(p.offsets.lastStable == Offset(5))
        #expect(try abortsListed(p) == ["7:0-2"])
        #expect(try txnIndexEntries(p).map(\.lastOffset) == [Offset(2)])
    }

    /// Found in review: a leader alone in its ISR after a restart started with HW 0 (the HW is not
    /// kept) and kept it until the next append; nothing it had was readable meanwhile.
    @Test func aLeaderAloneInItsISRHasItsLogCommittedAtOnceAfterARestart() throws {
        var (h, p) = try clusterPartition()
        defer { h.close() }
        lead(p, epoch: 0)
        try append(p, ["a", "b"])
        try append(p, ["c"])
        #expect(p.offsets.highWatermark == Offset(3))

        (h, p) = try restarted(h)
        lead(p, epoch: 1)
        #expect(p.offsets.highWatermark == Offset(3))
        #expect(p.offsets.lastStable == Offset(3))
        #expect(try !p.read(from: Offset(0), maxBytes: 1 << 20, minOneBatch: true).slice.isEmpty)
        #expect(ended(p, 0) == "0@3")
    }

    @Test func aLeaderWithAFollowerInItsISRWaitsForItAfterARestart() throws {
        var (h, p) = try clusterPartition()
        defer { h.close() }
        lead(p, epoch: 0)
        try append(p, ["a", "b", "c"])

        (h, p) = try restarted(h)
        lead(p, epoch: 1, replicas: [1, 2], isr: [1, 2])
        // The follower may lack what this log has: nothing is committed until it fetches.
        #expect(p.offsets.highWatermark == Offset(0))
        #expect(check(p, fetchOffset: 2, lastFetchedEpoch: LeaderEpoch(0)) == "read")
        #expect(p.offsets.highWatermark == Offset(2))
    }

    // MARK: truncation and the .txnindex

    /// Found in review: truncation left the cut-off abort in the `.txnindex`; once the log grew
    /// past its marker again, a restart listed it, and read_committed consumers skipped the
    /// records of a transaction the new leader's log committed.
    @Test func truncationRemovesTheAbortsItCutOff() throws {
        var (h, p) = try clusterPartition()
        defer { h.close() }
        p.becomeFollower(leader: NodeID(2), epoch: LeaderEpoch(1))
        let producer = RecordBatchBuilder.Producer(id: ProducerID(7), epoch: ProducerEpoch(0), baseSequence: 0)
        let records = leaderBatch(base: 0, count: 2, epoch: 1, producer: producer, transactional: true)
            + leaderMarker(base: 2, epoch: 1, producer: ProducerID(7), commit: false)
        try p.appendFromLeader(ByteBuffer(bytes: records), leaderHighWatermark: Offset(0))
        #expect(try txnIndexEntries(p).map(\.lastOffset) == [Offset(2)])

        // The new leader's epoch 1 ended at 2: the marker goes, and its index entry with it.
        p.becomeFollower(leader: NodeID(3), epoch: LeaderEpoch(2))
        #expect(try p.truncateToLeader(epoch: LeaderEpoch(1), endOffset: Offset(2)) == Offset(2))
        #expect(try txnIndexEntries(p).isEmpty)
        #expect(try FileSystem.list(p.logDirectory).filter { $0.hasSuffix(TxnIndex.suffix) }.isEmpty, "an emptied index goes")

        // The new leader's log commits the transaction there instead.
        let theirs = leaderMarker(base: 2, epoch: 2, producer: ProducerID(7), commit: true) + leaderBatch(base: 3, count: 2, epoch: 2)
        try p.appendFromLeader(ByteBuffer(bytes: theirs), leaderHighWatermark: Offset(5))
        #expect(try abortsListed(p).isEmpty)
        #expect(try txnIndexEntries(p).isEmpty)

        (h, p) = try restarted(h)
        lead(p, epoch: 3)
        try append(p, ["x"])
        #expect(p.offsets.lastStable == Offset(6))
        #expect(try abortsListed(p).isEmpty)
    }

    /// Starting again at the leader's log start drops every `.txnindex` (its aborts went with the log).
    @Test func restartingAtTheLeadersLogStartRemovesTheTxnIndexes() throws {
        let (h, p) = try clusterPartition()
        defer { h.close() }
        p.becomeFollower(leader: NodeID(2), epoch: LeaderEpoch(1))
        let producer = RecordBatchBuilder.Producer(id: ProducerID(7), epoch: ProducerEpoch(0), baseSequence: 0)
        let records = leaderBatch(base: 0, count: 2, epoch: 1, producer: producer, transactional: true)
            + leaderMarker(base: 2, epoch: 1, producer: ProducerID(7), commit: false)
        try p.appendFromLeader(ByteBuffer(bytes: records), leaderHighWatermark: Offset(3))
        #expect(try txnIndexEntries(p).map(\.lastOffset) == [Offset(2)])

        #expect(try p.restartAtLeaderLogStart(Offset(100)) == Offset(100))
        #expect(try FileSystem.list(p.logDirectory).filter { $0.hasSuffix(TxnIndex.suffix) }.isEmpty)
        #expect(try abortsListed(p, from: 100).isEmpty)
    }
}
