import BrookCore
import BrookRecords
import NIOCore
import Synchronization
import Testing

@testable import BrookClient

@Suite struct ConsumerTests {
    static func records(_ values: [String]) -> [SimpleRecord] {
        values.map { SimpleRecord(key: nil, value: Array($0.utf8), timestamp: Timestamp(ms: 1000)) }
    }

    static func values(_ fetched: FetchedRecords) -> [String] {
        fetched.records.map { String(decoding: $0.value ?? [], as: UTF8.self) }
    }

    /// Batches of two producers, one transaction committed and one aborted, with their markers.
    static func transactionalLog() -> ByteBuffer {
        let committer = RecordBatchBuilder.Producer(id: ProducerID(7), epoch: ProducerEpoch(0), baseSequence: 0)
        let aborter = RecordBatchBuilder.Producer(id: ProducerID(9), epoch: ProducerEpoch(0), baseSequence: 0)
        let transactional = BatchAttributes(transactional: true)
        let marker = BatchAttributes(transactional: true, control: true)
        var bytes: [UInt8] = []
        bytes += RecordBatchBuilder.build(baseOffset: Offset(0), records: records(["plain0"]))
        bytes += RecordBatchBuilder.build(baseOffset: Offset(1), records: records(["c1", "c2"]), attributes: transactional, producer: committer)
        bytes += RecordBatchBuilder.build(baseOffset: Offset(3), records: records(["a3", "a4"]), attributes: transactional, producer: aborter)
        bytes += RecordBatchBuilder.build(baseOffset: Offset(5), records: records(["plain5"]))
        bytes += RecordBatchBuilder.build(baseOffset: Offset(6), records: [SimpleRecord(key: [0, 0, 0, 1], value: [0, 0, 0, 0, 0, 0], timestamp: Timestamp(ms: 1000))],
                                          attributes: marker, producer: committer)
        bytes += RecordBatchBuilder.build(baseOffset: Offset(7), records: records(["a7"]), attributes: transactional, producer: aborter)
        bytes += RecordBatchBuilder.build(baseOffset: Offset(8), records: [SimpleRecord(key: [0, 0, 0, 0], value: [0, 0, 0, 0, 0, 0], timestamp: Timestamp(ms: 1000))],
                                          attributes: marker, producer: aborter)
        bytes += RecordBatchBuilder.build(baseOffset: Offset(9), records: records(["a9"]), attributes: transactional, producer: aborter)
        return ByteBuffer(bytes: bytes)
    }

    @Test func readCommittedLeavesAbortedTransactionsAndMarkersOut() throws {
        let log = Self.transactionalLog()
        // The aborted transaction began at 3; the producer's next one (at 9) is open, not aborted.
        let committed = try RecordDecoding.decode(log, topic: "t", partition: 0, from: Offset(0),
                                                  aborted: [(producer: ProducerID(9), firstOffset: Offset(3))], verifyingCRC: true)
        #expect(Self.values(committed) == ["plain0", "c1", "c2", "plain5", "a9"])
        #expect(committed.nextOffset == Offset(10))
        #expect(committed.records.map(\.offset.value) == [0, 1, 2, 5, 9])
        #expect(committed.records.allSatisfy { $0.topic == "t" && $0.partition == 0 })
        // read_uncommitted: everything but the markers.
        let everything = try RecordDecoding.decode(log, topic: "t", partition: 0, from: Offset(0))
        #expect(Self.values(everything) == ["plain0", "c1", "c2", "a3", "a4", "plain5", "a7", "a9"])
        // From the middle of a batch; from past every record but the last batch.
        #expect(Self.values(try RecordDecoding.decode(log, topic: "t", partition: 0, from: Offset(2))) == ["c2", "a3", "a4", "plain5", "a7", "a9"])
        let lastOnly = try RecordDecoding.decode(log, topic: "t", partition: 0, from: Offset(9), aborted: [])
        #expect(Self.values(lastOnly) == ["a9"])
    }

