import BrookClient
import BrookCore
import BrookMQTT
import BrookRecords
import NIOCore

/// How an MQTT message is a Kafka record and back: the MQTT topic is the key, the payload the
/// value; the publish's QoS, retain flag, client and 5.0 properties are headers (user properties
/// under their own names, so a Kafka consumer reads them as they were sent). A Kafka producer's
/// record reaches MQTT subscribers with its headers as user properties.
enum MQTTRecords {
    static let qos = "mqtt.qos"
    static let clientID = "mqtt.client.id"
    static let retain = "mqtt.retain"
    static let contentType = "content-type"
    static let payloadFormat = "mqtt.payload.format"
    static let responseTopic = "mqtt.response.topic"
    static let correlationData = "mqtt.correlation.data"
    static let messageExpiry = "mqtt.message.expiry"

    static func record(_ publish: MQTTPublish, clientID: String, nowMs: Int64) -> SimpleRecord {
        var headers = [header(qos, String(publish.qos.rawValue)), header(Self.clientID, clientID)]
        if publish.retain { headers.append(header(retain, "1")) }
        let p = publish.properties
        if let v = p.contentType { headers.append(header(contentType, v)) }
        if let v = p.payloadFormatIndicator, v == 1 { headers.append(header(payloadFormat, "1")) }
        if let v = p.responseTopic { headers.append(header(responseTopic, v)) }
        if let v = p.correlationData { headers.append(SimpleRecord.Header(key: Array(correlationData.utf8), value: v)) }
        if let v = p.messageExpiryInterval { headers.append(header(messageExpiry, String(v))) }
        for (name, value) in p.userProperties { headers.append(header(name, value)) }
        return SimpleRecord(key: Array(publish.topic.utf8), value: Array(buffer: publish.payload), headers: headers,
                            timestamp: Timestamp(ms: nowMs))
    }

    static func header(_ key: String, _ value: String) -> SimpleRecord.Header {
        SimpleRecord.Header(key: Array(key.utf8), value: Array(value.utf8))
    }

    /// The message a record holds, or nil when it is none (no key, a key that is not an MQTT
    /// topic name, a tombstone, or a message whose expiry passed).
    static func message(_ record: ConsumedRecord, nowMs: Int64) -> MQTTSession.Message? {
        guard let key = record.key, !key.contains(0), let topic = String(validating: key, as: UTF8.self), MQTTTopic.isValidName(topic),
              let value = record.value else { return nil }
        var qos = QoS.exactlyOnce
        var retained = false
        var publisher: String?
        var properties = MQTTProperties()
        for h in record.headers {
            guard let name = String(validating: h.key, as: UTF8.self), let raw = h.value else { continue }
            if name == correlationData {
                if raw.count <= 65_535 { properties.correlationData = raw }
                continue
            }
            // MQTT strings hold no U+0000 and at most 65,535 bytes.
            guard !raw.contains(0), !h.key.contains(0), raw.count <= 65_535, h.key.count <= 65_535,
                  let text = String(validating: raw, as: UTF8.self) else { continue }
            switch name {
            case Self.qos: qos = UInt8(text).flatMap(QoS.init(rawValue:)) ?? .exactlyOnce
            case Self.clientID: publisher = text
            case retain: retained = text == "1"
            case contentType: properties.contentType = text
            case payloadFormat: properties.payloadFormatIndicator = text == "1" ? 1 : nil
            case responseTopic: if MQTTTopic.isValidName(text) { properties.responseTopic = text }
            case messageExpiry:
                guard let seconds = UInt32(text) else { continue }
                // Any timestamp a producer gave: the difference must not overflow.
                let age = nowMs.subtractingReportingOverflow(record.timestamp.ms)
                let ageSeconds = age.overflow ? (record.timestamp.ms < 0 ? Int64.max : 0) : max(0, age.partialValue / 1000)
                guard ageSeconds < Int64(seconds) else { return nil }
                properties.messageExpiryInterval = seconds - UInt32(ageSeconds)
            default:
                if properties.userProperties.count < 1024 { properties.userProperties.append((name, text)) }
            }
        }
        return MQTTSession.Message(topic: topic, payload: ByteBuffer(bytes: value), qos: qos, retain: retained, publisher: publisher,
                                   properties: properties)
    }
}
