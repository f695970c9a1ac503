@testable import BrookClient
import BrookCore
import BrookRecords
import Testing

/// Several batches of a partition in flight (`max.in.flight.requests.per.connection`), batches
/// refused behind a failed one, and batches split when a broker finds them too large.
@Suite struct PipelineTests: AccumulatorFixture {

    /// Every batch ready now, one drain after the other (a drain hands out one per partition).
    func drainAll(_ a: inout Accumulator, at now: Int64) -> [Accumulator.Batch] {
        var out: [Accumulator.Batch] = []
        while case let next = drained(&a, at: now), !next.isEmpty { out += next }
        return out
    }

    @Test func upToMaxInFlightBatchesOfAPartitionGoAtOnceInOrder() {
        var a = Accumulator(.init(lingerMs: 0, maxInFlight: 3))
        a.useProducer(ProducerID(7), ProducerEpoch(0))
        for token in 0..<5 { _ = a.append(record(10), token: token, to: tp, nowMs: 0) }
        let sent = drainAll(&a, at: 0)
        #expect(sent.map(\.tokens) == [[0], [1], [2]])
        #expect(sent.map(\.producer.baseSequence) == [0, 1, 2])
        // Full: no deadline but the expiry until one lands.
        #expect(a.nextDeadlineMs(leader: { _ in leader }) == 120_000)
        a.succeeded(sent[1])
        #expect(a.nextDeadlineMs(leader: { _ in leader }) == 0)
        let next = drainAll(&a, at: 0)
        #expect(next.map(\.tokens) == [[3]] && next[0].producer.baseSequence == 3)
    }