    @Test func aCutBatchIsLeftForTheNextFetchAndADamagedOneFails() throws {
        var bytes = RecordBatchBuilder.build(baseOffset: Offset(0), records: Self.records(["a", "b"]))
        let second = RecordBatchBuilder.build(baseOffset: Offset(2), records: Self.records(["c"]))
        bytes += second.prefix(second.count - 3)
        let cut = try RecordDecoding.decode(ByteBuffer(bytes: bytes), topic: "t", partition: 1, from: Offset(0), verifyingCRC: true)
        #expect(Self.values(cut) == ["a", "b"])
        #expect(cut.nextOffset == Offset(2))
        // Nothing whole: the next fetch starts where this one did.
        let none = try RecordDecoding.decode(ByteBuffer(bytes: Array(second.prefix(20))), topic: "t", partition: 1, from: Offset(2))
        #expect(none.records.isEmpty && none.nextOffset == Offset(2))
        // A flipped byte in a value: the CRC check finds it; without the check, the value is wrong.
        var damaged = RecordBatchBuilder.build(baseOffset: Offset(0), records: Self.records(["hello"]))
        damaged[damaged.count - 3] ^= 0x01
        #expect(throws: FetchedDataError.self) {
            try RecordDecoding.decode(ByteBuffer(bytes: damaged), topic: "t", partition: 1, from: Offset(0), verifyingCRC: true)
        }
        #expect(Self.values(try RecordDecoding.decode(ByteBuffer(bytes: damaged), topic: "t", partition: 1, from: Offset(0))) != ["hello"])
    }

    @Test func aPartitionAssignedAgainTakesNoAnswerMeantForItsEarlierSelf() {
        var state = FetchPositions()
        let p = TopicPartition("t", 0)
        state.assign([p])
        state.seek(p, to: Offset(5))
        let epoch = state.sent(p)
        state.assign([])
        state.assign([p])
        state.seek(p, to: Offset(0))
        let record = ConsumedRecord(topic: "t", partition: 0, offset: Offset(5), timestamp: Timestamp(ms: 0), key: nil, value: nil, headers: [])
        let taken = state.received(p, epoch: epoch, FetchedRecords(records: [record], nextOffset: Offset(6)), highWatermark: Offset(6))
        #expect(!taken)
        #expect(state.bufferedCount == 0 && state.state(p)?.position == Offset(0))
    }

    /// In an incremental fetch session the broker tells a high watermark again only when it
    /// moves: one in an answer dropped for a seek made meanwhile is kept all the same.
    @Test func aStaleAnswersHighWatermarkIsKept() {
        var state = FetchPositions()
        let p = TopicPartition("t", 0)
        state.assign([p])
        state.seek(p, to: Offset(5))
        let epoch = state.sent(p)
        state.seek(p, to: Offset(2))
        let record = ConsumedRecord(topic: "t", partition: 0, offset: Offset(5), timestamp: Timestamp(ms: 0), key: nil, value: nil, headers: [])
        let taken = state.received(p, epoch: epoch, FetchedRecords(records: [record], nextOffset: Offset(6)), highWatermark: Offset(42))
        #expect(!taken)
        #expect(state.bufferedCount == 0 && state.state(p)?.position == Offset(2) && state.state(p)?.highWatermark == Offset(42))
    }

    @Test func aBlockedPartitionWaitsForASeekAndAResetSkipsTheCommittedOffset() {
        var state = FetchPositions()
        let p = TopicPartition("t", 0)
        state.assign([p])
        state.seek(p, to: Offset(3))
        state.block(p)
        #expect(state.fetchable.isEmpty)
        state.seek(p, to: nil, byPolicy: true)
        #expect(state.unstarted.map(\.byPolicy) == [true], "out of range: found by auto.offset.reset")
        state.start(p, at: Offset(9), epoch: state.unstarted[0].epoch)
        #expect(state.fetchable.map(\.1) == [Offset(9)])
        state.pause(p, true)
        #expect(state.fetchable.isEmpty)
    }

    /// commitAsync's bookkeeping, without a broker (no group.id: each commit fails at once):
    /// every call's completion is told once, with the outcome of the commit that carried it,
    /// and a later `commit` waits for them.
    @Test func everyAsyncCommitsCompletionIsToldOnce() async throws {
        let consumer = KafkaConsumer(ConsumerConfig(bootstrapServers: ["127.0.0.1:1"])) { address in
            throw ClientError("no connection in this test (\(address))")
        }
        let told = Mutex<[Int: Int]>([:])
        for call in 0..<20 {
            await consumer.commitAsync([TopicPartition("t", 0): Offset(Int64(call))]) { outcome in
                if case .failure = outcome { told.withLock { $0[call, default: 0] += 1 } }
            }
        }
        await #expect(throws: ConsumeError.self) { try await consumer.commit([TopicPartition("t", 0): Offset(99)]) }
        #expect(told.withLock { $0 } == Dictionary(uniqueKeysWithValues: (0..<20).map { ($0, 1) }))
        await consumer.close()
    }

    @Test func settingsTakeTheJavaClientsNames() throws {
        let defaults = try ConsumerConfig(properties: ["bootstrap.servers": "a:1, b:2"])
        #expect(defaults.bootstrapServers == ["a:1", "b:2"])
        #expect(defaults.offsetReset == .latest && defaults.autoCommit && !defaults.readCommitted && defaults.checkCRCs)
        #expect(defaults.fetchMaxWaitMs == 500 && defaults.partitionFetchMaxBytes == 1_048_576 && defaults.maxPollRecords == 500)
        #expect(defaults.groupID == nil)
        let set = try ConsumerConfig(properties: [
            "bootstrap.servers": "a:1", "group.id": "g", "auto.offset.reset": "smallest", "isolation.level": "read_committed",
            "enable.auto.commit": "false", "max.poll.records": "7", "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
        ])
        #expect(set.groupID == "g" && set.offsetReset == .earliest && set.readCommitted && !set.autoCommit && set.maxPollRecords == 7)
        for bad in [["isolation.level": "serializable"], ["auto.offset.reset": "middle"], ["max.poll.records": "0"],
                    ["session.timeout.ms": "10000"], ["check.crcs": "maybe"]] {
            #expect(throws: ClientError.self) { try ConsumerConfig(properties: bad.merging(["bootstrap.servers": "a:1"]) { a, _ in a }) }
        }
        #expect(throws: ClientError.self) { try ConsumerConfig(properties: [:]) }
    }

    /// A seeded run of fetches answered in any order (some after a seek made them stale),
    /// drains of any size, seeks, pauses and resumes over partitions whose logs have gaps (as
    /// compaction leaves): each partition's records come out in its log's order from where it
    /// was last sought, none twice and none skipped; paused partitions return nothing; the
    /// buffered count is the records held.
    @Test(arguments: 0..<25 as Range<UInt64>)
    func aSeededRunReturnsEachPartitionsLogInOrder(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let partitions = (0..<3).map { TopicPartition("t", $0) }
        // Offsets present in each log: every one but multiples of 7.
        func present(_ offset: Int64) -> Bool { offset % 7 != 0 }
        var logEnd: [TopicPartition: Int64] = Dictionary(uniqueKeysWithValues: partitions.map { ($0, 20) })
        var state = FetchPositions()
        state.assign(partitions)
        #expect(state.unstarted.count == 3)
        for unstarted in state.unstarted { state.start(unstarted.partition, at: Offset(0), epoch: unstarted.epoch) }
        #expect(state.unstarted.isEmpty)
        // The next offset each partition must return (the first present one at or after it).
        var cursor: [TopicPartition: Int64] = Dictionary(uniqueKeysWithValues: partitions.map { ($0, 0) })
        var paused = Set<TopicPartition>()
        var pending: [(TopicPartition, UInt64, FetchedRecords)] = []
        var returned = 0
        for _ in 0..<4000 {
            switch Int.random(in: 0..<100, using: &random) {
            case 0..<30:
                // A fetch of everything fetchable; its answer comes later.
                for (p, position) in state.fetchable {
                    #expect(!paused.contains(p))
                    let epoch = state.sent(p)
                    let end = min(position.value + Int64.random(in: 0...9, using: &random), logEnd[p]!)
                    // Sometimes the first batch begins before the position (a compressed batch).
                    let from = max(0, position.value - Int64.random(in: 0...2, using: &random))
                    let records = (from..<max(from, end)).filter(present).map {
                        ConsumedRecord(topic: p.topic, partition: p.partition, offset: Offset($0), timestamp: Timestamp(ms: 0),
                                       key: nil, value: nil, headers: [])
                    }
                    pending.append((p, epoch, FetchedRecords(records: records, nextOffset: Offset(max(position.value, end)))))
                }
            case 30..<55:
                guard !pending.isEmpty else { continue }
                let (p, epoch, fetched) = pending.remove(at: Int.random(in: 0..<pending.count, using: &random))
                if Int.random(in: 0..<10, using: &random) == 0 {
                    state.failed(p, epoch: epoch)
                } else {
                    state.received(p, epoch: epoch, fetched, highWatermark: Offset(logEnd[p]!))
                }
            case 55..<80:
                let out = state.drain(max: Int.random(in: 1...12, using: &random))
                for record in out {
                    let p = record.topicPartition
                    #expect(!paused.contains(p), "a paused partition's record came out")
                    var expected = cursor[p]!
                    while !present(expected) { expected += 1 }
                    #expect(record.offset.value == expected, "partition \(p): \(record.offset) where \(expected) was next")
                    cursor[p] = record.offset.value + 1
                    returned += 1
                }
            case 80..<86:
                let p = partitions[Int.random(in: 0..<3, using: &random)]
                let to = Int64.random(in: 0...logEnd[p]!, using: &random)
                state.seek(p, to: Offset(to))
                cursor[p] = to
            case 86..<92:
                let p = partitions[Int.random(in: 0..<3, using: &random)]
                if paused.contains(p) { paused.remove(p) } else { paused.insert(p) }
                state.pause(p, paused.contains(p))
            default:
                let p = partitions[Int.random(in: 0..<3, using: &random)]
                logEnd[p]! += Int64.random(in: 1...5, using: &random)
            }
            let held = partitions.reduce(0) { $0 + (state.state($1)?.buffered.count ?? 0) }
            #expect(held == state.bufferedCount)
            // A position is where the partition's next record is to be returned from: at or
            // past what was returned, with no record of the log skipped between.
            for p in partitions {
                guard let position = state.state(p)?.position?.value else { continue }
                #expect(position >= cursor[p]!)
                #expect(!(cursor[p]!..<max(cursor[p]!, position)).contains(where: present), "partition \(p) skipped records before \(position)")
            }
        }
        #expect(returned > 200, "the run returned \(returned) records")
        // Unassigning forgets what was held.
        state.assign([partitions[0]])
        #expect(state.bufferedCount == (state.state(partitions[0])?.buffered.count ?? 0))
        #expect(state.assigned == [partitions[0]])
    }
}

