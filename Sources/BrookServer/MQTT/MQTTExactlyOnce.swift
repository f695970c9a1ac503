import BrookBroker
import BrookClient
import BrookCore
import BrookMQTT
import BrookProtocol
import BrookRecords
import NIOCore

/// QoS 2 messages through each session's idempotent producer (`ExactlyOnceWrites`): sequences
/// given in the order the client sent them, and a restored session held against what its
/// producers wrote before it serves its client.
extension MQTTGateway {
    /// A QoS 2 message of a write, before its sequence.
    struct ExactlyOnceMessage {
        var packetID: UInt16
        var topic: String
        var record: SimpleRecord
    }

    /// How many partitions `topic` had when its leaders were last looked up (nil: not known).
    func knownPartitionCount(_ topic: String) -> Int? {
        topicLeaders.withLockedValue { $0[topic]?.count }
    }

    /// The partition of `topic` a record with `key` goes to, when the topic's partitions are known.
    func knownTarget(_ topic: String, key: [UInt8]) -> ExactlyOnceWrites.Target? {
        knownPartitionCount(topic).map {
            ExactlyOnceWrites.Target(topic: topic, partition: Partitioner.partition(forKey: key, count: Int32($0)))
        }
    }

    /// Gives `messages` their partitions and their sequences with `box`'s producer (a new one
    /// from the broker when it has none), in the order given.
    func sequence(_ messages: [ExactlyOnceMessage], of box: MQTTSessionBox, scope: ConnectionScope) -> EventLoopFuture<[Outgoing]> {
        let loop = scope.eventLoop
        let topics = Array(Set(messages.map(\.topic))).sorted()
        let lookups = EventLoopFuture.whenAllSucceed(topics.map { partitions(of: $0, scope: scope) }, on: loop)
        return lookups.and(producer(of: box, scope: scope)).flatMapThrowing { found, _ in
            let counts = Dictionary(uniqueKeysWithValues: zip(topics, found.map(\.count)))
            return try box.state.withLockedValue { s throws(MQTTError) -> [Outgoing] in
                guard let producer = s.session.exactlyOnce.producer else {
                    throw MQTTError(.unspecifiedError, "the session's producer was given up meanwhile")
                }
                return messages.map { message in
                    let partition = Partitioner.partition(forKey: message.record.key ?? [], count: Int32(counts[message.topic]!))
                    let target = ExactlyOnceWrites.Target(topic: message.topic, partition: partition)
                    let sequence = s.session.exactlyOnce.assign(message.packetID, to: target)!
                    return Outgoing(topic: message.topic, record: message.record,
                                    sequenced: Sequenced(partition: partition, producer: producer.id, epoch: producer.epoch, sequence: sequence))
                }
            }
        }
    }

    /// Makes sure `box`'s session has a producer: an idempotent producer id from the broker
    /// (InitProducerId without a transactional id, as a Kafka producer gets one), asked again
    /// while the broker has none to give yet (a cluster's block of ids on its way).
    private func producer(of box: MQTTSessionBox, scope: ConnectionScope,
                          deadline: NIODeadline = .now() + MQTTGateway.topicWait) -> EventLoopFuture<Void> {
        let loop = scope.eventLoop
        guard box.state.withLockedValue({ $0.session.exactlyOnce.producer == nil }) else { return loop.makeSucceededVoidFuture() }
        return kafka.send(InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: -1), version: 4, scope: scope).flatMap { answer in
            let code = ErrorCode(rawValue: answer.errorCode)
            guard code == .none else {
                let retriable = code == .coordinatorNotAvailable || code == .notCoordinator || code == .coordinatorLoadInProgress
                guard retriable, NIODeadline.now() < deadline else {
                    return loop.makeFailedFuture(MQTTError(.serverUnavailable, "no producer id for the session's QoS 2 messages: \(code)"))
                }
                return loop.scheduleTask(in: Self.retryBackoff) {}.futureResult.flatMap {
                    self.producer(of: box, scope: scope, deadline: deadline)
                }
            }
            box.state.withLockedValue { s in
                if s.session.exactlyOnce.producer == nil { s.session.exactlyOnce.start(producer: answer.producerId, epoch: answer.producerEpoch) }
            }
            return loop.makeSucceededVoidFuture()
        }
    }

    /// Holds a restored session's record of its QoS 2 writes against the partitions' last
    /// sequences of its producers (DescribeProducers to each partition's leader), before its
    /// client is served: the messages written await their PUBREL, those not written are
    /// forgotten, and those written after the record are taken by the client's resends. Fails
    /// when a partition cannot tell (its client is refused, and comes back).
    func reconcile(_ box: MQTTSessionBox, scope: ConnectionScope) -> EventLoopFuture<Void> {
        let loop = scope.eventLoop
        let (targets, producers) = box.state.withLockedValue { $0.session.exactlyOnce.toReconcile }
        guard !targets.isEmpty else {
            box.state.withLockedValue { $0.session.reconcile(lastSequences: [:]) }
            return loop.makeSucceededVoidFuture()
        }
        let topics = Array(Set(targets.map(\.topic))).sorted()
        let lookups = EventLoopFuture.whenAllSucceed(topics.map { partitions(of: $0, scope: scope) }, on: loop)
        return lookups.flatMap { found in
            let leadersOf = Dictionary(uniqueKeysWithValues: zip(topics, found))
            var byLeader: [NodeID: [String: [Int32]]] = [:]
            for target in targets {
                let leaders = leadersOf[target.topic]!
                let leader = Int(target.partition) < leaders.count ? leaders[Int(target.partition)] : NodeID(-1)
                byLeader[leader, default: [:]][target.topic, default: []].append(target.partition)
            }
            let asked = byLeader.sorted { $0.key < $1.key }.map { leader, partitions in
                let request = DescribeProducersRequest(topics: partitions.sorted { $0.key < $1.key }.map { .init(name: $0.key, partitionIndexes: $0.value) })
                return self.send(request, version: 0, to: leader, scope: scope)
            }
            return EventLoopFuture.whenAllSucceed(asked, on: loop)
        }.flatMapThrowing { answers in
            var last: [Int64: [ExactlyOnceWrites.Target: Int32]] = [:]
            for topic in answers.flatMap(\.topics) {
                for partition in topic.partitions {
                    guard partition.errorCode == 0 else {
                        throw MQTTError(.serverUnavailable, "the session's QoS 2 writes to \(topic.name)-\(partition.partitionIndex) cannot be checked: \(ErrorCode(rawValue: partition.errorCode))")
                    }
                    for producer in partition.activeProducers where producers.contains(producer.producerId.value) && producer.lastSequence >= 0 {
                        last[producer.producerId.value, default: [:]][.init(topic: topic.name, partition: partition.partitionIndex)] = producer.lastSequence
                    }
                }
            }
            box.state.withLockedValue { $0.session.reconcile(lastSequences: last) }
        }
    }
}
