import NIOCore

/// Decoding and encoding of whole control packets. Decoding is total: every byte of the body is
/// accounted for, and anything the specification calls malformed or a protocol error is thrown
/// as `MQTTError` with the reason code the server answers with.
extension MQTTPacket {
    /// Decodes a packet from its first byte (type and flags) and its body (the remaining length's
    /// bytes). `version` is the connection's (CONNECT names its own; before it, pass nil).
    public static func decode(first: UInt8, body: ByteBuffer, version: MQTTVersion?) throws(MQTTError) -> MQTTPacket {
        guard let type = MQTTPacketType(rawValue: first >> 4) else { throw .malformed("packet type 0") }
        let flags = first & 0x0F
        var b = body
        let v5 = version == .v5
        if type != .publish {
            let expected: UInt8 = (type == .pubrel || type == .subscribe || type == .unsubscribe) ? 0x2 : 0
            guard flags == expected else { throw .malformed("\(type) with flags 0x\(String(flags, radix: 16))") }
        }
        if type != .connect && version == nil { throw .protocolError("\(type) before CONNECT") }
        let packet: MQTTPacket
        switch type {
        case .connect: packet = .connect(try decodeConnect(&b))
        case .connack:
            let ackFlags = try MQTTWire.readByte(&b)
            guard ackFlags & 0xFE == 0 else { throw .malformed("CONNACK flags 0x\(String(ackFlags, radix: 16))") }
            let code = try MQTTWire.readByte(&b)
            let properties = v5 ? try MQTTProperties.decode(from: &b, context: .packet(.connack)) : MQTTProperties()
            // 3.1 has no session-present flag (its byte is reserved).
            packet = .connack(MQTTConnAck(sessionPresent: ackFlags & 1 == 1 && version != .v3_1,
                                          reason: v5 ? ReasonCode(rawValue: code) : .fromConnectReturnCode(code), properties: properties))
        case .publish: packet = .publish(try decodePublish(flags: flags, &b, v5: v5))
        case .puback, .pubrec, .pubrel, .pubcomp:
            let ack = try decodeAck(type, &b, v5: v5)
            switch type {
            case .puback: packet = .puback(ack)
            case .pubrec: packet = .pubrec(ack)
            case .pubrel: packet = .pubrel(ack)
            default: packet = .pubcomp(ack)
            }
        case .subscribe: packet = .subscribe(try decodeSubscribe(&b, v5: v5))
        case .suback, .unsuback:
            let id = try MQTTWire.readUInt16(&b)
            let properties = v5 ? try MQTTProperties.decode(from: &b, context: .packet(type)) : MQTTProperties()
            var reasons: [ReasonCode] = []
            // 3.1.1's UNSUBACK has no payload (a byte is left over, refused below); its SUBACK's
            // return codes are 0, 1, 2 and 0x80.
            while (v5 || type == .suback) && b.readableBytes > 0 {
                let reason = ReasonCode(rawValue: try MQTTWire.readByte(&b))
                guard v5 || reason.rawValue <= 2 || reason == .unspecifiedError else { throw .malformed("SUBACK return code \(reason)") }
                reasons.append(reason)
            }
            let ack = MQTTSubAck(packetID: id, properties: properties, reasons: reasons)
            packet = type == .suback ? .suback(ack) : .unsuback(ack)
        case .unsubscribe:
            let id = try nonzeroPacketID(&b, type)
            let properties = v5 ? try MQTTProperties.decode(from: &b, context: .packet(.unsubscribe)) : MQTTProperties()
            var filters: [String] = []
            while b.readableBytes > 0 {
                guard filters.count < Self.filtersPerPacketMax else { throw .malformed("more than \(Self.filtersPerPacketMax) topic filters") }
                filters.append(try MQTTWire.readString(&b))
            }
            guard !filters.isEmpty else { throw .protocolError("UNSUBSCRIBE without a topic filter") }
            packet = .unsubscribe(MQTTUnsubscribe(packetID: id, properties: properties, filters: filters))
        case .pingreq: packet = .pingreq
        case .pingresp: packet = .pingresp
        case .disconnect, .auth:
            guard v5 || type == .disconnect else { throw .protocolError("AUTH is MQTT 5.0's") }
            var reasoned = MQTTReasoned()
            if v5 && b.readableBytes > 0 {
                reasoned.reason = ReasonCode(rawValue: try MQTTWire.readByte(&b))
                if b.readableBytes > 0 { reasoned.properties = try MQTTProperties.decode(from: &b, context: .packet(type)) }
            }
            packet = type == .disconnect ? .disconnect(reasoned) : .auth(reasoned)
        }
        guard b.readableBytes == 0 else { throw .malformed("\(b.readableBytes) bytes after a \(type)") }
        return packet
    }