/// Numbered fetches: an answer names only partitions with news, and `ended(fetch:)` frees the
/// rest of that fetch, and only that fetch's, without naming them; assigning again keeps what a
/// kept partition holds, whatever the new order.
@Suite struct NumberedFetchTests {
    static func records(_ p: TopicPartition, _ offsets: Range<Int64>) -> FetchedRecords {
        FetchedRecords(records: offsets.map {
            ConsumedRecord(topic: p.topic, partition: p.partition, offset: Offset($0), timestamp: Timestamp(ms: 0), key: nil, value: nil, headers: [])
        }, nextOffset: Offset(offsets.upperBound))
    }

    @Test func anEndedFetchFreesItsUnansweredPartitionsOnly() {
        let (a, b, c, d) = (TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("u", 0), TopicPartition("u", 1))
        var state = FetchPositions()
        state.assign([a, b, c])
        for unstarted in state.unstarted { state.start(unstarted.partition, at: Offset(0), epoch: unstarted.epoch) }
        let slots = state.fetchableSlots
        #expect(slots.map { state.order[$0.slot] } == [a, b, c] && slots.allSatisfy { $0.highWatermark == nil })
        // Fetch 1 carries a and b, fetch 2 carries c.
        let epochA = state.sent(slot: slots[0].slot, fetch: 1)
        _ = state.sent(slot: slots[1].slot, fetch: 1)
        _ = state.sent(slot: slots[2].slot, fetch: 2)
        #expect(state.fetchable.isEmpty)
        // Fetch 1's answer names a only.
        let taken = state.received(a, epoch: epochA, Self.records(a, 0..<3), highWatermark: Offset(3))
        #expect(taken)
        state.ended(fetch: 1)
        #expect(state.fetchable.map(\.0) == [b], "b had nothing new; a's records wait; c is still in flight")
        #expect(state.waitingForPoll == [a])
        #expect(state.fetchableSlots.first?.highWatermark == nil)
        // Assigned again in another order, with d: a keeps its records, c its fetch in flight.
        state.assign([d, c, a, b])
        #expect(state.assigned == [d, c, a, b] && state.bufferedCount == 3)
        #expect(state.unstarted.map(\.partition) == [d])
        #expect(state.fetchable.map(\.0) == [b])
        state.ended(fetch: 2)
        #expect(state.fetchable.map(\.0) == [c, b])
        #expect(state.drain(max: 10).map(\.offset) == [Offset(0), Offset(1), Offset(2)])
        #expect(state.fetchableSlots.map { state.order[$0.slot] } == [c, a, b])
        #expect(state.fetchableSlots.first { state.order[$0.slot] == a }?.highWatermark == Offset(3))
        // A partition dropped while in flight and assigned again is a new partition: the old
        // fetch's end does not touch the new one's.
        let slotC = state.fetchableSlots[0].slot
        _ = state.sent(slot: slotC, fetch: 3)
        state.assign([a, b])
        state.assign([a, b, c])
        for unstarted in state.unstarted { state.start(unstarted.partition, at: Offset(5), epoch: unstarted.epoch) }
        _ = state.sent(slot: 2, fetch: 4)
        state.ended(fetch: 3)
        #expect(state.state(c)?.inFlight != nil, "fetch 3's end freed the partition of fetch 4")
        state.ended(fetch: 4)
        #expect(state.state(c)?.inFlight == nil)
    }
}

