import BrookClient
import BrookCore
import BrookGroups
import BrookProtocol
import NIOCore

struct GroupSummary: Encodable {
    var id: String
    var state: String
    var protocolType: String
    var `protocol`: String
    var members: Int
    var lag: Int64?
}

struct AssignedPartition: Encodable {
    var topic: String
    var partition: Int32
}

struct MemberView: Encodable {
    var memberId: String
    var clientId: String
    var host: String
    var assignment: [AssignedPartition]
}

struct GroupOffsetView: Encodable {
    var topic: String
    var partition: Int32
    var committed: Int64
    var endOffset: Int64?
    var lag: Int64?
}

struct GroupView: Encodable {
    var id: String
    var state: String
    var protocolType: String
    var `protocol`: String
    var members: [MemberView]
    var offsets: [GroupOffsetView]
}

struct ResetView: Encodable {
    struct Moved: Encodable {
        var topic: String
        var partition: Int32
        var offset: Int64
    }
    var offsets: [Moved]
}

extension Console {
    /// Groups whose members and lag the group list reads, at most.
    static let groupListDetailMax = 200

    struct Described {
        var state: String
        var protocolType: String
        var kind: String
        var members: [MemberView]
    }

    /// A group as its coordinator describes it: KIP-848 groups with ConsumerGroupDescribe,
    /// classic ones with DescribeGroups.
    func describe(_ client: ClusterClient, _ id: String) async throws -> Described {
        let coordinator = try await client.coordinator(ofGroup: id)
        if let modern = try? await client.send(ConsumerGroupDescribeRequest(groupIds: [id]), toNode: coordinator),
           let group = modern.groups.first, group.errorCode == 0 {
            return Described(state: group.groupState, protocolType: "consumer", kind: "consumer", members: group.members.map { m in
                MemberView(memberId: m.memberId, clientId: m.clientId, host: m.clientHost,
                           assignment: m.assignment.topicPartitions.flatMap { t in t.partitions.map { AssignedPartition(topic: t.topicName, partition: $0) } })
            })
        }
        let answer = try await client.send(DescribeGroupsRequest(groups: [id]), toNode: coordinator)
        guard let group = answer.groups.first else { throw ConsoleError(404, "no group \(id)") }
        if let failure = Self.failure(group.errorCode, group.errorMessage, "group \(id)") { throw failure }
        return Described(state: group.groupState, protocolType: group.protocolType, kind: "classic", members: group.members.map { m in
            let assigned = group.protocolType == "consumer" ? ConsumerProtocol.assignedPartitions(Array(buffer: m.memberAssignment)) ?? [:] : [:]
            return MemberView(memberId: m.memberId, clientId: m.clientId, host: m.clientHost,
                              assignment: assigned.sorted { $0.key < $1.key }.flatMap { t in t.value.sorted().map { AssignedPartition(topic: t.key, partition: $0) } })
        })
    }

    /// A group's committed offsets, from its coordinator.
    func committed(_ client: ClusterClient, _ id: String) async throws -> [TopicPartition: Offset] {
        let coordinator = try await client.coordinator(ofGroup: id)
        let request = OffsetFetchRequest(groupId: id, topics: nil, groups: [.init(groupId: id, topics: nil)], requireStable: false)
        let answer = try await client.send(request, toNode: coordinator)
        var offsets: [TopicPartition: Offset] = [:]
        if let group = answer.groups.first {
            if let failure = Self.failure(group.errorCode, nil, "offsets of \(id)") { throw failure }
            for t in group.topics { for p in t.partitions where p.errorCode == 0 && p.committedOffset.value >= 0 { offsets[TopicPartition(t.name, p.partitionIndex)] = p.committedOffset } }
        } else {
            if let failure = Self.failure(answer.errorCode, nil, "offsets of \(id)") { throw failure }
            for t in answer.topics { for p in t.partitions where p.errorCode == 0 && p.committedOffset.value >= 0 { offsets[TopicPartition(t.name, p.partitionIndex)] = p.committedOffset } }
        }
        return offsets
    }

    /// Every partition's offsets of `topics` (-1 latest, -2 earliest, or a time), from leaders.
    func offsets(_ client: ClusterClient, topics: Set<String>, timestamp: Int64) async throws -> [TopicPartition: Offset] {
        guard !topics.isEmpty else { return [:] }
        let meta = try await client.metadata(topics: topics.sorted())
        var out: [TopicPartition: Offset] = [:]
        for topic in meta.topics where topic.errorCode == 0 {
            guard let name = topic.name else { continue }
            for (p, offset) in try await client.listOffsets(topic: name, leaders: Self.leaders(topic), timestamp: timestamp) {
                out[TopicPartition(name, p)] = offset
            }
        }
        return out
    }

