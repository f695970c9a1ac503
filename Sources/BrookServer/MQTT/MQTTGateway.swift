import BrookBroker
import BrookClient
import BrookCore
import BrookMQTT
import BrookProtocol
import BrookRecords
import BrookSecurity
import BrookTxn
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// What the gateway may do to a connection from another thread: wake it to send what its
/// session queued, or end it (a session taken over).
struct MQTTConnectionRef: Sendable {
    let id: UInt64
    let wake: @Sendable () -> Void
    /// Ends the connection with a server DISCONNECT of that reason (on its own loop).
    let end: @Sendable (ReasonCode) -> Void
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
        /// Where a restored session is being read again from, until that is done: a save
        /// meanwhile keeps it (what is not read again yet is in no queue).
        var replaying: [MQTTSession.Snapshot.Resume]?
        /// The session expiry of its last record, and its progress then (`acknowledged`).
        var savedExpirySeconds: UInt32 = 0
        var savedAcknowledged: UInt64 = 0
    }

    let clientID: String
    let state: NIOLockedValueBox<State>
    /// The session's saves (on the gateway's loop): the last one asked for, and one waiting for
    /// its turn (not yet written: it takes the session as it is when its turn comes, so a
    /// change asked to be saved meanwhile, with the same expiry, goes with it).
    struct Saving {
        var last: EventLoopFuture<Void>?
        var waiting: (done: EventLoopFuture<Void>, expirySeconds: UInt32)?
    }
    let saving: NIOLoopBoundBox<Saving>

    init(_ session: MQTTSession, loop: any EventLoop) {
        clientID = session.clientID
        state = NIOLockedValueBox(State(session: session))
        saving = NIOLoopBoundBox.makeBoxSendingValue(Saving(), eventLoop: loop)
    }

    /// Reading the session's messages again (a restore) is over, or there is none to do: the
    /// packet ids it kept for them are free.
    func replayEnded() {
        state.withLockedValue { s in
            s.replaying = nil
            s.session.replayEnded()
        }
    }

    /// Queues `message` for the session's shared subscription `key`, chosen for it in its group.
    func offerShared(_ message: MQTTSession.Message, key: String, stats: MQTTStats, nowMs: Int64) {
        let wake: MQTTConnectionRef? = state.withLockedValue { s in
            guard let publish = s.session.sharedDelivery(of: message, key: key) else { return nil }
            if s.connection == nil && publish.qos == .atMostOnce { return nil }
            guard s.session.enqueue(publish, allowance: s.connection == nil ? 0 : MQTTGateway.onlineBurstMax, nowMs: nowMs,
                                    source: message.source) else {
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
    func offer(_ messages: [MQTTSession.Message], stats: MQTTStats, nowMs: Int64) {
        let wake: MQTTConnectionRef? = state.withLockedValue { s in
            guard !s.session.subscriptions.isEmpty else { return nil }
            var added = false
            for message in messages {
                guard let publish = s.session.delivery(of: message) else { continue }
                if s.connection == nil && publish.qos == .atMostOnce { continue }
                let allowance = s.connection == nil ? 0 : MQTTGateway.onlineBurstMax
                if s.session.enqueue(publish, allowance: allowance, nowMs: nowMs, source: message.source) {
                    added = true
                } else {
                    stats.messagesDropped.add(1)
                }
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

/// The MQTT side of a node: sessions by client id, retained messages, the topics' partition
/// leaders, and the router, which reads the Kafka topics MQTT maps to (from their end when the
/// node starts) and hands each record to the sessions subscribed to its MQTT topic. Everything
/// goes as Kafka requests to the broker that leads the partition: this node's own in process
/// (LocalKafka), another's over the inter-broker listener (PeerRequests).
///
/// In a cluster every node reads every partition of the mapped topics, so a subscriber gets a
/// message wherever it was published; the retained and sessions topics are read too, so a
/// retained message is everywhere, and a persistent session is taken up by the node its client
/// connects to next (the node that had it lets it go when it reads the new owner's record).
final class MQTTGateway: Sendable {
    let broker: Broker
    let settings: MQTTSettings
    let mapping: MQTTTopicMapping
    let logger: Logger
    let kafka: LocalKafka
    /// Requests to the other brokers of the cluster (nil: a node on its own).
    let peers: PeerRequests?
    /// The router's event loop, where its fetches and the gateway's own produces (wills) run.
    let loop: any EventLoop
    let scope: ConnectionScope
    let sessions = NIOLockedValueBox<[String: MQTTSessionBox]>([:])
    let retained: NIOLockedValueBox<MQTTRetainedStore>
    /// How far the router has offered each partition's records to the sessions: a session saved
    /// now is read again from there (or from its first unacknowledged message) when restored.
    /// Nil until the router's first look at the partitions.
    let routedUpTo = NIOLockedValueBox<[String: [Int32: Offset]]?>(nil)
    /// The leader of each partition of the topics written to (NodeID(-1): none now).
    let topicLeaders = NIOLockedValueBox<[String: [NodeID]]>([:])
    /// Persistent sessions another node of the cluster has, as their last records say: taken
    /// up when their client connects here.
    let elsewhere = NIOLockedValueBox<[String: Elsewhere]>([:])
    let router: NIOLoopBound<Router>
    let running = NIOLockedValueBox(true)
    /// False once the server shuts down: a CONNECT is refused (server shutting down).
    let accepting = NIOLockedValueBox(true)
    let nextConnectionID = NIOLockedValueBox<UInt64>(1)
    let stats = MQTTStats()
    /// Share groups: each shared subscription as subscribed (`$share/GROUP/FILTER`) and the
    /// client ids of the sessions in it, sorted.
    let shares = NIOLockedValueBox<[String: Share]>([:])
    /// Members of share groups whose sessions other nodes have (by `$share/GROUP/FILTER`).
    let sharesElsewhere = NIOLockedValueBox<[String: Set<String>]>([:])

    struct Elsewhere: Sendable {
        var node: NodeID
        var snapshot: MQTTSession.Snapshot
    }

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
        /// Who leads each partition read (none while it is not known: not read until the next
        /// refresh).
        var leaders: [String: [Int32: NodeID]] = [:]
        /// The brokers a fetch loop runs for.
        var loops: Set<NodeID> = []
        /// The partition counts of the mapped topics at the first look: a partition beyond
        /// them is new, and read from its start; one within them from where the log ended.
        var countsAtStart: [String: Int32] = [:]
        /// Since when a broker that has sessions is seen fenced or out of the cluster.
        var fencedSince: [NodeID: NIODeadline] = [:]
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

    init(broker: Broker, loop: any EventLoop, logger: Logger, peers: PeerRequests? = nil) throws {
        self.peers = peers
        retained = NIOLockedValueBox(MQTTRetainedStore(messagesMax: broker.config.mqtt.retainedMessagesMax,
                                                       bytesMax: broker.config.mqtt.retainedBytesMax))
        self.broker = broker
        settings = broker.config.mqtt
        mapping = broker.config.mqtt.mapping
        var logger = logger
        logger[metadataKey: "listener"] = "mqtt"
        self.logger = logger
        kafka = LocalKafka(broker: broker, clientID: "brook-mqtt")
        self.loop = loop
        scope = ConnectionScope(eventLoop: loop, isBroker: true)
        router = try loop.submit { NIOLoopBound(Router(), eventLoop: loop) }.wait()
    }

    func makeConnectionID() -> UInt64 {
        nextConnectionID.withLockedValue { id in defer { id += 1 }; return id }
    }

    // MARK: topics

    /// The leaders of `topic`'s partitions, creating it (with the broker's defaults; the
    /// retained and sessions topics compacted) when it does not exist, and waiting until its
    /// partitions have leaders. On `scope`'s loop.
    func partitions(of topic: String, scope: ConnectionScope) -> EventLoopFuture<[NodeID]> {
        if let known = topicLeaders.withLockedValue({ $0[topic] }) { return scope.eventLoop.makeSucceededFuture(known) }
        return lookUp(topic, scope: scope, created: false, deadline: .now() + Self.topicWait)
    }

    var node: NodeID { broker.config.nodeID }

    /// How long a request to another broker may take (a fetch's long poll included).
    static let peerRequestTimeoutMs: UInt64 = 10_000

    /// Sends `request` to the broker of `node`: this node's in process, another's over the
    /// inter-broker listener. The answer comes on `scope`'s loop.
    func send<R: KafkaRequest>(_ request: R, version: Int16, to node: NodeID, scope: ConnectionScope,
                               lane: PeerRequests.Lane = .requests) -> EventLoopFuture<R.Response> {
        if node == self.node { return kafka.send(request, version: version, scope: scope) }
        guard let peers else {
            return scope.eventLoop.makeFailedFuture(MQTTError(.serverUnavailable, "broker \(node) leads the partition; this node reaches no other broker"))
        }
        return scope.eventLoop.makeFutureWithTask {
            try await peers.send(request, version: version, to: node, lane: lane, timeoutMs: Self.peerRequestTimeoutMs)
        }
    }

    /// How long a write waits for its topic to be created and led.
    static let topicWait = TimeAmount.seconds(15)
    static let retryBackoff = TimeAmount.milliseconds(100)

    private func lookUp(_ topic: String, scope: ConnectionScope, created: Bool, deadline: NIODeadline) -> EventLoopFuture<[NodeID]> {
        let loop = scope.eventLoop
        let request = MetadataRequest(topics: [.init(name: topic)], allowAutoTopicCreation: false)
        return kafka.send(request, version: 12, scope: scope).flatMap { answer in
            let found = answer.topics.first
            if let found, found.errorCode == 0, !found.partitions.isEmpty,
               found.partitions.allSatisfy({ $0.errorCode == 0 && $0.leaderId.value >= 0 }) {
                let leaders = Self.leaders(of: found)
                self.topicLeaders.withLockedValue { $0[topic] = leaders }
                return loop.makeSucceededFuture(leaders)
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

    /// The leaders of the partitions of each of `topics`, by index.
    func partitions(of topics: [String], scope: ConnectionScope) -> EventLoopFuture<[String: [NodeID]]> {
        let names = Array(Set(topics)).sorted()
        return EventLoopFuture.whenAllSucceed(names.map { partitions(of: $0, scope: scope) }, on: scope.eventLoop).map {
            Dictionary(uniqueKeysWithValues: zip(names, $0))
        }
    }

    /// The leader of `partition` among a topic's `leaders` (NodeID(-1): none, or no such partition).
    static func leader(of partition: Int32, in leaders: [NodeID]) -> NodeID {
        partition >= 0 && Int(partition) < leaders.count ? leaders[Int(partition)] : NodeID(-1)
    }

    /// The leader of each of a Metadata topic's partitions, by index (NodeID(-1): none).
    static func leaders(of topic: MetadataResponse.MetadataResponseTopic) -> [NodeID] {
        var leaders = [NodeID](repeating: NodeID(-1), count: topic.partitions.count)
        for partition in topic.partitions where partition.errorCode == 0 && Int(partition.partitionIndex) < leaders.count && partition.partitionIndex >= 0 {
            leaders[Int(partition.partitionIndex)] = partition.leaderId
        }
        return leaders
    }

    /// A record to write: to the partition its key hashes to (as Kafka's default partitioner
    /// puts it), or to the one its sequence was given for, with a session's idempotent producer.
    struct Outgoing {
        var topic: String
        var record: SimpleRecord
        var sequenced: Sequenced?
    }

    /// A QoS 2 message's partition and its producer's sequence there.
    struct Sequenced {
        var partition: Int32
        var producer: ProducerID
        var epoch: ProducerEpoch
        var sequence: Int32
    }

    /// Writes `records` (each to its Kafka topic, in the partition its key hashes to) and
    /// `sequenced` with acks=all, one Produce to each partition's leader. A partition without a
    /// leader for now (a topic just created, a leader moving, a broker unreachable) is tried
    /// again, alone, until `deadline`; any other refusal fails the write. A sequenced record
    /// sent again is one its partition knows (written once).
    func produce(_ records: [(topic: String, record: SimpleRecord)], sequenced: [Outgoing] = [], scope: ConnectionScope,
                 deadline: NIODeadline = .now() + MQTTGateway.topicWait) -> EventLoopFuture<Void> {
        produce(records.map { Outgoing(topic: $0.topic, record: $0.record) } + sequenced, scope: scope, deadline: deadline)
    }

    private func produce(_ records: [Outgoing], scope: ConnectionScope, deadline: NIODeadline) -> EventLoopFuture<Void> {
        let loop = scope.eventLoop
        return partitions(of: records.map(\.topic), scope: scope).flatMap { leadersOf in
            var grouped: [NodeID: [String: [Int32: [Outgoing]]]] = [:]
            for entry in records {
                let leaders = leadersOf[entry.topic]!
                let partition = entry.sequenced?.partition ?? Partitioner.partition(forKey: entry.record.key ?? [], count: Int32(leaders.count))
                grouped[Self.leader(of: partition, in: leaders), default: [:]][entry.topic, default: [:]][partition, default: []].append(entry)
            }
            let writes = grouped.sorted { $0.key < $1.key }.map { leader, byTopic in
                self.produce(byTopic, to: leader, scope: scope, deadline: deadline)
            }
            return EventLoopFuture.whenAllSucceed(writes, on: loop).flatMap { retries in
                let again = retries.flatMap { $0 }
                guard !again.isEmpty else { return loop.makeSucceededFuture(()) }
                for topic in Set(again.map(\.topic)) { self.topicLeaders.withLockedValue { $0[topic] = nil } }
                return loop.scheduleTask(in: Self.retryBackoff) {}.futureResult.flatMap {
                    self.produce(again, scope: scope, deadline: deadline)
                }
            }
        }
    }

    /// The batches of one partition's records: the unsequenced ones as they come, and each
    /// producer's sequenced ones in runs of consecutive sequences.
    static func batches(of records: [Outgoing]) -> [[UInt8]] {
        var out = batches(records.filter { $0.sequenced == nil }.map(\.record)).filter { !$0.isEmpty }.map {
            RecordBatchBuilder.build(baseOffset: Offset(0), records: $0)
        }
        let sequenced = records.filter { $0.sequenced != nil }.sorted {
            ($0.sequenced!.producer, $0.sequenced!.sequence) < ($1.sequenced!.producer, $1.sequenced!.sequence)
        }
        var run: [Outgoing] = []
        func close() {
            guard let first = run.first?.sequenced else { return }
            var base = first.sequence
            for part in batches(run.map(\.record)) where !part.isEmpty {
                let producer = RecordBatchBuilder.Producer(id: first.producer, epoch: first.epoch, baseSequence: base)
                out.append(RecordBatchBuilder.build(baseOffset: Offset(0), records: part, producer: producer))
                base = ProducerState.sequence(base, plus: Int32(part.count))
            }
            run = []
        }
        for entry in sequenced {
            if let last = run.last?.sequenced, let next = entry.sequenced,
               last.producer != next.producer || next.sequence != ProducerState.sequence(last.sequence, plus: 1) {
                close()
            }
            run.append(entry)
        }
        close()
        return out
    }

    /// One Produce to `leader`; answers the records to try again (a partition that has another
    /// leader by now, or none; the broker not reached), or fails when the write was refused.
    private func produce(_ byTopic: [String: [Int32: [Outgoing]]], to leader: NodeID,
                         scope: ConnectionScope, deadline: NIODeadline) -> EventLoopFuture<[Outgoing]> {
        let loop = scope.eventLoop
        let all = byTopic.values.flatMap { $0.values.flatMap { $0 } }
        guard leader.value >= 0 else {
            guard NIODeadline.now() < deadline else {
                return loop.makeFailedFuture(MQTTError(.serverUnavailable, "no leader for \(byTopic.keys.sorted().joined(separator: ", "))"))
            }
            return loop.makeSucceededFuture(all)
        }
        let request = ProduceRequest(acks: -1, timeoutMs: Self.produceTimeoutMs, topicData: byTopic.map { topic, partitions in
            .init(name: topic, partitionData: partitions.flatMap { index, entries in
                Self.batches(of: entries).map { .init(index: index, records: .bytes(ByteBuffer(bytes: $0))) }
            })
        })
        return send(request, version: 9, to: leader, scope: scope).flatMapErrorThrowing { error in
            // Another broker not reached (stopped, cut off): its partitions move to others.
            guard leader != self.node, NIODeadline.now() < deadline else { throw error }
            Self.warnings.warn(self.logger, "MQTT write to broker \(leader) failed, trying again: \(error)")
            return ProduceResponse(responses: byTopic.map { topic, partitions in
                .init(name: topic, partitionResponses: partitions.keys.map { .init(index: $0, errorCode: ErrorCode.notLeaderOrFollower.rawValue) })
            })
        }.flatMapThrowing { answer in
            var again: [Outgoing] = []
            var failed: Set<String> = []
            for topic in answer.responses {
                for partition in topic.partitionResponses where partition.errorCode != 0 {
                    // A partition answers each of its batches: one retry of its records.
                    guard failed.insert("\(topic.name)/\(partition.index)").inserted else { continue }
                    let code = ErrorCode(rawValue: partition.errorCode)
                    let retriable = code == .unknownTopicOrPartition || code == .notLeaderOrFollower || code == .leaderNotAvailable
                        || code == .notEnoughReplicas || code == .requestTimedOut
                    guard retriable, NIODeadline.now() < deadline else {
                        throw MQTTError(.unspecifiedError, "writing to \(topic.name)-\(partition.index): \(code)")
                    }
                    again += byTopic[topic.name]?[partition.index] ?? []
                }
            }
            return again
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

    /// A SCRAM exchange for the enhanced authentication `method`, when it is served
    /// (`mqtt.authentication.methods`).
    func authenticationExchange(_ method: String) -> ScramServerExchange? {
        guard let mechanism = ScramMechanism(name: method), settings.authenticationMethods.contains(mechanism),
              let digests = broker.scramDigests else { return nil }
        return ScramServerExchange(scram: Scram(mechanism, digests: digests))
    }

    /// The exchange's next step with the client's `data`, against the cluster's SCRAM credentials.
    func authenticationStep(_ exchange: inout ScramServerExchange, _ data: [UInt8]) -> ScramServerExchange.Step {
        let image = broker.cluster.current?.image
        let mechanism = exchange.mechanism
        return exchange.step(data) { user in image?.scramCredential(of: user, mechanism) }
    }

    /// Whether checking `user`'s password takes long: a SCRAM credential's (salted thousands of
    /// times), not a PLAIN user's.
    func checkLoginIsSlow(user: String) -> Bool {
        broker.config.security.listenerPlainUsers["MQTT"]?[user] == nil && broker.cluster.current?.image.scramCredentials[user] != nil
    }

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

    /// The session of a CONNECT: a new one (clean start, or none kept), or the kept one (this
    /// node's, or one another node of the cluster had, taken up). `persistent`: the session
    /// outlives its connection (its record is written at CONNECT, which tells the node that had
    /// it to let it go; otherwise a tombstone does).
    func attach(clientID: String, cleanStart: Bool, receiveMaximum: Int, persistent: Bool, connection: MQTTConnectionRef) -> Attach {
        // A refusal first: a CONNECT turned away leaves another node's session of the client as
        // it is (taking it up, or a clean start ending it, comes only with a session here).
        guard accepting.withLockedValue({ $0 }) else { return .refused(.serverShuttingDown, "the server shuts down") }
        let full = Attach.refused(.quotaExceeded, "\(settings.sessionsMax) sessions (mqtt.max.sessions)")
        if sessions.withLockedValue({ $0[clientID] == nil && $0.count >= settings.sessionsMax }) { return full }
        let other = elsewhere.withLockedValue { $0.removeValue(forKey: clientID) }
        if other != nil {
            leaveSharesElsewhere(clientID)
            if !persistent { release(clientID) }
        }
        return sessions.withLockedValue { all in
            var existing = all[clientID]
            if existing == nil, !cleanStart, let other,
               let session = MQTTSession(restoring: other.snapshot, receiveMaximum: receiveMaximum, queuedMessagesMax: settings.queuedMessagesMax,
                                         subscriptionsMax: settings.subscriptionsMax, queuedBytesMax: settings.queuedBytesMax) {
                // The client was on another node: its session is taken up here.
                let box = MQTTSessionBox(session, loop: loop)
                all[clientID] = box
                joinShares(of: session)
                logger.info("MQTT session of \(clientID) taken up from broker \(other.node)")
                replay(box, from: other.snapshot.resume)
                existing = box
            }
            // (Sessions made meanwhile by other connections.)
            if existing == nil && all.count >= settings.sessionsMax { return full }
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
                                                 queuedMessagesMax: settings.queuedMessagesMax, subscriptionsMax: settings.subscriptionsMax,
                                                 queuedBytesMax: settings.queuedBytesMax),
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

    /// Saves the connected persistent sessions whose clients acknowledged messages since their
    /// last record (`mqtt.session.save.interval.ms`): after a crash, a session is read again from
    /// about that long ago, not from its CONNECT.
    func saveProgress() {
        let due = sessions.withLockedValue { Array($0.values) }.filter { box in
            box.state.withLockedValue { s in
                s.persisted && s.connection != nil && s.savedExpirySeconds > 0 && s.session.acknowledged != s.savedAcknowledged
            }
        }
        for box in due {
            let expiry = box.state.withLockedValue { $0.savedExpirySeconds }
            saveSession(box, expirySeconds: expiry).whenFailure { error in
                Self.warnings.warn(self.logger, "MQTT session \(box.clientID) not saved: \(error)")
            }
        }
    }

    // MARK: shutdown

    /// How long a shutdown waits for the sessions of its clients to be saved.
    static let shutdownSaveWait = TimeAmount.seconds(5)

    /// At a shutdown: every client gets DISCONNECT 0x8B (5.0) and its connection ends, which saves
    /// a persistent session as it is (where each partition is to be read again from, the packet
    /// ids in flight), so that after the restart its client goes on where it was. Waits for those
    /// saves (at most `timeout`), then stops the router. Not on an event loop.
    func shutDown(within timeout: TimeAmount = MQTTGateway.shutdownSaveWait) {
        let deadline = NIODeadline.now() + timeout
        accepting.withLockedValue { $0 = false }
        let boxes = sessions.withLockedValue { Array($0.values) }
        for box in boxes { box.state.withLockedValue { $0.connection }?.end(.serverShuttingDown) }
        // Each connection queues its session's save and then lets the session go, on its loop.
        while NIODeadline.now() < deadline, boxes.contains(where: { box in box.state.withLockedValue { $0.connection != nil } }) {
            usleep(5_000)
        }
        // Those saves were queued on the gateway's loop before this looks there.
        if let saves = try? loop.submit({ boxes.compactMap { $0.saving.value.last } }).wait(), !saves.isEmpty {
            let done = DispatchSemaphore(value: 0)
            EventLoopFuture.whenAllComplete(saves, on: loop).whenComplete { _ in done.signal() }
            let left = max(0, (deadline - .now()).nanoseconds)
            if done.wait(timeout: .now() + .nanoseconds(Int(left))) == .timedOut {
                logger.warning("MQTT: not every session was saved within \(timeout.nanoseconds / 1_000_000) ms of the shutdown")
            }
        }
        stop()
    }

    // MARK: persistent sessions

    /// The header of a sessions topic record naming the node that wrote it (the session's owner).
    static let nodeHeader = Array("mqtt.node".utf8)

    var ownerHeaders: [SimpleRecord.Header] { [SimpleRecord.Header(key: Self.nodeHeader, value: Array("\(node.value)".utf8))] }

    /// Whether `box`'s changes are written to the sessions topic: a persistent session's; in a
    /// cluster, also one with shared subscriptions (the other nodes count it in its groups), or
    /// one written before.
    func keepsRecord(of box: MQTTSessionBox, persistent: Bool) -> Bool {
        persistent || peers != nil && (box.state.withLockedValue { $0.persisted } || !box.sharedKeys.isEmpty)
    }

    /// A tombstone of `clientID`'s session written by this node: the node that had it lets it go.
    func release(_ clientID: String) {
        let record = SimpleRecord(key: Array(clientID.utf8), value: nil, headers: ownerHeaders, timestamp: Timestamp(ms: broker.clock.now().ms))
        loop.execute {
            self.produce([(self.settings.sessionsTopic, record)], scope: self.scope).whenFailure { error in
                Self.warnings.warn(self.logger, "MQTT session \(clientID) not released in \(self.settings.sessionsTopic): \(error)")
            }
        }
    }

    /// The node a sessions topic record names (records without one are this node's: written
    /// before there was a cluster).
    func owner(of record: ConsumedRecord) -> NodeID {
        guard let header = record.headers.first(where: { $0.key == Self.nodeHeader }), let value = header.value,
              let text = String(validating: value, as: UTF8.self), let id = Int32(text) else { return node }
        return NodeID(id)
    }

    /// A sessions topic record another node wrote (read by the router): a session of ours that it
    /// took up is let go (its connection, if any, ends as taken over; no tombstone, no save);
    /// the session is noted as that node's, or forgotten (a tombstone).
    func sessionRecordRead(_ record: ConsumedRecord) {
        let writer = owner(of: record)
        guard writer != node, let key = record.key, let clientID = String(validating: key, as: UTF8.self) else { return }
        let box = sessions.withLockedValue { all -> MQTTSessionBox? in
            guard let box = all[clientID] else { return nil }
            all[clientID] = nil
            return box
        }
        if let box {
            leaveShares(box)
            let connection = box.state.withLockedValue { s -> MQTTConnectionRef? in
                s.persisted = false
                s.expiry?.cancel()
                s.expiry = nil
                s.will?.task.cancel()
                s.will = nil
                defer { s.connection = nil }
                return s.connection
            }
            connection?.end(.sessionTakenOver)
            logger.info("MQTT session of \(clientID) taken up by broker \(writer)")
        }
        let known = elsewhere.withLockedValue { $0.removeValue(forKey: clientID) }
        if known != nil { leaveSharesElsewhere(clientID) }
        guard let value = record.value else { return }
        guard let snapshot = try? JSONDecoder().decode(MQTTSession.Snapshot.self, from: Data(value)), snapshot.clientID == clientID else {
            return Self.warnings.warn(logger, "MQTT: the session record of \(clientID) from broker \(writer) is not readable; skipped")
        }
        let kept = elsewhere.withLockedValue { all -> Bool in
            guard all.count < settings.sessionsMax else { return false }
            all[clientID] = Elsewhere(node: writer, snapshot: snapshot)
            return true
        }
        if kept { joinSharesElsewhere(clientID, snapshot) }
    }

    /// The sessions topic's record of `box`: its snapshot as JSON.
    func sessionRecord(_ box: MQTTSessionBox, expirySeconds: UInt32) -> (topic: String, record: SimpleRecord) {
        let now = broker.clock.now().ms
        // The router's progress before the session's (a message offered meanwhile is then in
        // the session, or after the progress read).
        let routed = routedUpTo.withLockedValue { $0 }
        var (snapshot, unacknowledged, replaying) = box.state.withLockedValue { s in
            s.persisted = true
            s.savedExpirySeconds = expirySeconds
            s.savedAcknowledged = s.session.acknowledged
            return (s.session.snapshot(expirySeconds: expirySeconds, nowMs: now), s.session.unacknowledgedFrom, s.replaying)
        }
        // Before the router's first look, nothing is known of where to resume: no replay.
        if let routed {
            var resume: [MQTTSession.Snapshot.Resume] = []
            for topic in mapping.kafkaTopics {
                var from = routed[topic]?.mapValues(\.value) ?? [:]
                from.merge(unacknowledged[topic] ?? [:]) { min($0, $1) }
                resume += from.sorted { $0.key < $1.key }.map { .init(topic: topic, partition: $0.key, offset: $0.value) }
            }
            snapshot.resume = resume
        }
        if let replaying {
            // Only the partitions the replay names (the others are read from their start), each
            // from the lower offset.
            let computed = Dictionary((snapshot.resume ?? []).map { ("\($0.topic)/\($0.partition)", $0.offset) }) { a, _ in a }
            snapshot.resume = replaying.map { entry in
                var entry = entry
                entry.offset = min(entry.offset, computed["\(entry.topic)/\(entry.partition)"] ?? entry.offset)
                return entry
            }
        }
        let json = (try? JSONEncoder().encode(snapshot)).map(Array.init) ?? []
        return (settings.sessionsTopic, SimpleRecord(key: Array(box.clientID.utf8), value: json, headers: ownerHeaders, timestamp: Timestamp(ms: now)))
    }

    /// Writes `box`'s record: one save after the other per session, on the gateway's loop, each
    /// taking the session as it is when its turn comes (so a later state is never overwritten by
    /// an earlier one). A save asked for while one waits for its turn is that one (a busy QoS 2
    /// publisher's many changes make two records in flight, not one per change). The answer
    /// comes on `loop` (the caller's, when given).
    func saveSession(_ box: MQTTSessionBox, expirySeconds: UInt32, on callerLoop: (any EventLoop)? = nil) -> EventLoopFuture<Void> {
        let saved = self.loop.flatSubmit {
            if let waiting = box.saving.value.waiting, waiting.expirySeconds == expirySeconds { return waiting.done }
            let previous = box.saving.value.last ?? self.loop.makeSucceededFuture(())
            let turn = self.loop.makePromise(of: Void.self)
            // Noted before its turn can come (at once, when the previous save is done).
            box.saving.value.last = turn.futureResult
            box.saving.value.waiting = (turn.futureResult, expirySeconds)
            previous.whenComplete { _ in
                // Its turn: later changes wait for the next save.
                if box.saving.value.waiting?.done === turn.futureResult { box.saving.value.waiting = nil }
                turn.completeWith(self.produce([self.sessionRecord(box, expirySeconds: expirySeconds)], scope: self.scope))
            }
            return turn.futureResult
        }
        return callerLoop.map { saved.hop(to: $0) } ?? saved
    }

    /// A session that ended: its record, if any, is removed (a tombstone).
    func forget(_ box: MQTTSessionBox) {
        guard box.state.withLockedValue({ s in defer { s.persisted = false }; return s.persisted }) else { return }
        let record = SimpleRecord(key: Array(box.clientID.utf8), value: nil, headers: ownerHeaders, timestamp: Timestamp(ms: broker.clock.now().ms))
        loop.execute {
            self.produce([(self.settings.sessionsTopic, record)], scope: self.scope).whenFailure { error in
                Self.warnings.warn(self.logger, "MQTT session \(box.clientID) not removed from \(self.settings.sessionsTopic): \(error)")
            }
        }
    }

    /// Sessions from their topic (at the node's start): this node's kept without their clients
    /// until they come back or their expiry passes; other nodes' noted as theirs.
    func loadSessions() {
        let now = broker.clock.now().ms
        var loaded = 0
        for (clientID, record) in readCompacted(settings.sessionsTopic).sorted(by: { $0.key < $1.key }) {
            if owner(of: record) != node {
                sessionRecordRead(record)
                continue
            }
            if record.value == nil { continue }
            guard let value = record.value, let snapshot = try? JSONDecoder().decode(MQTTSession.Snapshot.self, from: Data(value)),
                  snapshot.clientID == clientID else {
                logger.warning("MQTT: the session record of \(clientID) in \(settings.sessionsTopic) is not readable; skipped")
                continue
            }
            if keepOffline(snapshot, nowMs: now) != nil { loaded += 1 }
        }
        if loaded > 0 { logger.info("MQTT: \(loaded) persistent sessions read from \(settings.sessionsTopic)") }
    }

    /// Keeps a session without its client, from its snapshot, until the client comes back or
    /// its expiry (counted from the save) passes. Nil when it has expired, there are
    /// `mqtt.max.sessions` already, or it does not hold together.
    func keepOffline(_ snapshot: MQTTSession.Snapshot, nowMs now: Int64) -> MQTTSessionBox? {
        let clientID = snapshot.clientID
        guard let session = MQTTSession(restoring: snapshot, receiveMaximum: settings.inflightMessagesMax,
                                        queuedMessagesMax: settings.queuedMessagesMax, subscriptionsMax: settings.subscriptionsMax,
                                         queuedBytesMax: settings.queuedBytesMax) else {
            logger.warning("MQTT: the session record of \(clientID) in \(settings.sessionsTopic) does not hold together; skipped")
            return nil
        }
        let expiry = Int64(min(snapshot.expirySeconds, settings.sessionExpiryMaxSeconds))
        let age = now.subtractingReportingOverflow(snapshot.savedAtMs)
        let leftMs = expiry * 1000 - (age.overflow ? Int64.max / 2 : max(0, age.partialValue))
        guard leftMs > 0, sessionCount < settings.sessionsMax else { return nil }
        let box = MQTTSessionBox(session, loop: loop)
        box.state.withLockedValue { $0.persisted = true }
        guard sessions.withLockedValue({ all -> Bool in
            guard all[clientID] == nil else { return false }
            all[clientID] = box
            return true
        }) else { return nil }
        joinShares(of: session)
        replay(box, from: snapshot.resume)
        let task = loop.scheduleTask(in: .milliseconds(leftMs)) { [weak box] in
            guard let box, box.state.withLockedValue({ $0.connection == nil }) else { return }
            self.remove(box)
        }
        box.state.withLockedValue { $0.expiry = task }
        return box
    }

    /// How long a CONNECT waits for the sessions topic to be read up to its end.
    static let catchUpWait = TimeAmount.seconds(3)

    /// Completes once the router has read `clientID`'s partition of the sessions topic up to
    /// where it ends now (so a session another node wrote is known here), or after
    /// `catchUpWait`; at once when the topic does not exist.
    func catchUpSessions(of clientID: String) -> EventLoopFuture<Void> {
        let topic = settings.sessionsTopic
        let deadline = NIODeadline.now() + Self.catchUpWait
        return loop.flatSubmit {
            let lookup = MetadataRequest(topics: [.init(name: topic)], allowAutoTopicCreation: false)
            return self.kafka.send(lookup, version: 12, scope: self.scope).flatMap { answer in
                guard let found = answer.topics.first, found.errorCode == 0, !found.partitions.isEmpty else { return self.loop.makeSucceededFuture(()) }
                let leaders = Self.leaders(of: found)
                let index = Partitioner.partition(forKey: Array(clientID.utf8), count: Int32(leaders.count))
                let leader = leaders[Int(index)]
                guard leader.value >= 0 else { return self.loop.makeSucceededFuture(()) }
                let request = ListOffsetsRequest(replicaId: NodeID(-1), isolationLevel: 1,
                                                 topics: [.init(name: topic, partitions: [.init(partitionIndex: index, timestamp: -1)])])
                return self.send(request, version: 7, to: leader, scope: self.scope).flatMap { offsets in
                    guard let end = offsets.topics.first?.partitions.first, end.errorCode == 0 else { return self.loop.makeSucceededFuture(()) }
                    let state = self.router.value
                    if state.positions[topic]?[index] == nil { state.refreshSoon = true }
                    return self.waitForRouter(topic, index, at: end.offset, deadline: deadline)
                }
            }
        }.recover { _ in }
    }

    private func waitForRouter(_ topic: String, _ index: Int32, at offset: Offset, deadline: NIODeadline) -> EventLoopFuture<Void> {
        if let position = router.value.positions[topic]?[index], position >= offset { return loop.makeSucceededFuture(()) }
        guard NIODeadline.now() < deadline else { return loop.makeSucceededFuture(()) }
        return loop.scheduleTask(in: .milliseconds(10)) {}.futureResult.flatMap { self.waitForRouter(topic, index, at: offset, deadline: deadline) }
    }

    /// How long a broker stays fenced or out of the cluster before its sessions are taken up.
    static let orphanedAfter = TimeAmount.seconds(10)

    /// Sessions of a broker that left the cluster (out of its metadata, or fenced for
    /// `orphanedAfter`) move to the leader of their sessions topic partition, which keeps them
    /// without their clients as its own (and writes them so), until their clients come back or
    /// they expire. On the gateway's loop (the router's refresh).
    func adoptOrphanedSessions() {
        guard let image = broker.cluster.current?.image, let leaders = topicLeaders.withLockedValue({ $0[settings.sessionsTopic] }),
              !leaders.isEmpty else { return }
        let state = router.value
        let now = NIODeadline.now()
        let owners = Set(elsewhere.withLockedValue { $0.values.map(\.node) })
        var gone: Set<NodeID> = []
        for owner in owners {
            if let info = image.brokers[owner], !info.fenced {
                state.fencedSince[owner] = nil
                continue
            }
            let since = state.fencedSince[owner] ?? now
            state.fencedSince[owner] = since
            if now - since >= Self.orphanedAfter { gone.insert(owner) }
        }
        guard !gone.isEmpty else { return }
        let count = Int32(leaders.count)
        let orphans = elsewhere.withLockedValue { all in
            let found = all.filter { clientID, other in
                gone.contains(other.node) && leaders[Int(Partitioner.partition(forKey: Array(clientID.utf8), count: count))] == node
            }
            for clientID in found.keys { all[clientID] = nil }
            return found
        }
        let nowMs = broker.clock.now().ms
        for (clientID, orphan) in orphans.sorted(by: { $0.key < $1.key }) {
            leaveSharesElsewhere(clientID)
            if let box = keepOffline(orphan.snapshot, nowMs: nowMs) {
                logger.info("MQTT session of \(clientID) taken up from broker \(orphan.node), which left the cluster")
                saveSession(box, expirySeconds: orphan.snapshot.expirySeconds).whenFailure { error in
                    Self.warnings.warn(self.logger, "MQTT session \(clientID) taken up but not saved: \(error)")
                }
            } else {
                release(clientID)
            }
        }
    }

    // MARK: shared subscriptions

    /// The shared subscriptions of sessions other nodes have (as subscribed, `$share/GROUP/FILTER`):
    /// their client ids. A share group's members are this node's and these.
    func joinSharesElsewhere(_ clientID: String, _ snapshot: MQTTSession.Snapshot) {
        let keys = snapshot.subscriptions.map(\.key).filter { $0.hasPrefix("$share/") }
        sharesElsewhere.withLockedValue { all in
            for key in keys { all[key, default: []].insert(clientID) }
        }
    }

    func leaveSharesElsewhere(_ clientID: String) {
        sharesElsewhere.withLockedValue { all in
            for key in all.keys where all[key]?.contains(clientID) == true {
                all[key]?.remove(clientID)
                if all[key]?.isEmpty == true { all[key] = nil }
            }
        }
    }

    /// A restored session's shared subscriptions, joined to their groups.
    func joinShares(of session: MQTTSession) {
        for (key, subscription) in session.subscriptions {
            if let group = subscription.shareGroup { joinShare(key, group: group, filter: subscription.filter, clientID: session.clientID) }
        }
    }

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

    /// Keeps (or, for an empty payload, drops) `message` as its topic's retained message.
    func keepRetained(_ message: MQTTSession.Message) {
        let now = broker.clock.now().ms
        guard !retained.withLockedValue({ $0.set(message, nowMs: now) }) else { return }
        Self.warnings.warn(logger, "retained message on \(message.topic) not kept: \(settings.retainedMessagesMax) retained messages or \(settings.retainedBytesMax) bytes (mqtt.max.retained.messages, mqtt.max.retained.bytes)")
    }

    func setRetained(_ publish: MQTTPublish, clientID: String) {
        keepRetained(MQTTSession.Message(topic: publish.topic, payload: publish.payload, qos: publish.qos, retain: true,
                                         publisher: clientID, properties: publish.properties))
    }

    /// Retained messages whose topic `filter` matches, `limit` at most.
    func retainedMessages(matching filter: String, limit: Int) -> [MQTTSession.Message] {
        let now = broker.clock.now().ms
        return retained.withLockedValue { $0.matching(filter, limit: limit, nowMs: now) }
    }
}

