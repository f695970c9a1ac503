import NIOCore

/// One client's session, without I/O: its subscriptions, the QoS 2 messages it sent that await
/// their PUBREL, and the messages on their way to it (queued, and in flight until acknowledged,
/// at most `receiveMaximum` at a time). The server keeps it across connections when the session
/// is not clean, and feeds it packets and deliveries; it answers with what to send.
public struct MQTTSession: Sendable {
    public struct Subscription: Sendable, Equatable {
        /// The topic filter (for a shared subscription, the part after `$share/GROUP/`).
        public var filter: String
        public var options: SubscriptionOptions
        public var identifier: UInt32?
        /// The share group of a shared subscription (`$share/GROUP/FILTER`), whose messages go to
        /// one of the group's sessions each (the server picks which).
        public var shareGroup: String?
    }

    /// A message to deliver: what the router found, before the session picks its QoS.
    public struct Message: Sendable {
        public var topic: String
        public var payload: ByteBuffer
        /// The publisher's QoS (a Kafka producer's records: exactly once, so the subscription decides).
        public var qos: QoS
        public var retain: Bool
        /// The MQTT client that published it (nil: a Kafka producer), for No Local.
        public var publisher: String?
        public var properties: MQTTProperties
        /// What splits a share group's messages among its sessions (the Kafka partition).
        public var shard: Int32 = 0
        /// The Kafka record it came from (none for a retained message).
        public var source: Source?

        public init(topic: String, payload: ByteBuffer, qos: QoS, retain: Bool, publisher: String?, properties: MQTTProperties) {
            self.topic = topic
            self.payload = payload
            self.qos = qos
            self.retain = retain
            self.publisher = publisher
            self.properties = properties
        }
    }

    /// Where a message is in Kafka: a restored session is sent again what it had not acknowledged
    /// by reading from there.
    public struct Source: Codable, Sendable, Hashable {
        public var topic: String
        public var partition: Int32
        public var offset: Int64

        public init(topic: String, partition: Int32, offset: Int64) {
            self.topic = topic
            self.partition = partition
            self.offset = offset
        }
    }

    enum OutboundState: Sendable { case awaitingPuback, awaitingPubrec, awaitingPubcomp }

    public let clientID: String
    public private(set) var subscriptions: [String: Subscription] = [:]
    /// QoS 2 packet ids received and answered with PUBREC, awaiting PUBREL.
    public private(set) var awaitingRelease: Set<UInt16> = []
    /// The producer its QoS 2 messages are written with, and their sequences.
    public var exactlyOnce = ExactlyOnceWrites()
    // Capacity 1 at first: an idle session (most of them) holds no message, and a ring of 16
    // messages with their properties would cost kilobytes per client.
    var queue = CircularBuffer<Queued>(initialCapacity: 1)
    /// Payload and topic bytes of the queued messages.
    public private(set) var queuedBytes = 0

    struct Queued: Sendable {
        var publish: MQTTPublish
        /// When it was queued (its message expiry counts down from then).
        var atMs: Int64
        var bytes: Int
        var source: Source?
    }
    var inflight: [UInt16: (publish: MQTTPublish, state: OutboundState, source: Source?)] = [:]
    var inflightOrder = CircularBuffer<UInt16>(initialCapacity: 1)
    var nextPacketID: UInt16 = 1
    /// A restored session's packet ids of the messages that were in flight when it was saved, by
    /// where each message is in Kafka: read again, the message goes with its id (marked
    /// duplicate), so a QoS 2 receiver that has it takes it once. Until the reading again ends.
    var reserved: [Source: UInt16] = [:]
    var reservedIDs: Set<UInt16> = []
    /// How many QoS 1 and 2 messages may be unacknowledged (the client's receive maximum).
    public var receiveMaximum: Int
    /// Messages queued for the client at most; beyond, new ones are dropped (counted).
    public let queuedMessagesMax: Int
    /// Bytes queued at most (payloads and topics); a message that would pass it is dropped,
    /// unless the queue is empty.
    public let queuedBytesMax: Int
    public let subscriptionsMax: Int
    public private(set) var dropped = 0
    /// Messages the client acknowledged (or that were given up) so far: its progress.
    public private(set) var acknowledged: UInt64 = 0
    /// Messages dropped from the queue because their message expiry passed first.
    public private(set) var expired = 0

