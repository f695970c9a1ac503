import BrookCore
import BrookProtocol

/// Consumer groups: listed from every broker (each coordinates some), described, their
/// committed offsets read, moved and deleted at their coordinator.
extension KafkaAdmin {
    /// Every group of the cluster (`states`, `types`: only those; empty: all), as the brokers
    /// that answer list them (each coordinates some): a broker that fails to answer is left out
    /// (as the Java client's `valid()`), unless none answers.
    public func listGroups(states: [String] = [], types: [String] = []) async throws -> [GroupListing] {
        let brokers = try await describeCluster().brokers.filter { !$0.fenced }
        var listed: [String: GroupListing] = [:]
        var failures: [any Error] = []
        for broker in brokers {
            let answer: ListGroupsResponse
            do {
                answer = try await cluster.send(ListGroupsRequest(statesFilter: states, typesFilter: types), toNode: broker.id,
                                                timeoutMs: config.requestTimeoutMs)
                try Self.check(answer.errorCode, nil, "list groups at broker \(broker.id)")
            } catch {
                failures.append(error)
                continue
            }
            for group in answer.groups {
                listed[group.groupId] = GroupListing(id: group.groupId, type: group.groupType.isEmpty ? "classic" : group.groupType.lowercased(),
                                                     state: group.groupState, protocolType: group.protocolType)
            }
        }
        if let first = failures.first, failures.count == brokers.count { throw first }
        // Older versions carry no filters (or no state, no type): applied here too.
        let wantedStates = Set(states.map { $0.lowercased() }), wantedTypes = Set(types.map { $0.lowercased() })
        return listed.values.filter {
            (wantedStates.isEmpty || $0.state.isEmpty || wantedStates.contains($0.state.lowercased()))
                && (wantedTypes.isEmpty || wantedTypes.contains($0.type))
        }.sorted { $0.id < $1.id }
    }

    /// A group's state and members with their partitions: KIP-848 groups from
    /// ConsumerGroupDescribe, classic ones from DescribeGroups (a group that does not exist is
    /// described as Dead, as Kafka does).
    public func describeGroup(_ id: String) async throws -> GroupDescription {
        try await atCoordinator(of: id) { node in
            if try await self.cluster.supports(ConsumerGroupDescribeRequest.self, node: node) {
                let answer = try await self.cluster.send(ConsumerGroupDescribeRequest(groupIds: [id]), toNode: node,
                                                         timeoutMs: self.config.requestTimeoutMs)
                if let group = answer.groups.first {
                    if group.errorCode == 0 {
                        return GroupDescription(
                            id: id, type: "consumer", state: Self.stateName(group.groupState), protocolType: "consumer",
                            assignor: group.assignorName.isEmpty ? nil : group.assignorName,
                            members: group.members.map { m in
                                GroupMemberDescription(memberID: m.memberId, instanceID: m.instanceId, clientID: m.clientId, host: m.clientHost,
                                                       assignment: m.assignment.topicPartitions.flatMap { t in t.partitions.map { TopicPartition(t.topicName, $0) } }.sorted())
                            })
                    }
                    // A classic group (or none) is not found here: DescribeGroups tells.
                    let code = ErrorCode(rawValue: group.errorCode)
                    if ClusterClient.coordinatorMoved.contains(code) { throw KafkaError(code, "describe group \(id)") }
                }
            }
            let answer = try await self.cluster.send(DescribeGroupsRequest(groups: [id]), toNode: node, timeoutMs: self.config.requestTimeoutMs)
            guard let group = answer.groups.first else { throw KafkaError(nil, "describe group \(id): no answer for it") }
            if ErrorCode(rawValue: group.errorCode) == .groupIDNotFound {
                return GroupDescription(id: id, type: "classic", state: "Dead", protocolType: "", assignor: nil, members: [])
            }
            try Self.check(group.errorCode, group.errorMessage, "describe group \(id)")
            return GroupDescription(
                id: id, type: "classic", state: group.groupState, protocolType: group.protocolType,
                assignor: group.protocolData.isEmpty ? nil : group.protocolData,
                members: group.members.map { m in
                    let assigned = group.protocolType == "consumer" ? ConsumerProtocol.assignedPartitions(Array(buffer: m.memberAssignment)) ?? [:] : [:]
                    return GroupMemberDescription(memberID: m.memberId, instanceID: m.groupInstanceId, clientID: m.clientId, host: m.clientHost,
                                                  assignment: assigned.flatMap { t, ps in ps.map { TopicPartition(t, $0) } }.sorted())
                })
        }
    }

