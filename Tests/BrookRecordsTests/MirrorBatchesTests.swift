import BrookCore
@testable import BrookRecords
import Testing

/// The offset-preserving mirror's batches: the committed ones a read_committed fetch holds,
/// and what a target leader makes of them.
@Suite struct MirrorBatchesTests {
    let txn = RecordBatchBuilder.Producer(id: ProducerID(9), epoch: ProducerEpoch(2), baseSequence: 0)

    func data(at base: Int64, _ values: [String], transactional: Bool = false) -> [UInt8] {
        RecordBatchBuilder.build(baseOffset: Offset(base), records: values.map { record(nil, $0) },
                                 attributes: BatchAttributes(transactional: transactional), producer: transactional ? txn : .none)
    }

    /// A transaction marker's batch (the filter reads only its attributes and producer).
    func marker(at base: Int64, commit: Bool) -> [UInt8] {
        RecordBatchBuilder.build(baseOffset: Offset(base), records: [record(commit ? "commit" : "abort", nil)],
                                 attributes: BatchAttributes(transactional: true, control: true), producer: txn)
    }

    @Test func onlyCommittedDataBatchesAreKept() {
        // 0-1 plain, 2-3 aborted, 4 its marker, 5 committed, 6 its marker, 7 plain.
        let fetched = data(at: 0, ["a", "b"]) + data(at: 2, ["x", "y"], transactional: true) + marker(at: 4, commit: false)
            + data(at: 5, ["c"], transactional: true) + marker(at: 6, commit: true) + data(at: 7, ["d"])
        let kept = fetched.withUnsafeBytes { MirrorBatches.committed($0, aborted: [(txn.id, Offset(2))]) }
        #expect(kept.count == 3 && kept.records == 4 && kept.next == Offset(8))
        #expect(kept.batches == data(at: 0, ["a", "b"]) + data(at: 5, ["c"], transactional: true) + data(at: 7, ["d"]))
        // A partial batch at the end waits for the next fetch.
        let cut = (data(at: 0, ["a"]) + data(at: 1, ["b"])).dropLast(3)
        #expect(Array(cut).withUnsafeBytes { MirrorBatches.committed($0, aborted: []) }.next == Offset(1))
    }

    @Test func theLeaderStampsItsEpochDropsTheProducerAndSkipsWhatItHas() throws {
        let batches = data(at: 0, ["a", "b"]) + data(at: 5, ["c"], transactional: true)
        let prepared = try #require(try batches.withUnsafeBytes { (b) throws(MirrorBatchError) in
            try MirrorBatches.forAppend(b, logEnd: .zero, leaderEpoch: LeaderEpoch(4))
        })
        #expect(prepared.first == Offset(0) && prepared.last == Offset(5))
        try prepared.bytes.withUnsafeBytes { all in
            var seen = 0
            RecordBatchHeader.forEachBatch(in: all) { header, batch in
                seen += 1
                #expect(header.partitionLeaderEpoch == LeaderEpoch(4) && header.producerID == ProducerID(-1) && !header.attributes.isTransactional)
                #expect(header.baseSequence == -1 && header.producerEpoch == ProducerEpoch(-1))
            }
            #expect(seen == 2)
            _ = try validateStored(all)
        }
        // Sent again with the log end past the first: only the second; past both: nothing.
        #expect(try batches.withUnsafeBytes { (b) throws(MirrorBatchError) in try MirrorBatches.forAppend(b, logEnd: Offset(2), leaderEpoch: LeaderEpoch(4)) }?.first == Offset(5))
        #expect(try batches.withUnsafeBytes { (b) throws(MirrorBatchError) in try MirrorBatches.forAppend(b, logEnd: Offset(6), leaderEpoch: LeaderEpoch(4)) } == nil)
    }

    @Test func controlDamagedStraddlingAndDisorderedBatchesAreRefused() {
        func refused(_ bytes: [UInt8], logEnd: Int64 = 0) -> Bool {
            (try? bytes.withUnsafeBytes { (b) throws(MirrorBatchError) in try MirrorBatches.forAppend(b, logEnd: Offset(logEnd), leaderEpoch: LeaderEpoch(1)) }) == nil
        }
        #expect(refused(marker(at: 0, commit: true)))
        var damaged = data(at: 0, ["a"])
        damaged[damaged.count - 1] ^= 1
        #expect(refused(damaged))
        #expect(refused(data(at: 0, ["a", "b"]), logEnd: 1))
        #expect(refused(data(at: 5, ["a"]) + data(at: 3, ["b"])))
        #expect(refused(Array(data(at: 0, ["a"]).dropLast())))
    }

    func validateStored(_ bytes: UnsafeRawBufferPointer) throws -> Int {
        var count = 0
        var position = 0
        while position < bytes.count {
            let header = try RecordBatchValidator.validate(UnsafeRawBufferPointer(rebasing: bytes[position...]), check: .stored)
            position += header.totalBytes
            count += 1
        }
        return count
    }
}