    public init(clientID: String, receiveMaximum: Int, queuedMessagesMax: Int, subscriptionsMax: Int, queuedBytesMax: Int = .max) {
        precondition(receiveMaximum > 0 && receiveMaximum <= 65_535 && queuedMessagesMax > 0 && subscriptionsMax > 0 && queuedBytesMax > 0)
        self.clientID = clientID
        self.receiveMaximum = receiveMaximum
        self.queuedMessagesMax = queuedMessagesMax
        self.queuedBytesMax = queuedBytesMax
        self.subscriptionsMax = subscriptionsMax
    }

    // MARK: persistence

    /// What of a session outlives the server: its subscriptions and the QoS 2 messages awaiting
    /// their PUBREL (kept in a compacted topic by client id). Queued messages are not in it.
    public struct Snapshot: Codable, Sendable, Equatable {
        public struct Entry: Codable, Sendable, Equatable {
            /// As subscribed (`$share/GROUP/FILTER` for a shared one).
            public var key: String
            public var qos: UInt8
            public var noLocal: Bool
            public var retainAsPublished: Bool
            public var retainHandling: UInt8
            public var identifier: UInt32?
        }
        public var clientID: String
        public var expirySeconds: UInt32
        public var subscriptions: [Entry]
        public var awaitingRelease: [UInt16]
        /// When it was saved; a session without its client expires `expirySeconds` after.
        public var savedAtMs: Int64
        /// Where in each partition of the mapped topics the session is to be read from again
        /// when it is restored (what it had not acknowledged, or not yet been offered); none in
        /// records written before there was one.
        public var resume: [Resume]?

        /// A partition and the offset to read it again from.
        public typealias Resume = Source
        /// The producer of its QoS 2 messages and the writes it had under way; none in records
        /// written before there was one.
        public var exactlyOnce: ExactlyOnceWrites.Saved?
        /// The QoS 1 and 2 messages in flight to the client, in the order sent: those from Kafka
        /// by where they are (sent again with their ids), and those it acknowledged with PUBREC
        /// (a PUBREL is sent again). None in records written before there was one.
        public var inflight: [Outbound]?

        public struct Outbound: Codable, Sendable, Equatable {
            public var packetID: UInt16
            /// PUBREC came: the message is the client's; PUBREL is what is sent again.
            public var released: Bool
            public var source: Source?
        }
    }

    public func snapshot(expirySeconds: UInt32, nowMs: Int64) -> Snapshot {
        Snapshot(clientID: clientID, expirySeconds: expirySeconds,
                 subscriptions: subscriptions.sorted { $0.key < $1.key }.map { key, s in
                     Snapshot.Entry(key: key, qos: s.options.qos.rawValue, noLocal: s.options.noLocal,
                                    retainAsPublished: s.options.retainAsPublished, retainHandling: s.options.retainHandling.rawValue,
                                    identifier: s.identifier)
                 },
                 awaitingRelease: awaitingRelease.sorted(), savedAtMs: nowMs, exactlyOnce: exactlyOnce.saved,
                 inflight: savedInflight)
    }

    /// The messages in flight a record keeps (with those reserved and not read again yet).
    var savedInflight: [Snapshot.Outbound] {
        var out: [Snapshot.Outbound] = inflightOrder.compactMap { id in
            guard let entry = inflight[id] else { return nil }
            let released = entry.state == .awaitingPubcomp
            guard released || entry.source != nil else { return nil }
            return Snapshot.Outbound(packetID: id, released: released, source: released ? nil : entry.source)
        }
        out += reserved.sorted { $0.value < $1.value }.map { Snapshot.Outbound(packetID: $0.value, released: false, source: $0.key) }
        return out
    }

