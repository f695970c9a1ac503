import NIOCore

/// MQTT 5.0's properties: each a one-byte identifier and a value of a fixed kind. Which packet may
/// carry which property is the table `PropertyID.allowed`; a property outside it, or one given
/// twice (but user properties and, in PUBLISH, subscription identifiers), is a protocol error.
public struct MQTTProperties: Sendable, Equatable {
    public var payloadFormatIndicator: UInt8?
    public var messageExpiryInterval: UInt32?
    public var contentType: String?
    public var responseTopic: String?
    public var correlationData: [UInt8]?
    /// One in SUBSCRIBE; in PUBLISH (server to client) one per matching subscription.
    public var subscriptionIdentifiers: [UInt32] = []
    public var sessionExpiryInterval: UInt32?
    public var assignedClientIdentifier: String?
    public var serverKeepAlive: UInt16?
    public var authenticationMethod: String?
    public var authenticationData: [UInt8]?
    public var requestProblemInformation: UInt8?
    public var willDelayInterval: UInt32?
    public var requestResponseInformation: UInt8?
    public var responseInformation: String?
    public var serverReference: String?
    public var reasonString: String?
    public var receiveMaximum: UInt16?
    public var topicAliasMaximum: UInt16?
    public var topicAlias: UInt16?
    public var maximumQoS: UInt8?
    public var retainAvailable: UInt8?
    public var userProperties: [(name: String, value: String)] = []
    public var maximumPacketSize: UInt32?
    public var wildcardSubscriptionAvailable: UInt8?
    public var subscriptionIdentifierAvailable: UInt8?
    public var sharedSubscriptionAvailable: UInt8?

    public init() {}

    public static func == (a: MQTTProperties, b: MQTTProperties) -> Bool {
        var x = ByteBuffer(), y = ByteBuffer()
        a.encodeBody(to: &x)
        b.encodeBody(to: &y)
        return x == y
    }
}

/// Where properties appear: each packet's set, and the will's.
public enum PropertyContext: Sendable {
    case packet(MQTTPacketType)
    case will
}

enum PropertyID: UInt8 {
    case payloadFormatIndicator = 0x01, messageExpiryInterval = 0x02, contentType = 0x03, responseTopic = 0x08,
         correlationData = 0x09, subscriptionIdentifier = 0x0B, sessionExpiryInterval = 0x11,
         assignedClientIdentifier = 0x12, serverKeepAlive = 0x13, authenticationMethod = 0x15,
         authenticationData = 0x16, requestProblemInformation = 0x17, willDelayInterval = 0x18,
         requestResponseInformation = 0x19, responseInformation = 0x1A, serverReference = 0x1C, reasonString = 0x1F,
         receiveMaximum = 0x21, topicAliasMaximum = 0x22, topicAlias = 0x23, maximumQoS = 0x24, retainAvailable = 0x25,
         userProperty = 0x26, maximumPacketSize = 0x27, wildcardSubscriptionAvailable = 0x28,
         subscriptionIdentifierAvailable = 0x29, sharedSubscriptionAvailable = 0x2A

    /// Where each property may appear (MQTT 5.0, section 2.2.2.2).
    func allowed(in context: PropertyContext) -> Bool {
        switch context {
        case .will:
            return [.payloadFormatIndicator, .messageExpiryInterval, .contentType, .responseTopic, .correlationData,
                    .willDelayInterval, .userProperty].contains(self)
        case .packet(let type):
            if self == .userProperty { return type != .pingreq && type != .pingresp }
            switch type {
            case .connect:
                return [.sessionExpiryInterval, .authenticationMethod, .authenticationData, .requestProblemInformation,
                        .requestResponseInformation, .receiveMaximum, .topicAliasMaximum, .maximumPacketSize].contains(self)
            case .connack:
                return [.sessionExpiryInterval, .assignedClientIdentifier, .serverKeepAlive, .authenticationMethod,
                        .authenticationData, .responseInformation, .serverReference, .reasonString, .receiveMaximum,
                        .topicAliasMaximum, .maximumQoS, .retainAvailable, .maximumPacketSize,
                        .wildcardSubscriptionAvailable, .subscriptionIdentifierAvailable, .sharedSubscriptionAvailable].contains(self)
            case .publish:
                return [.payloadFormatIndicator, .messageExpiryInterval, .contentType, .responseTopic, .correlationData,
                        .subscriptionIdentifier, .topicAlias].contains(self)
            case .puback, .pubrec, .pubrel, .pubcomp, .suback, .unsuback:
                return self == .reasonString
            case .subscribe:
                return self == .subscriptionIdentifier
            case .unsubscribe, .pingreq, .pingresp:
                return false
            case .disconnect:
                return [.sessionExpiryInterval, .serverReference, .reasonString].contains(self)
            case .auth:
                return [.authenticationMethod, .authenticationData, .reasonString].contains(self)
            }
        }
    }
}