    /// Runs `body` at `group`'s coordinator, found again after a passing failure (the
    /// coordinator moved or is loading, a lost connection).
    func atCoordinator<T: Sendable>(of group: String, _ body: (NodeID) async throws -> T) async throws -> T {
        try await retrying("group \(group)") { try await body(try await self.cluster.coordinator(ofGroup: group)) }
    }

    /// A state as the Java tools print it ("stable" from KIP-848 groups is "Stable").
    static func stateName(_ state: String) -> String {
        state.prefix(1).uppercased() + state.dropFirst()
    }

    /// `group`'s committed offsets (`partitions`: only those; nil: every one it has).
    public func listGroupOffsets(_ group: String, partitions: [TopicPartition]? = nil) async throws -> [TopicPartition: Offset] {
        // Not require_stable (as the Java admin client): offsets a transaction holds do not wait.
        try await cluster.committedEntries(partitions, group: group, timeoutMs: config.apiTimeoutMs, backoffMs: config.backoffMs,
                                           requireStable: false).mapValues(\.offset)
    }

    /// Commits `offsets` for `group`, which must have no members (Kafka refuses otherwise).
    public func alterGroupOffsets(_ group: String, _ offsets: [TopicPartition: Offset]) async throws {
        try await cluster.commitOffsets(offsets, group: group, timeoutMs: config.apiTimeoutMs, backoffMs: config.backoffMs)
    }

    /// Deletes empty groups with their committed offsets.
    public func deleteGroups(_ ids: [String]) async throws {
        for id in ids {
            try await atCoordinator(of: id) { node in
                let answer = try await self.cluster.send(DeleteGroupsRequest(groupsNames: [id]), toNode: node, timeoutMs: self.config.requestTimeoutMs)
                for result in answer.results { try Self.check(result.errorCode, nil, "delete group \(id)") }
            }
        }
    }

    /// Deletes `group`'s committed offsets of `partitions` (OffsetDelete; not of a topic the
    /// group is reading).
    public func deleteGroupOffsets(_ group: String, partitions: [TopicPartition]) async throws {
        guard !partitions.isEmpty else { return }
        let byTopic = Dictionary(grouping: partitions, by: \.topic)
        let request = OffsetDeleteRequest(groupId: group, topics: byTopic.keys.sorted().map { topic in
            .init(name: topic, partitions: byTopic[topic]!.map { .init(partitionIndex: $0.partition) })
        })
        try await atCoordinator(of: group) { node in
            let answer = try await self.cluster.send(request, toNode: node, timeoutMs: self.config.requestTimeoutMs)
            try Self.check(answer.errorCode, nil, "delete offsets of group \(group)")
            for topic in answer.topics {
                for p in topic.partitions { try Self.check(p.errorCode, nil, "delete the offset of \(topic.name)-\(p.partitionIndex) in group \(group)") }
            }
        }
    }

    /// Where `reset` moves `group`'s offsets of `partitions` (nil: every partition it has an
    /// offset for), each held within the partition's earliest and latest offsets; with `execute`
    /// they are committed, which Kafka allows only while the group has no members.
    public func resetGroupOffsets(_ group: String, partitions: [TopicPartition]? = nil, to reset: OffsetReset,
                                  execute: Bool) async throws -> [TopicPartition: Offset] {
        let described = try await describeGroup(group)
        if execute && !described.members.isEmpty {
            throw KafkaError(.nonEmptyGroup, "group \(group) is \(described.state) with \(described.members.count) member(s): "
                + "offsets can only be reset while it has none")
        }
        let committed = try await listGroupOffsets(group)
        var targets = partitions ?? committed.keys.sorted()
        if partitions == nil {
            // Offsets of topics deleted since are left as they are.
            let existing = Set(try await listTopics(includeInternal: true).map(\.name))
            targets = targets.filter { existing.contains($0.topic) }
        }
        guard !targets.isEmpty else { return [:] }
        let earliest = try await listOffsets(targets, .earliest)
        let latest = try await listOffsets(targets, .latest)
        var found: [TopicPartition: ListedOffset] = [:]
        if case .timestamp(let ms) = reset { found = try await listOffsets(targets, .timestamp(ms)) }
        var plan: [TopicPartition: Offset] = [:]
        for tp in targets {
            guard let low = earliest[tp]?.offset, let high = latest[tp]?.offset else { continue }
            let target: Offset = switch reset {
            case .earliest: low
            case .latest: high
            case .offset(let offset): offset
            case .shift(let by): (committed[tp] ?? low) + by
            // No record at or after the time: the end of the log.
            case .timestamp: found[tp].flatMap { $0.offset.value >= 0 ? $0.offset : nil } ?? high
            }
            plan[tp] = max(low, min(high, target))
        }
        if execute { try await alterGroupOffsets(group, plan) }
        return plan
    }
}
