import BrookBroker
import BrookClient
import BrookCore
import BrookMQTT
import BrookProtocol
import BrookRecords
import BrookSecurity
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// What the gateway may do to a connection from another thread: wake it to send what its
/// session queued, or end it (a session taken over).
struct MQTTConnectionRef: Sendable {
    let id: UInt64
    let wake: @Sendable () -> Void
    let takeOver: @Sendable () -> Void
}

/// A session the gateway keeps: its state, the connection it is attached to (none while the
/// client is away), and what happens when it stays away (its expiry, a delayed will).
final class MQTTSessionBox: Sendable {
    struct State {
        var session: MQTTSession
        var connection: MQTTConnectionRef?
        var wakePending = false
        var expiry: Scheduled<Void>?
        /// A will waiting for its delay (published at once if the session ends first).
        var will: (task: Scheduled<Void>, publish: MQTTPublish)?
        /// A record of it is in the sessions topic (removed with a tombstone when it ends).
        var persisted = false
    }

    let clientID: String
    let state: NIOLockedValueBox<State>
    /// The last save of the session under way (on the gateway's loop).
    let saving: NIOLoopBoundBox<EventLoopFuture<Void>?>

    init(_ session: MQTTSession, loop: any EventLoop) {
        clientID = session.clientID
        state = NIOLockedValueBox(State(session: session))
        saving = NIOLoopBoundBox.makeBoxSendingValue(nil, eventLoop: loop)
    }

    /// Queues `message` for the session's shared subscription `key`, chosen for it in its group.
    func offerShared(_ message: MQTTSession.Message, key: String, stats: MQTTStats) {
        let wake: MQTTConnectionRef? = state.withLockedValue { s in
            guard let publish = s.session.sharedDelivery(of: message, key: key) else { return nil }
            if s.connection == nil && publish.qos == .atMostOnce { return nil }
            guard s.session.enqueue(publish, allowance: s.connection == nil ? 0 : MQTTGateway.onlineBurstMax) else {
                stats.messagesDropped.add(1)
                return nil
            }
            guard let connection = s.connection, !s.wakePending else { return nil }
            s.wakePending = true
            return connection
        }
        wake?.wake()
    }

    var isConnected: Bool { state.withLockedValue { $0.connection != nil } }

    /// Messages queued for the client while it is connected (0 while it is away).
    var connectedBacklog: Int { state.withLockedValue { $0.connection == nil ? 0 : $0.session.queuedCount } }

    /// The session's shared subscriptions, as subscribed (`$share/GROUP/FILTER`).
    var sharedKeys: [String] {
        state.withLockedValue { s in s.session.subscriptions.filter { $0.value.shareGroup != nil }.map(\.key) }
    }

    /// Queues what of `messages` the session subscribed to; wakes its connection. A session
    /// without its client keeps QoS 1 and 2 messages only.
    func offer(_ messages: [MQTTSession.Message], stats: MQTTStats) {
        let wake: MQTTConnectionRef? = state.withLockedValue { s in
            guard !s.session.subscriptions.isEmpty else { return nil }
            var added = false
            for message in messages {
                guard let publish = s.session.delivery(of: message) else { continue }
                if s.connection == nil && publish.qos == .atMostOnce { continue }
                let allowance = s.connection == nil ? 0 : MQTTGateway.onlineBurstMax
                if s.session.enqueue(publish, allowance: allowance) { added = true } else { stats.messagesDropped.add(1) }
            }
            guard added, let connection = s.connection, !s.wakePending else { return nil }
            s.wakePending = true
            return connection
        }
        wake?.wake()
    }
}

/// What the MQTT side counts (running totals; read by the metrics at each scrape).
final class MQTTStats: Sendable {
    let connectionsOpen = Counter()
    let connectionsCreated = Counter()
    /// Publishes received from clients, by QoS.
    let messagesIn = [Counter(), Counter(), Counter()]
    /// Messages sent to subscribers, by QoS.
    let messagesOut = [Counter(), Counter(), Counter()]
    /// Messages not delivered: a full queue, or larger than the client takes.
    let messagesDropped = Counter()
}

