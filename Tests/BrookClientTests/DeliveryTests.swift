@testable import BrookClient
import BrookCore
import BrookRecords
import Testing

@Suite struct DeliveryTests {
    func written(_ offset: Int64) -> Result<RecordMetadata, ProduceError> {
        .success(RecordMetadata(topic: "t", partition: 0, offset: Offset(offset), timestamp: Timestamp(ms: 1)))
    }

    @Test func aDeliveryAnswersThoseWhoWaitedAndThoseWhoAskLater() async throws {
        let delivery = Delivery()
        async let early = delivery.metadata
        try await Task.sleep(for: .milliseconds(10))
        #expect(delivery.result == nil)
        delivery.complete(written(7))
        #expect(try await early.offset == Offset(7))
        #expect(try await delivery.metadata.offset == Offset(7))
        let refused = Delivery()
        refused.complete(.failure(ProduceError(.messageTooLarge, "too big")))
        await #expect(throws: ProduceError.self) { try await refused.metadata }
    }

    @Test func aTallyCountsTheReportsAtTheFrontAndKeepsTheRest() {
        let deliveries = (0..<4).map { _ in Delivery() }
        var tally = DeliveryTally()
        tally.add(contentsOf: deliveries)
        deliveries[0].complete(written(0))
        deliveries[2].complete(.failure(ProduceError(.notEnoughReplicas, "no")))
        tally.settle()
        #expect(tally.written == 1 && tally.failed == 0 && tally.pending.count == 3)
        deliveries[1].complete(written(1))
        deliveries[3].complete(written(3))
        tally.settle()
        #expect(tally.written == 3 && tally.failed == 1 && tally.pending.isEmpty)
        #expect(tally.firstFailure?.code == .notEnoughReplicas)
    }

    func record(_ ms: Int64) -> SimpleRecord { SimpleRecord(key: nil, value: [1, 2, 3], timestamp: Timestamp(ms: ms)) }

    /// The batches a lingering accumulator hands out (partitions 0 and 1 of "t") for records of
    /// the given calls' places, appended in that order (a record's timestamp: its `ms`).
    func batches(_ records: [(DeliveryReports, Int, partition: Int32, ms: Int64)]) -> [RecordAccumulator<Delivery>.Batch] {
        var a = RecordAccumulator<Delivery>(.init(lingerMs: 5, batchBytes: 10_000, idempotent: false))
        for (reports, index, partition, ms) in records {
            _ = a.append(record(ms), token: Delivery(reports, index), to: TopicPartition("t", partition), nowMs: 0)
        }
        return a.drain(nowMs: 5, leader: { _ in NodeID(1) })[NodeID(1)] ?? []
    }

