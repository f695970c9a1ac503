import BrookCore
import BrookProtocol

/// AlterReplicaLogDirs: moves replicas this broker holds to another of its `log.dirs`
/// (ReplicaDirMoves: a copy catches up while the replica serves, then takes its place).
/// Answered at once, as Kafka does; the move runs after (DescribeLogDirs shows the copy as the
/// future replica meanwhile). Naming the replica's current dir cancels a move under way; naming
/// another dir replaces it. A path that is not one of `log.dirs` gets LOG_DIR_NOT_FOUND, a
/// failed dir KAFKA_STORAGE_ERROR, a replica this broker does not hold REPLICA_NOT_AVAILABLE. A
/// single node does not move its `__consumer_offsets` and `__transaction_state` partitions (its
/// coordinators write them throughout; INVALID_REQUEST); in a cluster their coordinators stop
/// for the swap.
struct AlterReplicaLogDirsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 1...2

    func handle(_ request: AlterReplicaLogDirsRequest, version: Int16, context: RequestContext) -> Reply<AlterReplicaLogDirsResponse> {
        let broker = context.broker
        var order: [String] = []
        var results: [String: [AlterReplicaLogDirsResponse.AlterReplicaLogDirTopicResult.AlterReplicaLogDirPartitionResult]] = [:]
        for entry in request.dirs.prefix(Limits.partitionsPerRequestMax) {
            let dir = broker.topics.configuredLogDir(entry.path)
            for topic in entry.topics {
                if results[topic.name] == nil { order.append(topic.name) }
                for index in topic.partitions.prefix(Limits.partitionsPerRequestMax) {
                    let code = Self.move(topic.name, index, to: dir, broker: broker)
                    results[topic.name, default: []].append(.init(partitionIndex: index, errorCode: code.rawValue))
                }
            }
        }
        return .now(AlterReplicaLogDirsResponse(throttleTimeMs: 0, results: order.map { .init(topicName: $0, partitions: results[$0]!) }))
    }

    static func move(_ name: String, _ index: Int32, to dir: String?, broker: Broker) -> ErrorCode {
        let topics = broker.topics
        guard let dir else { return .logDirNotFound }
        guard !topics.health.failedDirectories.contains(dir) else { return .kafkaStorageError }
        switch topics.lookup(name, index) {
        case .unknown:
            return .unknownTopicOrPartition
        case .elsewhere:
            // Offline with a failed dir: Kafka's answer for a replica it cannot reach on disk.
            return topics.health.isOffline(name, index) ? .kafkaStorageError : .replicaNotAvailable
        case .hosted(let partition):
            let base = partition.name
            guard partition.logDirectory != dir + "/" + base else {
                topics.moves.cancel(base)
                return .none
            }
            let clustered = broker.cluster.canMoveReplicas
            guard clustered || (name != GroupService.offsetsTopic && name != TxnService.stateTopic) else { return .invalidRequest }
            guard let ticket = topics.moves.request(base, to: dir) else { return .none }
            let logger = broker.logger
            topics.moves.queue.async {
                guard topics.moves.isCurrent(base, ticket) else { return }
                defer { topics.moves.finished(base, ticket) }
                if clustered {
                    broker.cluster.moveReplica(name, index, to: dir, ticket: ticket)
                    return
                }
                do throws(TopicError) {
                    guard let prepared = try topics.copyForMove(name: name, index: index, to: dir, proceed: { topics.moves.isCurrent(base, ticket) })
                    else { return }
                    if let error = topics.completeMove(prepared).error { throw error }
                } catch {
                    logger.error("cannot move the replica of \(base) to \(dir): \(error)")
                }
            }
            return .none
        }
    }

    func refused(_ request: AlterReplicaLogDirsRequest, version: Int16, code: ErrorCode, message: String) -> AlterReplicaLogDirsResponse? {
        var order: [String] = []
        var results: [String: [AlterReplicaLogDirsResponse.AlterReplicaLogDirTopicResult.AlterReplicaLogDirPartitionResult]] = [:]
        for topic in request.dirs.prefix(Limits.partitionsPerRequestMax).flatMap(\.topics) {
            if results[topic.name] == nil { order.append(topic.name) }
            results[topic.name, default: []] += topic.partitions.prefix(Limits.partitionsPerRequestMax).map { .init(partitionIndex: $0, errorCode: code.rawValue) }
        }
        return AlterReplicaLogDirsResponse(results: order.map { .init(topicName: $0, partitions: results[$0]!) })
    }
}