/// The MQTT side of a node: sessions by client id, retained messages, the topic partition counts,
/// and the router, which reads the Kafka topics MQTT maps to (from their end when the node
/// starts) and hands each record to the sessions subscribed to its MQTT topic. Everything goes
/// through the node's own broker as Kafka requests (LocalKafka).
final class MQTTGateway: Sendable {
    let broker: Broker
    let settings: MQTTSettings
    let mapping: MQTTTopicMapping
    let logger: Logger
    let kafka: LocalKafka
    /// The router's event loop, where its fetches and the gateway's own produces (wills) run.
    let loop: any EventLoop
    let scope: ConnectionScope
    let sessions = NIOLockedValueBox<[String: MQTTSessionBox]>([:])
    let retained = NIOLockedValueBox<[String: MQTTSession.Message]>([:])
    let partitionCounts = NIOLockedValueBox<[String: Int32]>([:])
    let router: NIOLoopBound<Router>
    let running = NIOLockedValueBox(true)
    let nextConnectionID = NIOLockedValueBox<UInt64>(1)
    let stats = MQTTStats()
    /// Share groups: each shared subscription as subscribed (`$share/GROUP/FILTER`) and the
    /// client ids of the sessions in it, sorted.
    let shares = NIOLockedValueBox<[String: Share]>([:])

    struct Share: Sendable {
        var group: String
        var filter: String
        var members: [String]
    }
    static let warnings = RateLimitedLog(perWindowMax: 10)

    /// Where the router reads, confined to the gateway's loop.
    final class Router {
        var positions: [String: [Int32: Offset]] = [:]
        var scanned = false
        var lastRefresh = NIODeadline.uptimeNanoseconds(0)
        var refreshSoon = false
        /// Where the router was in partitions it stopped reading (an error, a leadership that
        /// moved): taken up there again, not from the start.
        var left: [String: [Int32: Offset]] = [:]
        var lastShareCommit = NIODeadline.uptimeNanoseconds(0)
        /// Since when the router waits for connected clients' queues to drain.
        var pacingSince: NIODeadline?
    }

    static let refreshInterval = TimeAmount.seconds(5)
    static let fetchWaitMs: Int32 = 500
    static let fetchBytesMax: Int32 = 1024 * 1024
    static let partitionFetchBytesMax: Int32 = 256 * 1024
    /// Room beyond `mqtt.max.queued.messages` a connected client's queue has for what one fetch
    /// brings at once; the router waits for the queues to drain below the limit before it reads
    /// on (up to `routerPaceMax`, after which a client that stays behind loses messages).
    static let onlineBurstMax = 4096
    static let routerPaceMax = TimeAmount.seconds(2)
    static let produceTimeoutMs: Int32 = 30_000

    init(broker: Broker, loop: any EventLoop, logger: Logger) throws {
        self.broker = broker
        settings = broker.config.mqtt
        mapping = broker.config.mqtt.mapping
        var logger = logger
        logger[metadataKey: "listener"] = "mqtt"
        self.logger = logger
        kafka = LocalKafka(broker: broker, clientID: "brook-mqtt")
        self.loop = loop
        scope = ConnectionScope(eventLoop: loop)
        router = try loop.submit { NIOLoopBound(Router(), eventLoop: loop) }.wait()
    }

    func makeConnectionID() -> UInt64 {
        nextConnectionID.withLockedValue { id in defer { id += 1 }; return id }
    }

    // MARK: topics

    /// How many partitions `topic` has, creating it (with the broker's defaults; the retained
    /// topic compacted) when it does not exist, and waiting until its partitions have leaders.
    /// On `scope`'s loop.
    func partitions(of topic: String, scope: ConnectionScope) -> EventLoopFuture<Int32> {
        if let known = partitionCounts.withLockedValue({ $0[topic] }) { return scope.eventLoop.makeSucceededFuture(known) }
        return lookUp(topic, scope: scope, created: false, deadline: .now() + Self.topicWait)
    }