@Suite struct FetchSessionCoreTests {
    static let id = KafkaUUID(high: 9, low: 9)
    static func wanted(_ offsets: [Int32: Int64]) -> [(partition: TopicPartition, wanted: FetchSession.Wanted)] {
        offsets.map { (TopicPartition("t", $0.key), FetchSession.Wanted(offset: Offset($0.value), topicID: id)) }
    }

    @Test func afterAFullFetchOnlyMovedAndNewPartitionsAreNamedAndDroppedOnesForgotten() {
        var s = FetchSession()
        let first = s.build(Self.wanted([0: 5, 1: 7, 2: 9]))
        #expect(first.full && first.sessionID == 0 && first.epoch == 0 && first.send.map(\.partition.partition) == [0, 1, 2])
        s.answered(sessionID: 42)
        #expect(s.id == 42 && s.epoch == 1)
        // Partition 0 moved, 1 idle, 2 dropped, 3 added.
        let next = s.build(Self.wanted([0: 8, 1: 7, 3: 0]))
        #expect(!next.full && next.sessionID == 42 && next.epoch == 1)
        #expect(next.send.map(\.partition.partition) == [0, 3] && next.send.map(\.wanted.offset) == [Offset(8), Offset(0)])
        #expect(next.forget.map(\.partition.partition) == [2] && next.forget.map(\.topicID) == [Self.id])
        s.answered(sessionID: 42)
        // Nothing moved: an empty fetch reads the whole session.
        let idle = s.build(Self.wanted([0: 8, 1: 7, 3: 0]))
        #expect(idle.send.isEmpty && idle.forget.isEmpty && idle.epoch == 2)
        // A failure: the next fetch opens a new session in full, closing this one.
        s.failed()
        let again = s.build(Self.wanted([0: 8]))
        #expect(again.full && again.sessionID == 42 && again.epoch == 0 && again.send.count == 1)
        // No session made (a broker without them): asked again, in full, each time.
        s.answered(sessionID: 0)
        let sessionless = s.build(Self.wanted([0: 9]))
        #expect(sessionless.full && sessionless.sessionID == 0 && sessionless.epoch == 0)
        s.answered(sessionID: 7)
        // A topic made again (a new id): a new session, in full.
        _ = s.build(Self.wanted([0: 9]))
        s.answered(sessionID: 7)
        let remade = s.build([(TopicPartition("t", 0), FetchSession.Wanted(offset: Offset(0), topicID: KafkaUUID(high: 1, low: 2)))])
        #expect(remade.full && remade.epoch == 0 && remade.sessionID == 7)
        s.answered(sessionID: 7)
        // An incremental fetch answered in another session (or none): it starts anew.
        _ = s.build(Self.wanted([0: 9]))
        s.answered(sessionID: 0)
        #expect(s.id == 0 && s.epoch == 0 && s.partitions.isEmpty)
    }

    @Test func closingNamesTheSessionAtEpochMinusOneAndForgetsIt() {
        var s = FetchSession()
        #expect(s.close()?.sessionID == nil, "no session, nothing to close")
        _ = s.build(Self.wanted([0: 1, 1: 1]))
        s.answered(sessionID: 5)
        // Closed while a fetch is in flight.
        _ = s.build(Self.wanted([0: 2, 1: 1]))
        let closing = s.close()
        #expect(closing?.sessionID == 5 && closing?.epoch == -1 && closing?.send.isEmpty == true && closing?.forget.isEmpty == true)
        #expect(s.id == 0 && s.epoch == 0 && s.partitions.isEmpty)
        // The fetch in flight is answered (or fails) after: nothing changes.
        s.answered(sessionID: 5)
        #expect(s.id == 0 && s.epoch == 0 && s.partitions.isEmpty)
        let next = s.build(Self.wanted([0: 2]))
        #expect(next.full && next.sessionID == 0 && next.epoch == 0)
    }
}