    @Test func aBatchRefusedBehindAFailedOneGoesAgainAfterItAlone() {
        var a = Accumulator(.init(lingerMs: 0, retryBackoffMs: 10))
        a.useProducer(ProducerID(7), ProducerEpoch(0))
        for token in 0..<4 { _ = a.append(record(10), token: token, to: tp, nowMs: 0) }
        let sent = drainAll(&a, at: 0)
        #expect(sent.count == 4)
        // The third answer comes first: out of order, because the first failed (still in flight).
        #expect(a.followsUnwrittenBatch(sent[2]))
        do { let holds = !a.failed(sent[2], retriable: true, nowMs: 1); #expect(holds) }
        do { let holds = !a.failed(sent[0], retriable: true, nowMs: 1); #expect(holds) }
        a.succeeded(sent[1])   // (a broker would refuse it too; order of answers is free here)
        // The fourth follows the first, queued to go again.
        #expect(a.followsUnwrittenBatch(sent[3]))
        do { let holds = !a.failed(sent[3], retriable: true, nowMs: 1); #expect(holds) }
        // Sent again oldest first, each with nothing before it in flight, with their sequences;
        // new batches may follow one.
        _ = a.append(record(10), token: 4, to: tp, nowMs: 1)
        var order: [[Int]] = []
        var now: Int64 = 11
        while !a.isEmpty {
            let out = drainAll(&a, at: now)
            // (Nothing is in flight here at a drain: each lands before the next.)
            #expect(out.dropFirst().allSatisfy { $0.attempts == 1 }, "a batch sent again went behind another: \(out.map(\.tokens))")
            order += out.map(\.tokens)
            for batch in out { a.succeeded(batch) }
            now += 1
        }
        #expect(order == [[0], [2], [3], [4]])
        #expect(!a.needsProducer)
    }

    @Test func theOldestBatchRefusedOutOfOrderMeansThePartitionLostTheProducer() {
        var a = Accumulator(.init(lingerMs: 0))
        a.useProducer(ProducerID(7), ProducerEpoch(0))
        for token in 0..<2 { _ = a.append(record(10), token: token, to: tp, nowMs: 0) }
        let sent = drainAll(&a, at: 0)
        #expect(!a.followsUnwrittenBatch(sent[0]))
        #expect(a.followsUnwrittenBatch(sent[1]))
    }

    @Test func aBatchTooLargeIsSplitInItsPlaceWithItsSequences() {
        var a = Accumulator(.init(lingerMs: 1000, batchBytes: 10_000, retryBackoffMs: 0))
        a.useProducer(ProducerID(7), ProducerEpoch(0))
        // One batch of five records, then a second batch behind it.
        for token in 0..<5 { _ = a.append(record(10), token: token, to: tp, nowMs: 0) }
        let mark = a.flush()
        let first = drainAll(&a, at: 0)
        _ = a.append(record(10), token: 5, to: tp, nowMs: 0)
        _ = a.flush()
        let second = drainAll(&a, at: 0)
        #expect(first.map(\.tokens) == [[0, 1, 2, 3, 4]] && second.map(\.producer.baseSequence) == [5])
        let held = a.usedBytes
        let split = a.split(first[0], nowMs: 1)
        #expect(split)
        #expect(a.usedBytes == held + Accumulator.Batch.overheadBytes)
        #expect(a.hasBatches(before: mark))
        // The second batch's answer (refused behind the split one) comes back too.
        #expect(a.followsUnwrittenBatch(second[0]))
        do { let holds = !a.failed(second[0], retriable: true, nowMs: 1); #expect(holds) }
        var out: [Accumulator.Batch] = []
        for now in 2..<10 as Range<Int64> {
            let next = drainAll(&a, at: now)
            out += next
            for batch in next { a.succeeded(batch) }
        }
        #expect(out.map(\.tokens) == [[0, 1], [2, 3, 4], [5]])
        #expect(out.map(\.producer.baseSequence) == [0, 2, 5])
        #expect(a.isEmpty && !a.hasBatches(before: mark))
        // A single record cannot be split.
        _ = a.append(record(10), token: 6, to: tp, nowMs: 10)
        _ = a.flush()
        let single = drainAll(&a, at: 10)
        let splitOne = a.split(single[0], nowMs: 11)
        #expect(!splitOne)
    }

    @Test func openBatchesGoAtOnceWhileASendWaitsForRoom() {
        var a = Accumulator(.init(lingerMs: 1000, idempotent: false))
        _ = a.append(record(10), token: 1, to: tp, nowMs: 0)
        #expect(a.nextDeadlineMs(leader: { _ in leader }) == 1000)
        a.roomWanted = true
        #expect(a.nextDeadlineMs(leader: { _ in leader }) == 0)
        #expect(drainAll(&a, at: 1).map(\.tokens) == [[1]])
    }

    @Test func aBatchForWhichTheAnswerNamedANewLeaderGoesAgainWithoutTheBackoff() {
        var a = Accumulator(.init(lingerMs: 0, retryBackoffMs: 100, idempotent: false))
        for token in 0..<2 { _ = a.append(record(10), token: token, to: TopicPartition("t", token == 0 ? 0 : 1), nowMs: 0) }
        let sent = drainAll(&a, at: 0)
        #expect(sent.count == 2)
        do { let holds = !a.failed(sent[0], retriable: true, nowMs: 5, backoff: false); #expect(holds) }
        do { let holds = !a.failed(sent[1], retriable: true, nowMs: 5); #expect(holds) }
        #expect(drainAll(&a, at: 5).map(\.tokens) == [[0]], "the hinted one at once, the other after its backoff")
        #expect(drainAll(&a, at: 105).map(\.tokens) == [[1]])
    }

    /// What a broker answers for a batch in the seeded run below.
    enum Answer { case written, duplicate, outOfOrder, retriable, tooLarge, refused }

    /// A seeded run against a model of a partition leader: batches reach it in the order they
    /// were handed out (one connection); it checks each producer's sequences (the next one
    /// written, one of the last five a duplicate, else out of order), and sometimes fails a
    /// batch for a passing reason, writes one and loses the answer, finds one too large, refuses
    /// one for good or drops the connection (failing everything on it). Its answers reach the
    /// accumulator in any order. Every record is reported once; a partition's records are
    /// written in the order they came; a record is written twice only when its batch was
    /// written and the answer lost; a record reported written was; memory returns to zero.
    @Test(arguments: 0..<30 as Range<UInt64>)
    func aSeededRunAgainstAPartitionModelKeepsOrderAndWritesOnce(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        var a = Accumulator(.init(lingerMs: 3, batchBytes: 400, bufferBytes: 6000, deliveryTimeoutMs: 800, retryBackoffMs: 5,
                                  maxInFlight: 1 + Int(seed % 5)))
        let partitions = (0..<3).map { TopicPartition("t", $0) }
        var producerID: Int64 = 1
        a.useProducer(ProducerID(producerID), ProducerEpoch(0))
        // The leader's state: the log, and per producer the next sequence and the last batches.
        var log: [TopicPartition: [Int]] = [:]
        var nextSequence: [TopicPartition: [ProducerID: Int32]] = [:]
        var recent: [TopicPartition: [ProducerID: [(Int32, Int)]]] = [:]
        var wire: [Accumulator.Batch] = []
        var answers: [(Accumulator.Batch, Answer)] = []
        var lostAnswers = Set<Int>()   // tokens written whose answer was lost
        var reported: [Int: Int] = [:]
        var writtenReported = Set<Int>()
        var failedReported = Set<Int>()
        var next = 0
        var now: Int64 = 0

        func process(_ batch: Accumulator.Batch) -> Answer {
            let p = batch.partition
            let id = batch.producer.id
            let base = batch.producer.baseSequence
            if recent[p]?[id]?.contains(where: { $0.0 == base && $0.1 == batch.recordCount }) == true { return .duplicate }
            guard base == (nextSequence[p]?[id] ?? 0) else { return .outOfOrder }
            log[p, default: []] += batch.tokens
            nextSequence[p, default: [:]][id] = base + Int32(batch.recordCount)
            recent[p, default: [:]][id, default: []].append((base, batch.recordCount))
            if recent[p]![id]!.count > 5 { recent[p]![id]!.removeFirst() }
            return .written
        }

        func report(_ batch: Accumulator.Batch, written: Bool) {
            for t in batch.tokens { reported[t, default: 0] += 1 }
            if written { writtenReported.formUnion(batch.tokens) } else { failedReported.formUnion(batch.tokens) }
        }

        func fail(_ batch: Accumulator.Batch, retriable: Bool) {
            if a.failed(batch, retriable: retriable, nowMs: now) { report(batch, written: false) }
        }

        func answer(_ batch: Accumulator.Batch, _ what: Answer) {
            switch what {
            case .written, .duplicate:
                a.succeeded(batch)
                report(batch, written: true)
            case .outOfOrder:
                if !a.followsUnwrittenBatch(batch) && a.isCurrent(batch.producer) { a.forgetProducer() }
                fail(batch, retriable: true)
            case .retriable:
                fail(batch, retriable: true)
            case .tooLarge:
                if !a.split(batch, nowMs: now) { fail(batch, retriable: false) }
            case .refused:
                fail(batch, retriable: false)
            }
        }

        func step(final: Bool) {
            now += Int64(random.next() % 3)
            switch random.next() % 12 {
            case 0..<4 where !final:
                if case .added = a.append(record(Int(random.next() % 120)), token: next, to: partitions[Int(random.next() % 3)], nowMs: now) { next += 1 }
            case 4..<6:
                if a.needsProducer { producerID += 1; a.useProducer(ProducerID(producerID), ProducerEpoch(0)) }
                wire += drainAll(&a, at: now)
            case 6..<8:
                // The leader takes the batch at the front of the connection.
                guard !wire.isEmpty else { return }
                let batch = wire.removeFirst()
                let roll = random.next() % 20
                if roll == 0 && !final {
                    answers.append((batch, .retriable))
                } else if roll == 1 && !final {
                    if process(batch) == .written { lostAnswers.formUnion(batch.tokens) }
                    answers.append((batch, .retriable))
                } else if roll == 2 && batch.recordCount > 1 && !final {
                    answers.append((batch, .tooLarge))
                } else if roll == 3 && !final && random.next() % 3 == 0 {
                    answers.append((batch, .refused))
                } else {
                    answers.append((batch, process(batch)))
                }
            case 8..<10:
                guard !answers.isEmpty else { return }
                let (batch, what) = answers.remove(at: Int(random.next() % UInt64(answers.count)))
                answer(batch, what)
            case 10 where !final && random.next() % 8 == 0:
                // The connection drops: what it carried fails, unanswered.
                answers += wire.map { ($0, .retriable) }
                wire.removeAll()
            case 11:
                for batch in a.expire(nowMs: now) { report(batch, written: false) }
            default:
                break
            }
        }

        for _ in 0..<4000 { step(final: false) }
        _ = a.flush()
        var rounds = 0
        while !a.isEmpty || !wire.isEmpty || !answers.isEmpty {
            step(final: true)
            rounds += 1
            precondition(rounds < 1_000_000, "the run did not drain")
        }

        #expect(reported.count == next && reported.values.allSatisfy { $0 == 1 }, "a record reported twice, or never")
        #expect(a.usedBytes == 0)
        for (partition, tokens) in log {
            var seen = Set<Int>()
            var firsts: [Int] = []
            for t in tokens {
                if seen.insert(t).inserted { firsts.append(t) } else {
                    #expect(lostAnswers.contains(t), "record \(t) written twice in \(partition), though no answer of it was lost")
                }
            }
            let inversion = zip(firsts, firsts.dropFirst()).first { $0 > $1 }
            #expect(inversion == nil, "\(partition)'s records out of order: \(String(describing: inversion))")
        }
        let inLog = Set(log.values.flatMap { $0 })
        #expect(writtenReported.isSubset(of: inLog), "a record reported written is not in the log")
        #expect(failedReported.intersection(inLog).isSubset(of: lostAnswers), "a record reported failed was written")
    }
}
