import BrookMQTT
import BrookSecurity

/// The MQTT listener's settings (`mqtt.*`): where it listens, how MQTT topics map to Kafka
/// topics, and its bounds.
public struct MQTTSettings: Sendable, Equatable {
    /// `mqtt.listeners` (`mqtt://HOST:PORT` for MQTT over TCP, `ws://HOST:PORT` for MQTT over
    /// WebSocket, `mqtts://` and `wss://` for the same over TLS, with the `ssl.*` settings or
    /// `listener.name.mqtts.ssl.*` / `listener.name.wss.ssl.*`; comma-separated; none by default).
    public var listeners: [Listener] = []
    /// `mqtt.default.topic`: where messages of an MQTT topic no rule maps land; empty refuses them.
    public var defaultTopic: String? = "mqtt-messages"
    /// `mqtt.topic.mappings`: `FILTER=TOPIC,...`, the first matching rule wins.
    public var rules: [MQTTTopicMapping.Rule] = []
    /// `mqtt.retained.topic`: the compacted topic holding retained messages, keyed by MQTT topic.
    public var retainedTopic = "mqtt-retained"
    /// `mqtt.sessions.topic`: the compacted topic holding persistent sessions (subscriptions,
    /// QoS 2 messages awaiting release), keyed by client id, read back at a start.
    public var sessionsTopic = "mqtt-sessions"
    /// `mqtt.max.packet.bytes`: a bigger packet closes its connection (0x95); also told to 5.0
    /// clients. Under Kafka's default `max.message.bytes` (1 MiB), so that a message's record
    /// (its key and headers added) fits a batch.
    public var packetBytesMax = 1_000_000
    /// `mqtt.max.inflight.messages`: unacknowledged QoS 1 and 2 messages each way per client
    /// (5.0's receive maximum that the server announces; a 3.1.1 client's window).
    public var inflightMessagesMax = 100
    /// `mqtt.max.queued.messages`: messages queued for one client (offline, or its window full);
    /// beyond it new messages to it are dropped.
    public var queuedMessagesMax = 1000
    /// `mqtt.max.queued.bytes`: payload and topic bytes queued for one client; a message that
    /// would pass it is dropped (one message alone is always taken).
    public var queuedBytesMax = 16 * 1024 * 1024
    /// `mqtt.max.subscriptions.per.client`.
    public var subscriptionsMax = 100
    /// `mqtt.topic.alias.maximum`: the topic aliases a 5.0 client may use towards the server.
    public var topicAliasMax = 10
    /// `mqtt.max.sessions`: sessions kept (connected or not); a CONNECT beyond is refused.
    public var sessionsMax = 100_000
    /// `mqtt.session.expiry.max.seconds`: a persistent session without its client lasts at most
    /// this long (3.1.1's persistent sessions too, which have no expiry of their own).
    public var sessionExpiryMaxSeconds: UInt32 = 7 * 86_400
    /// `mqtt.max.retained.messages`: retained messages held; a new retained topic beyond is not kept.
    public var retainedMessagesMax = 100_000
    /// `mqtt.max.retained.bytes`: payload and topic bytes of the retained messages held; a new
    /// or bigger retained message beyond is not kept.
    public var retainedBytesMax = 256 * 1024 * 1024
    /// `mqtt.allow.anonymous`: a CONNECT without a user name is taken. A user name given is
    /// always checked with its password against the broker's users (PLAIN users of
    /// `listener.name.mqtt.plain.sasl.jaas.config`, SCRAM credentials).
    public var allowAnonymous = true
    /// `mqtt.authentication.methods`: the MQTT 5.0 enhanced authentication methods served (AUTH),
    /// of `SCRAM-SHA-256` and `SCRAM-SHA-512` (the cluster's SCRAM users); empty: none, a CONNECT
    /// naming a method gets 0x8C.
    public var authenticationMethods: [ScramMechanism] = [.sha256, .sha512]
    /// `mqtt.connect.timeout.ms`: a connection without a CONNECT this long is closed.
    public var connectTimeoutMs: Int64 = 10_000
    /// `mqtt.session.save.interval.ms`: a connected persistent session whose client acknowledged
    /// messages is saved this often (0: only at its other saves), so that after a crash it is
    /// sent again at most about this much of what it already had.
    public var sessionSaveIntervalMs: Int64 = 5_000

