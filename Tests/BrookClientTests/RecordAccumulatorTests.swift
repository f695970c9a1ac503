@testable import BrookClient
import BrookCore
import BrookRecords
import Testing

/// What the accumulator's test suites share: a partition, its leader, records of a size, and
/// the batches one drain hands that leader.
protocol AccumulatorFixture {}

extension AccumulatorFixture {
    typealias Accumulator = RecordAccumulator<Int>
    var tp: TopicPartition { TopicPartition("t", 0) }
    var leader: NodeID { NodeID(1) }

    func record(_ bytes: Int) -> SimpleRecord {
        SimpleRecord(key: nil, value: [UInt8](repeating: 7, count: bytes), timestamp: Timestamp(ms: 1))
    }

    func drained(_ a: inout Accumulator, at now: Int64) -> [Accumulator.Batch] {
        a.drain(nowMs: now, leader: { _ in leader })[leader] ?? []
    }
}

@Suite struct RecordAccumulatorTests: AccumulatorFixture {

    @Test func aBatchGoesWhenItLingeredOrIsFull() {
        var a = Accumulator(.init(lingerMs: 5, batchBytes: 1000, idempotent: false))
        do { let holds = a.append(record(100), token: 1, to: tp, nowMs: 0) == .added(wake: true); #expect(holds) }
        do { let holds = a.append(record(100), token: 2, to: tp, nowMs: 1) == .added(wake: false); #expect(holds) }
        do { let holds = drained(&a, at: 4).isEmpty; #expect(holds) }
        #expect(a.nextDeadlineMs(leader: { _ in leader }) == 5)
        let batches = drained(&a, at: 5)
        #expect(batches.map(\.tokens) == [[1, 2]])
        // Full batches go without lingering; with max.in.flight 1, one per partition is in
        // flight at a time.
        var b = Accumulator(.init(lingerMs: 1000, batchBytes: 350, idempotent: false, maxInFlight: 1))
        for token in 0..<6 { _ = b.append(record(100), token: token, to: tp, nowMs: 0) }
        let first = drained(&b, at: 0)
        #expect(first.count == 1 && first[0].tokens == [0, 1])
        do { let holds = drained(&b, at: 0).isEmpty; #expect(holds) }
        b.succeeded(first[0])
        do { let holds = drained(&b, at: 0).map(\.tokens) == [[2, 3]]; #expect(holds) }
    }

    /// A record counts close to what it takes in its batch (as the Java client counts it), so a
    /// 16 KiB batch of 100 B records holds 147 of them, as librdkafka's hold 148.
    @Test func aRecordCountsAboutWhatItTakesInItsBatch() {
        var encoder = BatchEncoder()
        for n in 0..<150 { encoder.append(key: nil, value: [UInt8](repeating: 7, count: 100), headers: [], timestamp: Timestamp(ms: Int64(n / 10))) }
        let taken = encoder.buffer.readableBytes - Accumulator.Batch.overheadBytes
        let counted = 150 * Accumulator.bytes(of: record(100))
        // Never less than taken here, and at most 2 bytes a record more.
        #expect(counted >= taken && counted - taken <= 2 * 150)
        let withHeaders = SimpleRecord(key: Array("key".utf8), value: Array("v".utf8), headers: [.init(key: Array("h".utf8), value: [1, 2])], timestamp: Timestamp(ms: 0))
        var one = BatchEncoder()
        one.append(withHeaders)
        let alone = one.buffer.readableBytes - Accumulator.Batch.overheadBytes
        #expect(Accumulator.bytes(of: withHeaders) == alone + 2)
        var a = Accumulator(.init(lingerMs: 1000, batchBytes: 16_384, idempotent: false))
        for token in 0..<200 { _ = a.append(record(100), token: token, to: tp, nowMs: 0) }
        #expect(drained(&a, at: 0).first?.recordCount == 147)
    }

    @Test func bufferMemoryBoundsWhatIsHeld() {
        var a = Accumulator(.init(lingerMs: 0, batchBytes: 10_000, bufferBytes: 1000, idempotent: false))
        var added = 0
        while case .added = a.append(record(100), token: added, to: TopicPartition("t", Int32(added % 3)), nowMs: 0) { added += 1 }
        #expect(a.usedBytes <= 1000)
        #expect(added == 5)
        for batch in drained(&a, at: 0) { a.succeeded(batch) }
        do { let holds = a.append(record(100), token: 99, to: tp, nowMs: 0) != .noRoom; #expect(holds) }
    }

    @Test func idempotentBatchesAreNumberedInOrderAndKeepTheirNumbersWhenSentAgain() {
        var a = Accumulator(.init(lingerMs: 0, retryBackoffMs: 100))
        for token in 0..<3 { _ = a.append(record(10), token: token, to: tp, nowMs: 0) }
        #expect(a.needsProducer)
        do { let holds = drained(&a, at: 0).isEmpty; #expect(holds) }
        a.useProducer(ProducerID(42), ProducerEpoch(0))
        let first = drained(&a, at: 0)
        #expect(first.map(\.producer.baseSequence) == [0])
        // A leader moved: the batch goes again after the backoff, with the same sequence.
        do { let holds = !a.failed(first[0], retriable: true, nowMs: 10); #expect(holds) }
        do { let holds = drained(&a, at: 50).isEmpty; #expect(holds) }
        let again = drained(&a, at: 110)
        #expect(again.map(\.producer.baseSequence) == [0] && again[0].attempts == 2)
        a.succeeded(again[0])
        do { let holds = drained(&a, at: 110).map(\.producer.baseSequence) == [1]; #expect(holds) }
    }

    @Test func aBatchThatFailsForGoodStartsANewProducer() {
        var a = Accumulator(.init(lingerMs: 0))
        a.useProducer(ProducerID(42), ProducerEpoch(0))
        for token in 0..<2 { _ = a.append(record(10), token: token, to: tp, nowMs: 0) }
        let first = drained(&a, at: 0)
        do { let holds = a.failed(first[0], retriable: false, nowMs: 0); #expect(holds) }
        #expect(a.needsProducer)
        a.useProducer(ProducerID(43), ProducerEpoch(0))
        let next = drained(&a, at: 0)
        #expect(next.map(\.producer.id) == [ProducerID(43)] && next.map(\.producer.baseSequence) == [0])
    }

    @Test func batchesOlderThanTheDeliveryTimeoutFail() {
        var a = Accumulator(.init(lingerMs: 10, deliveryTimeoutMs: 1000, idempotent: false))
        _ = a.append(record(10), token: 1, to: tp, nowMs: 0)
        let sent = drained(&a, at: 10)
        // A retriable failure past the timeout fails for good.
        do { let holds = a.failed(sent[0], retriable: true, nowMs: 1000); #expect(holds) }
        _ = a.append(record(10), token: 2, to: tp, nowMs: 2000)
        do { let holds = a.expire(nowMs: 2999).isEmpty; #expect(holds) }
        do { let holds = a.expire(nowMs: 3000).map(\.tokens) == [[2]]; #expect(holds) }
        #expect(a.isEmpty)
    }

    @Test func sequencesWrapAtInt32Max() {
        #expect(Accumulator.sequence(Int32.max - 1, plus: 3) == 1)
        #expect(Accumulator.sequence(5, plus: 3) == 8)
    }

    /// A seeded run of appends, drains, successes, retriable and fatal failures: every record is
    /// reported once, each partition's records are written in the order they came, each
    /// producer's sequences on a partition follow on without a gap, and memory returns to zero.
    @Test(arguments: 0..<20 as Range<UInt64>)
    func aSeededRunKeepsOrderSequencesAndMemory(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        // One batch in flight per partition: answers in any order (PipelineTests has more).
        var a = Accumulator(.init(lingerMs: 3, batchBytes: 400, bufferBytes: 4000, deliveryTimeoutMs: 500, retryBackoffMs: 5, maxInFlight: 1))
        let partitions = (0..<3).map { TopicPartition("t", $0) }
        var producerID: Int64 = 1
        a.useProducer(ProducerID(producerID), ProducerEpoch(0))
        var inFlight: [Accumulator.Batch] = []
        var written: [TopicPartition: [Int]] = [:]
        var failed = Set<Int>()
        var reports: [Int: Int] = [:]  // token -> reports (written or failed): each exactly one
        var nextSequence: [TopicPartition: (ProducerID, Int32)] = [:]
        var next = 0
        var now: Int64 = 0
        for _ in 0..<3000 {
            now += Int64(random.next() % 3)
            switch random.next() % 10 {
            case 0..<5:
                if case .added = a.append(record(Int(random.next() % 120)), token: next, to: partitions[Int(random.next() % 3)], nowMs: now) { next += 1 }
            case 5..<7:
                if a.needsProducer { producerID += 1; a.useProducer(ProducerID(producerID), ProducerEpoch(0)) }
                inFlight += a.drain(nowMs: now, leader: { _ in leader })[leader] ?? []
            case 7:
                for batch in a.expire(nowMs: now) { failed.formUnion(batch.tokens); for t in batch.tokens { reports[t, default: 0] += 1 } }
            default:
                guard !inFlight.isEmpty else { continue }
                let batch = inFlight.remove(at: Int(random.next() % UInt64(inFlight.count)))
                switch random.next() % 6 {
                case 0..<4:
                    // Written: the sequence follows the producer's last one on this partition.
                    if let (id, expected) = nextSequence[batch.partition], id == batch.producer.id {
                        #expect(batch.producer.baseSequence == expected)
                    } else {
                        #expect(batch.producer.baseSequence == 0)
                    }
                    nextSequence[batch.partition] = (batch.producer.id, batch.producer.baseSequence + Int32(batch.recordCount))
                    written[batch.partition, default: []] += batch.tokens
                    for t in batch.tokens { reports[t, default: 0] += 1 }
                    a.succeeded(batch)
                case 4:
                    if a.failed(batch, retriable: true, nowMs: now) {
                        failed.formUnion(batch.tokens)
                        for t in batch.tokens { reports[t, default: 0] += 1 }
                    }
                default:
                    do { let holds = a.failed(batch, retriable: false, nowMs: now); #expect(holds) }
                    failed.formUnion(batch.tokens)
                    for t in batch.tokens { reports[t, default: 0] += 1 }
                }
            }
        }
        // Drain everything out.
        _ = a.flush()
        while !a.isEmpty {
            now += 10
            if a.needsProducer { producerID += 1; a.useProducer(ProducerID(producerID), ProducerEpoch(0)) }
            inFlight += a.drain(nowMs: now, leader: { _ in leader })[leader] ?? []
            for batch in a.expire(nowMs: now) { failed.formUnion(batch.tokens); for t in batch.tokens { reports[t, default: 0] += 1 } }
            for batch in inFlight {
                written[batch.partition, default: []] += batch.tokens
                for t in batch.tokens { reports[t, default: 0] += 1 }
                a.succeeded(batch)
            }
            inFlight.removeAll()
        }
        let all = written.values.flatMap { $0 }
        #expect(Set(all).count == all.count, "a record written twice")
        #expect(Set(all).isDisjoint(with: failed))
        #expect(Set(all).union(failed) == Set(0..<next), "a record without a report")
        for tokens in written.values { #expect(tokens == tokens.sorted(), "a partition's records out of order") }
        #expect(a.usedBytes == 0)
        #expect(reports.values.allSatisfy { $0 == 1 } && reports.count == next, "a record reported twice, or never")
    }

    @Test func aPartitionInFlightOrWithoutALeaderSetsNoLingerDeadline() {
        // Two records of 100 B take 61 + 2 x 111 bytes: a batch of 280 holds one.
        var a = Accumulator(.init(lingerMs: 5, batchBytes: 280, deliveryTimeoutMs: 1000, idempotent: false, maxInFlight: 1))
        _ = a.append(record(100), token: 1, to: tp, nowMs: 0)
        _ = a.append(record(100), token: 2, to: tp, nowMs: 0)   // the first batch is full, queued; the second open
        let sent = drained(&a, at: 0)
        #expect(sent.map(\.tokens) == [[1]])
        // The open batch lingered out, but its partition has all the batches in flight it may:
        // no deadline but the expiry (else the sender would spin until the answer).
        #expect(a.nextDeadlineMs(leader: { _ in leader }) == 1000)
        a.succeeded(sent[0])
        #expect(a.nextDeadlineMs(leader: { _ in leader }) == 5)
        // Without a leader, only expiry counts (the metadata refresh wakes the sender).
        #expect(a.nextDeadlineMs(leader: { _ in nil }) == 1000)
    }

    @Test func aFlushWaitsForTheBatchesMadeBeforeIt() {
        var a = Accumulator(.init(lingerMs: 1000, idempotent: false))
        _ = a.append(record(10), token: 1, to: tp, nowMs: 0)
        let mark = a.flush()
        #expect(a.hasBatches(before: mark))
        // Ready at once, though it has not lingered.
        let sent = drained(&a, at: 1)
        #expect(sent.map(\.tokens) == [[1]])
        // A record sent after the flush is not waited for, and lingers as usual.
        _ = a.append(record(10), token: 2, to: TopicPartition("t", 1), nowMs: 1)
        #expect(a.hasBatches(before: mark))
        a.succeeded(sent[0])
        #expect(!a.hasBatches(before: mark))
        do { let holds = drained(&a, at: 2).isEmpty; #expect(holds) }
    }

    @Test func aBatchOfAnOlderProducerFailingLeavesTheCurrentOne() {
        var a = Accumulator(.init(lingerMs: 0))
        a.useProducer(ProducerID(1), ProducerEpoch(0))
        _ = a.append(record(10), token: 1, to: tp, nowMs: 0)
        _ = a.append(record(10), token: 2, to: TopicPartition("t", 1), nowMs: 0)
        let old = drained(&a, at: 0)
        #expect(old.count == 2)
        // Partition 0's batch fails for good: the producer is forgotten, a new one comes.
        do { let holds = a.failed(old[0], retriable: false, nowMs: 0); #expect(holds) }
        a.useProducer(ProducerID(2), ProducerEpoch(0))
        // Partition 1's batch, of producer 1, failing too says nothing of producer 2.
        do { let holds = a.failed(old[1], retriable: false, nowMs: 0); #expect(holds) }
        #expect(!a.needsProducer)
    }
}
