import BrookCore
import BrookProtocol

/// Where replicas live: partition moves between brokers (KIP-455, at the controller through any
/// broker), replicas' log directories on a broker (KIP-113, at that broker) and the removal of a
/// stopped broker's registration (UnregisterBroker).
extension KafkaAdmin {
    /// A partition move under way.
    public struct PartitionReassignment: Sendable, Equatable {
        /// Every replica of the partition while it moves (the old and the new).
        public var replicas: [NodeID]
        public var adding: [NodeID]
        public var removing: [NodeID]
    }

    /// Starts moves of partitions to the replicas given, in that order (nil: cancels the
    /// partition's move); each partition's outcome (nil: accepted).
    public func alterPartitionReassignments(_ moves: [TopicPartition: [NodeID]?]) async throws -> [TopicPartition: KafkaError?] {
        guard !moves.isEmpty else { return [:] }
        let byTopic = Dictionary(grouping: moves.keys, by: \.topic)
        let request = AlterPartitionReassignmentsRequest(
            timeoutMs: Int32(clamping: config.requestTimeoutMs),
            topics: byTopic.keys.sorted().map { topic in
                .init(name: topic, partitions: byTopic[topic]!.sorted().map { .init(partitionIndex: $0.partition, replicas: moves[$0]!) })
            })
        let answer = try await retrying("reassign partitions") { try await self.sendToController(request) }
        try Self.check(answer.errorCode, answer.errorMessage, "reassign partitions")
        var out: [TopicPartition: KafkaError?] = [:]
        for topic in answer.responses {
            for p in topic.partitions {
                let code = ErrorCode(rawValue: p.errorCode)
                out[TopicPartition(topic.name, p.partitionIndex)] = code == .none ? nil : KafkaError(code, p.errorMessage ?? "")
            }
        }
        return out
    }

    /// The moves under way (`partitions`: only these; nil: every one).
    public func listPartitionReassignments(_ partitions: [TopicPartition]? = nil) async throws -> [TopicPartition: PartitionReassignment] {
        let byTopic = Dictionary(grouping: partitions ?? [], by: \.topic)
        let request = ListPartitionReassignmentsRequest(
            timeoutMs: Int32(clamping: config.requestTimeoutMs),
            topics: partitions.map { _ in byTopic.keys.sorted().map { .init(name: $0, partitionIndexes: byTopic[$0]!.map(\.partition).sorted()) } })
        let answer = try await retrying("list partition reassignments") { try await self.sendToController(request) }
        try Self.check(answer.errorCode, answer.errorMessage, "list partition reassignments")
        var out: [TopicPartition: PartitionReassignment] = [:]
        for topic in answer.topics {
            for p in topic.partitions {
                out[TopicPartition(topic.name, p.partitionIndex)] = PartitionReassignment(
                    replicas: p.replicas, adding: p.addingReplicas, removing: p.removingReplicas)
            }
        }
        return out
    }

    /// One log directory of a broker and the replicas in it.
    public struct LogDirDescription: Sendable, Equatable {
        public struct Replica: Sendable, Equatable {
            public var partition: TopicPartition
            public var sizeBytes: Int64
            public var offsetLag: Int64
            /// A move's copy catching up here, not yet the replica itself.
            public var isFuture: Bool
        }

        public var path: String
        /// Why the directory cannot be used (KAFKA_STORAGE_ERROR for a failed disk), or nil.
        public var error: ErrorCode?
        /// -1 when the broker does not say.
        public var totalBytes: Int64
        public var usableBytes: Int64
        public var replicas: [Replica]
    }

    /// `broker`'s log directories (nil: the first bootstrap broker that answers).
    public func describeLogDirs(broker: NodeID? = nil) async throws -> [LogDirDescription] {
        let answer = try await retrying("describe log dirs") {
            try await self.send(DescribeLogDirsRequest(topics: nil), to: broker)
        }
        try Self.check(answer.errorCode, nil, "describe log dirs")
        return answer.results.map { dir in
            LogDirDescription(
                path: dir.logDir, error: dir.errorCode == 0 ? nil : ErrorCode(rawValue: dir.errorCode),
                totalBytes: dir.totalBytes, usableBytes: dir.usableBytes,
                replicas: dir.topics.flatMap { topic in
                    topic.partitions.map { p in
                        LogDirDescription.Replica(partition: TopicPartition(topic.name, p.partitionIndex), sizeBytes: p.partitionSize,
                                                  offsetLag: p.offsetLag, isFuture: p.isFutureKey)
                    }
                }.sorted { $0.partition < $1.partition })
        }
    }

    /// Moves `broker`'s replicas to other log directories of that broker (nil: the first
    /// bootstrap broker that answers); each replica's outcome (nil: moving, or already there).
    public func alterReplicaLogDirs(_ moves: [TopicPartition: String], broker: NodeID? = nil) async throws -> [TopicPartition: KafkaError?] {
        guard !moves.isEmpty else { return [:] }
        let byDir = Dictionary(grouping: moves.keys, by: { moves[$0]! })
        let request = AlterReplicaLogDirsRequest(dirs: byDir.keys.sorted().map { dir in
            let byTopic = Dictionary(grouping: byDir[dir]!, by: \.topic)
            return .init(path: dir, topics: byTopic.keys.sorted().map { .init(name: $0, partitions: byTopic[$0]!.map(\.partition).sorted()) })
        })
        let answer = try await retrying("move replicas between log dirs") { try await self.send(request, to: broker) }
        var out: [TopicPartition: KafkaError?] = [:]
        for topic in answer.results {
            for p in topic.partitions {
                let code = ErrorCode(rawValue: p.errorCode)
                out[TopicPartition(topic.topicName, p.partitionIndex)] = code == .none ? nil : KafkaError(code, "\(topic.topicName)-\(p.partitionIndex)")
            }
        }
        return out
    }

    /// Removes a stopped broker's registration (its replicas stay listed, offline, until moved).
    public func unregisterBroker(_ id: NodeID) async throws {
        let answer = try await retrying("unregister broker \(id)") { try await self.send(UnregisterBrokerRequest(brokerId: id), to: nil) }
        try Self.check(answer.errorCode, answer.errorMessage, "unregister broker \(id)")
    }

    /// `request` to `broker`, or to the first bootstrap broker that answers.
    func send<R: KafkaRequest>(_ request: R, to broker: NodeID?) async throws -> R.Response {
        if let broker { return try await cluster.send(request, toNode: broker, timeoutMs: config.requestTimeoutMs) }
        return try await cluster.sendToAny(request, timeoutMs: config.requestTimeoutMs)
    }
}
