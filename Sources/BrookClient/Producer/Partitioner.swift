import BrookCore

/// Kafka's default partitioner for keyed records: murmur2 of the key, positive, modulo the
/// partition count (so keys land where the Java client would put them).
public enum Partitioner {
    public static func murmur2(_ data: [UInt8]) -> Int32 {
        let seed: UInt32 = 0x9747_b28c
        let m: UInt32 = 0x5bd1_e995
        let r: UInt32 = 24
        var h = seed ^ UInt32(truncatingIfNeeded: data.count)
        let blocks = data.count / 4
        for i in 0..<blocks {
            var k = UInt32(data[i * 4]) | UInt32(data[i * 4 + 1]) << 8 | UInt32(data[i * 4 + 2]) << 16 | UInt32(data[i * 4 + 3]) << 24
            k = k &* m
            k ^= k >> r
            k = k &* m
            h = h &* m
            h ^= k
        }
        let tail = blocks * 4
        switch data.count % 4 {
        case 3:
            h ^= UInt32(data[tail + 2]) << 16
            fallthrough
        case 2:
            h ^= UInt32(data[tail + 1]) << 8
            fallthrough
        case 1:
            h ^= UInt32(data[tail])
            h = h &* m
        default: break
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }

    public static func partition(forKey key: [UInt8], count: Int32) -> Int32 {
        (murmur2(key) & 0x7fff_ffff) % count
    }
}

/// Where records without a key go (Kafka's built-in partitioner, KIP-794): to one partition of
/// the topic, picked at random among those with a leader, until `batch.size` bytes went there,
/// then to another; so keyless records fill whole batches instead of one small batch per
/// partition.
public struct StickyPartitioner: Sendable {
    struct Sticky: Sendable {
        var partition: Int32
        var bytes: Int
    }

    let batchBytes: Int
    var byTopic: [String: Sticky] = [:]
    /// The topic asked last and where it is in `byTopic` (its records usually come in runs: the
    /// next one is found without hashing the name). An index stays good until `byTopic` gains a
    /// key, which clears it.
    var last: (topic: String, index: Dictionary<String, Sticky>.Index)?
    var random: SeededRandom

    /// `seed` makes the choices repeatable (tests); nil takes one from the system.
    public init(batchBytes: Int, seed: UInt64? = nil) {
        precondition(batchBytes > 0)
        self.batchBytes = batchBytes
        var system = SystemRandomNumberGenerator()
        random = SeededRandom(seed: seed ?? system.next())
    }

    /// The partition for a keyless record of `bytes` bytes to `topic`. `available` lists the
    /// partitions with a leader, in ascending order (empty: none known, any of the `count` will do).
    public mutating func partition(topic: String, count: Int32, available: [Int32], bytes: Int) -> Int32 {
        precondition(count > 0, "a topic has at least one partition")
        // One lookup of the topic for a record that stays (changed in place), none for a record
        // to the topic of the one before.
        let known: Dictionary<String, Sticky>.Index?
        if let last, last.topic == topic {
            known = last.index
        } else {
            known = byTopic.index(forKey: topic)
            last = known.map { (topic, $0) }
        }
        if let known {
            let sticky = byTopic.values[known]
            if sticky.partition < count, sticky.bytes < batchBytes, available.isEmpty || Self.holds(available, sticky.partition) {
                byTopic.values[known].bytes += bytes
                return sticky.partition
            }
        }
        let previous = known.map { byTopic.values[$0].partition }
        let choices = available.isEmpty ? Array(0..<count) : available
        var chosen = choices[Int(random.next() % UInt64(choices.count))]
        if chosen == previous && choices.count > 1 {
            chosen = choices[(choices.firstIndex(of: chosen)! + 1) % choices.count]
        }
        if let known {
            byTopic.values[known] = Sticky(partition: chosen, bytes: bytes)
        } else {
            byTopic[topic] = Sticky(partition: chosen, bytes: bytes)
            last = nil
        }
        return chosen
    }

    /// `partition` is in `available` (ascending: a binary search, as this is asked per record
    /// and a topic may have thousands of partitions).
    static func holds(_ available: [Int32], _ partition: Int32) -> Bool {
        var low = 0
        var high = available.count
        while low < high {
            let middle = (low + high) / 2
            if available[middle] < partition { low = middle + 1 } else { high = middle }
        }
        return low < available.count && available[low] == partition
    }
}