    /// Topic filters one SUBSCRIBE or UNSUBSCRIBE may carry.
    public static let filtersPerPacketMax = 1024

    static func nonzeroPacketID(_ b: inout ByteBuffer, _ type: MQTTPacketType) throws(MQTTError) -> UInt16 {
        let id = try MQTTWire.readUInt16(&b)
        guard id != 0 else { throw .protocolError("\(type) with packet identifier 0") }
        return id
    }

    static func decodeConnect(_ b: inout ByteBuffer) throws(MQTTError) -> MQTTConnect {
        let name = try MQTTWire.readString(&b)
        let level = try MQTTWire.readByte(&b)
        guard name == "MQTT" || name == "MQIsdp" else { throw .protocolError("protocol name \"\(name)\"") }
        guard let version = MQTTVersion(rawValue: level), (name == "MQIsdp") == (version == .v3_1) else {
            throw MQTTError(.unsupportedProtocolVersion, "protocol \"\(name)\" level \(level)")
        }
        let flags = try MQTTWire.readByte(&b)
        guard flags & 0x01 == 0 else { throw .malformed("CONNECT's reserved flag is set") }
        let hasWill = flags & 0x04 != 0
        let willQoSBits = (flags >> 3) & 0x03
        let willRetain = flags & 0x20 != 0
        let hasPassword = flags & 0x40 != 0
        let hasUsername = flags & 0x80 != 0
        guard let willQoS = QoS(rawValue: willQoSBits) else { throw .malformed("will QoS 3") }
        if !hasWill && (willQoSBits != 0 || willRetain) { throw .malformed("will QoS or retain without a will") }
        if version < .v5 && hasPassword && !hasUsername { throw .malformed("a password without a user name") }
        var connect = MQTTConnect(version: version, cleanStart: flags & 0x02 != 0, keepAliveSeconds: try MQTTWire.readUInt16(&b),
                                  clientID: "")
        if version == .v5 { connect.properties = try MQTTProperties.decode(from: &b, context: .packet(.connect)) }
        connect.clientID = try MQTTWire.readString(&b)
        if hasWill {
            let properties = version == .v5 ? try MQTTProperties.decode(from: &b, context: .will) : MQTTProperties()
            let topic = try MQTTWire.readString(&b)
            guard MQTTTopic.isValidName(topic) else { throw MQTTError(.topicNameInvalid, "will topic \"\(topic)\"") }
            let length = Int(try MQTTWire.readUInt16(&b))
            guard let payload = b.readSlice(length: length) else { throw .malformed("a will payload past the end") }
            connect.will = MQTTWill(topic: topic, payload: payload, qos: willQoS, retain: willRetain, properties: properties)
        }
        if hasUsername { connect.username = try MQTTWire.readString(&b) }
        if hasPassword { connect.password = try MQTTWire.readBinary(&b) }
        return connect
    }

    static func decodePublish(flags: UInt8, _ b: inout ByteBuffer, v5: Bool) throws(MQTTError) -> MQTTPublish {
        guard let qos = QoS(rawValue: (flags >> 1) & 0x03) else { throw .malformed("PUBLISH with QoS 3") }
        let duplicate = flags & 0x08 != 0
        if qos == .atMostOnce && duplicate { throw .malformed("a QoS 0 PUBLISH marked duplicate") }
        let topic = try MQTTWire.readString(&b)
        let packetID = qos == .atMostOnce ? nil : try nonzeroPacketID(&b, .publish)
        let properties = v5 ? try MQTTProperties.decode(from: &b, context: .packet(.publish)) : MQTTProperties()
        // An empty topic name is taken only with a topic alias (5.0), resolved by the session.
        if !(topic.isEmpty && properties.topicAlias != nil) {
            guard MQTTTopic.isValidName(topic) else { throw MQTTError(.topicNameInvalid, "topic name \"\(topic)\"") }
        }
        if !properties.subscriptionIdentifiers.isEmpty { throw .protocolError("a client's PUBLISH with a subscription identifier") }
        let payload = b.readSlice(length: b.readableBytes)!
        return MQTTPublish(topic: topic, qos: qos, retain: flags & 0x01 != 0, duplicate: duplicate, packetID: packetID,
                           properties: properties, payload: payload)
    }

