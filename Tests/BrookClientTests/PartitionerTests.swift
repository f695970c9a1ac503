import BrookCore
@testable import BrookClient
import Testing

@Suite struct PartitionerTests {
    /// The vectors of Kafka's own UtilsTest.testMurmur2: keys land where the Java client puts them.
    @Test(arguments: [
        ("21", -973_932_308), ("foobar", -790_332_482), ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829), ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
        ("abc", 479_470_107), ("", 275_646_681),
    ] as [(String, Int32)])
    func murmur2MatchesTheJavaClient(key: String, hash: Int32) {
        #expect(Partitioner.murmur2(Array(key.utf8)) == hash)
    }

    @Test func aKeysPartitionIsItsPositiveHashModuloTheCount() {
        #expect(Partitioner.partition(forKey: Array("foobar".utf8), count: 50) == 16)
        // A negative hash is made positive by masking the sign bit, not by abs().
        let hash = Partitioner.murmur2(Array("21".utf8))
        #expect(Partitioner.partition(forKey: Array("21".utf8), count: 7) == (hash & 0x7fff_ffff) % 7)
    }

    @Test func keylessRecordsStickToAPartitionUntilABatchIsFull() {
        var sticky = StickyPartitioner(batchBytes: 1000, seed: 7)
        let first = sticky.partition(topic: "t", count: 8, available: [], bytes: 100)
        for _ in 0..<9 { do { let holds = sticky.partition(topic: "t", count: 8, available: [], bytes: 100) == first; #expect(holds) } }
        // 1000 bytes went there: the next record goes elsewhere.
        let next = sticky.partition(topic: "t", count: 8, available: [], bytes: 100)
        #expect(next != first)
        #expect((0..<8).contains(next))
    }

    @Test func keylessRecordsGoOnlyToPartitionsWithALeader() {
        var sticky = StickyPartitioner(batchBytes: 10, seed: 3)
        for _ in 0..<200 {
            let chosen = sticky.partition(topic: "t", count: 6, available: [1, 4], bytes: 10)
            #expect(chosen == 1 || chosen == 4)
        }
        // A sticky partition that lost its leader is left at once.
        var other = StickyPartitioner(batchBytes: 1_000_000, seed: 3)
        let before = other.partition(topic: "t", count: 3, available: [0, 1, 2], bytes: 1)
        let after = other.partition(topic: "t", count: 3, available: [0, 1, 2].filter { $0 != before }, bytes: 1)
        #expect(after != before)
    }

    @Test func everyPartitionGetsKeylessRecordsOverTime() {
        var sticky = StickyPartitioner(batchBytes: 100, seed: 11)
        var seen = Set<Int32>()
        for _ in 0..<2000 { seen.insert(sticky.partition(topic: "t", count: 5, available: [], bytes: 50)) }
        #expect(seen == Set(0..<5))
    }

    /// The sticky partition's leader check (a binary search) agrees with a scan, over lists
    /// of every size up to 40 with gaps.
    @Test func theLeaderCheckAgreesWithAScan() {
        var random = SeededRandom(seed: 5)
        for size in 0...40 {
            let available = (0..<Int32(size * 2)).filter { _ in random.next() % 2 == 0 }
            for partition in Int32(-1)...Int32(size * 2 + 1) {
                #expect(StickyPartitioner.holds(available, partition) == available.contains(partition))
            }
        }
    }

    /// Topics asked in runs, interleaved (the last topic is found without a lookup): each keeps
    /// its own sticky partition and its own count of bytes, exactly `batch.size` per partition.
    @Test func topicsInterleavedInRunsKeepTheirOwnStickyPartitions() {
        var sticky = StickyPartitioner(batchBytes: 1000, seed: 13)
        var random = SeededRandom(seed: 17)
        var state: [String: (partition: Int32, records: Int)] = [:]
        for _ in 0..<300 {
            let topic = ["a", "b", "c", "d"][Int(random.next() % 4)]
            for _ in 0..<Int(random.next() % 15) {
                let chosen = sticky.partition(topic: topic, count: 8, available: [], bytes: 100)
                if let known = state[topic], known.records < 10 {
                    #expect(chosen == known.partition, "\(topic) left its partition before batch.size")
                    state[topic] = (chosen, known.records + 1)
                } else {
                    if let known = state[topic] { #expect(chosen != known.partition, "\(topic) stayed past batch.size") }
                    state[topic] = (chosen, 1)
                }
            }
        }
        #expect(state.count == 4)
    }
}
