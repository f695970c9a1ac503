import BrookProtocol
import BrookCore
import BrookGroups
import BrookQuorum
import BrookRecords
import BrookTxn
import NIOCore

/// Seed inputs built with Brook's own encoders, for the targets the golden fixtures do not
/// cover (`brook-fuzz seed DIR`; the request, response and frame seeds come from
/// Tests/Fuzz/seed_from_golden.py). Each is a well-formed input, so the fuzzer starts past the
/// first checks.
public enum FuzzSeeds {
    public struct Seed: Sendable {
        public let target: String
        public let name: String
        public let bytes: [UInt8]
    }

    public static var all: [Seed] {
        batchSeeds + codecSeeds + consumerProtocolSeeds + groupRecordSeeds + txnRecordSeeds + quorumSeeds
            + MetadataFuzzing.seeds
            + ClusterFuzzing.seeds
            + SaslFuzzing.seeds
            + MQTTFuzzing.seeds
            + ClientFuzzing.seeds
    }

    static func uint16(_ n: Int) -> [UInt8] { [UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)] }

    static let time = Timestamp(ms: 1_700_000_000_000)

    static var records: [SimpleRecord] {
        [SimpleRecord(key: Array("key-1".utf8), value: Array("value one".utf8), timestamp: time),
         SimpleRecord(key: nil, value: Array(repeating: 0x61, count: 40),
                      headers: [.init(key: Array("h".utf8), value: Array("v".utf8)), .init(key: Array("n".utf8), value: nil)],
                      timestamp: Timestamp(ms: time.ms + 5)),
         SimpleRecord(key: Array("key-3".utf8), value: nil, timestamp: Timestamp(ms: time.ms + 9))]
    }

    static var batchSeeds: [Seed] {
        var seeds: [Seed] = []
        for codec in CompressionCodec.allCases where Codecs.isAvailable(codec) {
            guard let batch = try? RecordBatchBuilder.build(baseOffset: Offset(100), records: records, compression: codec) else { continue }
            seeds.append(Seed(target: "batch", name: "seed-produce-\(codec)", bytes: [0] + batch))
            seeds.append(Seed(target: "batch", name: "seed-stored-\(codec)-twice", bytes: [1] + batch + batch))
        }
        let producer = RecordBatchBuilder.Producer(id: ProducerID(7), epoch: ProducerEpoch(1), baseSequence: 0)
        let transactional = RecordBatchBuilder.build(baseOffset: Offset(5), records: records,
                                                     attributes: BatchAttributes(transactional: true), producer: producer)
        let marker = ControlBatch.build(producerID: ProducerID(7), epoch: ProducerEpoch(1), commit: true,
                                        coordinatorEpoch: 3, timestamp: time)
        seeds.append(Seed(target: "batch", name: "seed-transaction-and-marker", bytes: [1] + transactional + marker))
        seeds.append(Seed(target: "batch", name: "seed-checksum-only", bytes: [2] + transactional))
        return seeds
    }

    static var codecSeeds: [Seed] {
        var plain: [UInt8] = []
        for (index, record) in records.enumerated() {
            RecordBatchBuilder.appendRecord(record, offsetDelta: Int32(index), baseTimestamp: time, to: &plain)
        }
        return CompressionCodec.allCases.enumerated().compactMap { index, codec in
            guard Codecs.isAvailable(codec),
                  let compressed = try? plain.withUnsafeBytes({ b throws(CodecError) in try Codecs.compress(codec, b, level: nil) })
            else { return nil }
            return Seed(target: "codec", name: "seed-\(codec)", bytes: [UInt8(index), 0] + compressed)
        }
    }

    static var consumerProtocolSeeds: [Seed] {
        [Seed(target: "consumer-protocol", name: "seed-subscription",
              bytes: [0] + ConsumerProtocol.encodeSubscription(["orders", "payments"])),
         Seed(target: "consumer-protocol", name: "seed-assignment",
              bytes: [1] + ConsumerProtocol.encodeAssignment(["orders": [0, 2], "payments": [1]])),
         Seed(target: "consumer-protocol", name: "seed-subscription-v3",
              bytes: [2] + ConsumerProtocol.encode(.init(topics: ["orders"], userData: [0, 0, 0, 1], owned: ["orders": [1, 3]], generation: 7, rack: "r1"))),
         Seed(target: "consumer-protocol", name: "seed-sticky-user-data",
              bytes: [3] + ConsumerProtocol.encodeStickyUserData(previous: ["orders": [0]], generation: 4))]
    }

    /// A key and nullable value framed as `FuzzInput.keyAndValue` reads them.
    static func keyAndValue(_ key: [UInt8], _ value: [UInt8]?) -> [UInt8] {
        let word = UInt16(key.count) | (value == nil ? 0x8000 : 0)
        return [UInt8(word >> 8), UInt8(word & 0xFF)] + key + (value ?? [])
    }

    static var groupRecordSeeds: [Seed] {
        let tp = TopicPartition("orders", 3)
        let records: [(String, GroupRecord)] = [
            ("offset", .offset(group: "group-a", tp, CommittedOffset(offset: Offset(42), leaderEpoch: LeaderEpoch(1),
                                                                     metadata: "meta", commitTimestamp: time))),
            ("offset-tombstone", .offsetTombstone(group: "group-a", tp)),
            ("group-tombstone", .groupTombstone(group: "group-a")),
        ]
        return records.map { name, record in
            Seed(target: "group-record", name: "seed-\(name)", bytes: keyAndValue(record.key, record.value))
        } + [Seed(target: "group-record", name: "seed-group", bytes: keyAndValue(groupKey, groupValue))]
    }

    /// GroupMetadataKey v2 and GroupMetadataValue v3 of a group with one member (GroupSnapshot's
    /// initializer is internal to BrookGroups, so the bytes are spelled out).
    static var groupKey: [UInt8] { int16(2) + string("group-a") }

    static var groupValue: [UInt8] {
        let subscription = ConsumerProtocol.encodeSubscription(["orders"])
        let assignment = ConsumerProtocol.encodeAssignment(["orders": [3]])
        return int16(3) + string("consumer") + int32(4) + string("range") + string("consumer-1-abc") + int64(time.ms)
            + int32(1) + string("consumer-1-abc") + string("instance-1") + string("consumer-1") + string("/127.0.0.1")
            + int32(300_000) + int32(45_000) + int32(Int32(subscription.count)) + subscription
            + int32(Int32(assignment.count)) + assignment
    }

    static func int16(_ v: Int16) -> [UInt8] { withUnsafeBytes(of: v.bigEndian, Array.init) }
    static func int32(_ v: Int32) -> [UInt8] { withUnsafeBytes(of: v.bigEndian, Array.init) }
    static func int64(_ v: Int64) -> [UInt8] { withUnsafeBytes(of: v.bigEndian, Array.init) }
    static func string(_ s: String) -> [UInt8] { int16(Int16(s.utf8.count)) + Array(s.utf8) }

    static var txnRecordSeeds: [Seed] {
        var ongoing = TxnMetadata(transactionalID: "txn-1", producerID: ProducerID(1000), epoch: ProducerEpoch(2),
                                  timeoutMs: 60_000, status: .ongoing, lastUpdateMs: time.ms)
        ongoing.partitions = [TxnPartition("orders", 0), TxnPartition("orders", 2), TxnPartition("payments", 1)]
        ongoing.startMs = time.ms
        var state = ProducerState()
        state.appended(ProducerBatch(producerID: ProducerID(1000), epoch: ProducerEpoch(2), baseSequence: 0, offsetDelta: 2,
                                     isTransactional: true, maxTimestamp: time.ms), firstOffset: Offset(10), now: time.ms)
        state.appended(ProducerBatch(producerID: ProducerID(1001), epoch: ProducerEpoch(0), baseSequence: 5, offsetDelta: 0,
                                     isTransactional: false, maxTimestamp: time.ms), firstOffset: Offset(13), now: time.ms)
        let aborted = AbortedTxn(producerID: ProducerID(1000), firstOffset: Offset(10), lastOffset: Offset(20),
                                 lastStableOffset: Offset(10))
        return [
            Seed(target: "txn-record", name: "seed-state",
                 bytes: [0] + keyAndValue(TxnRecords.key("txn-1"), TxnRecords.value(ongoing))),
            Seed(target: "txn-record", name: "seed-state-tombstone", bytes: [0] + keyAndValue(TxnRecords.key("txn-1"), nil)),
            Seed(target: "txn-record", name: "seed-snapshot", bytes: [1] + ProducerSnapshot.encode(state)),
            Seed(target: "txn-record", name: "seed-txnindex", bytes: [2] + TxnIndex.encode(aborted) + TxnIndex.encode(aborted)),
        ]
    }

    static var quorumSeeds: [Seed] {
        let frames = QuorumWireFuzzing.sampleFrames
        return frames.enumerated().map { index, frame in
            Seed(target: "quorum-wire", name: "seed-frame-\(index)", bytes: Array(buffer: frame))
        } + [Seed(target: "quorum-wire", name: "seed-stream", bytes: frames.flatMap { Array(buffer: $0) })]
    }
}
