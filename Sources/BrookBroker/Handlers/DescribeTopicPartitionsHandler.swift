import BrookCluster
import BrookCore
import BrookProtocol

/// DescribeTopicPartitions (KIP-966): the named topics, or all of them for an empty list, with
/// their partitions' leaders, replicas, ISR and eligible leader replicas, in name order and a
/// page at a time: at most `ResponsePartitionLimit` partitions (and the broker's
/// `max.request.partition.size.limit`), the next page's first topic and partition in
/// `NextCursor`. As Kafka: a topic the client may not describe is answered
/// TOPIC_AUTHORIZATION_FAILED when named (after the page) and left out of a full list; a cursor
/// whose topic is not among the named ones, or whose partition is negative, makes the request
/// INVALID_REQUEST.
struct DescribeTopicPartitionsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...0

    typealias Response = DescribeTopicPartitionsResponse
    typealias TopicResult = Response.DescribeTopicPartitionsResponseTopic
    typealias PartitionResult = TopicResult.DescribeTopicPartitionsResponsePartition

    /// A topic as a page needs it: its partitions made one at a time, so that a page of a wide
    /// topic costs its own partitions only.
    struct Described {
        var id: KafkaUUID
        var isInternal: Bool
        var count: Int
        var partition: (Int) -> PartitionResult
    }

    func handle(_ request: DescribeTopicPartitionsRequest, version: Int16, context: RequestContext) -> Reply<Response> {
        let broker = context.broker
        let authorization = context.authorization
        let limit = Int(max(1, min(request.responsePartitionLimit, broker.config.maxRequestPartitionSizeLimit)))
        let lookup: (String) -> Described?
        let allNames: () -> [String]
        if broker.cluster.isCluster {
            let image = broker.cluster.current?.image ?? MetadataImage()
            lookup = { name in image.topic(named: name).map { Self.describe($0, image) } }
            allNames = { image.topics.values.map(\.name) }
        } else {
            let node = broker.config.nodeID
            lookup = { name in
                broker.topics.topic(name).map { topic in
                    // By partition number: one whose log dir failed is there, offline.
                    Described(id: topic.id, isInternal: TopicRegistry.isInternal(topic.name), count: topic.partitions.count) { index in
                        let row = topic.singleNodeRow(index, node: node)
                        return PartitionResult(partitionIndex: row.index, leaderId: row.leader, leaderEpoch: row.leaderEpoch, replicaNodes: row.replicas,
                                               isrNodes: row.isr, eligibleLeaderReplicas: [], lastKnownElr: [], offlineReplicas: row.offline)
                    }
                }
            }
            allNames = { broker.topics.allTopics().map(\.name) }
        }
        let response = Self.answer(request, limit: limit, allNames: allNames, lookup: lookup,
                                   mayDescribe: { authorization.mayDescribeTopic($0) },
                                   operations: { AuthorizedOperations.topic($0, authorization) })
        return .now(response)
    }

    /// The answer, free of the broker: `allNames` lists every topic (for an empty list),
    /// `lookup` describes an existing one, `mayDescribe` and `operations` are the authorizer's.
    static func answer(_ request: DescribeTopicPartitionsRequest, limit: Int, allNames: () -> [String],
                       lookup: (String) -> Described?, mayDescribe: (String) -> Bool,
                       operations: (String) -> Int32) -> Response {
        precondition(limit > 0, "a page holds at least one partition")
        let fetchAll = request.topics.isEmpty
        let cursor = request.cursor
        let from = cursor?.topicName ?? ""
        let wanted = Set(fetchAll ? allNames() : request.topics.map(\.name)).filter { $0 >= from }
        if let cursor, cursor.partitionIndex < 0 || (!fetchAll && !wanted.contains(cursor.topicName)) {
            // Kafka refuses the request: every named topic carries the error.
            return Response(topics: request.topics.map {
                TopicResult(errorCode: ErrorCode.invalidRequest.rawValue, name: $0.name)
            })
        }
        var refused: [TopicResult] = []
        var names: [String] = []
        for name in wanted.sorted() {
            if mayDescribe(name) { names.append(name) } else if !fetchAll {
                // Not even whether it exists is said, so no id either.
                refused.append(TopicResult(errorCode: ErrorCode.topicAuthorizationFailed.rawValue, name: name))
            }
        }
        // (The cursor's topic is among `names` only when the client may describe it.)
        let firstIndex = Int(cursor?.partitionIndex ?? 0)
        var response = Response()
        var remaining = limit
        for name in names {
            if remaining == 0 {
                // Every partition of the topics before fitted: the next page starts here.
                response.nextCursor = .init(topicName: name, partitionIndex: 0)
                break
            }
            guard let topic = lookup(name) else {
                guard !fetchAll else { continue }
                let code: ErrorCode = TopicRegistry.validateName(name)?.code ?? .unknownTopicOrPartition
                response.topics.append(TopicResult(errorCode: code.rawValue, name: name, isInternal: TopicRegistry.isInternal(name),
                                                   topicAuthorizedOperations: operations(name)))
                continue
            }
            let start = min(name == cursor?.topicName ? firstIndex : 0, topic.count)
            let end = min(topic.count, start + remaining)
            response.topics.append(TopicResult(errorCode: 0, name: name, topicId: topic.id, isInternal: topic.isInternal,
                                               partitions: (start..<end).map(topic.partition),
                                               topicAuthorizedOperations: operations(name)))
            if end < topic.count {
                response.nextCursor = .init(topicName: name, partitionIndex: Int32(end))
                break
            }
            remaining -= end - start
        }
        response.topics += refused
        return response
    }

    /// A topic of the metadata image: every replica listed; those on fenced or unknown brokers
    /// also as offline; no leader is leader -1 (the partition's error stays 0, as Kafka answers).
    /// Brook keeps no last known ELR, so that list is empty.
    static func describe(_ topic: TopicInfo, _ image: MetadataImage) -> Described {
        let partitions = topic.partitions
        return Described(id: topic.id, isInternal: TopicRegistry.isInternal(topic.name), count: partitions.count) { index in
            let p = partitions[index]
            return PartitionResult(partitionIndex: Int32(index), leaderId: p.leader ?? NodeID(-1), leaderEpoch: p.leaderEpoch,
                                   replicaNodes: p.replicas, isrNodes: p.isr, eligibleLeaderReplicas: p.elr, lastKnownElr: [],
                                   offlineReplicas: image.offlineReplicas(p))
        }
    }
}