    /// How long a write waits for its topic to be created and led.
    static let topicWait = TimeAmount.seconds(15)
    static let retryBackoff = TimeAmount.milliseconds(100)

    private func lookUp(_ topic: String, scope: ConnectionScope, created: Bool, deadline: NIODeadline) -> EventLoopFuture<Int32> {
        let loop = scope.eventLoop
        let request = MetadataRequest(topics: [.init(name: topic)], allowAutoTopicCreation: false)
        return kafka.send(request, version: 12, scope: scope).flatMap { answer in
            let found = answer.topics.first
            if let found, found.errorCode == 0, !found.partitions.isEmpty,
               found.partitions.allSatisfy({ $0.errorCode == 0 && $0.leaderId.value >= 0 }) {
                let count = Int32(found.partitions.count)
                self.partitionCounts.withLockedValue { $0[topic] = count }
                return loop.makeSucceededFuture(count)
            }
            guard NIODeadline.now() < deadline else {
                return loop.makeFailedFuture(MQTTError(.serverUnavailable, "topic \(topic) has no led partitions"))
            }
            let exists = found.map { ErrorCode(rawValue: $0.errorCode) != .unknownTopicOrPartition } ?? false
            guard !exists && !created else {
                return loop.scheduleTask(in: Self.retryBackoff) {}.futureResult.flatMap {
                    self.lookUp(topic, scope: scope, created: created, deadline: deadline)
                }
            }
            let configs: [CreateTopicsRequest.CreatableTopic.CreatableTopicConfig] =
                [self.settings.retainedTopic, self.settings.sessionsTopic].contains(topic) ? [.init(name: "cleanup.policy", value: "compact")] : []
            let create = CreateTopicsRequest(topics: [.init(name: topic, numPartitions: -1, replicationFactor: -1, configs: configs)])
            return self.kafka.send(create, version: 7, scope: scope).flatMap { answer in
                let code = ErrorCode(rawValue: answer.topics.first?.errorCode ?? 0)
                guard code == .none || code == .topicAlreadyExists else {
                    return loop.makeFailedFuture(MQTTError(.implementationSpecificError,
                                                           "cannot create topic \(topic): \(code) \(answer.topics.first?.errorMessage ?? "")"))
                }
                if code == .none {
                    self.logger.info("created topic \(topic) for MQTT messages")
                    self.loop.execute { self.router.value.refreshSoon = true }
                }
                return self.lookUp(topic, scope: scope, created: true, deadline: deadline)
            }
        }
    }

    /// Writes `records` (each to its Kafka topic, in the partition its key hashes to, as Kafka's
    /// default partitioner puts it) with acks=all. A partition without a leader for now (a topic
    /// just created, a leader moving) is tried again, alone, until `deadline`; any other refusal
    /// fails the write.
    func produce(_ records: [(topic: String, record: SimpleRecord)], scope: ConnectionScope,
                 deadline: NIODeadline = .now() + MQTTGateway.topicWait) -> EventLoopFuture<Void> {
        let loop = scope.eventLoop
        let topics = Array(Set(records.map(\.topic))).sorted()
        let counts = topics.map { partitions(of: $0, scope: scope) }
        return EventLoopFuture.whenAllSucceed(counts, on: loop).flatMap { found in
            let countOf = Dictionary(uniqueKeysWithValues: zip(topics, found))
            var grouped: [String: [Int32: [(topic: String, record: SimpleRecord)]]] = [:]
            for entry in records {
                let partition = Partitioner.partition(forKey: entry.record.key ?? [], count: countOf[entry.topic]!)
                grouped[entry.topic, default: [:]][partition, default: []].append(entry)
            }
            let request = ProduceRequest(acks: -1, timeoutMs: Self.produceTimeoutMs, topicData: grouped.map { topic, partitions in
                .init(name: topic, partitionData: partitions.flatMap { index, batch in
                    Self.batches(batch.map(\.record)).map { records in
                        .init(index: index, records: .bytes(ByteBuffer(bytes: RecordBatchBuilder.build(baseOffset: Offset(0), records: records))))
                    }
                })
            })
            return self.kafka.send(request, version: 9, scope: scope).flatMap { answer in
                var again: [(topic: String, record: SimpleRecord)] = []
                for topic in answer.responses {
                    for partition in topic.partitionResponses where partition.errorCode != 0 {
                        let code = ErrorCode(rawValue: partition.errorCode)
                        let retriable = code == .unknownTopicOrPartition || code == .notLeaderOrFollower || code == .leaderNotAvailable
                        guard retriable, NIODeadline.now() < deadline else {
                            return loop.makeFailedFuture(MQTTError(.unspecifiedError, "writing to \(topic.name)-\(partition.index): \(code)"))
                        }
                        self.partitionCounts.withLockedValue { $0[topic.name] = nil }
                        again += grouped[topic.name]?[partition.index] ?? []
                    }
                }
                guard !again.isEmpty else { return loop.makeSucceededFuture(()) }
                return loop.scheduleTask(in: Self.retryBackoff) {}.futureResult.flatMap {
                    self.produce(again, scope: scope, deadline: deadline)
                }
            }
        }
    }