    /// The session a snapshot describes; nil when it does not hold together (a bad filter, QoS).
    public init?(restoring snapshot: Snapshot, receiveMaximum: Int, queuedMessagesMax: Int, subscriptionsMax: Int, queuedBytesMax: Int = .max) {
        self.init(clientID: snapshot.clientID, receiveMaximum: receiveMaximum, queuedMessagesMax: queuedMessagesMax,
                  subscriptionsMax: subscriptionsMax, queuedBytesMax: queuedBytesMax)
        for entry in snapshot.subscriptions.prefix(subscriptionsMax) {
            let inner = ((try? MQTTTopic.shared(entry.key)) ?? nil)?.filter ?? entry.key
            guard MQTTTopic.isValidFilter(inner), let qos = QoS(rawValue: entry.qos),
                  let handling = SubscriptionOptions.RetainHandling(rawValue: entry.retainHandling) else { return nil }
            _ = subscribe(entry.key, options: SubscriptionOptions(qos: qos, noLocal: entry.noLocal, retainAsPublished: entry.retainAsPublished,
                                                                  retainHandling: handling), identifier: entry.identifier)
        }
        awaitingRelease = Set(snapshot.awaitingRelease.filter { $0 != 0 })
        exactlyOnce = ExactlyOnceWrites(restoring: snapshot.exactlyOnce)
        for entry in (snapshot.inflight ?? []).prefix(Self.restoredInflightMax) where entry.packetID != 0 && inflight[entry.packetID] == nil {
            if entry.released {
                // Only its PUBREL is sent again: the message itself is not needed.
                inflight[entry.packetID] = (MQTTPublish(topic: "", qos: .exactlyOnce, payload: ByteBuffer()), .awaitingPubcomp, nil)
                inflightOrder.append(entry.packetID)
            } else if let source = entry.source, reserved[source] == nil, reservedIDs.insert(entry.packetID).inserted {
                reserved[source] = entry.packetID
            }
        }
    }

    /// Packet ids a restored session keeps at most (a record from a client with a large receive
    /// maximum leaves room for new ones).
    static let restoredInflightMax = 16_384

    /// Reading a restored session's messages again ended: the ids of messages not read again
    /// (and so not queued) are free.
    public mutating func replayEnded() {
        guard !reserved.isEmpty else { return }
        let queued = Set(queue.compactMap(\.source))
        reserved = reserved.filter { queued.contains($0.key) }
        reservedIDs = Set(reserved.values)
    }

    /// Holds a restored session's QoS 2 writes against the partitions' last sequences of its
    /// producers (`ExactlyOnceWrites.reconcile`): those written await their PUBREL.
    public mutating func reconcile(lastSequences: [Int64: [ExactlyOnceWrites.Target: Int32]]) {
        for id in exactlyOnce.reconcile(lastSequences: lastSequences) { awaitingRelease.insert(id) }
    }

    // MARK: subscriptions

    /// Adds or replaces a subscription to `filter` as SUBSCRIBE gave it (`$share/GROUP/FILTER`
    /// for a shared one, valid); nil when there are too many. Returns whether it existed.
    public mutating func subscribe(_ filter: String, options: SubscriptionOptions, identifier: UInt32?) -> Bool? {
        let existed = subscriptions[filter] != nil
        guard existed || subscriptions.count < subscriptionsMax else { return nil }
        let shared = (try? MQTTTopic.shared(filter)) ?? nil
        subscriptions[filter] = Subscription(filter: shared?.filter ?? filter, options: options, identifier: identifier,
                                             shareGroup: shared?.group)
        return existed
    }

    public mutating func unsubscribe(_ filter: String) -> Bool {
        subscriptions.removeValue(forKey: filter) != nil
    }

    /// How `message` reaches this client, if at all: at the highest QoS of its matching
    /// subscriptions (capped by the publisher's), with every matching subscription identifier.
    public func delivery(of message: Message) -> MQTTPublish? {
        var qos: QoS?
        var retainAsPublished = false
        var identifiers: [UInt32] = []
        for subscription in subscriptions.values where subscription.shareGroup == nil && MQTTTopic.matches(filter: subscription.filter, name: message.topic) {
            if subscription.options.noLocal && message.publisher == clientID { continue }
            qos = max(qos ?? .atMostOnce, min(subscription.options.qos, message.qos))
            retainAsPublished = retainAsPublished || subscription.options.retainAsPublished
            if let id = subscription.identifier { identifiers.append(id) }
        }
        guard let qos else { return nil }
        var properties = message.properties
        properties.subscriptionIdentifiers = identifiers.sorted()
        return MQTTPublish(topic: message.topic, qos: qos, retain: retainAsPublished && message.retain, properties: properties,
                           payload: message.payload)
    }