    public init() {}

    public var mapping: MQTTTopicMapping { MQTTTopicMapping(rules: rules, defaultTopic: defaultTopic) }

    /// Takes an `mqtt.*` key; false for a key that is not one of them.
    mutating func set(_ key: String, _ value: String) throws(BrokerConfigError) -> Bool {
        func int(_ range: ClosedRange<Int>) throws(BrokerConfigError) -> Int {
            guard let n = Int(value.trimmed), range.contains(n) else {
                throw .invalid(key, value, "expected an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return n
        }
        switch key {
        case "mqtt.listeners":
            listeners = value.trimmed.isEmpty ? [] : try Listener.parseList(value, key: key)
            for listener in listeners where !["mqtt", "ws", "mqtts", "wss"].contains(listener.name.lowercased()) {
                throw .invalid(key, value, "expected mqtt://HOST:PORT or ws://HOST:PORT (or mqtts://, wss://; \(listener.name) is not served)")
            }
            guard listeners.count <= 8 else { throw .invalid(key, value, "at most 8 listeners") }
        case "mqtt.default.topic":
            let name = value.trimmed
            if !name.isEmpty, let problem = TopicRegistry.validateName(name) { throw .invalid(key, value, problem.message) }
            defaultTopic = name.isEmpty ? nil : name
        case "mqtt.topic.mappings":
            do { rules = try MQTTTopicMapping.parseRules(value) } catch { throw .invalid(key, value, error.message) }
            for rule in rules {
                if let problem = TopicRegistry.validateName(rule.kafkaTopic) { throw .invalid(key, value, problem.message) }
            }
        case "mqtt.retained.topic":
            let name = value.trimmed
            if let problem = TopicRegistry.validateName(name) { throw .invalid(key, value, problem.message) }
            retainedTopic = name
        case "mqtt.sessions.topic":
            let name = value.trimmed
            if let problem = TopicRegistry.validateName(name) { throw .invalid(key, value, problem.message) }
            sessionsTopic = name
        case "mqtt.max.packet.bytes": packetBytesMax = try int(64...268_435_460)
        case "mqtt.max.inflight.messages": inflightMessagesMax = try int(1...65_535)
        case "mqtt.max.queued.messages": queuedMessagesMax = try int(1...1_000_000)
        case "mqtt.max.queued.bytes": queuedBytesMax = try int(1024...(1 << 40))
        case "mqtt.max.retained.bytes": retainedBytesMax = try int(0...(1 << 40))
        case "mqtt.max.subscriptions.per.client": subscriptionsMax = try int(1...100_000)
        case "mqtt.topic.alias.maximum": topicAliasMax = try int(0...65_535)
        case "mqtt.max.sessions": sessionsMax = try int(1...10_000_000)
        case "mqtt.session.expiry.max.seconds": sessionExpiryMaxSeconds = UInt32(try int(0...Int(UInt32.max)))
        case "mqtt.max.retained.messages": retainedMessagesMax = try int(0...10_000_000)
        case "mqtt.allow.anonymous":
            switch value.trimmed.lowercased() {
            case "true": allowAnonymous = true
            case "false": allowAnonymous = false
            default: throw .invalid(key, value, "expected true or false")
            }
        case "mqtt.connect.timeout.ms": connectTimeoutMs = Int64(try int(100...3_600_000))
        case "mqtt.session.save.interval.ms": sessionSaveIntervalMs = Int64(try int(0...3_600_000))
        case "mqtt.authentication.methods":
            var methods: [ScramMechanism] = []
            for name in value.split(separator: ",").map({ $0.trimmed }) where !name.isEmpty {
                guard let mechanism = ScramMechanism(name: name) else { throw .invalid(key, value, "\(name) is not SCRAM-SHA-256 or SCRAM-SHA-512") }
                if !methods.contains(mechanism) { methods.append(mechanism) }
            }
            authenticationMethods = methods
        default: return false
        }
        return true
    }
}