    /// Records split into batches of about `batchBytesMax` at most (a topic's
    /// `max.message.bytes` is 1 MiB by default; one record alone may still be bigger, and is
    /// refused by the partition as a Kafka producer's would be).
    static let batchBytesMax = 512 * 1024

    static func batches(_ records: [SimpleRecord]) -> [[SimpleRecord]] {
        var out: [[SimpleRecord]] = [[]]
        var bytes = 0
        for record in records {
            let size = (record.key?.count ?? 0) + (record.value?.count ?? 0) + record.headers.reduce(0) { $0 + $1.key.count + ($1.value?.count ?? 0) + 8 } + 24
            if bytes + size > batchBytesMax && !out[out.count - 1].isEmpty {
                out.append([])
                bytes = 0
            }
            out[out.count - 1].append(record)
            bytes += size
        }
        return out
    }

    // MARK: logins

    /// Whether `user` with `password` is one of the broker's users: a PLAIN user of the MQTT
    /// listener (`listener.name.mqtt.plain.sasl.jaas.config`) or a SCRAM credential of the
    /// cluster's metadata (either mechanism), checked as a SCRAM exchange would check it.
    func checkLogin(user: String, password: [UInt8]) -> Bool {
        let security = broker.config.security
        if let expected = security.listenerPlainUsers["MQTT"]?[user] {
            return constantTimeEqual(Array(expected.utf8), password)
        }
        guard let text = String(validating: password, as: UTF8.self), let digests = broker.scramDigests,
              let credentials = broker.cluster.current?.image.scramCredentials[user] else { return false }
        for (code, record) in credentials.sorted(by: { $0.key < $1.key }) {
            guard let mechanism = ScramMechanism(rawValue: code) else { continue }
            let scram = Scram(mechanism, digests: digests)
            let salt = Array(record.salt.readableBytesView)
            let made = scram.credential(saltedPassword: scram.saltedPassword(text, salt: salt, iterations: record.iterations),
                                        salt: salt, iterations: record.iterations)
            if constantTimeEqual(made.storedKey, Array(record.storedKey.readableBytesView)) { return true }
        }
        return false
    }

    // MARK: sessions

    enum Attach {
        case attached(MQTTSessionBox, sessionPresent: Bool, previous: MQTTConnectionRef?)
        case refused(ReasonCode, String)
    }