    static func decodeAck(_ type: MQTTPacketType, _ b: inout ByteBuffer, v5: Bool) throws(MQTTError) -> MQTTAck {
        var ack = MQTTAck(packetID: try nonzeroPacketID(&b, type))
        if v5 && b.readableBytes > 0 {
            ack.reason = ReasonCode(rawValue: try MQTTWire.readByte(&b))
            if b.readableBytes > 0 { ack.properties = try MQTTProperties.decode(from: &b, context: .packet(type)) }
        }
        return ack
    }

    static func decodeSubscribe(_ b: inout ByteBuffer, v5: Bool) throws(MQTTError) -> MQTTSubscribe {
        let id = try nonzeroPacketID(&b, .subscribe)
        let properties = v5 ? try MQTTProperties.decode(from: &b, context: .packet(.subscribe)) : MQTTProperties()
        var filters: [(filter: String, options: SubscriptionOptions)] = []
        while b.readableBytes > 0 {
            guard filters.count < filtersPerPacketMax else { throw .malformed("more than \(filtersPerPacketMax) topic filters") }
            let filter = try MQTTWire.readString(&b)
            let byte = try MQTTWire.readByte(&b)
            guard byte & (v5 ? 0xC0 : 0xFC) == 0 else { throw .malformed("subscription options 0x\(String(byte, radix: 16))") }
            guard let qos = QoS(rawValue: byte & 0x03) else { throw .malformed("a subscription with QoS 3") }
            guard let handling = SubscriptionOptions.RetainHandling(rawValue: (byte >> 4) & 0x03) else {
                throw .protocolError("retain handling 3")
            }
            filters.append((filter, SubscriptionOptions(qos: qos, noLocal: byte & 0x04 != 0, retainAsPublished: byte & 0x08 != 0,
                                                        retainHandling: handling)))
        }
        guard !filters.isEmpty else { throw .protocolError("SUBSCRIBE without a topic filter") }
        return MQTTSubscribe(packetID: id, properties: properties, filters: filters)
    }
}

extension MQTTPacket {
    /// The whole packet: fixed header, remaining length, body. `version` decides the layout.
    public func encode(version: MQTTVersion) -> ByteBuffer {
        var body = ByteBuffer()
        let flags = encodeBody(to: &body, version: version)
        var out = ByteBuffer()
        out.reserveCapacity(body.readableBytes + 5)
        out.writeInteger(type.rawValue << 4 | flags)
        MQTTWire.writeVariableInt(body.readableBytes, to: &out)
        out.writeBuffer(&body)
        return out
    }

