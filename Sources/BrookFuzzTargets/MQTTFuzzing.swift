import BrookMQTT
import NIOCore

/// MQTT control packets as a connection reads them: `MQTTFramer` cuts the stream and
/// `MQTTPacket.decode` decodes each packet, the first as a CONNECT (no version known yet) and the
/// rest at the version that CONNECT names; a stream that does not open with a CONNECT is decoded
/// at every version, so that the server's packets (CONNACK, SUBACK, ...) are fuzzed too. A packet
/// that decodes must encode again and decode to the same packet.
enum MQTTFuzzing {
    /// More than any input, so that a declared length past it is refused before its body.
    static let packetBytesMax = 1 << 20
    static let versions: [MQTTVersion] = [.v3_1, .v3_1_1, .v5]

    static let target = FuzzTarget(
        name: "mqtt",
        input: "a byte stream of MQTT control packets (fixed header, remaining length, body), a CONNECT first"
    ) { bytes in
        var framer = MQTTFramer(packetBytesMax: packetBytesMax)
        var stream = ByteBuffer(bytes: bytes)
        framer.append(&stream)
        var connected: [MQTTVersion]?  // nil until the first packet
        while let (first, body) = try? framer.next() {
            if connected == nil {
                if case .connect(let connect)? = decode(first, body, version: nil) {
                    connected = [connect.version]
                    continue
                }
                connected = versions
            }
            for version in connected! { _ = decode(first, body, version: version) }
        }
    }

    /// The packet, checked to round-trip; nil when refused (any `MQTTError` is a refusal).
    static func decode(_ first: UInt8, _ body: ByteBuffer, version: MQTTVersion?) -> MQTTPacket? {
        guard let packet = try? MQTTPacket.decode(first: first, body: body, version: version) else { return nil }
        precondition(version != nil || packet.type == .connect, "an MQTT \(packet.type) decoded before CONNECT")
        let encodingVersion: MQTTVersion
        if case .connect(let connect) = packet { encodingVersion = connect.version } else { encodingVersion = version! }
        var bytes = packet.encode(version: encodingVersion)
        var framer = MQTTFramer(packetBytesMax: packetBytesMax)
        framer.append(&bytes)
        let again: MQTTPacket
        do {
            guard let (first, body) = try framer.next(), framer.bufferedBytes == 0 else {
                preconditionFailure("an MQTT \(packet.type)'s own bytes are not one packet")
            }
            again = try MQTTPacket.decode(first: first, body: body, version: packet.type == .connect ? nil : version)
        } catch {
            preconditionFailure("an MQTT \(packet.type) at \(encodingVersion) does not decode from its own bytes: \(error)")
        }
        precondition(again == packet, "an MQTT \(packet.type) at \(encodingVersion) does not round-trip: \(packet) became \(again)")
        return packet
    }