    /// The session of a CONNECT: a new one (clean start, or none kept), or the kept one.
    func attach(clientID: String, cleanStart: Bool, receiveMaximum: Int, connection: MQTTConnectionRef) -> Attach {
        sessions.withLockedValue { all in
            let existing = all[clientID]
            if existing == nil && all.count >= settings.sessionsMax {
                return .refused(.quotaExceeded, "\(settings.sessionsMax) sessions (mqtt.max.sessions)")
            }
            let box: MQTTSessionBox
            var present = false
            if let existing, cleanStart {
                leaveShares(existing)
                forget(existing)
            }
            if let existing, !cleanStart {
                box = existing
                present = true
            } else {
                box = MQTTSessionBox(MQTTSession(clientID: clientID, receiveMaximum: receiveMaximum,
                                                 queuedMessagesMax: settings.queuedMessagesMax, subscriptionsMax: settings.subscriptionsMax),
                                     loop: loop)
                all[clientID] = box
            }
            let previous = existing?.state.withLockedValue { s -> MQTTConnectionRef? in
                let was = s.connection
                s.connection = nil
                s.expiry?.cancel()
                s.expiry = nil
                s.will?.task.cancel()
                s.will = nil
                return was
            }
            box.state.withLockedValue { s in
                if present { s.session.reattached(receiveMaximum: receiveMaximum) }
                s.connection = connection
                s.wakePending = false
            }
            return .attached(box, sessionPresent: present, previous: previous)
        }
    }

    /// The connection `connectionID` of `box` ended: a session that does not outlive it goes; one
    /// that does is removed `expirySeconds` later unless its client is back.
    func detach(_ box: MQTTSessionBox, connectionID: UInt64, expirySeconds: UInt32) {
        let expiry = min(expirySeconds, settings.sessionExpiryMaxSeconds)
        let ours = box.state.withLockedValue { s -> Bool in
            guard s.connection?.id == connectionID else { return false }
            s.connection = nil
            s.wakePending = false
            return true
        }
        guard ours else { return }
        if expiry == 0 { return remove(box) }
        let task = loop.scheduleTask(in: .seconds(Int64(expiry))) { [weak box] in
            guard let box, box.state.withLockedValue({ $0.connection == nil }) else { return }
            self.remove(box)
        }
        box.state.withLockedValue { s in
            if s.connection == nil { s.expiry = task } else { task.cancel() }
        }
    }

    func remove(_ box: MQTTSessionBox) {
        let removed = sessions.withLockedValue { all in
            guard all[box.clientID] === box else { return false }
            all[box.clientID] = nil
            return true
        }
        if removed {
            leaveShares(box)
            forget(box)
            // The session ended before its will's delay: the will goes now.
            if let will = box.state.withLockedValue({ s in defer { s.will = nil }; return s.will }) {
                will.task.cancel()
                loop.execute { self.write(will.publish, clientID: box.clientID) }
            }
        }
    }

    // MARK: persistent sessions

    /// The sessions topic's record of `box`: its snapshot as JSON.
    func sessionRecord(_ box: MQTTSessionBox, expirySeconds: UInt32, awaiting extra: UInt16? = nil) -> (topic: String, record: SimpleRecord) {
        let now = broker.clock.now().ms
        var snapshot = box.state.withLockedValue { s in
            s.persisted = true
            return s.session.snapshot(expirySeconds: expirySeconds, nowMs: now)
        }
        if let extra, !snapshot.awaitingRelease.contains(extra) { snapshot.awaitingRelease = (snapshot.awaitingRelease + [extra]).sorted() }
        let json = (try? JSONEncoder().encode(snapshot)).map(Array.init) ?? []
        return (settings.sessionsTopic, SimpleRecord(key: Array(box.clientID.utf8), value: json, timestamp: Timestamp(ms: now)))
    }

    /// Writes `box`'s record: one save after the other per session, on the gateway's loop, each
    /// taking the session as it is when its turn comes (so a later state is never overwritten by
    /// an earlier one). The answer comes on `loop` (the caller's, when given).
    func saveSession(_ box: MQTTSessionBox, expirySeconds: UInt32, on callerLoop: (any EventLoop)? = nil) -> EventLoopFuture<Void> {
        let saved = self.loop.flatSubmit {
            let previous = box.saving.value ?? self.loop.makeSucceededFuture(())
            let next = previous.flatMapError { _ in self.loop.makeSucceededFuture(()) }.flatMap {
                self.produce([self.sessionRecord(box, expirySeconds: expirySeconds)], scope: self.scope)
            }
            box.saving.value = next
            return next
        }
        return callerLoop.map { saved.hop(to: $0) } ?? saved
    }

