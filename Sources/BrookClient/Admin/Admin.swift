import BrookCore
import BrookProtocol

/// Kafka's admin operations over a ``ClusterClient``: the cluster, topics and partitions, configs,
/// offsets and records, consumer groups, ACLs and SCRAM users, with any Kafka-compatible broker.
///
/// Each call is tried again after a passing failure (a lost connection, a controller or
/// coordinator that moved, a leader being elected) until `default.api.timeout.ms`; a refusal is
/// thrown as a ``KafkaError`` with Kafka's code. A call on several resources (topics, partitions,
/// groups) sends them together and throws the first refusal, in the order they were given, once
/// every answer is in: the others were done.
public actor KafkaAdmin {
    public nonisolated let config: AdminConfig
    let cluster: ClusterClient

    /// An admin client whose connections are opened by `connect` (with TLS or SASL as the
    /// caller wants them).
    public init(_ config: AdminConfig, connect: @escaping ClusterClient.Connect) {
        self.config = config
        cluster = ClusterClient(bootstrap: config.bootstrapServers, requestTimeoutMs: config.requestTimeoutMs, connect: connect)
    }

    /// An admin client over plain connections, or with `sasl` and `tls` when given.
    public init(_ config: AdminConfig, sasl: SaslCredentials? = nil, tls: ClientTLS? = nil) {
        let clientID = config.clientID
        self.init(config) { address in
            try await BrokerConnection.connect(address, clientID: clientID, sasl: sasl, tls: tls)
        }
    }

    /// An admin client that shares `cluster`'s connections.
    public init(_ config: AdminConfig, cluster: ClusterClient) {
        self.config = config
        self.cluster = cluster
    }

    public func close() async { await cluster.close() }

    // MARK: The cluster

    public func describeCluster() async throws -> ClusterDescription {
        try await retrying("describe the cluster") {
            if try await self.cluster.supports(DescribeClusterRequest.self) {
                let answer = try await self.cluster.sendToAny(DescribeClusterRequest(), timeoutMs: self.config.requestTimeoutMs)
                try Self.check(answer.errorCode, answer.errorMessage, "describe the cluster")
                return ClusterDescription(clusterID: answer.clusterId, controller: answer.controllerId, brokers: answer.brokers.map {
                    BrokerDescription(id: $0.brokerId, host: $0.host, port: $0.port, rack: $0.rack, fenced: $0.isFenced)
                }.sorted { $0.id < $1.id })
            }
            // Brokers without DescribeCluster (before Kafka 2.8): Metadata has the same.
            let answer = try await self.cluster.metadata(topics: [])
            return ClusterDescription(clusterID: answer.clusterId ?? "", controller: answer.controllerId, brokers: answer.brokers.map {
                BrokerDescription(id: $0.nodeId, host: $0.host, port: $0.port, rack: $0.rack, fenced: false)
            }.sorted { $0.id < $1.id })
        }
    }

    /// The metadata quorum: its leader, epoch and high watermark, the voters and observers
    /// (Kafka's describeMetadataQuorum; a KRaft broker forwards it to the quorum's leader).
    public func describeMetadataQuorum() async throws -> QuorumInfo {
        try await retrying("describe the metadata quorum") {
            let request = DescribeQuorumRequest(topics: [.init(topicName: "__cluster_metadata", partitions: [.init(partitionIndex: 0)])])
            let answer = try await self.cluster.sendToAny(request, timeoutMs: self.config.requestTimeoutMs)
            try Self.check(answer.errorCode, answer.errorMessage, "describe the metadata quorum")
            guard let partition = answer.topics.first?.partitions.first else {
                throw KafkaError(.unknownServerError, "describe the metadata quorum: the answer has no partition")
            }
            try Self.check(partition.errorCode, partition.errorMessage, "describe the metadata quorum")
            func replica(_ r: DescribeQuorumResponse.ReplicaState) -> QuorumInfo.Replica {
                QuorumInfo.Replica(id: r.replicaId, logEndOffset: r.logEndOffset,
                                   lastFetchTimestampMs: r.lastFetchTimestamp >= 0 ? r.lastFetchTimestamp : nil,
                                   lastCaughtUpTimestampMs: r.lastCaughtUpTimestamp >= 0 ? r.lastCaughtUpTimestamp : nil)
            }
            var nodes: [NodeID: [QuorumInfo.Endpoint]] = [:]
            for node in answer.nodes {
                nodes[node.nodeId] = node.listeners.map { QuorumInfo.Endpoint(listener: $0.name, host: $0.host, port: Int($0.port)) }
            }
            return QuorumInfo(leaderID: partition.leaderId, leaderEpoch: partition.leaderEpoch, highWatermark: partition.highWatermark,
                              voters: partition.currentVoters.map(replica), observers: partition.observers.map(replica), nodes: nodes)
        }
    }

    // MARK: Topics

    public func listTopics(includeInternal: Bool = false) async throws -> [TopicListing] {
        try await retrying("list topics") {
            let answer = try await self.cluster.metadata(topics: nil)
            return answer.topics.compactMap { topic -> TopicListing? in
                guard topic.errorCode == 0, let name = topic.name, includeInternal || !topic.isInternal else { return nil }
                return TopicListing(name: name, id: topic.topicId, isInternal: topic.isInternal)
            }.sorted { $0.name < $1.name }
        }
    }

    /// Topics' partitions, leaders, replicas, in-sync and eligible leader replicas, in the order
    /// asked (an empty list: every topic). A topic that does not exist is an error
    /// (UNKNOWN_TOPIC_OR_PARTITION). From DescribeTopicPartitions, page by page, where the
    /// broker has it (Kafka 3.7+, as Java's admin client); else from Metadata (no ELR then).
    public func describeTopics(_ names: [String] = []) async throws -> [TopicDescription] {
        try await retrying("describe topics") {
            let (found, refused) = try await self.cluster.supports(DescribeTopicPartitionsRequest.self)
                ? try await self.describedInPages(names) : try await self.describedByMetadata(names)
            guard !names.isEmpty else { return found.values.sorted { $0.name < $1.name } }
            return try names.map { name in
                if let topic = found[name] { return topic }
                throw KafkaError(refused[name] ?? .unknownTopicOrPartition, "describe topic \(name)")
            }
        }
    }

    /// The most pages one description follows: a broker's limit is at least one partition a
    /// page, and a cluster has far fewer partitions than this many pages hold.
    static let describePagesMax = 100_000
    /// The partitions a page asks for (Kafka's default; the broker may give fewer).
    static let describePagePartitions: Int32 = 2000

    typealias Described = (found: [String: TopicDescription], refused: [String: ErrorCode])

    func describedInPages(_ names: [String]) async throws -> Described {
        var found: [String: TopicDescription] = [:]
        var refused: [String: ErrorCode] = [:]
        var cursor: DescribeTopicPartitionsRequest.Cursor? = nil
        var pages = 0
        let deadline = ContinuousClock.now + .milliseconds(config.apiTimeoutMs)
        repeat {
            guard pages < Self.describePagesMax, ContinuousClock.now < deadline else {
                throw KafkaError(.requestTimedOut, "describe topics: \(pages) pages and not done")
            }
            let request = DescribeTopicPartitionsRequest(topics: names.map { .init(name: $0) }, responsePartitionLimit: Self.describePagePartitions,
                                                         cursor: cursor)
            let answer = try await cluster.sendToAny(request, timeoutMs: config.requestTimeoutMs)
            for topic in answer.topics {
                guard let name = topic.name else { continue }
                guard topic.errorCode == 0 else {
                    refused[name] = ErrorCode(rawValue: topic.errorCode)
                    continue
                }
                let partitions = topic.partitions.map {
                    PartitionDescription(partition: $0.partitionIndex, leader: $0.leaderId, leaderEpoch: $0.leaderEpoch,
                                         replicas: $0.replicaNodes, isr: $0.isrNodes, offline: $0.offlineReplicas,
                                         elr: $0.eligibleLeaderReplicas ?? [], lastKnownElr: $0.lastKnownElr ?? [])
                }
                // A topic cut by a page goes on in the next one.
                found[name, default: TopicDescription(name: name, id: topic.topicId, isInternal: topic.isInternal, partitions: [])]
                    .partitions += partitions
            }
            let next = answer.nextCursor.map { DescribeTopicPartitionsRequest.Cursor(topicName: $0.topicName, partitionIndex: $0.partitionIndex) }
            if let next, let cursor, (next.topicName, next.partitionIndex) <= (cursor.topicName, cursor.partitionIndex) {
                throw KafkaError(.unknownServerError, "describe topics: the broker's next page (\(next.topicName) \(next.partitionIndex)) does not move on")
            }
            cursor = next
            pages += 1
        } while cursor != nil
        for (name, topic) in found {
            // In partition order, once each (pages may come from brokers whose images differ).
            var once = Set<Int32>()
            found[name]?.partitions = topic.partitions.sorted { $0.partition < $1.partition }.filter { once.insert($0.partition).inserted }
        }
        return (found, refused)
    }

    func describedByMetadata(_ names: [String]) async throws -> Described {
        let answer = try await cluster.metadata(topics: names.isEmpty ? nil : names)
        var found: [String: TopicDescription] = [:]
        var refused: [String: ErrorCode] = [:]
        for topic in answer.topics {
            guard let name = topic.name else { continue }
            guard topic.errorCode == 0 else {
                refused[name] = ErrorCode(rawValue: topic.errorCode)
                continue
            }
            found[name] = TopicDescription(name: name, id: topic.topicId, isInternal: topic.isInternal, partitions: topic.partitions.map {
                PartitionDescription(partition: $0.partitionIndex, leader: $0.leaderId, leaderEpoch: $0.leaderEpoch,
                                     replicas: $0.replicaNodes, isr: $0.isrNodes, offline: $0.offlineReplicas)
            }.sorted { $0.partition < $1.partition })
        }
        return (found, refused)
    }

    /// Creates `topics` (with `validateOnly`, only checks that the controller would).
    public func createTopics(_ topics: [NewTopic], validateOnly: Bool = false) async throws {
        guard !topics.isEmpty else { return }
        let byName = Dictionary(topics.map { ($0.name, $0) }) { _, last in last }
        try await eachOnce("create topics", names: topics.map(\.name), doneWhenSentAgain: .topicAlreadyExists) { names in
            let request = CreateTopicsRequest(topics: names.compactMap { byName[$0] }.map { topic in
            .init(name: topic.name, numPartitions: topic.replicaAssignment.isEmpty ? topic.partitions : -1,
                  replicationFactor: topic.replicaAssignment.isEmpty ? topic.replicationFactor : -1,
                  assignments: topic.replicaAssignment.sorted { $0.key < $1.key }.map { .init(partitionIndex: $0.key, brokerIds: $0.value) },
                  configs: topic.configs.sorted { $0.key < $1.key }.map { .init(name: $0.key, value: $0.value) })
            }, timeoutMs: Int32(clamping: self.config.requestTimeoutMs), validateOnly: validateOnly)
            let answer = try await self.sendToController(request)
            return answer.topics.map { ($0.name, $0.errorCode, $0.errorMessage) }
        }
    }

    public func deleteTopics(_ names: [String]) async throws {
        guard !names.isEmpty else { return }
        try await eachOnce("delete topics", names: names, doneWhenSentAgain: .unknownTopicOrPartition) { names in
            // Both shapes: the version negotiated picks names (before v6) or topics.
            let request = DeleteTopicsRequest(topics: names.map { .init(name: $0) }, topicNames: names,
                                              timeoutMs: Int32(clamping: self.config.requestTimeoutMs))
            let answer = try await self.sendToController(request)
            return answer.responses.map { ($0.name ?? "", $0.errorCode, $0.errorMessage) }
        }
    }

    /// Raises topics' partition counts to the counts given.
    public func createPartitions(_ counts: [String: Int32], validateOnly: Bool = false) async throws {
        guard !counts.isEmpty else { return }
        try await eachOnce("create partitions", names: counts.keys.sorted()) { names in
            let request = CreatePartitionsRequest(topics: names.map { .init(name: $0, count: counts[$0]!) },
                                                  timeoutMs: Int32(clamping: self.config.requestTimeoutMs), validateOnly: validateOnly)
            let answer = try await self.sendToController(request)
            return answer.results.map { ($0.name, $0.errorCode, $0.errorMessage) }
        }
    }

    // MARK: Configs

    /// A resource's configs with their sources (`keys`: only these).
    public func describeConfigs(_ resource: ConfigResource, keys: [String]? = nil) async throws -> [ConfigEntry] {
        try await describeConfigs([resource], keys: keys)[resource] ?? []
    }

    /// Several resources' configs at once (one request per broker that must answer: a broker's
    /// own configs come from it, the rest from any broker).
    public func describeConfigs(_ resources: [ConfigResource], keys: [String]? = nil) async throws -> [ConfigResource: [ConfigEntry]] {
        var out: [ConfigResource: [ConfigEntry]] = [:]
        for (node, group) in Dictionary(grouping: resources, by: \.answeredBy) {
            let request = DescribeConfigsRequest(resources: group.map { .init(resourceType: $0.wire.type, resourceName: $0.wire.name, configurationKeys: keys) })
            let answer = try await retrying("describe configs") {
                if let node { return try await self.cluster.send(request, toNode: node, timeoutMs: self.config.requestTimeoutMs) }
                return try await self.cluster.sendToAny(request, timeoutMs: self.config.requestTimeoutMs)
            }
            for resource in group {
                let wire = resource.wire
                guard let result = answer.results.first(where: { $0.resourceType == wire.type && $0.resourceName == wire.name }) else {
                    throw KafkaError(nil, "describe configs of \(resource): no answer for it")
                }
                try Self.check(result.errorCode, result.errorMessage, "describe configs of \(resource)")
                out[resource] = result.configs.map {
                    ConfigEntry(name: $0.name, value: $0.value, source: ConfigSource(rawValue: $0.configSource) ?? .unknown,
                                isReadOnly: $0.readOnly, isSensitive: $0.isSensitive)
                }
            }
        }
        return out
    }

    /// Sets (`set`) and returns to their defaults (`delete`) a resource's configs, leaving the
    /// others as they are (IncrementalAlterConfigs).
    public func alterConfigs(_ resource: ConfigResource, set: [String: String] = [:], delete: [String] = [],
                             validateOnly: Bool = false) async throws {
        guard !set.isEmpty || !delete.isEmpty else { return }
        let configs = set.sorted { $0.key < $1.key }.map { IncrementalAlterConfigsRequest.AlterConfigsResource.AlterableConfig(name: $0.key, configOperation: 0, value: $0.value) }
            + delete.map { .init(name: $0, configOperation: 1, value: nil) }
        let request = IncrementalAlterConfigsRequest(resources: [.init(resourceType: resource.wire.type, resourceName: resource.wire.name, configs: configs)],
                                                     validateOnly: validateOnly)
        let answer = try await retrying("alter configs of \(resource)") {
            if let node = resource.answeredBy { return try await self.cluster.send(request, toNode: node, timeoutMs: self.config.requestTimeoutMs) }
            return try await self.cluster.sendToAny(request, timeoutMs: self.config.requestTimeoutMs)
        }
        for result in answer.responses { try Self.check(result.errorCode, result.errorMessage, "alter configs of \(resource)") }
    }

    // MARK: Calls and their failures

    /// Runs `body` until it succeeds, it fails for good, or `default.api.timeout.ms` has passed.
    func retrying<T: Sendable>(_ what: String, _ body: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + .milliseconds(config.apiTimeoutMs)
        while true {
            do {
                return try await body()
            } catch let error as KafkaError where !Self.passing.contains(error.code ?? .none) {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                guard ContinuousClock.now < deadline else { throw KafkaError(.requestTimedOut, "\(what): \(error)") }
                try await Task.sleep(for: .milliseconds(config.backoffMs))
            }
        }
    }

    /// Refusals that pass: the call is tried again.
    static let passing: Set<ErrorCode> = [.notController, .requestTimedOut, .leaderNotAvailable, .notLeaderOrFollower,
                                          .coordinatorNotAvailable, .notCoordinator, .coordinatorLoadInProgress, .fencedLeaderEpoch]

    /// A call on named resources (`send` sends it for the names given and returns each one's
    /// code): the names refused for a passing reason are sent again, alone, until
    /// `default.api.timeout.ms`; then the first lasting refusal, in the order of `names`, is
    /// thrown.
    /// A call that is not idempotent names the code a name sent again gets when the first
    /// sending was done after all (its answer lost): TOPIC_ALREADY_EXISTS for a creation.
    func eachOnce(_ what: String, names: [String], doneWhenSentAgain: ErrorCode? = nil,
                  _ send: ([String]) async throws -> [(String, Int16, String?)]) async throws {
        let deadline = ContinuousClock.now + .milliseconds(config.apiTimeoutMs)
        var results: [String: (Int16, String?)] = [:]
        var pending = names
        var sent: Set<String> = []
        var sentEarlier: Set<String> = []
        while !pending.isEmpty {
            let answered = try await retrying(what) {
                // Names sent before this attempt (whose first sending may have been done).
                sentEarlier = sent
                sent.formUnion(pending)
                return try await send(pending)
            }
            for (name, code, message) in answered {
                let done = sentEarlier.contains(name) && doneWhenSentAgain.map { ErrorCode(rawValue: code) == $0 } == true
                results[name] = done ? (0, nil) : (code, message)
            }
            let again = pending.filter { results[$0].map { Self.passing.contains(ErrorCode(rawValue: $0.0)) } ?? true }
            guard !again.isEmpty, ContinuousClock.now < deadline else { break }
            pending = again
            try await Task.sleep(for: .milliseconds(config.backoffMs))
        }
        for name in names {
            guard let (code, message) = results[name] else { throw KafkaError(nil, "\(what): no answer for \(name)") }
            try Self.check(code, message, "\(what): \(name)")
        }
    }

    /// Sends `request` to the controller the metadata names (the one Kafka's ZooKeeper-mode
    /// brokers take topic changes at; KRaft brokers take them anywhere), else to any broker;
    /// `checkVersion` may refuse the version agreed with it (by throwing) before it is sent.
    func sendToController<R: KafkaRequest>(_ request: R, checkVersion: @escaping @Sendable (Int16) throws -> Void = { _ in }) async throws -> R.Response {
        let meta = try await cluster.metadata(topics: [])
        let timeoutMs = config.requestTimeoutMs
        let send: @Sendable (BrokerConnection) async throws -> R.Response = { connection in
            let version = try connection.version(for: R.self)
            try checkVersion(version)
            return try await connection.send(request, version: version, timeoutMs: timeoutMs)
        }
        if meta.controllerId.value >= 0, meta.brokers.contains(where: { $0.nodeId == meta.controllerId }) {
            return try await cluster.using(try await cluster.address(of: meta.controllerId), send)
        }
        return try await cluster.usingAny(R.apiName, send)
    }

    static func check(_ code: Int16, _ message: String?, _ what: String) throws {
        guard code != 0 else { return }
        throw KafkaError(ErrorCode(rawValue: code), message.map { "\(what): \($0)" } ?? what)
    }
}

extension ConfigResource {
    /// The broker that must answer for the resource (its own configs), or nil for any.
    var answeredBy: NodeID? {
        if case .broker(let id) = self { return id }
        return nil
    }
}
