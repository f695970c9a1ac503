import BrookCore
import BrookGroups
import BrookProtocol

/// OffsetFetch: one group (v1-7) or many (v8+). A partition with no committed offset gets -1.
/// With `require_stable` (v7+), a partition whose offset an open transaction holds is answered
/// UNSTABLE_OFFSET_COMMIT, and the client asks again.
struct OffsetFetchHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 1...9

    typealias Partition = OffsetFetchResponse.OffsetFetchResponseTopic.OffsetFetchResponsePartition
    typealias GroupPartition = OffsetFetchResponse.OffsetFetchResponseGroup.OffsetFetchResponseTopics.OffsetFetchResponsePartitions

    /// The group's error, and per topic (in the order asked, or by name) its partitions.
    static func lookup(_ broker: Broker, group: String, topics: [(String, [Int32])]?, memberID: String?, memberEpoch: Int32,
                       requireStable: Bool) -> (ErrorCode, [(String, [(Int32, CommittedOffset?, ErrorCode)])]) {
        let wanted = topics.map { list in list.flatMap { t in t.1.map { TopicPartition(t.0, $0) } } }
        let read = broker.groups.read(coordinating: group) { c in
            let (code, found) = c.fetchOffsets(groupID: group, partitions: wanted, memberID: memberID, memberEpoch: memberEpoch)
            return (code, found.map { tp, offset in
                (tp, offset, requireStable && c.hasPendingTxnOffset(groupID: group, tp) ? ErrorCode.unstableOffsetCommit : .none)
            })
        }
        let code: ErrorCode
        let found: [(TopicPartition, CommittedOffset?, ErrorCode)]
        switch read {
        case .success(let answer): (code, found) = answer
        case .failure(let error): return (error.code, [])
        }
        var order: [String] = []
        var byTopic: [String: [(Int32, CommittedOffset?, ErrorCode)]] = [:]
        for (tp, c, e) in found {
            if byTopic[tp.topic] == nil { order.append(tp.topic) }
            byTopic[tp.topic, default: []].append((tp.partition, c, e))
        }
        // A topic asked for with no partitions still gets its entry.
        for t in topics ?? [] where byTopic[t.0] == nil { order.append(t.0); byTopic[t.0] = [] }
        return (code, order.map { ($0, byTopic[$0]!) })
    }

    func handle(_ request: OffsetFetchRequest, version: Int16, context: RequestContext) -> Reply<OffsetFetchResponse> {
        // In a cluster the first group request has `__consumer_offsets` made (as FindCoordinator).
        .once(FindCoordinatorHandler.groups(context.broker.config), context: context) { answer(request, version: version, context: context) }
    }

    func answer(_ request: OffsetFetchRequest, version: Int16, context: RequestContext) -> Reply<OffsetFetchResponse> {
        // With an authorizer: DESCRIBE on the group (else GROUP_AUTHORIZATION_FAILED); a topic the
        // client may not describe is left out of an all-topics answer and refused when named.
        let authorization = context.authorization
        func lookup(_ group: String, _ topics: [(String, [Int32])]?, _ memberID: String?, _ memberEpoch: Int32)
            -> (ErrorCode, [(String, [(Int32, CommittedOffset?, ErrorCode)])]) {
            guard authorization.allows(.describe, .group, group) else { return (.groupAuthorizationFailed, []) }
            let (code, found) = Self.lookup(context.broker, group: group, topics: topics, memberID: memberID, memberEpoch: memberEpoch,
                                            requireStable: request.requireStable)
            guard authorization.enabled else { return (code, found) }
            return (code, found.compactMap { name, parts in
                if authorization.mayDescribeTopic(name) { return (name, parts) }
                guard topics != nil else { return nil }
                return (name, parts.map { ($0.0, nil, ErrorCode.topicAuthorizationFailed) })
            })
        }
        if version < 8 {
            let topics = request.topics.map { $0.map { ($0.name, $0.partitionIndexes) } }
            let (code, found) = lookup(request.groupId, topics, nil, -1)
            let errorFields = version < 2 ? code : .none
            return .now(OffsetFetchResponse(
                topics: found.map { name, parts in
                    OffsetFetchResponse.OffsetFetchResponseTopic(name: name, partitions: parts.map { index, c, unstable in
                        Partition(partitionIndex: index, committedOffset: c?.offset ?? Offset(-1),
                                  committedLeaderEpoch: c?.leaderEpoch ?? LeaderEpoch(-1), metadata: c?.metadata ?? "",
                                  errorCode: (unstable != .none ? unstable : errorFields).rawValue)
                    })
                },
                errorCode: code.rawValue))
        }
        return .now(OffsetFetchResponse(groups: request.groups.map { g in
            let topics = g.topics.map { $0.map { ($0.name, $0.partitionIndexes) } }
            let (code, found) = lookup(g.groupId, topics, g.memberId, g.memberEpoch)
            return OffsetFetchResponse.OffsetFetchResponseGroup(
                groupId: g.groupId,
                topics: found.map { name, parts in
                    OffsetFetchResponse.OffsetFetchResponseGroup.OffsetFetchResponseTopics(name: name, partitions: parts.map { index, c, unstable in
                        GroupPartition(partitionIndex: index, committedOffset: c?.offset ?? Offset(-1),
                                       committedLeaderEpoch: c?.leaderEpoch ?? LeaderEpoch(-1), metadata: c?.metadata ?? "",
                                       errorCode: unstable.rawValue)
                    })
                },
                errorCode: code.rawValue)
        }))
    }
}