    /// Streams a client and a server of each version send, for `brook-fuzz seed`.
    static var seeds: [FuzzSeeds.Seed] {
        let payload = ByteBuffer(string: "21.5")
        let user: [(name: String, value: String)] = [("site", "north")]
        func stream(_ version: MQTTVersion, _ packets: [MQTTPacket]) -> [UInt8] {
            packets.flatMap { Array(buffer: $0.encode(version: version)) }
        }
        func client(_ version: MQTTVersion, _ properties: MQTTProperties) -> [MQTTPacket] {
            let will = MQTTWill(topic: "devices/d1/status", payload: ByteBuffer(string: "offline"), qos: .atLeastOnce, retain: true,
                                properties: version == .v5 ? withProperties { $0.willDelayInterval = 5 } : MQTTProperties())
            let subscribeProperties = version == .v5 ? withProperties { $0.subscriptionIdentifiers = [3] } : MQTTProperties()
            let noLocal = version == .v5
            return [
                .connect(MQTTConnect(version: version, cleanStart: false, keepAliveSeconds: 30, properties: properties, clientID: "d1",
                                     will: will, username: "user", password: Array("pencil".utf8))),
                .subscribe(MQTTSubscribe(packetID: 1, properties: subscribeProperties, filters: [
                    ("sensors/+/temperature", SubscriptionOptions(qos: .exactlyOnce, noLocal: noLocal)),
                    ("devices/#", SubscriptionOptions(qos: .atMostOnce)),
                ])),
                .publish(MQTTPublish(topic: "sensors/d1/temperature", payload: payload)),
                .publish(MQTTPublish(topic: "sensors/d1/temperature", qos: .atLeastOnce, packetID: 2, payload: payload)),
                .publish(MQTTPublish(topic: "sensors/d1/temperature", qos: .exactlyOnce, retain: true, packetID: 3, payload: payload)),
                .puback(MQTTAck(packetID: 7)), .pubrec(MQTTAck(packetID: 8)), .pubrel(MQTTAck(packetID: 3)), .pubcomp(MQTTAck(packetID: 8)),
                .unsubscribe(MQTTUnsubscribe(packetID: 4, filters: ["devices/#"])),
                .pingreq,
                .disconnect(MQTTReasoned()),
            ]
        }
        let connect5 = withProperties {
            $0.sessionExpiryInterval = 3600
            $0.receiveMaximum = 20
            $0.userProperties = user
        }
        let publish5 = MQTTPacket.publish(MQTTPublish(topic: "", qos: .atLeastOnce, packetID: 5, properties: withProperties {
            $0.topicAlias = 1
            $0.contentType = "text/plain"
            $0.responseTopic = "replies/d1"
            $0.correlationData = [1, 2]
            $0.userProperties = user
        }, payload: payload))
        let server: [MQTTPacket] = [
            .connack(MQTTConnAck(sessionPresent: true)),
            .suback(MQTTSubAck(packetID: 1, reasons: [.grantedQoS2, .success])),
            .unsuback(MQTTSubAck(packetID: 4, reasons: [])),
            .publish(MQTTPublish(topic: "devices/d2", qos: .atLeastOnce, packetID: 7, payload: payload)),
            .pingresp,
        ]
        let server5: [MQTTPacket] = [
            .connack(MQTTConnAck(reason: .success, properties: withProperties {
                $0.topicAliasMaximum = 10
                $0.assignedClientIdentifier = "auto-1"
                $0.maximumQoS = 1
            })),
            .suback(MQTTSubAck(packetID: 1, properties: withProperties { $0.reasonString = "partly" },
                               reasons: [.grantedQoS1, .topicFilterInvalid])),
            .unsuback(MQTTSubAck(packetID: 4, reasons: [.noSubscriptionExisted])),
            .puback(MQTTAck(packetID: 2, reason: .noMatchingSubscribers)),
            .disconnect(MQTTReasoned(reason: .sessionTakenOver, properties: withProperties { $0.reasonString = "another d1" })),
        ]
        let auth5: [MQTTPacket] = [
            .connect(MQTTConnect(version: .v5, properties: withProperties {
                $0.authenticationMethod = "SCRAM-SHA-256"
                $0.authenticationData = Array("n,,n=user,r=abc".utf8)
            }, clientID: "")),
            .auth(MQTTReasoned(reason: .continueAuthentication, properties: withProperties {
                $0.authenticationMethod = "SCRAM-SHA-256"
                $0.authenticationData = Array("c=biws,r=abcdef,p=xyz".utf8)
            })),
            .disconnect(MQTTReasoned(reason: .disconnectWithWill)),
        ]
        return [
            .init(target: "mqtt", name: "seed-client-3.1", bytes: stream(.v3_1, client(.v3_1, MQTTProperties()))),
            .init(target: "mqtt", name: "seed-client-3.1.1", bytes: stream(.v3_1_1, client(.v3_1_1, MQTTProperties()))),
            .init(target: "mqtt", name: "seed-client-5", bytes: stream(.v5, client(.v5, connect5) + [publish5])),
            .init(target: "mqtt", name: "seed-client-5-auth", bytes: stream(.v5, auth5)),
            .init(target: "mqtt", name: "seed-server-3.1.1", bytes: stream(.v3_1_1, server)),
            .init(target: "mqtt", name: "seed-server-5", bytes: stream(.v5, server5)),
        ]
    }

    static func withProperties(_ edit: (inout MQTTProperties) -> Void) -> MQTTProperties {
        var properties = MQTTProperties()
        edit(&properties)
        return properties
    }
}