    /// How `message` reaches this client through its shared subscription `key` (as subscribed,
    /// `$share/GROUP/FILTER`), chosen for it among the group's sessions.
    public func sharedDelivery(of message: Message, key: String) -> MQTTPublish? {
        guard let subscription = subscriptions[key], subscription.shareGroup != nil,
              MQTTTopic.matches(filter: subscription.filter, name: message.topic) else { return nil }
        var properties = message.properties
        properties.subscriptionIdentifiers = subscription.identifier.map { [$0] } ?? []
        return MQTTPublish(topic: message.topic, qos: min(subscription.options.qos, message.qos),
                           retain: subscription.options.retainAsPublished && message.retain, properties: properties, payload: message.payload)
    }

    // MARK: outbound

    /// Queues a message for the client at `nowMs`; false when the queue is full, by count or by
    /// bytes (the message is dropped). `allowance` is room beyond `queuedMessagesMax` (a connected
    /// client's burst, which the server paces itself by).
    public mutating func enqueue(_ publish: MQTTPublish, allowance: Int = 0, nowMs: Int64 = 0, source: Source? = nil) -> Bool {
        let bytes = publish.payload.readableBytes + publish.topic.utf8.count
        guard queue.count < queuedMessagesMax + allowance, queue.isEmpty || queuedBytes + bytes <= queuedBytesMax else {
            dropped += 1
            return false
        }
        queue.append(Queued(publish: publish, atMs: nowMs, bytes: bytes, source: source))
        queuedBytes += bytes
        return true
    }

    /// How long a queued message has waited, in whole seconds, and whether its message expiry
    /// passed meanwhile.
    static func waited(_ queued: Queued, nowMs: Int64) -> (seconds: UInt32, expired: Bool) {
        let seconds = UInt32(clamping: max(0, nowMs - queued.atMs) / 1000)
        guard let interval = queued.publish.properties.messageExpiryInterval else { return (seconds, false) }
        return (seconds, seconds >= interval)
    }

    /// Takes the first queued message, dropping those whose message expiry passed while they
    /// waited; the expiry interval of the one taken is what is left of it (MQTT 5.0, 3.3.2.3.3).
    /// Only a message that `admits` lets go is taken.
    mutating func takeQueued(nowMs: Int64, admits: (MQTTPublish) -> Bool) -> (MQTTPublish, Source?)? {
        while let first = queue.first {
            let (seconds, isExpired) = Self.waited(first, nowMs: nowMs)
            if !isExpired && !admits(first.publish) { return nil }
            queue.removeFirst()
            queuedBytes -= first.bytes
            if isExpired {
                expired += 1
                continue
            }
            var publish = first.publish
            if let interval = publish.properties.messageExpiryInterval { publish.properties.messageExpiryInterval = interval - seconds }
            return (publish, first.source)
        }
        return nil
    }

    public var queuedCount: Int { queue.count }

    /// The lowest Kafka offset of each partition among the messages queued or in flight (not
    /// acknowledged): where a restored session reads from to get them again.
    public var unacknowledgedFrom: [String: [Int32: Int64]] {
        var low: [String: [Int32: Int64]] = [:]
        func note(_ source: Source?) {
            guard let source else { return }
            low[source.topic, default: [:]][source.partition] = min(low[source.topic]?[source.partition] ?? .max, source.offset)
        }
        for queued in queue { note(queued.source) }
        for entry in inflight.values where entry.state != .awaitingPubcomp { note(entry.source) }
        return low
    }
    public var inflightCount: Int { inflight.count }

    /// The next message to send now: QoS 0 at once, QoS 1 and 2 while the window has room, with
    /// a packet id no message in flight holds.
    public mutating func nextToSend(nowMs: Int64 = 0) -> MQTTPublish? {
        let room = inflight.count < receiveMaximum
        guard let (taken, source) = takeQueued(nowMs: nowMs, admits: { $0.qos == .atMostOnce || room }) else { return nil }
        var publish = taken
        if publish.qos == .atMostOnce { return publish }
        let id: UInt16
        if let source, let kept = reserved.removeValue(forKey: source) {
            // Sent before the restore under this id: again with it.
            reservedIDs.remove(kept)
            id = kept
            publish.duplicate = true
        } else {
            id = allocatePacketID()
        }
        publish.packetID = id
        inflight[id] = (publish, publish.qos == .atLeastOnce ? .awaitingPuback : .awaitingPubrec, source)
        inflightOrder.append(id)
        return publish
    }

