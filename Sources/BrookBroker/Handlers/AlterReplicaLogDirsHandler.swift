import BrookProtocol

/// AlterReplicaLogDirs: moves replicas this broker holds to another of its `log.dirs`
/// (TopicRegistry.moveReplica: the replica is out while its files are copied). Answered at
/// once, as Kafka does; the move runs after (DescribeLogDirs shows where each replica is). A
/// path that is not one of `log.dirs` gets LOG_DIR_NOT_FOUND, a failed dir KAFKA_STORAGE_ERROR,
/// a replica this broker does not hold REPLICA_NOT_AVAILABLE. A single node does not move its
/// `__consumer_offsets` and `__transaction_state` partitions (its coordinators read them
/// throughout; INVALID_REQUEST); in a cluster their coordinators stop during the move.
struct AlterReplicaLogDirsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 1...2

    func handle(_ request: AlterReplicaLogDirsRequest, version: Int16, context: RequestContext) -> Reply<AlterReplicaLogDirsResponse> {
        let broker = context.broker
        let topics = broker.topics
        var order: [String] = []
        var results: [String: [AlterReplicaLogDirsResponse.AlterReplicaLogDirTopicResult.AlterReplicaLogDirPartitionResult]] = [:]
        for entry in request.dirs {
            let dir = topics.configuredLogDir(entry.path)
            for topic in entry.topics {
                if results[topic.name] == nil { order.append(topic.name) }
                for index in topic.partitions {
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
            return .replicaNotAvailable
        case .hosted(let partition):
            guard partition.logDirectory != dir + "/\(name)-\(index)" else { return .none }
            if broker.cluster.moveReplica(name, index, to: dir) { return .none }
            guard name != GroupService.offsetsTopic, name != TxnService.stateTopic else { return .invalidRequest }
            let logger = broker.logger
            topics.moves.async {
                do throws(TopicError) { _ = try topics.moveReplica(name: name, index: index, to: dir) } catch {
                    logger.error("cannot move the replica of \(name)-\(index) to \(dir): \(error)")
                }
            }
            return .none
        }
    }
}
