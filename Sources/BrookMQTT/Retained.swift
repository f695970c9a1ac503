/// The retained messages a server holds, by topic, within a count and a byte budget (payloads
/// and topics); each with the time it was kept, so that its message expiry counts down and an
/// expired one is neither sent nor kept (MQTT 5.0, 3.3.2.3.3).
public struct MQTTRetainedStore: Sendable {
    struct Kept: Sendable {
        var message: MQTTSession.Message
        var atMs: Int64
        var bytes: Int
    }

    var kept: [String: Kept] = [:]
    public private(set) var bytes = 0
    public let messagesMax: Int
    public let bytesMax: Int

    public init(messagesMax: Int, bytesMax: Int) {
        precondition(messagesMax >= 0 && bytesMax >= 0)
        self.messagesMax = messagesMax
        self.bytesMax = bytesMax
    }

    public var count: Int { kept.count }

    /// Keeps `message` as its topic's retained message (an empty payload removes it). False when
    /// it is not kept: one more would pass the count or the byte budget.
    public mutating func set(_ message: MQTTSession.Message, nowMs: Int64) -> Bool {
        guard message.payload.readableBytes > 0 else {
            remove(message.topic)
            return true
        }
        let size = message.payload.readableBytes + message.topic.utf8.count
        let replaced = kept[message.topic]?.bytes ?? 0
        guard kept[message.topic] != nil || kept.count < messagesMax, bytes - replaced + size <= bytesMax else { return false }
        var message = message
        message.retain = true
        kept[message.topic] = Kept(message: message, atMs: nowMs, bytes: size)
        bytes += size - replaced
        return true
    }

    public mutating func remove(_ topic: String) {
        if let gone = kept.removeValue(forKey: topic) { bytes -= gone.bytes }
    }

    /// The retained messages whose topics `filter` matches, by topic, `limit` at most, each with
    /// what is left of its message expiry; expired ones are removed.
    public mutating func matching(_ filter: String, limit: Int, nowMs: Int64) -> [MQTTSession.Message] {
        var found: [MQTTSession.Message] = []
        var expired: [String] = []
        for (topic, entry) in kept where MQTTTopic.matches(filter: filter, name: topic) {
            var message = entry.message
            if let interval = message.properties.messageExpiryInterval {
                let waited = UInt32(clamping: max(0, nowMs - entry.atMs) / 1000)
                guard waited < interval else {
                    expired.append(topic)
                    continue
                }
                message.properties.messageExpiryInterval = interval - waited
            }
            found.append(message)
        }
        for topic in expired { remove(topic) }
        return Array(found.sorted { $0.topic < $1.topic }.prefix(max(0, limit)))
    }
}