    /// Records of two calls (two reports) in one batch, one of them with a record in another
    /// partition's batch: the batch fills in a run of each (a call's records in a row: here
    /// `first` 0, `first` 2 and `second` 0-1), each record with its own offset and timestamp,
    /// and wakes those waiting on them.
    @Test func aBatchFillsInTheRunsOfTheCallsWhoseRecordsItHolds() async throws {
        let first = DeliveryReports(count: 3), second = DeliveryReports(count: 2)
        let batches = batches([(first, 0, 0, 10), (first, 1, 1, 11), (first, 2, 0, 12), (second, 0, 0, 20), (second, 1, 0, 21)])
        #expect(batches.map(\.recordCount) == [4, 1])
        let waiter = Task { try await Delivery(second, 1).metadata }
        while second.state.withLock({ $0.waiting.isEmpty }) { await Task.yield() }
        KafkaProducer.delivered(batches[0], baseOffset: Offset(100), logAppendTime: -1)
        #expect(Delivery(first, 1).result == nil, "its batch has not come back")
        let offsets = try [Delivery(first, 0), Delivery(first, 2), Delivery(second, 0)].map { try $0.result?.get() }
        #expect(offsets == [RecordMetadata(topic: "t", partition: 0, offset: Offset(100), timestamp: Timestamp(ms: 10)),
                            RecordMetadata(topic: "t", partition: 0, offset: Offset(101), timestamp: Timestamp(ms: 12)),
                            RecordMetadata(topic: "t", partition: 0, offset: Offset(102), timestamp: Timestamp(ms: 20))])
        #expect(try await waiter.value == RecordMetadata(topic: "t", partition: 0, offset: Offset(103), timestamp: Timestamp(ms: 21)))
        KafkaProducer.report(batches[1]) { _ in .failure(ProduceError(.notLeaderOrFollower, "moved")) }
        guard case .failure(let error)? = Delivery(first, 1).result else {
            Issue.record("the other partition's record did not fail")
            return
        }
        #expect(error.code == .notLeaderOrFollower)
    }

    /// One call's last record, then another call's second: consecutive indices of two reports
    /// are two runs (a run is one call's).
    @Test func consecutiveIndicesOfTwoCallsAreTwoRuns() throws {
        let first = DeliveryReports(count: 1), second = DeliveryReports(count: 2)
        let batch = try #require(batches([(first, 0, 0, 1), (second, 0, 1, 2), (second, 1, 0, 3)]).first { $0.partition.partition == 0 })
        KafkaProducer.delivered(batch, baseOffset: Offset(7), logAppendTime: -1)
        #expect(try first.result(at: 0)?.get().offset == Offset(7))
        #expect(try second.result(at: 1)?.get().offset == Offset(8))
        #expect(second.result(at: 0) == nil)
    }

    /// A call's records each in a batch of its own (spread over partitions, linger.ms 0): past
    /// a few outcomes a record's is found by its place; every record gets its own, in any order.
    @Test func aCallSpreadOverManyBatchesFindsEachRecordsOutcome() async throws {
        var a = RecordAccumulator<Delivery>(.init(lingerMs: 0, batchBytes: 10_000, idempotent: false))
        let reports = DeliveryReports(count: 40)
        for i in 0..<40 { _ = a.append(record(Int64(i)), token: Delivery(reports, i), to: TopicPartition("t", Int32(i % 8)), nowMs: 0) }
        var batches: [RecordAccumulator<Delivery>.Batch] = []
        while true {
            let drained = a.drain(nowMs: 0, leader: { _ in NodeID(1) })[NodeID(1)] ?? []
            if drained.isEmpty { break }
            batches += drained
        }
        #expect(batches.count == 40)
        let waiter = Task { try await Delivery(reports, 39).metadata }
        while reports.state.withLock({ $0.waiting.isEmpty }) { await Task.yield() }
        var random = SeededRandom(seed: 3)
        for batch in batches.shuffled(using: &random) {
            let index = Int(batch.timestamps[0].ms)
            if index % 5 == 4 {
                KafkaProducer.report(batch) { _ in .failure(ProduceError(.messageTooLarge, "no")) }
            } else {
                KafkaProducer.delivered(batch, baseOffset: Offset(Int64(1000 + index)), logAppendTime: -1)
            }
        }
        #expect(reports.state.withLock { $0.byRecord.count } == 40, "looked up by place")
        for i in 0..<40 {
            let result = try #require(Delivery(reports, i).result)
            if i % 5 == 4 {
                #expect(throws: ProduceError.self) { try result.get() }
            } else {
                #expect(try result.get() == RecordMetadata(topic: "t", partition: Int32(i % 8), offset: Offset(Int64(1000 + i)), timestamp: Timestamp(ms: Int64(i))))
            }
        }
        await #expect(throws: ProduceError.self) { try await waiter.value }
    }

    /// One batch of a call's records, then split in two (too large for the broker): each half
    /// fills in its own run, the offsets counted from its own base.
    @Test func theHalvesOfASplitBatchFillInTheirOwnRuns() throws {
        var a = RecordAccumulator<Delivery>(.init(lingerMs: 5, batchBytes: 10_000, idempotent: false))
        let p = TopicPartition("t", 0)
        let reports = DeliveryReports(count: 4)
        for i in 0..<4 { _ = a.append(record(Int64(i)), token: Delivery(reports, i), to: p, nowMs: 0) }
        let batch = try #require(a.drain(nowMs: 5, leader: { _ in NodeID(1) })[NodeID(1)]?.first)
        let split = a.split(batch, nowMs: 5)
        #expect(split)
        let halves = a.drain(nowMs: 1_000, leader: { _ in NodeID(1) })[NodeID(1)] ?? []
        #expect(halves.count == 1 && halves[0].recordCount == 2)
        KafkaProducer.delivered(halves[0], baseOffset: Offset(40), logAppendTime: -1)
        #expect(Delivery(reports, 2).result == nil)
        a.succeeded(halves[0])
        let second = try #require(a.drain(nowMs: 2_000, leader: { _ in NodeID(1) })[NodeID(1)]?.first)
        KafkaProducer.delivered(second, baseOffset: Offset(70), logAppendTime: 555)
        let offsets = try (0..<4).map { try Delivery(reports, $0).result?.get().offset }
        #expect(offsets == [Offset(40), Offset(41), Offset(70), Offset(71)])
        #expect(try Delivery(reports, 3).result?.get().timestamp == Timestamp(ms: 555), "LogAppendTime: the broker's")
        #expect(try Delivery(reports, 1).result?.get().timestamp == Timestamp(ms: 1))
    }
}
