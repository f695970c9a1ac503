import BrookCore
import BrookRecords
import NIOCore

/// What a client makes of a partition's fetched bytes (`RecordDecoding.decode`: the consumer,
/// the mirror, the MQTT router and the console read any broker's answers with it), with and
/// without read_committed's aborted transactions and the CRC check.
enum ClientFuzzing {
    static let target = FuzzTarget(
        name: "fetched",
        input: "flags (1 byte: bit 0 check CRCs, bit 1 read_committed, bit 2 keep the CRCs as given, else fixed first), "
            + "the fetch offset (1 byte), aborted transactions (1 byte count, then 2 bytes each: producer id, first offset), "
            + "then the fetched batches",
        inputBytesMax: 64 * 1024
    ) { bytes in
        var input = FuzzInput(bytes)
        let flags = input.byte()
        let from = Offset(Int64(input.byte()))
        var aborted: [(producer: ProducerID, firstOffset: Offset)] = []
        for _ in 0..<min(input.byte(), 16) {
            aborted.append((ProducerID(Int64(input.byte())), Offset(Int64(input.byte()))))
        }
        var batches = Array(input.rest())
        if flags & 4 == 0 { batches.withUnsafeMutableBytes(RecordFuzzing.fixChecksums) }
        // An offset-preserving mirror's two steps over the same bytes (MirrorBatches): the
        // committed batches it keeps, and what the target's leader makes of them, which it
        // takes again unchanged.
        let kept = batches.withUnsafeBytes { MirrorBatches.committed($0, aborted: aborted) }
        precondition(kept.batches.count <= batches.count && kept.count <= kept.records + kept.count, "the mirror keeps at most what came")
        if let prepared = try? kept.batches.withUnsafeBytes({ (b) throws(MirrorBatchError) in try MirrorBatches.forAppend(b, logEnd: from, leaderEpoch: LeaderEpoch(3)) }) {
            precondition(prepared.first >= from && prepared.last >= prepared.first, "a mirror append starts at or after the log end")
            let again = try? prepared.bytes.withUnsafeBytes { (b) throws(MirrorBatchError) in try MirrorBatches.forAppend(b, logEnd: from, leaderEpoch: LeaderEpoch(3)) }
            precondition(again?.bytes == prepared.bytes && again?.first == prepared.first, "a mirror append is taken again as it is")
        }
        guard let fetched = try? RecordDecoding.decode(ByteBuffer(bytes: batches), topic: "t", partition: 0, from: from,
                                                      aborted: flags & 2 != 0 ? aborted : nil, verifyingCRC: flags & 1 != 0)
        else { return }
        // What a consumer's positions rely on.
        precondition(fetched.nextOffset >= from, "the next fetch starts at or after this one")
        var previous: Offset?
        for record in fetched.records {
            precondition(record.offset >= from, "a record before the fetch offset")
            precondition(previous.map { record.offset > $0 } ?? true, "records in offset order")
            precondition(record.offset.value < Int64.max, "room for the next position")
            previous = record.offset
        }
    }

    static var seeds: [FuzzSeeds.Seed] {
        let transactional = RecordBatchBuilder.Producer(id: ProducerID(7), epoch: ProducerEpoch(0), baseSequence: 0)
        let plain = RecordBatchBuilder.build(baseOffset: Offset(0), records: FuzzSeeds.records)
        let open = RecordBatchBuilder.build(baseOffset: Offset(2), records: FuzzSeeds.records,
                                            attributes: BatchAttributes(transactional: true), producer: transactional)
        let marker = RecordBatchBuilder.build(baseOffset: Offset(4), records: [SimpleRecord(key: [0, 0, 0, 0], value: [0, 0, 0, 0, 0, 0], timestamp: FuzzSeeds.time)],
                                              attributes: BatchAttributes(transactional: true, control: true), producer: transactional)
        var seeds = [
            FuzzSeeds.Seed(target: "fetched", name: "seed-plain", bytes: [1, 0, 0] + plain),
            FuzzSeeds.Seed(target: "fetched", name: "seed-aborted", bytes: [3, 0, 1, 7, 2] + plain + open + marker),
            FuzzSeeds.Seed(target: "fetched", name: "seed-from-middle", bytes: [1, 1, 0] + plain + open + marker),
        ]
        if let compressed = try? RecordBatchBuilder.build(baseOffset: Offset(0), records: FuzzSeeds.records, compression: .gzip) {
            seeds.append(FuzzSeeds.Seed(target: "fetched", name: "seed-gzip", bytes: [1, 0, 0] + compressed))
        }
        return seeds
    }
}