extension MQTTProperties {
    /// Bytes of properties in one packet at most (beyond the packet's own bound).
    static let userPropertiesMax = 1024

    /// Reads the properties' length and the properties.
    static func decode(from buffer: inout ByteBuffer, context: PropertyContext) throws(MQTTError) -> MQTTProperties {
        let length = try MQTTWire.readVariableInt(&buffer)
        guard length <= buffer.readableBytes, var body = buffer.readSlice(length: length) else {
            throw .malformed("properties of \(length) bytes in \(buffer.readableBytes)")
        }
        var properties = MQTTProperties()
        var seen: Set<UInt8> = []
        while body.readableBytes > 0 {
            let raw = try MQTTWire.readVariableInt(&body)
            guard raw <= 0x7F, let id = PropertyID(rawValue: UInt8(raw)) else { throw .malformed("unknown property 0x\(String(raw, radix: 16))") }
            guard id.allowed(in: context) else { throw .protocolError("property 0x\(String(id.rawValue, radix: 16)) is not allowed in \(context)") }
            let repeats = id == .userProperty || (id == .subscriptionIdentifier && context == .packet(.publish))
            guard repeats || seen.insert(id.rawValue).inserted else { throw .protocolError("property 0x\(String(id.rawValue, radix: 16)) given twice") }
            try properties.read(id, from: &body)
        }
        return properties
    }

    private mutating func read(_ id: PropertyID, from b: inout ByteBuffer) throws(MQTTError) {
        switch id {
        case .payloadFormatIndicator:
            payloadFormatIndicator = try MQTTWire.readByte(&b)
            guard payloadFormatIndicator! <= 1 else { throw .protocolError("payload format indicator \(payloadFormatIndicator!)") }
        case .messageExpiryInterval: messageExpiryInterval = try MQTTWire.readUInt32(&b)
        case .contentType: contentType = try MQTTWire.readString(&b)
        case .responseTopic:
            let topic = try MQTTWire.readString(&b)
            guard MQTTTopic.isValidName(topic) else { throw .protocolError("response topic \"\(topic)\" is not a topic name") }
            responseTopic = topic
        case .correlationData: correlationData = try MQTTWire.readBinary(&b)
        case .subscriptionIdentifier:
            let value = try MQTTWire.readVariableInt(&b)
            guard value > 0 else { throw .protocolError("subscription identifier 0") }
            subscriptionIdentifiers.append(UInt32(value))
        case .sessionExpiryInterval: sessionExpiryInterval = try MQTTWire.readUInt32(&b)
        case .assignedClientIdentifier: assignedClientIdentifier = try MQTTWire.readString(&b)
        case .serverKeepAlive: serverKeepAlive = try MQTTWire.readUInt16(&b)
        case .authenticationMethod: authenticationMethod = try MQTTWire.readString(&b)
        case .authenticationData: authenticationData = try MQTTWire.readBinary(&b)
        case .requestProblemInformation:
            requestProblemInformation = try MQTTWire.readByte(&b)
            guard requestProblemInformation! <= 1 else { throw .protocolError("request problem information \(requestProblemInformation!)") }
        case .willDelayInterval: willDelayInterval = try MQTTWire.readUInt32(&b)
        case .requestResponseInformation:
            requestResponseInformation = try MQTTWire.readByte(&b)
            guard requestResponseInformation! <= 1 else { throw .protocolError("request response information \(requestResponseInformation!)") }
        case .responseInformation: responseInformation = try MQTTWire.readString(&b)
        case .serverReference: serverReference = try MQTTWire.readString(&b)
        case .reasonString: reasonString = try MQTTWire.readString(&b)
        case .receiveMaximum:
            receiveMaximum = try MQTTWire.readUInt16(&b)
            guard receiveMaximum! > 0 else { throw .protocolError("receive maximum 0") }
        case .topicAliasMaximum: topicAliasMaximum = try MQTTWire.readUInt16(&b)
        case .topicAlias:
            topicAlias = try MQTTWire.readUInt16(&b)
            guard topicAlias! > 0 else { throw MQTTError(.topicAliasInvalid, "topic alias 0") }
        case .maximumQoS: maximumQoS = try MQTTWire.readByte(&b)
        case .retainAvailable: retainAvailable = try MQTTWire.readByte(&b)
        case .userProperty:
            guard userProperties.count < Self.userPropertiesMax else { throw .malformed("more than \(Self.userPropertiesMax) user properties") }
            let name = try MQTTWire.readString(&b)
            userProperties.append((name, try MQTTWire.readString(&b)))
        case .maximumPacketSize:
            maximumPacketSize = try MQTTWire.readUInt32(&b)
            guard maximumPacketSize! > 0 else { throw .protocolError("maximum packet size 0") }
        case .wildcardSubscriptionAvailable: wildcardSubscriptionAvailable = try MQTTWire.readByte(&b)
        case .subscriptionIdentifierAvailable: subscriptionIdentifierAvailable = try MQTTWire.readByte(&b)
        case .sharedSubscriptionAvailable: sharedSubscriptionAvailable = try MQTTWire.readByte(&b)
        }
    }

