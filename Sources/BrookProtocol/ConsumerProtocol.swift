import NIOCore

/// The "consumer" protocol type's member metadata (ConsumerProtocolSubscription) and assignment
/// (ConsumerProtocolAssignment): the broker reads them only to tell which topics a classic group
/// uses (OffsetDelete) and to show assignments (`brook group describe`).
public enum ConsumerProtocol {
    /// The subscribed topics, or nil when the bytes are not a consumer subscription.
    public static func subscribedTopics(_ metadata: [UInt8]) -> [String]? {
        var r = WireReader(ByteBuffer(bytes: metadata))
        do {
            guard try r.readInt16() >= 0 else { return nil }
            let count = try r.readArrayCount(compact: false)
            var topics: [String] = []
            for _ in 0..<count { topics.append(try r.readString(compact: false)) }
            return topics
        } catch {
            return nil
        }
    }

    /// The assigned partitions by topic, or nil when the bytes are not a consumer assignment.
    public static func assignedPartitions(_ assignment: [UInt8]) -> [String: [Int32]]? {
        if assignment.isEmpty { return [:] }
        var r = WireReader(ByteBuffer(bytes: assignment))
        do {
            guard try r.readInt16() >= 0 else { return nil }
            var out: [String: [Int32]] = [:]
            for _ in 0..<(try r.readArrayCount(compact: false)) {
                let topic = try r.readString(compact: false)
                var partitions: [Int32] = []
                for _ in 0..<(try r.readArrayCount(compact: false)) { partitions.append(try r.readInt32()) }
                out[topic, default: []] += partitions
            }
            return out
        } catch {
            return nil
        }
    }

    /// A version-0 assignment (for tests and tools that play the leader).
    public static func encodeAssignment(_ partitions: [String: [Int32]]) -> [UInt8] {
        var w = WireWriter()
        w.writeInt16(0)
        w.writeArrayCount(partitions.count, compact: false)
        for (topic, list) in partitions.sorted(by: { $0.key < $1.key }) {
            w.writeString(topic, compact: false)
            w.writeArrayCount(list.count, compact: false)
            for p in list { w.writeInt32(p) }
        }
        w.writeInt32(-1)
        return Array(buffer: w.buffer)
    }

    /// A version-0 subscription.
    public static func encodeSubscription(_ topics: [String]) -> [UInt8] {
        var w = WireWriter()
        w.writeInt16(0)
        w.writeArrayCount(topics.count, compact: false)
        for topic in topics { w.writeString(topic, compact: false) }
        w.writeInt32(-1)
        return Array(buffer: w.buffer)
    }
}