    /// Writes the body; returns the fixed header's flags.
    func encodeBody(to b: inout ByteBuffer, version: MQTTVersion) -> UInt8 {
        let v5 = version == .v5
        switch self {
        case .connect(let c):
            MQTTWire.writeString(c.version == .v3_1 ? "MQIsdp" : "MQTT", to: &b)
            b.writeInteger(c.version.rawValue)
            var flags: UInt8 = c.cleanStart ? 0x02 : 0
            if let will = c.will { flags |= 0x04 | will.qos.rawValue << 3 | (will.retain ? 0x20 : 0) }
            if c.password != nil { flags |= 0x40 }
            if c.username != nil { flags |= 0x80 }
            b.writeInteger(flags)
            b.writeInteger(c.keepAliveSeconds)
            if c.version == .v5 { c.properties.encode(to: &b) }
            MQTTWire.writeString(c.clientID, to: &b)
            if let will = c.will {
                if c.version == .v5 { will.properties.encode(to: &b) }
                MQTTWire.writeString(will.topic, to: &b)
                precondition(will.payload.readableBytes <= 65_535, "a will payload of \(will.payload.readableBytes) bytes")
                b.writeInteger(UInt16(will.payload.readableBytes))
                b.writeImmutableBuffer(will.payload)
            }
            if let username = c.username { MQTTWire.writeString(username, to: &b) }
            if let password = c.password { MQTTWire.writeBinary(password, to: &b) }
            return 0
        case .connack(let a):
            // 3.1 has no session-present flag (the byte is reserved).
            b.writeInteger(UInt8(a.sessionPresent && version != .v3_1 ? 1 : 0))
            b.writeInteger(v5 ? a.reason.rawValue : a.reason.connectReturnCode)
            if v5 { a.properties.encode(to: &b) }
            return 0
        case .publish(let p):
            MQTTWire.writeString(p.topic, to: &b)
            if p.qos != .atMostOnce {
                precondition(p.packetID != nil && p.packetID != 0, "a QoS \(p.qos.rawValue) PUBLISH without a packet identifier")
                b.writeInteger(p.packetID!)
            }
            if v5 { p.properties.encode(to: &b) }
            b.writeImmutableBuffer(p.payload)
            return (p.duplicate ? 0x08 : 0) | p.qos.rawValue << 1 | (p.retain ? 0x01 : 0)
        case .puback(let a), .pubrec(let a), .pubrel(let a), .pubcomp(let a):
            b.writeInteger(a.packetID)
            if v5 && (a.reason != .success || !a.properties.isEmpty) {
                b.writeInteger(a.reason.rawValue)
                if !a.properties.isEmpty { a.properties.encode(to: &b) }
            }
            return type == .pubrel ? 0x2 : 0
        case .subscribe(let s):
            b.writeInteger(s.packetID)
            if v5 { s.properties.encode(to: &b) }
            for (filter, o) in s.filters {
                MQTTWire.writeString(filter, to: &b)
                var byte = o.qos.rawValue
                if v5 {
                    byte |= (o.noLocal ? 0x04 : 0) | (o.retainAsPublished ? 0x08 : 0) | o.retainHandling.rawValue << 4
                }
                b.writeInteger(byte)
            }
            return 0x2
        case .suback(let a), .unsuback(let a):
            b.writeInteger(a.packetID)
            if v5 { a.properties.encode(to: &b) }
            // 3.1.1's UNSUBACK has no payload; its SUBACK knows only 0, 1, 2 and 0x80.
            if v5 || type == .suback {
                for reason in a.reasons { b.writeInteger(v5 || reason.rawValue <= 2 ? reason.rawValue : 0x80) }
            }
            return 0
        case .unsubscribe(let u):
            b.writeInteger(u.packetID)
            if v5 { u.properties.encode(to: &b) }
            for filter in u.filters { MQTTWire.writeString(filter, to: &b) }
            return 0x2
        case .pingreq, .pingresp:
            return 0
        case .disconnect(let r), .auth(let r):
            if v5 && (r.reason != .success || !r.properties.isEmpty) {
                b.writeInteger(r.reason.rawValue)
                if !r.properties.isEmpty { r.properties.encode(to: &b) }
            }
            return 0
        }
    }
}

/// Splits a byte stream into packets: the first byte, the remaining length (at most four bytes),
/// and the body, refused as soon as the length is known to pass `packetBytesMax`.
public struct MQTTFramer: Sendable {
    public var packetBytesMax: Int
    var buffer = ByteBuffer()

    public init(packetBytesMax: Int) {
        precondition(packetBytesMax >= 2 && packetBytesMax <= MQTTWire.variableIntMax + 5, "packetBytesMax \(packetBytesMax)")
        self.packetBytesMax = packetBytesMax
    }

    public mutating func append(_ bytes: inout ByteBuffer) {
        if buffer.readableBytes == 0 { buffer = bytes } else { buffer.writeBuffer(&bytes) }
    }

    /// Bytes held for a packet not yet whole.
    public var bufferedBytes: Int { buffer.readableBytes }

    /// The next whole packet's first byte and body, or nil until more bytes come.
    public mutating func next() throws(MQTTError) -> (first: UInt8, body: ByteBuffer)? {
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
        var length = 0
        var index = 1
        while true {
            guard index <= 4 else { throw .malformed("a remaining length longer than four bytes") }
            guard let byte = buffer.getInteger(at: buffer.readerIndex + index, as: UInt8.self) else { return nil }
            length |= Int(byte & 0x7F) << (7 * (index - 1))
            index += 1
            if byte & 0x80 == 0 { break }
        }
        guard index + length <= packetBytesMax else {
            throw MQTTError(.packetTooLarge, "a packet of \(index + length) bytes (the limit is \(packetBytesMax))")
        }
        guard buffer.readableBytes >= index + length else { return nil }
        buffer.moveReaderIndex(forwardBy: index)
        let body = buffer.readSlice(length: length)!
        // Nothing left: the storage (a whole socket read's) is let go, not kept by an idle client.
        if buffer.readableBytes == 0 { buffer = ByteBuffer() } else if buffer.readerIndex > 65_536 { buffer.discardReadBytes() }
        return (first, body)
    }
}
