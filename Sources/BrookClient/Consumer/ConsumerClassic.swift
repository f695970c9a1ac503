import BrookCore
import BrookProtocol
import NIOCore

/// The classic group protocol (`group.protocol=classic`), driven over `ClassicMembership`:
/// JoinGroup, the leader's assignment in SyncGroup, heartbeats, LeaveGroup at close.
extension KafkaConsumer {
    /// The group membership's phase, whichever protocol.
    var groupPhase: ConsumerMembership.Phase {
        guard config.groupProtocol == .classic else { return membership.phase }
        switch classic.phase {
        case .idle: return .idle
        case .active: return .active
        case .stale: return .stale
        case .left: return .left
        }
    }

    var groupSubscription: [String] {
        config.groupProtocol == .classic ? classic.subscription : membership.subscription
    }

    func subscribeGroup(_ topics: [String]) {
        if config.groupProtocol == .classic { classic.subscribe(topics) } else { membership.subscribe(topics) }
    }

    /// Joins, syncs and heartbeats until the consumer closes or the membership fails for good.
    func runClassicMembership() async {
        guard let group = config.groupID else { return }
        let backoffMs = max(config.retryBackoffMs, 10)
        while classic.phase != .left && !closed && !Task.isCancelled {
            if classic.phase == .idle {
                await sleepMembership(untilMs: nowMs() + backoffMs)
                continue
            }
            if classic.phase == .active && classic.generation >= 0 && !classic.inFlight && pollTimedOut {
                await leaveForPollTimeout()
                continue
            }
            if pattern != nil, nowMs() - patternMatchedMs >= config.metadataMaxAgeMs { try? await matchPattern() }
            // The leader looks at the partition counts every metadata.max.age.ms: one that
            // changed is a rebalance.
            if classic.stage == .stable, classic.assignedCounts != nil, nowMs() - classicMetadataCheckedMs >= config.metadataMaxAgeMs {
                classicMetadataCheckedMs = nowMs()
                if let counts = try? await partitionCounts(classic.topicsToAssign) { classic.metadataChanged(counts) }
            }
            // Eager: every partition is given up (committed first) before a join; cooperative:
            // those the assignment took away or no longer subscribed.
            let revoke = classic.toRevoke
            if !revoke.isEmpty {
                _ = await carryOut(revoke: revoke, assign: [])
                classic.revoked()
                continue
            }
            let (next, at) = classic.next(nowMs: nowMs())
            guard let next else {
                let pollDeadline = classic.phase == .active && classic.generation >= 0 ? pollTimeoutAtMs : nil
                await sleepMembership(untilMs: min(at ?? nowMs() + backoffMs, pollDeadline ?? .max))
                continue
            }
            guard !closed else { break }
            classic.sent()
            do {
                let node: NodeID
                if let known = coordinatorNode { node = known } else { node = try await groupCluster.coordinator(ofGroup: group) }
                coordinatorNode = node
                // A join and a sync wait for the whole group, up to its rebalance timeout.
                let rebalanceWaitMs = Int64(config.maxPollIntervalMs) + config.requestTimeoutMs
                switch next {
                case .join(let memberID):
                    let request = JoinGroupRequest(groupId: group, sessionTimeoutMs: config.sessionTimeoutMs, rebalanceTimeoutMs: config.maxPollIntervalMs,
                                                   memberId: memberID, groupInstanceId: config.groupInstanceID, protocolType: "consumer",
                                                   protocols: classic.joinProtocols().map { .init(name: $0.name, metadata: ByteBuffer(bytes: $0.metadata)) })
                    let answer = try await groupCluster.send(request, toNode: node, timeoutMs: rebalanceWaitMs)
                    let code = ErrorCode(rawValue: answer.errorCode)
                    guard code == .none else {
                        await classicFailed(code, "join", memberID: answer.memberId)
                        continue
                    }
                    classic.joined(memberID: answer.memberId, generation: answer.generationId, leader: answer.leader,
                                   protocolName: answer.protocolName, members: answer.members.map { ($0.memberId, Array(buffer: $0.metadata)) })
                case .sync(let generation, let memberID, let leader):
                    var assignments: [SyncGroupRequest.SyncGroupRequestAssignment] = []
                    if leader {
                        let (counts, racks) = try await partitionLayout(classic.topicsToAssign)
                        classicMetadataCheckedMs = nowMs()
                        assignments = classic.assignments(partitions: counts, racks: racks).sorted { $0.key < $1.key }.map { member, partitions in
                            let byTopic = Dictionary(grouping: partitions, by: \.topic).mapValues { $0.map(\.partition) }
                            return .init(memberId: member, assignment: ByteBuffer(bytes: ConsumerProtocol.encodeAssignment(byTopic)))
                        }
                    }
                    let request = SyncGroupRequest(groupId: group, generationId: generation, memberId: memberID, groupInstanceId: config.groupInstanceID,
                                                   protocolType: "consumer", protocolName: classic.assignor?.rawValue, assignments: assignments)
                    let answer = try await groupCluster.send(request, toNode: node, timeoutMs: rebalanceWaitMs)
                    let code = ErrorCode(rawValue: answer.errorCode)
                    guard code == .none else {
                        await classicFailed(code, "sync")
                        continue
                    }
                    let given = ConsumerProtocol.assignedPartitions(Array(buffer: answer.assignment)) ?? [:]
                    let assigned = Set(given.flatMap { topic, partitions in partitions.map { TopicPartition(topic, $0) } })
                    let added = classic.synced(assigned, nowMs: nowMs())
                    if assigned.contains(where: { topics[$0.topic] == nil }) { try? await refresh() }
                    // Cooperative: what it gave up is given up at the loop's top, then it joins again.
                    if !added.isEmpty { _ = await carryOut(revoke: [], assign: added) }
                case .heartbeat(let generation, let memberID):
                    let request = HeartbeatRequest(groupId: group, generationId: generation, memberId: memberID, groupInstanceId: config.groupInstanceID)
                    let answer = try await groupCluster.send(request, toNode: node, timeoutMs: config.requestTimeoutMs)
                    let code = ErrorCode(rawValue: answer.errorCode)
                    guard code == .none else {
                        await classicFailed(code, "heartbeat")
                        continue
                    }
                    classic.heartbeatAnswered(nowMs: nowMs())
                }
            } catch let error as KafkaError where error.code == .unsupportedVersion {
                await classicFailed(.unsupportedVersion, error.message)
            } catch {
                await classicFailed(.networkException, "\(error)")
            }
        }
    }

