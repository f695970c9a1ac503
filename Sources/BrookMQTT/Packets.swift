import NIOCore

/// The MQTT protocol levels served: 3.1 ("MQIsdp", level 3) and 3.1.1 (level 4) share one
/// layout; 5.0 (level 5) adds properties and reason codes.
public enum MQTTVersion: UInt8, Sendable, Comparable, CustomStringConvertible {
    case v3_1 = 3
    case v3_1_1 = 4
    case v5 = 5

    public static func < (a: MQTTVersion, b: MQTTVersion) -> Bool { a.rawValue < b.rawValue }
    public var hasProperties: Bool { self == .v5 }
    public var description: String {
        switch self {
        case .v3_1: "3.1"
        case .v3_1_1: "3.1.1"
        case .v5: "5.0"
        }
    }
}

/// The control packet types (the high nibble of the first byte).
public enum MQTTPacketType: UInt8, Sendable, CaseIterable {
    case connect = 1, connack, publish, puback, pubrec, pubrel, pubcomp, subscribe, suback, unsubscribe, unsuback,
         pingreq, pingresp, disconnect, auth
}

public enum QoS: UInt8, Sendable, Comparable {
    case atMostOnce = 0, atLeastOnce = 1, exactlyOnce = 2
    public static func < (a: QoS, b: QoS) -> Bool { a.rawValue < b.rawValue }
}

/// A will: published by the server when the connection ends without a DISCONNECT.
public struct MQTTWill: Sendable, Equatable {
    public var topic: String
    public var payload: ByteBuffer
    public var qos: QoS
    public var retain: Bool
    /// Will properties (5.0): delay interval, expiry, content type, user properties, ...
    public var properties: MQTTProperties

    public init(topic: String, payload: ByteBuffer, qos: QoS, retain: Bool, properties: MQTTProperties = MQTTProperties()) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
    }
}

public struct MQTTConnect: Sendable, Equatable {
    public var version: MQTTVersion
    /// Clean session (3.1.1) or clean start (5.0).
    public var cleanStart: Bool
    public var keepAliveSeconds: UInt16
    public var properties: MQTTProperties
    public var clientID: String
    public var will: MQTTWill?
    public var username: String?
    public var password: [UInt8]?

    public init(version: MQTTVersion, cleanStart: Bool = true, keepAliveSeconds: UInt16 = 60, properties: MQTTProperties = MQTTProperties(),
                clientID: String, will: MQTTWill? = nil, username: String? = nil, password: [UInt8]? = nil) {
        self.version = version
        self.cleanStart = cleanStart
        self.keepAliveSeconds = keepAliveSeconds
        self.properties = properties
        self.clientID = clientID
        self.will = will
        self.username = username
        self.password = password
    }
}

public struct MQTTConnAck: Sendable, Equatable {
    public var sessionPresent: Bool
    /// A 5.0 reason code; for 3.1.1 it is written as the matching return code.
    public var reason: ReasonCode
    public var properties: MQTTProperties

    public init(sessionPresent: Bool = false, reason: ReasonCode = .success, properties: MQTTProperties = MQTTProperties()) {
        self.sessionPresent = sessionPresent
        self.reason = reason
        self.properties = properties
    }
}

public struct MQTTPublish: Sendable, Equatable {
    public var topic: String
    public var qos: QoS
    public var retain: Bool
    public var duplicate: Bool
    /// Present when `qos` > 0.
    public var packetID: UInt16?
    public var properties: MQTTProperties
    public var payload: ByteBuffer

    public init(topic: String, qos: QoS = .atMostOnce, retain: Bool = false, duplicate: Bool = false, packetID: UInt16? = nil,
                properties: MQTTProperties = MQTTProperties(), payload: ByteBuffer) {
        self.topic = topic
        self.qos = qos
        self.retain = retain
        self.duplicate = duplicate
        self.packetID = packetID
        self.properties = properties
        self.payload = payload
    }
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP: a packet id and (5.0) a reason.
public struct MQTTAck: Sendable, Equatable {
    public var packetID: UInt16
    public var reason: ReasonCode
    public var properties: MQTTProperties