    /// A session that ended: its record, if any, is removed (a tombstone).
    func forget(_ box: MQTTSessionBox) {
        guard box.state.withLockedValue({ s in defer { s.persisted = false }; return s.persisted }) else { return }
        let record = SimpleRecord(key: Array(box.clientID.utf8), value: nil, timestamp: Timestamp(ms: broker.clock.now().ms))
        loop.execute {
            self.produce([(self.settings.sessionsTopic, record)], scope: self.scope).whenFailure { error in
                Self.warnings.warn(self.logger, "MQTT session \(box.clientID) not removed from \(self.settings.sessionsTopic): \(error)")
            }
        }
    }

    /// Sessions from their topic (at the node's start): kept without their clients until they
    /// come back or their expiry passes.
    func loadSessions() {
        let now = broker.clock.now().ms
        var loaded = 0
        for (clientID, record) in readCompacted(settings.sessionsTopic).sorted(by: { $0.key < $1.key }) {
            guard let value = record.value, let snapshot = try? JSONDecoder().decode(MQTTSession.Snapshot.self, from: Data(value)),
                  snapshot.clientID == clientID,
                  let session = MQTTSession(restoring: snapshot, receiveMaximum: settings.inflightMessagesMax,
                                            queuedMessagesMax: settings.queuedMessagesMax, subscriptionsMax: settings.subscriptionsMax) else {
                logger.warning("MQTT: the session record of \(clientID) in \(settings.sessionsTopic) is not readable; skipped")
                continue
            }
            let expiry = Int64(min(snapshot.expirySeconds, settings.sessionExpiryMaxSeconds))
            let age = now.subtractingReportingOverflow(snapshot.savedAtMs)
            let leftMs = expiry * 1000 - (age.overflow ? Int64.max / 2 : max(0, age.partialValue))
            guard leftMs > 0, sessionCount < settings.sessionsMax else { continue }
            let box = MQTTSessionBox(session, loop: loop)
            box.state.withLockedValue { $0.persisted = true }
            sessions.withLockedValue { $0[clientID] = box }
            for (key, subscription) in session.subscriptions {
                if let group = subscription.shareGroup { joinShare(key, group: group, filter: subscription.filter, clientID: clientID) }
            }
            let task = loop.scheduleTask(in: .milliseconds(leftMs)) { [weak box] in
                guard let box, box.state.withLockedValue({ $0.connection == nil }) else { return }
                self.remove(box)
            }
            box.state.withLockedValue { $0.expiry = task }
            loaded += 1
        }
        if loaded > 0 { logger.info("MQTT: \(loaded) persistent sessions read from \(settings.sessionsTopic)") }
    }

    // MARK: shared subscriptions

    func joinShare(_ key: String, group: String, filter: String, clientID: String) {
        shares.withLockedValue { all in
            var share = all[key] ?? Share(group: group, filter: filter, members: [])
            if !share.members.contains(clientID) {
                share.members.append(clientID)
                share.members.sort()
            }
            all[key] = share
        }
    }

    func leaveShare(_ key: String, clientID: String) {
        shares.withLockedValue { all in
            all[key]?.members.removeAll { $0 == clientID }
            if all[key]?.members.isEmpty == true { all[key] = nil }
        }
    }

    func leaveShares(_ box: MQTTSessionBox) {
        for key in box.sharedKeys { leaveShare(key, clientID: box.clientID) }
    }

    /// The Kafka consumer group a share group's progress is committed to (`brook group describe`
    /// shows its lag).
    static func kafkaGroup(ofShare group: String) -> String { "mqtt-share-" + group }

    var sessionCount: Int { sessions.withLockedValue { $0.count } }