    /// Writes the length and the properties.
    func encode(to buffer: inout ByteBuffer) {
        var body = ByteBuffer()
        encodeBody(to: &body)
        MQTTWire.writeVariableInt(body.readableBytes, to: &buffer)
        buffer.writeBuffer(&body)
    }

    /// The properties without their length, in identifier order.
    func encodeBody(to b: inout ByteBuffer) {
        func id(_ p: PropertyID) { b.writeInteger(p.rawValue) }
        if let v = payloadFormatIndicator { id(.payloadFormatIndicator); b.writeInteger(v) }
        if let v = messageExpiryInterval { id(.messageExpiryInterval); b.writeInteger(v) }
        if let v = contentType { id(.contentType); MQTTWire.writeString(v, to: &b) }
        if let v = responseTopic { id(.responseTopic); MQTTWire.writeString(v, to: &b) }
        if let v = correlationData { id(.correlationData); MQTTWire.writeBinary(v, to: &b) }
        for v in subscriptionIdentifiers { id(.subscriptionIdentifier); MQTTWire.writeVariableInt(Int(v), to: &b) }
        if let v = sessionExpiryInterval { id(.sessionExpiryInterval); b.writeInteger(v) }
        if let v = assignedClientIdentifier { id(.assignedClientIdentifier); MQTTWire.writeString(v, to: &b) }
        if let v = serverKeepAlive { id(.serverKeepAlive); b.writeInteger(v) }
        if let v = authenticationMethod { id(.authenticationMethod); MQTTWire.writeString(v, to: &b) }
        if let v = authenticationData { id(.authenticationData); MQTTWire.writeBinary(v, to: &b) }
        if let v = requestProblemInformation { id(.requestProblemInformation); b.writeInteger(v) }
        if let v = willDelayInterval { id(.willDelayInterval); b.writeInteger(v) }
        if let v = requestResponseInformation { id(.requestResponseInformation); b.writeInteger(v) }
        if let v = responseInformation { id(.responseInformation); MQTTWire.writeString(v, to: &b) }
        if let v = serverReference { id(.serverReference); MQTTWire.writeString(v, to: &b) }
        if let v = reasonString { id(.reasonString); MQTTWire.writeString(v, to: &b) }
        if let v = receiveMaximum { id(.receiveMaximum); b.writeInteger(v) }
        if let v = topicAliasMaximum { id(.topicAliasMaximum); b.writeInteger(v) }
        if let v = topicAlias { id(.topicAlias); b.writeInteger(v) }
        if let v = maximumQoS { id(.maximumQoS); b.writeInteger(v) }
        if let v = retainAvailable { id(.retainAvailable); b.writeInteger(v) }
        for (name, value) in userProperties {
            id(.userProperty)
            MQTTWire.writeString(name, to: &b)
            MQTTWire.writeString(value, to: &b)
        }
        if let v = maximumPacketSize { id(.maximumPacketSize); b.writeInteger(v) }
        if let v = wildcardSubscriptionAvailable { id(.wildcardSubscriptionAvailable); b.writeInteger(v) }
        if let v = subscriptionIdentifierAvailable { id(.subscriptionIdentifierAvailable); b.writeInteger(v) }
        if let v = sharedSubscriptionAvailable { id(.sharedSubscriptionAvailable); b.writeInteger(v) }
    }

    public var isEmpty: Bool {
        var b = ByteBuffer()
        encodeBody(to: &b)
        return b.readableBytes == 0
    }
}

extension PropertyContext: Equatable {}
