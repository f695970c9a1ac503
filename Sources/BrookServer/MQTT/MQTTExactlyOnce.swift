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

    /// The partition of `topic` a record with `key` goes to, when the topic's partitions are known
    /// (from the last look at its leaders).
    func knownTarget(_ topic: String, key: [UInt8]) -> ExactlyOnceWrites.Target? {
        topicLeaders.withLockedValue { $0[topic]?.count }.map {
            ExactlyOnceWrites.Target(topic: topic, partition: Partitioner.partition(forKey: key, count: Int32($0)))
        }
    }

    /// Gives `messages` their partitions and their sequences with `box`'s producer (a new one
    /// from the broker when it has none), in the order given.
    func sequence(_ messages: [ExactlyOnceMessage], of box: MQTTSessionBox, scope: ConnectionScope) -> EventLoopFuture<[Outgoing]> {
        partitions(of: messages.map(\.topic), scope: scope).and(producer(of: box, scope: scope)).flatMapThrowing { leadersOf, _ in
            try box.state.withLockedValue { s throws(MQTTError) -> [Outgoing] in
                guard let producer = s.session.exactlyOnce.producer else {
                    throw MQTTError(.unspecifiedError, "the session's producer was given up meanwhile")
                }
                var out: [Outgoing] = []
                for message in messages {
                    let count = Int32(leadersOf[message.topic]!.count)
                    let partition = Partitioner.partition(forKey: message.record.key ?? [], count: count)
                    guard let sequence = s.session.exactlyOnce.assign(message.packetID, to: .init(topic: message.topic, partition: partition)) else {
                        throw MQTTError(.packetIdentifierInUse, "packet id \(message.packetID) is still being written (an earlier connection's)")
                    }
                    out.append(Outgoing(topic: message.topic, record: message.record,
                                        sequenced: Sequenced(partition: partition, producer: producer.id, epoch: producer.epoch, sequence: sequence)))
                }
                return out
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
        let (all, producers) = box.state.withLockedValue { $0.session.exactlyOnce.toReconcile }
        // Only partitions of the mapped topics (a record is read from a topic any Kafka client
        // may write to): others are taken as knowing nothing of the producers.
        let mapped = Set(mapping.kafkaTopics)
        let targets = all.filter { mapped.contains($0.topic) && $0.partition >= 0 }
        guard !targets.isEmpty else {
            box.state.withLockedValue { $0.session.reconcile(lastSequences: [:]) }
            return loop.makeSucceededVoidFuture()
        }
        return partitions(of: targets.map(\.topic), scope: scope).flatMap { leadersOf in
            var byLeader: [NodeID: [String: [Int32]]] = [:]
            for target in targets {
                let leader = Self.leader(of: target.partition, in: leadersOf[target.topic]!)
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