    /// Subscriptions over every session (a scrape's count).
    var subscriptionCount: Int {
        sessions.withLockedValue { Array($0.values) }.reduce(0) { total, box in
            total + box.state.withLockedValue { $0.session.subscriptions.count }
        }
    }

    var retainedCount: Int { retained.withLockedValue { $0.count } }

    // MARK: wills

    /// Publishes `will` of `clientID` (whose connection ended and detached) after its delay or
    /// when the session ends, whichever comes first, unless the client is back by then.
    func publishWill(_ will: MQTTWill, clientID: String, box: MQTTSessionBox, sessionExpirySeconds: UInt32) {
        // The will delay is the will's, not the message's (a PUBLISH may not carry it).
        var properties = will.properties
        properties.willDelayInterval = nil
        let publish = MQTTPublish(topic: will.topic, qos: will.qos, retain: will.retain, properties: properties, payload: will.payload)
        let delay = Int64(min(will.properties.willDelayInterval ?? 0, sessionExpirySeconds, settings.sessionExpiryMaxSeconds))
        guard delay > 0 else { return loop.execute { self.write(publish, clientID: clientID) } }
        let task = loop.scheduleTask(in: .seconds(delay)) { [weak box] in
            guard box?.state.withLockedValue({ s -> Bool in defer { s.will = nil }; return s.will != nil }) ?? true else { return }
            self.write(publish, clientID: clientID)
        }
        box.state.withLockedValue { s in
            if s.connection == nil { s.will = (task, publish) } else { task.cancel() }
        }
    }

    /// Writes a message the server itself publishes (a will), with its retained copy. On `loop`.
    func write(_ publish: MQTTPublish, clientID: String) {
        guard let topic = mapping.kafkaTopic(for: publish.topic) else {
            return logger.info("will of \(clientID) on \(publish.topic) not written: no Kafka topic maps it")
        }
        let now = broker.clock.now().ms
        var records = [(topic, MQTTRecords.record(publish, clientID: clientID, nowMs: now))]
        if publish.retain { records.append(retainedRecord(publish, clientID: clientID, nowMs: now)) }
        produce(records, scope: scope).whenComplete { result in
            switch result {
            case .success: if publish.retain { self.setRetained(publish, clientID: clientID) }
            case .failure(let error): self.logger.warning("will of \(clientID) on \(publish.topic) not written: \(error)")
            }
        }
    }

    // MARK: retained messages

    /// The retained topic's record of `publish`: its payload, or a tombstone for an empty one.
    func retainedRecord(_ publish: MQTTPublish, clientID: String, nowMs: Int64) -> (topic: String, record: SimpleRecord) {
        var record = MQTTRecords.record(publish, clientID: clientID, nowMs: nowMs)
        if publish.payload.readableBytes == 0 { record.value = nil }
        return (settings.retainedTopic, record)
    }

    /// Keeps (or, for an empty payload, drops) `publish` as its topic's retained message.
    func setRetained(_ publish: MQTTPublish, clientID: String) {
        retained.withLockedValue { all in
            if publish.payload.readableBytes == 0 {
                all[publish.topic] = nil
            } else if all[publish.topic] != nil || all.count < settings.retainedMessagesMax {
                all[publish.topic] = MQTTSession.Message(topic: publish.topic, payload: publish.payload, qos: publish.qos, retain: true,
                                                         publisher: clientID, properties: publish.properties)
            } else {
                Self.warnings.warn(logger, "retained message on \(publish.topic) not kept: \(settings.retainedMessagesMax) retained messages (mqtt.max.retained.messages)")
            }
        }
    }

    /// Retained messages whose topic `filter` matches, `limit` at most.
    func retainedMessages(matching filter: String, limit: Int) -> [MQTTSession.Message] {
        retained.withLockedValue { all in
            var found: [MQTTSession.Message] = []
            for message in all.values where MQTTTopic.matches(filter: filter, name: message.topic) {
                guard found.count < limit else { break }
                found.append(message)
            }
            return found.sorted { $0.topic < $1.topic }
        }
    }
}

