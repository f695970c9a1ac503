import BrookCore

/// How a session's QoS 2 messages are written exactly once: through an idempotent producer of
/// the session (a producer id, and a sequence number per partition, as a Kafka producer with
/// `enable.idempotence` numbers its batches). A write sent again (a retry to another leader, a
/// request that timed out) is then one the partition knows, not a second copy; and after a
/// restart or a move the partitions' last sequences of the session's producer tell which of the
/// messages it was writing were written, against its saved record.
///
/// Pure state, without I/O: the server assigns sequences, reports the writes' outcomes, and
/// brings the partitions' last sequences to `MQTTSession.reconcile(lastSequences:)`.
public struct ExactlyOnceWrites: Sendable, Equatable {
    /// A partition of a Kafka topic.
    public struct Target: Hashable, Codable, Sendable, Comparable {
        public var topic: String
        public var partition: Int32
        public init(topic: String, partition: Int32) {
            self.topic = topic
            self.partition = partition
        }
        public static func < (a: Target, b: Target) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
    }

    /// A QoS 2 message's place among a producer's writes: its packet id, partition, sequence.
    public struct Slot: Codable, Sendable, Equatable {
        public var packetID: UInt16
        public var producerID: Int64
        public var topic: String
        public var partition: Int32
        public var sequence: Int32
        public var target: Target { Target(topic: topic, partition: partition) }
    }

    /// A producer's next sequence in a partition.
    public struct Position: Codable, Sendable, Equatable {
        public var topic: String
        public var partition: Int32
        public var sequence: Int32
        public var target: Target { Target(topic: topic, partition: partition) }
    }

    /// What a session record keeps: the producer (none after a failed write) and its next
    /// sequence per partition, and the messages whose write was under way when it was saved.
    public struct Saved: Codable, Sendable, Equatable {
        public var producerID: Int64?
        public var epoch: Int16?
        public var next: [Position]
        public var writing: [Slot]
    }

    public private(set) var producer: (id: ProducerID, epoch: ProducerEpoch)?
    /// The next sequence of the producer in each partition it wrote to.
    private(set) var next: [Target: Int32] = [:]
    /// Messages with a sequence whose write is not known to be done, by packet id (a failed
    /// write's successors may still be under way with the producer before).
    public private(set) var writing: [UInt16: Slot] = [:]
    /// After a restore: sequences the previous producer wrote to a partition after the saved
    /// record, in order. Their messages were not acknowledged (a PUBREC comes after the record
    /// naming the message is written), so the client sends them again, marked duplicate, in
    /// the order it first sent them, which is the sequences' order; each takes the next one
    /// (written, so not written again). Kept until the client sends something new.
    public private(set) var unclaimed: [Target: ClosedRange<Int32>] = [:]
    /// A restored record not yet held against the partitions (`MQTTSession.reconcile`).
    public private(set) var unreconciled: Saved?

    public init() {}

    init(restoring saved: Saved?) {
        unreconciled = saved
    }

    public static func == (a: ExactlyOnceWrites, b: ExactlyOnceWrites) -> Bool {
        a.producer?.id == b.producer?.id && a.producer?.epoch == b.producer?.epoch && a.next == b.next && a.writing == b.writing
            && a.unclaimed == b.unclaimed && a.unreconciled == b.unreconciled
    }

    /// Starts writing with a new producer (sequences from 0 in every partition).
    public mutating func start(producer id: ProducerID, epoch: ProducerEpoch) {
        precondition(id != .none && epoch >= ProducerEpoch(0), "an idempotent producer has an id and an epoch")
        producer = (id, epoch)
        next = [:]
    }

    /// The sequence of message `packetID` to `target` (nil without a producer, or while a
    /// message with that id is still being written, from an earlier connection of the session).
    /// A message's sequences follow the order in which the client sent them.
    public mutating func assign(_ packetID: UInt16, to target: Target) -> Int32? {
        guard let producer, writing[packetID] == nil else { return nil }
        let sequence = next[target] ?? 0
        next[target] = sequence == Int32.max ? 0 : sequence + 1
        writing[packetID] = Slot(packetID: packetID, producerID: producer.id.value, topic: target.topic, partition: target.partition, sequence: sequence)
        return sequence
    }

    /// The write of `packetID` is done (written, or refused). A write that failed leaves the
    /// producer's sequences unknown: the next message starts a new producer.
    public mutating func finished(_ packetID: UInt16, written: Bool) {
        writing[packetID] = nil
        if !written {
            producer = nil
            next = [:]
        }
    }

    /// Takes the next sequence written to `target` that no record names, for a message the client
    /// sends again (marked duplicate) with an id the session does not know: true when there was
    /// one (the message is written; it is not written again).
    public mutating func claim(_ target: Target) -> Bool {
        guard let range = unclaimed[target] else { return false }
        unclaimed[target] = range.lowerBound < range.upperBound ? (range.lowerBound + 1)...range.upperBound : nil
        return true
    }

    /// The client sent something new (or its connection ended): the sequences not claimed by then
    /// are not its messages' any more.
    public mutating func forgetUnclaimed() {
        unclaimed = [:]
    }

    /// What a session record keeps of it (nil when there is nothing to keep).
    public var saved: Saved? {
        if let unreconciled { return unreconciled }
        guard producer != nil || !writing.isEmpty else { return nil }
        return Saved(producerID: producer?.id.value, epoch: producer?.epoch.value,
                     next: next.sorted { $0.key < $1.key }.map { Position(topic: $0.key.topic, partition: $0.key.partition, sequence: $0.value) },
                     writing: writing.values.sorted { $0.packetID < $1.packetID })
    }

    /// The partitions whose last sequences a restored record is held against, and the producers.
    public var toReconcile: (targets: [Target], producers: Set<Int64>) {
        guard let saved = unreconciled else { return ([], []) }
        let producers = Set(saved.writing.map(\.producerID) + (saved.producerID.map { [$0] } ?? []))
        return (Array(Set(saved.next.map(\.target) + saved.writing.map(\.target))).sorted(), producers)
    }

    /// Holds a restored record against the partitions' last sequences of its producers
    /// (`lastSequences[producer][target]`; absent: the partition knows none of that producer).
    /// Answers the packet ids whose write was under way and is done (they await their PUBREL);
    /// those not written are forgotten (the client sends them again). Writing goes on with a
    /// new producer.
    mutating func reconcile(lastSequences: [Int64: [Target: Int32]]) -> [UInt16] {
        guard let saved = unreconciled else { return [] }
        unreconciled = nil
        var written: [UInt16] = []
        for slot in saved.writing {
            if let last = lastSequences[slot.producerID]?[slot.target], slot.sequence <= last { written.append(slot.packetID) }
        }
        unclaimed = [:]
        if let producerID = saved.producerID {
            let savedNext = Dictionary(saved.next.map { ($0.target, $0.sequence) }) { a, _ in a }
            for (target, last) in lastSequences[producerID] ?? [:] {
                // From the record's next sequence up to the last: written after the record.
                let from = savedNext[target] ?? 0
                if from <= last { unclaimed[target] = from...last }
            }
        }
        return written.sorted()
    }
}
