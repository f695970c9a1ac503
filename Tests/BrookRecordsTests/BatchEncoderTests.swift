import BrookCore
@testable import BrookRecords
import NIOCore
import Testing

@Suite struct BatchEncoderTests {
    static let producer = RecordBatchBuilder.Producer(id: ProducerID(42), epoch: ProducerEpoch(3), baseSequence: 17)

    static func encoded(_ records: [SimpleRecord]) -> BatchEncoder {
        var encoder = BatchEncoder()
        for r in records { encoder.append(r) }
        return encoder
    }

    /// Records in time order: the same bytes as the builder's (its base timestamp is the
    /// smallest, which is then the first).
    @Test func sameBytesAsTheBuilder() throws {
        let records = [record("k", "v", at: 1_000), record(nil, "two", at: 1_000, headers: [("h", "x"), ("n", nil)]),
                       record("k3", nil, at: 1_005), record(nil, String(repeating: "z", count: 300), at: 1_007)]
        var encoder = Self.encoded(records)
        let sealed = try encoder.seal(producer: Self.producer, transactional: true)
        let built = try RecordBatchBuilder.build(baseOffset: .zero, records: records, compression: .none,
                                                 producer: Self.producer, transactional: true)
        #expect(Array(sealed.readableBytesView) == built)
        _ = try validate(built, .produce)
    }

    /// Timestamps out of order: deltas from the first record (some negative), the largest as
    /// the batch's max; every record decodes back as it went in, with every codec.
    @Test func roundTripsWithEveryCodec() throws {
        let records = [record("a", "1", at: 5_000), record("b", "2", at: 4_000), record(nil, nil, at: 9_000),
                       record("d", String(repeating: "q", count: 1_000), at: 4_500, headers: [("k", "v")])]
        var encoder = Self.encoded(records)
        #expect(encoder.count == 4 && encoder.baseTimestamp == Timestamp(ms: 5_000) && encoder.maxTimestamp == Timestamp(ms: 9_000))
        #expect(encoder.records() == records)
        for codec in CompressionCodec.allCases {
            let sealed = try encoder.seal(baseOffset: Offset(100), producer: Self.producer, transactional: false, compression: codec)
            let back = try RecordDecoding.records(in: sealed, topic: "t", partition: 0, from: .zero)
            #expect(back.map(\.offset.value) == [100, 101, 102, 103], "\(codec)")
            #expect(back.map { SimpleRecord(key: $0.key, value: $0.value, headers: $0.headers, timestamp: $0.timestamp) } == records, "\(codec)")
            let header = try validate(Array(sealed.readableBytesView), .produce)
            #expect(header.producerID == ProducerID(42) && header.baseSequence == 17 && header.attributes.compression == codec)
            #expect(header.maxTimestamp == Timestamp(ms: 9_000) && header.recordCount == 4)
        }
    }

    /// Sealing twice (a batch sent again, under a new producer) writes the new header over the
    /// old one; a buffer sealed before and still held keeps its own (copy on write).
    @Test func sealsAgainWithNewProducerFields() throws {
        var encoder = Self.encoded([record("a", "1"), record("b", "2")])
        let first = try encoder.seal(producer: Self.producer, transactional: false)
        let other = RecordBatchBuilder.Producer(id: ProducerID(7), epoch: ProducerEpoch(0), baseSequence: 0)
        let second = try encoder.seal(producer: other, transactional: false)
        #expect(try validate(Array(first.readableBytesView), .produce).producerID == ProducerID(42))
        #expect(try validate(Array(second.readableBytesView), .produce).producerID == ProducerID(7))
        #expect(encoder.records() == [record("a", "1"), record("b", "2")])
    }
}