    /// The partition counts of `topics` (those that exist).
    func partitionCounts(_ topics: [String]) async throws -> [String: Int32] {
        try await partitionLayout(topics).counts
    }

    /// Each topic's partition count, and the racks of each partition's replicas (brokers
    /// without a rack left out).
    func partitionLayout(_ topics: [String]) async throws -> (counts: [String: Int32], racks: [TopicPartition: Set<String>]) {
        let meta = try await cluster.metadata(topics: topics)
        let rackOf = Dictionary(meta.brokers.compactMap { broker in broker.rack.flatMap { $0.isEmpty ? nil : (broker.nodeId, $0) } }) { a, _ in a }
        var counts: [String: Int32] = [:]
        var racks: [TopicPartition: Set<String>] = [:]
        for topic in meta.topics where topic.errorCode == 0 {
            guard let name = topic.name else { continue }
            counts[name] = Int32(topic.partitions.count)
            guard !rackOf.isEmpty else { continue }
            for p in topic.partitions {
                let on = Set(p.replicaNodes.compactMap { rackOf[$0] })
                if !on.isEmpty { racks[TopicPartition(name, p.partitionIndex)] = on }
            }
        }
        return (counts, racks)
    }

    func classicFailed(_ code: ErrorCode, _ what: String, memberID: String? = nil) async {
        switch classic.failed(code, memberID: memberID) {
        case .fenced(let lost):
            positions.assign([])
            if let listener, !lost.isEmpty { await tell { await listener.lost(lost.sorted()) } }
        case .rejoin:
            break
        case .coordinator:
            coordinatorNode = nil
            await sleepMembership(untilMs: nowMs() + max(config.retryBackoffMs, 10))
        case .fatal:
            failure = ConsumeError(code, "group \(config.groupID ?? ""): \(what)")
            positions.assign([])
            wake()
        }
    }

    /// LeaveGroup, a few tries (a static member does not leave: its partitions wait for it
    /// through its session, as the Java client's).
    func leaveClassic() async {
        guard let group = config.groupID, config.groupInstanceID == nil, let memberID = classic.leave() else { return }
        await sendLeave(LeaveGroupRequest(groupId: group, memberId: memberID, members: [.init(memberId: memberID, groupInstanceId: nil)]),
                        group: group, through: groupCluster, tries: 3, errorCode: \.errorCode)
    }
}