    public init(packetID: UInt16, reason: ReasonCode = .success, properties: MQTTProperties = MQTTProperties()) {
        self.packetID = packetID
        self.reason = reason
        self.properties = properties
    }
}

/// What a SUBSCRIBE asks for one filter (the options byte).
public struct SubscriptionOptions: Sendable, Equatable, Hashable {
    public enum RetainHandling: UInt8, Sendable {
        /// Send retained messages at every subscribe.
        case sendAtSubscribe = 0
        /// Only when the subscription is new.
        case sendAtNewSubscribe = 1
        case doNotSend = 2
    }
    public var qos: QoS
    /// Not delivered the client's own publishes (5.0).
    public var noLocal: Bool
    /// Live deliveries keep the publisher's retain flag (5.0).
    public var retainAsPublished: Bool
    public var retainHandling: RetainHandling

    public init(qos: QoS, noLocal: Bool = false, retainAsPublished: Bool = false, retainHandling: RetainHandling = .sendAtSubscribe) {
        self.qos = qos
        self.noLocal = noLocal
        self.retainAsPublished = retainAsPublished
        self.retainHandling = retainHandling
    }
}

public struct MQTTSubscribe: Sendable, Equatable {
    public var packetID: UInt16
    public var properties: MQTTProperties
    public var filters: [(filter: String, options: SubscriptionOptions)]

    public init(packetID: UInt16, properties: MQTTProperties = MQTTProperties(), filters: [(filter: String, options: SubscriptionOptions)]) {
        self.packetID = packetID
        self.properties = properties
        self.filters = filters
    }

    public static func == (a: MQTTSubscribe, b: MQTTSubscribe) -> Bool {
        a.packetID == b.packetID && a.properties == b.properties
            && a.filters.map(\.filter) == b.filters.map(\.filter) && a.filters.map(\.options) == b.filters.map(\.options)
    }
}

/// SUBACK and UNSUBACK: a reason per filter (3.1.1's UNSUBACK has none).
public struct MQTTSubAck: Sendable, Equatable {
    public var packetID: UInt16
    public var properties: MQTTProperties
    public var reasons: [ReasonCode]

    public init(packetID: UInt16, properties: MQTTProperties = MQTTProperties(), reasons: [ReasonCode]) {
        self.packetID = packetID
        self.properties = properties
        self.reasons = reasons
    }
}

public struct MQTTUnsubscribe: Sendable, Equatable {
    public var packetID: UInt16
    public var properties: MQTTProperties
    public var filters: [String]

    public init(packetID: UInt16, properties: MQTTProperties = MQTTProperties(), filters: [String]) {
        self.packetID = packetID
        self.properties = properties
        self.filters = filters
    }
}

/// DISCONNECT and AUTH (5.0): a reason and properties.
public struct MQTTReasoned: Sendable, Equatable {
    public var reason: ReasonCode
    public var properties: MQTTProperties

    public init(reason: ReasonCode = .success, properties: MQTTProperties = MQTTProperties()) {
        self.reason = reason
        self.properties = properties
    }
}

public enum MQTTPacket: Sendable, Equatable {
    case connect(MQTTConnect)
    case connack(MQTTConnAck)
    case publish(MQTTPublish)
    case puback(MQTTAck)
    case pubrec(MQTTAck)
    case pubrel(MQTTAck)
    case pubcomp(MQTTAck)
    case subscribe(MQTTSubscribe)
    case suback(MQTTSubAck)
    case unsubscribe(MQTTUnsubscribe)
    case unsuback(MQTTSubAck)
    case pingreq
    case pingresp
    case disconnect(MQTTReasoned)
    case auth(MQTTReasoned)

    public var type: MQTTPacketType {
        switch self {
        case .connect: .connect
        case .connack: .connack
        case .publish: .publish
        case .puback: .puback
        case .pubrec: .pubrec
        case .pubrel: .pubrel
        case .pubcomp: .pubcomp
        case .subscribe: .subscribe
        case .suback: .suback
        case .unsubscribe: .unsubscribe
        case .unsuback: .unsuback
        case .pingreq: .pingreq
        case .pingresp: .pingresp
        case .disconnect: .disconnect
        case .auth: .auth
        }
    }
}