    mutating func allocatePacketID() -> UInt16 {
        precondition(inflight.count < 65_535, "every packet identifier in use")
        // Ids reserved for messages read again give way when they would leave none.
        if inflight.count + reservedIDs.count >= 65_535 {
            reserved = [:]
            reservedIDs = []
        }
        while inflight[nextPacketID] != nil || reservedIDs.contains(nextPacketID) {
            nextPacketID = nextPacketID == UInt16.max ? 1 : nextPacketID + 1
        }
        defer { nextPacketID = nextPacketID == UInt16.max ? 1 : nextPacketID + 1 }
        return nextPacketID
    }

    /// A PUBACK came: the QoS 1 message is done. False when no such message awaited one.
    public mutating func receivedPuback(_ id: UInt16) -> Bool {
        guard let entry = inflight[id], entry.state == .awaitingPuback else { return false }
        finish(id)
        return true
    }

    /// A PUBREC came: answer PUBREL (also for a repeated PUBREC). A PUBREC with an error reason
    /// ends the exchange (5.0). Nil when no QoS 2 message has that id.
    public mutating func receivedPubrec(_ id: UInt16, reason: ReasonCode) -> MQTTPacket? {
        guard let entry = inflight[id], entry.state != .awaitingPuback else {
            return .pubrel(MQTTAck(packetID: id, reason: .packetIdentifierNotFound))
        }
        if reason.isError {
            finish(id)
            return nil
        }
        inflight[id] = (entry.publish, .awaitingPubcomp, entry.source)
        return .pubrel(MQTTAck(packetID: id))
    }

    public mutating func receivedPubcomp(_ id: UInt16) -> Bool {
        guard let entry = inflight[id], entry.state == .awaitingPubcomp else { return false }
        finish(id)
        return true
    }

    /// Gives up a message in flight without its acknowledgement (one too large for the client to
    /// take, which the server discards).
    public mutating func abandon(_ id: UInt16) {
        finish(id)
    }

    mutating func finish(_ id: UInt16) {
        acknowledged &+= 1
        inflight[id] = nil
        if let index = inflightOrder.firstIndex(of: id) { inflightOrder.remove(at: index) }
    }

    /// What a reconnecting client is sent again first, in the order first sent: unacknowledged
    /// PUBLISHes marked duplicate, and PUBRELs of those it acknowledged with PUBREC.
    public func resend() -> [MQTTPacket] {
        inflightOrder.compactMap { id in
            guard let entry = inflight[id] else { return nil }
            switch entry.state {
            case .awaitingPuback, .awaitingPubrec:
                var publish = entry.publish
                publish.duplicate = true
                return .publish(publish)
            case .awaitingPubcomp:
                return .pubrel(MQTTAck(packetID: id))
            }
        }
    }

    /// A new connection of a session that is not clean: QoS 0 messages queued are dropped (they
    /// were for the connection that ended).
    public mutating func reattached(receiveMaximum: Int) {
        precondition(receiveMaximum > 0)
        self.receiveMaximum = receiveMaximum
        queue.removeAll { $0.publish.qos == .atMostOnce }
        queuedBytes = queue.reduce(0) { $0 + $1.bytes }
    }

    // MARK: inbound QoS 2

    /// A QoS 2 PUBLISH came: true when it is new (to be written), false for a repeat of one
    /// awaiting its PUBREL (answered with PUBREC again, not written twice).
    public mutating func receivedExactlyOnce(_ id: UInt16) -> Bool {
        awaitingRelease.insert(id).inserted
    }

    /// Undoes `receivedExactlyOnce` when the write failed: the client's retry is then new.
    public mutating func forgetExactlyOnce(_ id: UInt16) {
        awaitingRelease.remove(id)
    }

    /// A PUBREL came: true when the id was awaited (PUBCOMP success), else packet id not found.
    public mutating func receivedPubrel(_ id: UInt16) -> Bool {
        awaitingRelease.remove(id) != nil
    }
}
