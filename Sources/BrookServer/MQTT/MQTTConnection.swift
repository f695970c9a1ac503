import BrookBroker
import BrookCluster
import BrookCore
import BrookMQTT
import BrookRecords
import BrookSecurity
import Logging
import NIOCore
import NIOPosix

/// One MQTT client connection: CONNECT, then publishes written to Kafka (those read together
/// in one batch per partition, acknowledged in the order they came once written as acks=all
/// writes are), subscriptions, deliveries from its session's queue within the client's window,
/// keep-alive, and the will when the connection ends without a DISCONNECT.
final class MQTTConnection: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A write of the publishes read together, and what to answer once it is done.
    final class Write {
        var acks: [Ack] = []
        var retained: [MQTTPublish] = []
        /// QoS 2 messages, written with the session's producer.
        var exactlyOnce: [MQTTGateway.ExactlyOnceMessage] = []
        /// A QoS 2 message sent again after a restore took a sequence already written: the
        /// session is saved before it is answered.
        var claimed = false
        var done = false
        var failure: (any Error)?
    }

    enum Ack {
        case puback(UInt16, ReasonCode)
        case pubrec(UInt16, ReasonCode, written: Bool)
    }

    /// `joining`: a CONNECT waits for the sessions other nodes wrote (a cluster's); packets
    /// after it wait in the framer, and the connection does not read.
    /// `authenticating`: a CONNECT's enhanced authentication (AUTH packets) is under way.
    enum Phase { case awaitingConnect, authenticating, joining, connected, closed }

    /// An enhanced authentication (MQTT 5.0, 4.12) under way: at CONNECT (`connect` the CONNECT
    /// it answers) or a re-authentication of a connected client.
    struct Authenticating {
        var exchange: ScramServerExchange
        var method: String
        var connect: (packet: MQTTConnect, assigned: Bool)?
    }

    var authenticating: Authenticating?
    /// The method a CONNECT's enhanced authentication used, and the server's last data for CONNACK.
    var authenticated: (method: String, data: [UInt8])?

    /// Writes in flight before the connection stops reading.
    static let writesInFlightMax = 16
    /// Records gathered before they are written without waiting for the read to end.
    static let recordsPerWriteMax = 2000
    /// Messages sent in one go before the loop takes other work.
    static let deliveriesPerTurnMax = 512

    let gateway: MQTTGateway
    var logger: Logger
    let id: UInt64
    var framer: MQTTFramer
    var phase = Phase.awaitingConnect
    var version = MQTTVersion.v3_1_1
    var scope: ConnectionScope?
    var box: MQTTSessionBox?
    var clientID = ""
    var will: MQTTWill?
    var sessionExpirySeconds: UInt32 = 0
    var keepAliveSeconds: UInt16 = 0
    var lastPacket = NIODeadline.uptimeNanoseconds(0)
    var keepAliveCheck: Scheduled<Void>?
    var connectTimeout: Scheduled<Void>?
    var aliases: [UInt16: String] = [:]
    var clientPacketBytesMax = Int.max
    var pendingRecords: [(topic: String, record: SimpleRecord)] = []
    var pending = Write()
    var writes = CircularBuffer<Write>(initialCapacity: 2)
    /// QoS 1 and 2 publishes read and not yet acknowledged (PUBACK, PUBCOMP).
    var inboundUnacknowledged = 0
    /// QoS 2 packet ids whose write is under way: a repeat waits for it. An id awaits its PUBREL
    /// (the session's `awaitingRelease`) only once its message is written.
    var writingExactlyOnce: Set<UInt16> = []
    /// The sequences of the last write with QoS 2 messages given: the next one's come after.
    var sequencing: EventLoopFuture<Void>?
    /// The session was restored with QoS 2 messages written that no record names: resends
    /// (duplicates) may take them until the client sends something new.
    var claiming = false
    var readHeld = false
    var redrain = false
    var context: ChannelHandlerContext?

    /// On a TLS listener: how a client certificate's subject names the principal.
    let certificateMapper: SslPrincipalMapper?

    init(gateway: MQTTGateway, logger: Logger, certificateMapper: SslPrincipalMapper? = nil) {
        self.gateway = gateway
        self.logger = logger
        self.certificateMapper = certificateMapper
        id = gateway.makeConnectionID()
        framer = MQTTFramer(packetBytesMax: gateway.settings.packetBytesMax)
    }

    var v5: Bool { version == .v5 }
    /// The session outlives the connection (and is kept in the sessions topic).
    var persistent: Bool { sessionExpirySeconds > 0 }

    /// Who the client is for the broker's ACLs: `User:NAME` once its CONNECT's user name and
    /// password are checked, `User:ANONYMOUS` without them; and its address.
    var principal = "User:ANONYMOUS"
    var host = "?"

    /// Whether the client's principal may do `operation` on a Kafka resource (always, without an
    /// authorizer).
    func allows(_ operation: AclOperation, _ type: AclResourceType, _ name: String) -> Bool {
        guard gateway.broker.config.security.authorizer != nil else { return true }
        return gateway.broker.authorization(principal: principal, host: host).allows(operation, type, name)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        logger[metadataKey: "peer"] = "\(context.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?")"
        // The client's ACLs are checked here (`allows`); its writes go as the broker's.
        scope = ConnectionScope(eventLoop: context.eventLoop, isBroker: true)
        host = context.remoteAddress?.ipAddress ?? "?"
        lastPacket = context.eventLoop.now
        gateway.stats.connectionsOpen.add(1)
        gateway.stats.connectionsCreated.add(1)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        connectTimeout = context.eventLoop.scheduleTask(in: .milliseconds(gateway.settings.connectTimeoutMs)) {
            guard handler.value.phase == .awaitingConnect else { return }
            handler.value.logger.info("MQTT connection closed: no CONNECT within \(handler.value.gateway.settings.connectTimeoutMs) ms")
            handler.value.close()
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        ended()
        context.fireChannelInactive()
    }

    // MARK: reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard phase != .closed else { return }
        var bytes = unwrapInboundIn(data)
        lastPacket = context.eventLoop.now
        framer.append(&bytes)
        handleFramed(context: context)
    }

    /// Handles the packets the framer holds (until a CONNECT has to wait).
    func handleFramed(context: ChannelHandlerContext) {
        do {
            while phase != .closed && phase != .joining, let (first, body) = try framer.next() {
                let packet = try MQTTPacket.decode(first: first, body: body, version: phase == .awaitingConnect ? nil : version)
                try handle(packet, context: context)
                if pendingRecords.count >= Self.recordsPerWriteMax { flushWrites() }
            }
        } catch {
            refuse(error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushWrites()
        context.flush()
    }

    func read(context: ChannelHandlerContext) {
        guard phase != .joining, writes.count < Self.writesInFlightMax, context.channel.isWritable else {
            readHeld = true
            return
        }
        context.read()
    }

    func resumeReading() {
        guard readHeld, let context, writes.count < Self.writesInFlightMax, context.channel.isWritable else { return }
        readHeld = false
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            resumeReading()
            drainDeliveries()
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("MQTT connection error: \(error)")
        close()
    }

    func handle(_ packet: MQTTPacket, context: ChannelHandlerContext) throws(MQTTError) {
        if case .connect(let connect) = packet { return try self.connect(connect, context: context) }
        // During a re-authentication other packets go on as usual.
        if phase == .authenticating || (phase == .connected && packetIsAuth(packet)) {
            return try authenticate(packet, context: context)
        }
        guard phase == .connected, let box else { throw .protocolError("\(packet.type) before CONNECT") }
        guard box.state.withLockedValue({ $0.connection?.id == id }) else {
            // Taken over by a new connection (its DISCONNECT is on the way): nothing more here.
            return takenOver()
        }
        switch packet {
        case .publish(let publish): try self.publish(publish)
        case .puback(let ack):
            _ = box.state.withLockedValue { $0.session.receivedPuback(ack.packetID) }
            drainDeliveries()
        case .pubrec(let ack):
            if let answer = box.state.withLockedValue({ $0.session.receivedPubrec(ack.packetID, reason: ack.reason) }) { send(answer) }
            drainDeliveries()
        case .pubcomp(let ack):
            _ = box.state.withLockedValue { $0.session.receivedPubcomp(ack.packetID) }
            drainDeliveries()
        case .pubrel(let ack):
            let known = box.state.withLockedValue { $0.session.receivedPubrel(ack.packetID) }
            let answer = MQTTPacket.pubcomp(MQTTAck(packetID: ack.packetID, reason: known ? .success : .packetIdentifierNotFound))
            guard known else { return send(answer) }
            inboundUnacknowledged = max(0, inboundUnacknowledged - 1)
            // The release is kept before it is answered: a restart must not take a later message
            // with this id for a repeat.
            afterSaving(box) { $0.send(answer) }
        case .subscribe(let subscribe): try subscribeTo(subscribe, box: box)
        case .unsubscribe(let unsubscribe):
            let reasons = box.state.withLockedValue { s in
                unsubscribe.filters.map { s.session.unsubscribe($0) ? ReasonCode.success : .noSubscriptionExisted }
            }
            for filter in unsubscribe.filters where filter.hasPrefix("$share/") { gateway.leaveShare(filter, clientID: clientID) }
            let answer = MQTTPacket.unsuback(MQTTSubAck(packetID: unsubscribe.packetID, reasons: reasons))
            afterSaving(box) { $0.send(answer) }
        case .pingreq: send(.pingresp)
        case .disconnect(let disconnect):
            if v5, let expiry = disconnect.properties.sessionExpiryInterval {
                guard sessionExpirySeconds != 0 || expiry == 0 else { throw .protocolError("a session expiry set at DISCONNECT after none at CONNECT") }
                sessionExpirySeconds = expiry
            }
            if disconnect.reason != .disconnectWithWill { will = nil }
            flushWrites()
            close()
        case .auth: throw MQTTError(.protocolError, "AUTH on a connection without enhanced authentication")
        case .connect, .connack, .suback, .unsuback, .pingresp:
            throw .protocolError("\(packet.type) is sent by servers, not clients")
        }
    }

    // MARK: CONNECT

    func connect(_ connect: MQTTConnect, context: ChannelHandlerContext) throws(MQTTError) {
        guard phase == .awaitingConnect else { throw .protocolError("a second CONNECT") }
        connectTimeout?.cancel()
        version = connect.version
        var clientID = connect.clientID
        var assigned = false
        if clientID.isEmpty {
            guard connect.cleanStart || v5 else {
                return refuseConnect(.clientIdentifierNotValid, "an empty client id needs a clean session")
            }
            clientID = "brook-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
            assigned = true
        }
        self.clientID = clientID
        logger[metadataKey: "client"] = "\(clientID)"
        if let method = connect.properties.authenticationMethod {
            guard let exchange = gateway.authenticationExchange(method) else {
                return refuseConnect(.badAuthenticationMethod, "enhanced authentication (\(method)) is not served (mqtt.authentication.methods)")
            }
            phase = .authenticating
            authenticating = Authenticating(exchange: exchange, method: method, connect: (connect, assigned))
            scheduleAuthenticationTimeout(context)
            return authenticationStep(connect.properties.authenticationData ?? [], context: context)
        }
        // A client certificate names the principal (a user name, checked, takes its place).
        var certified = false
        if let mapper = certificateMapper {
            switch ConnectionHandler.certificateName(context, mapper: mapper) {
            case .none: break
            case .named(let name):
                principal = "User:" + name
                certified = true
            case .refused(let reason): return refuseConnect(.notAuthorized, "client certificate: \(reason)")
            }
        }
        guard let user = connect.username else {
            guard gateway.settings.allowAnonymous || certified else {
                return refuseConnect(.notAuthorized, "a CONNECT without a user name (mqtt.allow.anonymous is false)")
            }
            return proceed(connect, assigned: assigned, context: context)
        }
        let password = connect.password ?? []
        guard gateway.checkLoginIsSlow(user: user) else {
            return loggedIn(gateway.checkLogin(user: user, password: password), user: user, connect, assigned: assigned, context: context)
        }
        // A SCRAM user's password is salted thousands of times: on a thread of its own, not on
        // the event loop the connection shares with others.
        join(context) { loop in
            NIOThreadPool.singleton.runIfActive(eventLoop: loop) { [gateway] in gateway.checkLogin(user: user, password: password) }
        } then: { connection, result, context in
            connection.loggedIn((try? result.get()) ?? false, user: user, connect, assigned: assigned, context: context)
        }
    }

    /// Goes on with a CONNECT once its user name and password are checked.
    func loggedIn(_ valid: Bool, user: String, _ connect: MQTTConnect, assigned: Bool, context: ChannelHandlerContext) {
        guard valid else { return refuseConnect(.badUserNameOrPassword, "user \(user): bad user name or password") }
        logger[metadataKey: "user"] = "\(user)"
        principal = "User:" + user
        proceed(connect, assigned: assigned, context: context)
    }

    /// The rest of a CONNECT whose client is known: its will's ACL, its session.
    func proceed(_ connect: MQTTConnect, assigned: Bool, context: ChannelHandlerContext) {
        if let will = connect.will, let topic = gateway.mapping.kafkaTopic(for: will.topic), !allows(.write, .topic, topic) {
            return refuseConnect(.notAuthorized, "\(principal) may not write its will to Kafka topic \(topic) (\(will.topic))")
        }
        sessionExpirySeconds = v5 ? connect.properties.sessionExpiryInterval ?? 0 : (connect.cleanStart ? 0 : UInt32.max)
        clientPacketBytesMax = connect.properties.maximumPacketSize.map(Int.init) ?? Int.max
        guard !connect.cleanStart, gateway.peers != nil else { return attach(connect, assigned: assigned, context: context) }
        // In a cluster, the session may be another node's: what the nodes wrote of it is read
        // first, so that a client moving from one node to the next finds it.
        let clientID = self.clientID
        join(context) { [gateway] _ in gateway.catchUpSessions(of: clientID) } then: { connection, _, context in
            connection.attach(connect, assigned: assigned, context: context)
        }
    }

    /// Waits for `work` before the CONNECT goes on (`then`, on the connection's loop): meanwhile
    /// the connection is `joining`, reads nothing, and keeps what it read in the framer, which
    /// is handled after.
    func join<T: Sendable>(_ context: ChannelHandlerContext, _ work: (any EventLoop) -> EventLoopFuture<T>,
                           then: @escaping (MQTTConnection, Result<T, any Error>, ChannelHandlerContext) -> Void) {
        phase = .joining
        work(context.eventLoop).hop(to: context.eventLoop).assumeIsolated().whenComplete { result in
            let connection = self
            guard connection.phase == .joining, let context = connection.context else { return }
            connection.phase = .awaitingConnect
            then(connection, result, context)
            connection.handleFramed(context: context)
            connection.flushWrites()
            context.flush()
            connection.resumeReading()
        }
    }

    // MARK: enhanced authentication

    func packetIsAuth(_ packet: MQTTPacket) -> Bool {
        if case .auth = packet { return true }
        return false
    }

    /// An AUTH (or anything else) while an enhanced authentication is under way, or a connected
    /// client's AUTH starting a re-authentication (with its CONNECT's method only).
    func authenticate(_ packet: MQTTPacket, context: ChannelHandlerContext) throws(MQTTError) {
        guard case .auth(let auth) = packet else {
            if case .disconnect = packet { return close() }
            throw .protocolError("\(packet.type) during enhanced authentication")
        }
        if authenticating == nil {
            guard auth.reason == .reauthenticate, let used = authenticated, auth.properties.authenticationMethod == used.method,
                  let exchange = gateway.authenticationExchange(used.method) else {
                throw .protocolError("an AUTH that is not a re-authentication with the CONNECT's method")
            }
            authenticating = Authenticating(exchange: exchange, method: used.method, connect: nil)
        } else {
            guard auth.reason == .continueAuthentication, auth.properties.authenticationMethod == authenticating?.method else {
                throw .protocolError("an AUTH that does not continue the authentication under way")
            }
        }
        authenticationStep(auth.properties.authenticationData ?? [], context: context)
    }

    /// The next step of the exchange with the client's `data`: a challenge (AUTH 0x18), or its end.
    func authenticationStep(_ data: [UInt8], context: ChannelHandlerContext) {
        guard var state = authenticating else { return }
        let step = gateway.authenticationStep(&state.exchange, data)
        authenticating = state
        var properties = MQTTProperties()
        properties.authenticationMethod = state.method
        switch step {
        case .challenge(let bytes):
            properties.authenticationData = bytes
            send(.auth(MQTTReasoned(reason: .continueAuthentication, properties: properties)))
        case .failed(let reason):
            authenticating = nil
            guard state.connect != nil else { return refuse(MQTTError(.notAuthorized, "re-authentication failed: \(reason)")) }
            refuseConnect(.notAuthorized, "enhanced authentication (\(state.method)) failed: \(reason)")
        case .authenticated(let user, let serverFinal):
            authenticating = nil
            guard let (connect, assigned) = state.connect else {
                // A re-authentication: the same user, or the connection ends.
                guard "User:" + user == principal else {
                    return refuse(MQTTError(.notAuthorized, "re-authenticated as User:\(user), not \(principal)"))
                }
                properties.authenticationData = serverFinal
                return send(.auth(MQTTReasoned(reason: .success, properties: properties)))
            }
            authenticated = (state.method, serverFinal)
            phase = .awaitingConnect
            logger[metadataKey: "user"] = "\(user)"
            principal = "User:" + user
            proceed(connect, assigned: assigned, context: context)
        }
    }

    /// An enhanced authentication at CONNECT has `mqtt.connect.timeout.ms` to end.
    func scheduleAuthenticationTimeout(_ context: ChannelHandlerContext) {
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        connectTimeout = context.eventLoop.scheduleTask(in: .milliseconds(gateway.settings.connectTimeoutMs)) {
            let connection = handler.value
            guard connection.phase == .authenticating else { return }
            connection.refuseConnect(.notAuthorized, "the enhanced authentication did not end within \(connection.gateway.settings.connectTimeoutMs) ms")
        }
    }

    /// The CONNECT's session attached (taken over from another connection, or new), and answered.
    func attach(_ connect: MQTTConnect, assigned: Bool, context: ChannelHandlerContext) {
        let settings = gateway.settings
        let receiveMaximum = Int(connect.properties.receiveMaximum ?? UInt16(min(settings.inflightMessagesMax, 65_535)))
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loop = context.eventLoop
        let ref = MQTTConnectionRef(id: id, wake: { loop.execute { handler.value.drainDeliveries() } },
                                    end: { reason in loop.execute { handler.value.takenOver(reason) } })
        switch gateway.attach(clientID: clientID, cleanStart: connect.cleanStart, receiveMaximum: receiveMaximum,
                             persistent: persistent, connection: ref) {
        case .refused(let reason, let message):
            return refuseConnect(reason, message)
        case .attached(let box, let sessionPresent, let previous):
            previous?.end(.sessionTakenOver)
            self.box = box
            if box.state.withLockedValue({ $0.session.exactlyOnce.unreconciled != nil }), let scope {
                // Restored: its QoS 2 writes are held against the partitions before it is served.
                let clientID = self.clientID
                join(context) { [gateway] _ in gateway.reconcile(box, scope: scope) } then: { connection, result, context in
                    if case .failure(let error) = result {
                        connection.gateway.detach(box, connectionID: connection.id, expirySeconds: connection.sessionExpirySeconds)
                        return connection.refuseConnect(.serverUnavailable, "the session of \(clientID) cannot be restored yet: \(error)")
                    }
                    connection.attached(connect, assigned: assigned, box: box, sessionPresent: sessionPresent)
                }
                return
            }
            attached(connect, assigned: assigned, box: box, sessionPresent: sessionPresent)
        }
    }

    /// The CONNECT's session is ready: the connection is, and answers CONNACK.
    func attached(_ connect: MQTTConnect, assigned: Bool, box: MQTTSessionBox, sessionPresent: Bool) {
        let settings = gateway.settings
        claiming = box.state.withLockedValue { !$0.session.exactlyOnce.unclaimed.isEmpty }
        phase = .connected
        will = connect.will
        keepAliveSeconds = connect.keepAliveSeconds
        var properties = MQTTProperties()
        if v5 {
            properties.receiveMaximum = UInt16(min(settings.inflightMessagesMax, 65_535))
            properties.maximumPacketSize = UInt32(settings.packetBytesMax)
            properties.topicAliasMaximum = UInt16(min(settings.topicAliasMax, 65_535))
            if assigned { properties.assignedClientIdentifier = clientID }
            if let authenticated {
                properties.authenticationMethod = authenticated.method
                properties.authenticationData = authenticated.data
            }
            if sessionExpirySeconds > settings.sessionExpiryMaxSeconds {
                sessionExpirySeconds = settings.sessionExpiryMaxSeconds
                properties.sessionExpiryInterval = sessionExpirySeconds
            }
        }
        send(.connack(MQTTConnAck(sessionPresent: sessionPresent, properties: properties)))
        logger.debug("MQTT \(version) client connected (clean start \(connect.cleanStart), session present \(sessionPresent))")
        scheduleKeepAliveCheck()
        if persistent {
            gateway.saveSession(box, expirySeconds: sessionExpirySeconds).whenFailure { [logger] error in
                logger.warning("MQTT session not saved at CONNECT: \(error)")
            }
        }
        for packet in box.state.withLockedValue({ $0.session.resend() }) { send(packet) }
        drainDeliveries()
    }

    /// A reason string of at most 512 bytes (a message may quote a client's 64 KiB topic, and an
    /// MQTT string holds 65,535 bytes at most).
    static func reasonString(_ message: String) -> String {
        String(decoding: message.utf8.prefix(512), as: UTF8.self)
    }

    func refuseConnect(_ reason: ReasonCode, _ message: String) {
        logger.info("MQTT CONNECT refused: \(message)")
        var properties = MQTTProperties()
        if v5 { properties.reasonString = Self.reasonString(message) }
        send(.connack(MQTTConnAck(reason: reason, properties: properties)))
        close()
    }

    /// Keep-alive: a client silent for one and a half times its keep-alive is gone (its will goes).
    func scheduleKeepAliveCheck() {
        guard keepAliveSeconds > 0, let context else { return }
        let limit = TimeAmount.milliseconds(Int64(keepAliveSeconds) * 1500)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        keepAliveCheck = context.eventLoop.scheduleTask(deadline: lastPacket + limit) {
            let connection = handler.value
            guard connection.phase == .connected, let context = connection.context else { return }
            if context.eventLoop.now - connection.lastPacket >= limit {
                connection.refuse(MQTTError(.keepAliveTimeout, "nothing from the client in 1.5 times its keep-alive of \(connection.keepAliveSeconds) s"))
            } else {
                connection.scheduleKeepAliveCheck()
            }
        }
    }

    // MARK: PUBLISH

    func publish(_ received: MQTTPublish) throws(MQTTError) {
        var publish = received
        gateway.stats.messagesIn[Int(publish.qos.rawValue)].add(1)
        if let alias = publish.properties.topicAlias {
            guard alias <= gateway.settings.topicAliasMax else { throw MQTTError(.topicAliasInvalid, "topic alias \(alias) over the maximum \(gateway.settings.topicAliasMax)") }
            if publish.topic.isEmpty {
                guard let topic = aliases[alias] else { throw .protocolError("topic alias \(alias) used before it was set") }
                publish.topic = topic
            } else {
                aliases[alias] = publish.topic
            }
            publish.properties.topicAlias = nil
        }
        if publish.qos != .atMostOnce {
            if publish.qos == .exactlyOnce, let box, let id = publish.packetID,
               writingExactlyOnce.contains(id) || box.state.withLockedValue({ s in
                   // (Or still being written by an earlier connection of the session.)
                   s.session.awaitingRelease.contains(id) || s.session.exactlyOnce.writing[id] != nil
               }) {
                // A repeat of a message written (or being written) and awaiting its PUBREL:
                // answered again after that write, not written twice.
                pending.acks.append(.pubrec(id, .success, written: false))
                return
            }
            inboundUnacknowledged += 1
            if inboundUnacknowledged > gateway.settings.inflightMessagesMax {
                throw MQTTError(.receiveMaximumExceeded, "more than \(gateway.settings.inflightMessagesMax) unacknowledged publishes")
            }
            if claiming, let box {
                if publish.duplicate, publish.qos == .exactlyOnce, let id = publish.packetID,
                   let topic = gateway.mapping.kafkaTopic(for: publish.topic),
                   let target = gateway.knownTarget(topic, key: Array(publish.topic.utf8)),
                   box.state.withLockedValue({ s in s.session.exactlyOnce.claim(target) && s.session.receivedExactlyOnce(id) }) {
                    // Written before the restart (or move) without a record naming it: answered, not written again.
                    pending.claimed = true
                    pending.acks.append(.pubrec(id, .success, written: false))
                    return
                }
                if !publish.duplicate {
                    claiming = false
                    box.state.withLockedValue { $0.session.exactlyOnce.forgetUnclaimed() }
                }
            }
        }
        guard let topic = gateway.mapping.kafkaTopic(for: publish.topic) else {
            guard v5 || publish.qos == .atMostOnce else { throw MQTTError(.notAuthorized, "no Kafka topic maps \(publish.topic)") }
            acknowledge(publish, reason: .notAuthorized)
            return
        }
        guard allows(.write, .topic, topic) else {
            let refusal = "\(principal) may not write to Kafka topic \(topic) (\(publish.topic))"
            guard v5 || publish.qos == .atMostOnce else { throw MQTTError(.notAuthorized, refusal) }
            MQTTGateway.warnings.warn(logger, "MQTT publish refused: \(refusal)")
            acknowledge(publish, reason: .notAuthorized)
            return
        }
        let now = gateway.broker.clock.now().ms
        let record = MQTTRecords.record(publish, clientID: clientID, nowMs: now)
        if publish.qos == .exactlyOnce, let id = publish.packetID {
            writingExactlyOnce.insert(id)
            pending.exactlyOnce.append(.init(packetID: id, topic: topic, record: record))
        } else {
            pendingRecords.append((topic, record))
        }
        if publish.retain {
            pendingRecords.append(gateway.retainedRecord(publish, clientID: clientID, nowMs: now))
            pending.retained.append(publish)
        }
        acknowledge(publish, reason: .success)
    }

    /// Notes the answer `publish` gets once the write it is part of is done.
    func acknowledge(_ publish: MQTTPublish, reason: ReasonCode) {
        guard let id = publish.packetID else { return }
        pending.acks.append(publish.qos == .atLeastOnce ? .puback(id, reason) : .pubrec(id, reason, written: reason == .success))
    }

    /// Writes the publishes read so far as one produce; their answers wait for it (and for the
    /// writes before it).
    func flushWrites() {
        guard !pending.acks.isEmpty || !pendingRecords.isEmpty, let scope, phase != .closed else { return }
        let write = pending
        let records = pendingRecords
        pending = Write()
        pendingRecords = []
        writes.append(write)
        guard !records.isEmpty || !write.exactlyOnce.isEmpty || write.claimed else {
            write.done = true
            return answerWrites()
        }
        let written: EventLoopFuture<Void>
        if let box, !write.exactlyOnce.isEmpty || write.claimed {
            written = writeExactlyOnce(write, records, box: box, scope: scope)
        } else {
            written = gateway.produce(records, scope: scope)
        }
        written.assumeIsolated().whenComplete { result in
            write.done = true
            if case .failure(let error) = result { write.failure = error }
            if !write.exactlyOnce.isEmpty, let box = self.box {
                let ok = write.failure == nil
                box.state.withLockedValue { s in
                    for message in write.exactlyOnce { s.session.exactlyOnce.finished(message.packetID, written: ok) }
                }
            }
            self.answerWrites()
        }
    }

    /// A write with QoS 2 messages: their sequences given after the previous such write's, then
    /// the records written and (for a session kept in the sessions topic) the session saved
    /// with the messages under way, both before the PUBRECs: after a restart the record and the
    /// partitions' last sequences tell which were written.
    func writeExactlyOnce(_ write: Write, _ records: [(topic: String, record: SimpleRecord)], box: MQTTSessionBox,
                          scope: ConnectionScope) -> EventLoopFuture<Void> {
        let gateway = self.gateway
        let loop = scope.eventLoop
        let messages = write.exactlyOnce
        let after = sequencing ?? loop.makeSucceededVoidFuture()
        let sequenced = after.flatMap {
            messages.isEmpty ? loop.makeSucceededFuture([]) : gateway.sequence(messages, of: box, scope: scope)
        }
        sequencing = sequenced.map { _ in }.recover { _ in }
        let saves = gateway.keepsRecord(of: box, persistent: persistent)
        let expiry = sessionExpirySeconds
        return sequenced.flatMap { outgoing in
            let data = gateway.produce(records, sequenced: outgoing, scope: scope)
            guard saves else { return data }
            return data.and(gateway.saveSession(box, expirySeconds: expiry, on: loop)).map { _ in }
        }
    }

    /// Answers the writes that are done, in order.
    func answerWrites() {
        while let first = writes.first, first.done {
            writes.removeFirst()
            if let failure = first.failure {
                logger.warning("MQTT publishes not written: \(failure)")
                guard v5 else { return refuse(MQTTError(.unspecifiedError, "publishes not written: \(failure)")) }
            } else {
                for publish in first.retained { gateway.setRetained(publish, clientID: clientID) }
            }
            for ack in first.acks {
                switch ack {
                case .puback(let id, let reason):
                    inboundUnacknowledged = max(0, inboundUnacknowledged - 1)
                    send(.puback(MQTTAck(packetID: id, reason: first.failure == nil ? reason : .unspecifiedError)))
                case .pubrec(let id, let reason, let written):
                    var outcome = reason
                    if written {
                        writingExactlyOnce.remove(id)
                        if first.failure != nil { outcome = .unspecifiedError }
                        if !outcome.isError { _ = box?.state.withLockedValue { $0.session.receivedExactlyOnce(id) } }
                    } else if !outcome.isError && box?.state.withLockedValue({ $0.session.awaitingRelease.contains(id) }) != true {
                        // A repeat of a message whose write failed: nothing awaits a PUBREL.
                        outcome = .unspecifiedError
                    }
                    // An error ends the exchange: the client may send the message again as new.
                    if outcome.isError && written { inboundUnacknowledged = max(0, inboundUnacknowledged - 1) }
                    send(.pubrec(MQTTAck(packetID: id, reason: outcome)))
                }
            }
        }
        context?.flush()
        resumeReading()
    }

    // MARK: SUBSCRIBE

    func subscribeTo(_ subscribe: MQTTSubscribe, box: MQTTSessionBox) throws(MQTTError) {
        var reasons: [ReasonCode] = []
        var retained: [MQTTPublish] = []
        let identifier = subscribe.properties.subscriptionIdentifiers.first
        // Retained messages sent at most as many as the queue has room for (one SUBSCRIBE of
        // many "#" must not copy every retained message many times).
        var room = box.state.withLockedValue { max(0, $0.session.queuedMessagesMax - $0.session.queuedCount) }
        var seen: Set<String> = []
        for (filter, options) in subscribe.filters {
            guard MQTTTopic.isValidFilter(filter) else {
                reasons.append(.topicFilterInvalid)
                continue
            }
            let shared: (group: String, filter: String)?
            do { shared = try MQTTTopic.shared(filter) } catch {
                reasons.append(.topicFilterInvalid)
                continue
            }
            if shared != nil && options.noLocal { throw .protocolError("No Local on the shared subscription \(filter)") }
            // READ on every Kafka topic its messages may come from (and on a share's group).
            let topics = gateway.mapping.kafkaTopics(subscribedBy: shared?.filter ?? filter)
            if let denied = topics.first(where: { !allows(.read, .topic, $0) }) {
                MQTTGateway.warnings.warn(logger, "MQTT subscription to \(filter) refused: \(principal) may not read Kafka topic \(denied)")
                reasons.append(.notAuthorized)
                continue
            }
            if let shared, !allows(.read, .group, MQTTGateway.kafkaGroup(ofShare: shared.group)) {
                MQTTGateway.warnings.warn(logger, "MQTT subscription to \(filter) refused: \(principal) may not read group \(MQTTGateway.kafkaGroup(ofShare: shared.group))")
                reasons.append(.notAuthorized)
                continue
            }
            guard let existed = box.state.withLockedValue({ $0.session.subscribe(filter, options: options, identifier: identifier) }) else {
                reasons.append(.quotaExceeded)
                continue
            }
            reasons.append(.granted(options.qos))
            if let shared {
                // Retained messages are not sent to a shared subscription (MQTT 5.0, 4.8.2).
                gateway.joinShare(filter, group: shared.group, filter: shared.filter, clientID: clientID)
                continue
            }
            let sendRetained = options.retainHandling == .sendAtSubscribe || (options.retainHandling == .sendAtNewSubscribe && !existed)
            guard sendRetained, room > 0, seen.insert(filter).inserted else { continue }
            let matching = gateway.retainedMessages(matching: filter, limit: room)
            room -= matching.count
            for message in matching {
                var properties = message.properties
                properties.subscriptionIdentifiers = identifier.map { [$0] } ?? []
                retained.append(MQTTPublish(topic: message.topic, qos: min(options.qos, message.qos), retain: true, properties: properties,
                                            payload: message.payload))
            }
        }
        let answer = MQTTPacket.suback(MQTTSubAck(packetID: subscribe.packetID, reasons: reasons))
        afterSaving(box) { connection in
            connection.send(answer)
            guard !retained.isEmpty else { return }
            let now = connection.gateway.broker.clock.now().ms
            box.state.withLockedValue { s in
                for publish in retained { _ = s.session.enqueue(publish, nowMs: now) }
            }
            connection.drainDeliveries()
        }
    }

    /// Runs `then` once a persistent session's change is written to the sessions topic (at once
    /// for a session that ends with its connection); a failed write ends the connection instead.
    func afterSaving(_ box: MQTTSessionBox, then: @escaping (MQTTConnection) -> Void) {
        guard gateway.keepsRecord(of: box, persistent: persistent), let scope else { return then(self) }
        gateway.saveSession(box, expirySeconds: sessionExpirySeconds, on: scope.eventLoop).assumeIsolated().whenComplete { result in
            switch result {
            case .success:
                then(self)
                self.context?.flush()
            case .failure(let error):
                self.refuse(MQTTError(.unspecifiedError, "the session could not be saved: \(error)"))
            }
        }
    }

    // MARK: delivering

    /// Sends what the session has queued, within the client's window and the socket's room.
    func drainDeliveries() {
        guard phase == .connected, let box, let context else { return }
        // A socket the client does not read stops the deliveries (its queue, bounded, takes the
        // rest); writability coming back resumes them.
        guard context.channel.isWritable else { return }
        var out: [MQTTPublish] = []
        var more = false
        let now = gateway.broker.clock.now().ms
        let attached = box.state.withLockedValue { s -> Bool in
            guard s.connection?.id == id else { return false }
            s.wakePending = false
            while out.count < Self.deliveriesPerTurnMax, let publish = s.session.nextToSend(nowMs: now) { out.append(publish) }
            more = out.count == Self.deliveriesPerTurnMax
            return true
        }
        guard attached else { return takenOver() }
        guard !out.isEmpty else { return }
        for publish in out {
            let bytes = MQTTPacket.publish(publish).encode(version: version)
            if bytes.readableBytes > clientPacketBytesMax {
                // Larger than the client takes: discarded, as the specification has it.
                if let id = publish.packetID { box.state.withLockedValue { $0.session.abandon(id) } }
                gateway.stats.messagesDropped.add(1)
                continue
            }
            gateway.stats.messagesOut[Int(publish.qos.rawValue)].add(1)
            context.write(wrapOutboundOut(bytes), promise: nil)
        }
        context.flush()
        if more && context.channel.isWritable {
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.execute { handler.value.drainDeliveries() }
        }
    }

    // MARK: ending

    func send(_ packet: MQTTPacket) {
        guard let context, phase != .closed else { return }
        context.write(wrapOutboundOut(packet.encode(version: version)), promise: nil)
    }

    /// Ends the connection over a bad packet: with a DISCONNECT naming the reason (5.0, connected),
    /// a CONNACK refusal for an unsupported protocol version, or just closed.
    func refuse(_ error: MQTTError) {
        guard phase != .closed else { return }
        logger.info("MQTT connection closed: \(error)")
        if phase == .awaitingConnect && error.reason == .unsupportedProtocolVersion {
            // Answered as 3.1.1 does (return code 1), which any client reads.
            send(.connack(MQTTConnAck(reason: .unsupportedProtocolVersion)))
        } else if phase == .connected && v5 {
            var properties = MQTTProperties()
            properties.reasonString = Self.reasonString(error.message)
            send(.disconnect(MQTTReasoned(reason: error.reason, properties: properties)))
        }
        close()
    }

    /// Another connection took the session over.
    /// The server ends the connection: its session was taken over (by a new connection of the
    /// same client id, here or on another node), or the server shuts down (the session is saved
    /// as it ends; no will goes, the client did nothing wrong and its session stays).
    func takenOver(_ reason: ReasonCode = .sessionTakenOver) {
        guard phase == .connected else { return }
        if v5 { send(.disconnect(MQTTReasoned(reason: reason))) }
        if reason == .serverShuttingDown {
            will = nil
            logger.debug("MQTT connection ended: the server shuts down")
        } else {
            logger.info("MQTT session taken over by a new connection of the same client id")
        }
        close()
    }

    func close() {
        guard let context, phase != .closed else { return }
        context.flush()
        ended()
        context.close(promise: nil)
    }

    /// The connection is over: timers stop, the will goes (unless a DISCONNECT dropped it), the
    /// session stays for its expiry or goes, and what it left waiting in the broker ends.
    func ended() {
        guard phase != .closed else { return }
        let wasConnected = phase == .connected
        phase = .closed
        gateway.stats.connectionsOpen.add(-1)
        connectTimeout?.cancel()
        keepAliveCheck?.cancel()
        scope?.close()
        guard wasConnected, let box else { return }
        if persistent && box.state.withLockedValue({ $0.connection?.id == id }) {
            // Saved again as it ends: its expiry counts from now, also across a restart.
            gateway.saveSession(box, expirySeconds: sessionExpirySeconds).whenFailure { [logger] error in
                logger.warning("MQTT session not saved as its connection ended: \(error)")
            }
        }
        gateway.detach(box, connectionID: id, expirySeconds: sessionExpirySeconds)
        // After the detach: a will with a delay waits for a session without its client.
        if let will { gateway.publishWill(will, clientID: clientID, box: box, sessionExpirySeconds: sessionExpirySeconds) }
    }
}
