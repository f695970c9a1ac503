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
            return try readPartitions(&r)
        } catch {
            return nil
        }
    }

    /// A version-0 assignment (for tests and tools that play the leader).
    public static func encodeAssignment(_ partitions: [String: [Int32]]) -> [UInt8] {
        var w = WireWriter()
        w.writeInt16(0)
        writePartitions(partitions, &w)
        w.writeInt32(-1)
        return Array(buffer: w.buffer)
    }

    /// A version-0 subscription.
    public static func encodeSubscription(_ topics: [String]) -> [UInt8] {
        encode(Subscription(topics: topics), version: 0)
    }

    /// A member's whole subscription (ConsumerProtocolSubscription versions 0-3): what the
    /// leader of a classic group assigns from. Version 1 added the partitions the member owns
    /// (the cooperative protocol keeps them through a rebalance), 2 the generation they were
    /// owned in, 3 the member's rack.
    public struct Subscription: Equatable, Sendable {
        public var topics: [String]
        /// The assignor's own bytes (the sticky assignors': the previous assignment and its generation).
        public var userData: [UInt8]?
        public var owned: [String: [Int32]]
        /// -1 when the member does not say.
        public var generation: Int32
        public var rack: String?

        public init(topics: [String], userData: [UInt8]? = nil, owned: [String: [Int32]] = [:], generation: Int32 = -1, rack: String? = nil) {
            self.topics = topics
            self.userData = userData
            self.owned = owned
            self.generation = generation
            self.rack = rack
        }
    }

    /// The subscription, or nil when the bytes are not one. A version above 3 is read as 3
    /// (later versions only add fields at the end), and fields missing at the end take their
    /// defaults, as the Java client reads them.
    public static func subscription(_ metadata: [UInt8]) -> Subscription? {
        var r = WireReader(ByteBuffer(bytes: metadata))
        do {
            let version = try r.readInt16()
            guard version >= 0 else { return nil }
            var s = Subscription(topics: [])
            for _ in 0..<(try r.readArrayCount(compact: false)) { s.topics.append(try r.readString(compact: false)) }
            guard r.remaining > 0 else { return s }
            s.userData = try r.readNullableBytes(compact: false).map { Array(buffer: $0) }
            guard version >= 1, r.remaining > 0 else { return s }
            s.owned = try readPartitions(&r)
            guard version >= 2, r.remaining > 0 else { return s }
            s.generation = try r.readInt32()
            guard version >= 3, r.remaining > 0 else { return s }
            s.rack = try r.readNullableString(compact: false)
            return s
        } catch {
            return nil
        }
    }

    /// `subscription` as `version` (0-3) writes it: fields the version lacks are left out.
    public static func encode(_ subscription: Subscription, version: Int16 = 3) -> [UInt8] {
        precondition((0...3).contains(version), "consumer subscription versions 0 to 3")
        var w = WireWriter()
        w.writeInt16(version)
        w.writeArrayCount(subscription.topics.count, compact: false)
        for topic in subscription.topics { w.writeString(topic, compact: false) }
        w.writeNullableBytes(subscription.userData.map { ByteBuffer(bytes: $0) }, compact: false, nullable: true)
        if version >= 1 { writePartitions(subscription.owned, &w) }
        if version >= 2 { w.writeInt32(subscription.generation) }
        if version >= 3 { w.writeNullableString(subscription.rack, compact: false, nullable: true) }
        return Array(buffer: w.buffer)
    }

    /// The sticky assignors' user data (StickyAssignorUserData version 1, as the Java client
    /// and librdkafka write it): the member's previous assignment and its generation. A Java
    /// cooperative member may send only the generation (4 bytes): its partitions are empty.
    public static func stickyUserData(_ bytes: [UInt8]) -> (previous: [String: [Int32]], generation: Int32)? {
        var r = WireReader(ByteBuffer(bytes: bytes))
        do {
            if bytes.count == 4 { return ([:], try r.readInt32()) }
            let previous = try readPartitions(&r)
            let generation = r.remaining >= 4 ? try r.readInt32() : -1
            return (previous, generation)
        } catch {
            return nil
        }
    }

    public static func encodeStickyUserData(previous: [String: [Int32]], generation: Int32) -> [UInt8] {
        var w = WireWriter()
        writePartitions(previous, &w)
        w.writeInt32(generation)
        return Array(buffer: w.buffer)
    }

    private static func readPartitions(_ r: inout WireReader) throws(ProtocolError) -> [String: [Int32]] {
        var out: [String: [Int32]] = [:]
        for _ in 0..<(try r.readArrayCount(compact: false)) {
            let topic = try r.readString(compact: false)
            var partitions: [Int32] = []
            for _ in 0..<(try r.readArrayCount(compact: false)) { partitions.append(try r.readInt32()) }
            out[topic, default: []] += partitions
        }
        return out
    }

    private static func writePartitions(_ partitions: [String: [Int32]], _ w: inout WireWriter) {
        w.writeArrayCount(partitions.count, compact: false)
        for (topic, list) in partitions.sorted(by: { $0.key < $1.key }) {
            w.writeString(topic, compact: false)
            w.writeArrayCount(list.count, compact: false)
            for p in list { w.writeInt32(p) }
        }
    }
}