    func groupList(_ client: ClusterClient) async throws -> [GroupSummary] {
        let meta = try await client.metadata(topics: [])
        var listed: [String: ListGroupsResponse.ListedGroup] = [:]
        for broker in meta.brokers {
            guard let answer = try? await client.send(ListGroupsRequest(), toNode: broker.nodeId), answer.errorCode == 0 else { continue }
            for group in answer.groups { listed[group.groupId] = group }
        }
        var summaries: [GroupSummary] = []
        var ends: [TopicPartition: Offset] = [:]
        for (index, (id, group)) in listed.sorted(by: { $0.key < $1.key }).enumerated() {
            var summary = GroupSummary(id: id, state: group.groupState, protocolType: group.protocolType,
                                       protocol: group.groupType.isEmpty ? "classic" : group.groupType.lowercased(), members: 0, lag: nil)
            if index < Self.groupListDetailMax {
                if let described = try? await describe(client, id) {
                    summary.members = described.members.count
                    summary.state = described.state
                }
                if let offsets = try? await committed(client, id) {
                    let missing = Set(offsets.keys.map(\.topic)).subtracting(ends.keys.map(\.topic))
                    ends.merge(try await self.offsets(client, topics: missing, timestamp: -1)) { a, _ in a }
                    summary.lag = offsets.reduce(0) { sum, entry in sum + max(0, (ends[entry.key]?.value ?? entry.value.value) - entry.value.value) }
                }
            }
            summaries.append(summary)
        }
        return summaries
    }

    func groupView(_ client: ClusterClient, _ id: String) async throws -> GroupView {
        let described = try await describe(client, id)
        let offsets = try await committed(client, id)
        let ends = try await self.offsets(client, topics: Set(offsets.keys.map(\.topic)), timestamp: -1)
        return GroupView(id: id, state: described.state, protocolType: described.protocolType, protocol: described.kind,
                         members: described.members,
                         offsets: offsets.sorted { $0.key < $1.key }.map { tp, committed in
                             let end = ends[tp]?.value
                             return GroupOffsetView(topic: tp.topic, partition: tp.partition, committed: committed.value, endOffset: end,
                                                    lag: end.map { max(0, $0 - committed.value) })
                         })
    }

    func deleteGroup(_ client: ClusterClient, _ id: String) async throws {
        let coordinator = try await client.coordinator(ofGroup: id)
        let answer = try await client.send(DeleteGroupsRequest(groupsNames: [id]), toNode: coordinator)
        for result in answer.results {
            if let failure = Self.failure(result.errorCode, nil, "deleting group \(id)") { throw failure }
        }
    }

    /// Moves a group's committed offsets (Kafka's `kafka-consumer-groups --reset-offsets`): only
    /// while it has no members, as Kafka requires. `topic` nil: every topic it has offsets for.
    func resetOffsets(_ client: ClusterClient, group id: String, _ reset: Reset) async throws -> ResetView {
        let described = try await describe(client, id)
        guard described.members.isEmpty else {
            throw ConsoleError(409, "group \(id) has \(described.members.count) member(s): stop its consumers first (Kafka resets only inactive groups)")
        }
        let current = try await committed(client, id)
        var targets: Set<TopicPartition>
        if let topic = reset.topic, !topic.isEmpty {
            let meta = try await topicMetadata(client, topic)
            targets = Set(meta.partitions.map { TopicPartition(topic, $0.partitionIndex) })
        } else {
            targets = Set(current.keys)
        }
        guard !targets.isEmpty else { throw ConsoleError(400, "group \(id) has no offsets to reset; name a topic") }
        let topics = Set(targets.map(\.topic))
        let earliest = try await offsets(client, topics: topics, timestamp: -2)
        let latest = try await offsets(client, topics: topics, timestamp: -1)
        var chosen: [TopicPartition: Offset] = [:]
        switch reset.to {
        case "earliest": chosen = earliest.filter { targets.contains($0.key) }
        case "latest": chosen = latest.filter { targets.contains($0.key) }
        case "offset":
            guard let value = reset.value else { throw ConsoleError(400, "an offset to reset to is needed") }
            for tp in targets {
                guard let low = earliest[tp], let high = latest[tp] else { continue }
                chosen[tp] = Offset(min(max(value, low.value), high.value))
            }
        case "timestamp":
            guard let value = reset.value else { throw ConsoleError(400, "a time (ms) to reset to is needed") }
            let found = try await offsets(client, topics: topics, timestamp: value)
            for tp in targets { chosen[tp] = (found[tp].flatMap { $0.value >= 0 ? $0 : nil }) ?? latest[tp] }
        default:
            throw ConsoleError(400, "reset to earliest, latest, offset or timestamp")
        }
        let byTopic = Dictionary(grouping: chosen.sorted { $0.key < $1.key }) { $0.key.topic }
        let request = OffsetCommitRequest(groupId: id, generationIdOrMemberEpoch: -1, memberId: "", topics: byTopic.sorted { $0.key < $1.key }.map { topic, entries in
            .init(name: topic, partitions: entries.map { .init(partitionIndex: $0.key.partition, committedOffset: $0.value) })
        })
        let coordinator = try await client.coordinator(ofGroup: id)
        let answer = try await client.send(request, toNode: coordinator)
        for t in answer.topics {
            for p in t.partitions {
                if let failure = Self.failure(p.errorCode, nil, "committing \(t.name)-\(p.partitionIndex) for \(id)") { throw failure }
            }
        }
        return ResetView(offsets: chosen.sorted { $0.key < $1.key }.map { .init(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value.value) })
    }
}
