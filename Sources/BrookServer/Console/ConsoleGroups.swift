import BrookClient
import BrookCore
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

    /// A group as its coordinator describes it (either protocol); a group that does not exist
    /// is not found.
    func describe(_ client: ClusterClient, _ id: String) async throws -> Described {
        let group = try await admin(client).describeGroup(id)
        guard group.state != "Dead" || !group.members.isEmpty else { throw ConsoleError(404, "no group \(id)") }
        return Described(state: group.state, protocolType: group.protocolType, kind: group.type, members: group.members.map { m in
            MemberView(memberId: m.memberID, clientId: m.clientID, host: m.host,
                       assignment: m.assignment.map { AssignedPartition(topic: $0.topic, partition: $0.partition) })
        })
    }

    /// A group's committed offsets, from its coordinator.
    func committed(_ client: ClusterClient, _ id: String) async throws -> [TopicPartition: Offset] {
        try await admin(client).listGroupOffsets(id)
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
        var summaries: [GroupSummary] = []
        var ends: [TopicPartition: Offset] = [:]
        for (index, group) in try await admin(client).listGroups().enumerated() {
            var summary = GroupSummary(id: group.id, state: group.state, protocolType: group.protocolType, protocol: group.type, members: 0, lag: nil)
            if index < Self.groupListDetailMax {
                if let described = try? await describe(client, group.id) {
                    summary.members = described.members.count
                    summary.state = described.state
                }
                if let offsets = try? await committed(client, group.id) {
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
        try await admin(client).deleteGroups([id])
    }

    /// Moves a group's committed offsets (Kafka's `kafka-consumer-groups --reset-offsets`): only
    /// while it has no members, as Kafka requires. `topic` nil: every topic it has offsets for.
    func resetOffsets(_ client: ClusterClient, group id: String, _ reset: Reset) async throws -> ResetView {
        var partitions: [TopicPartition]?
        if let topic = reset.topic, !topic.isEmpty {
            partitions = try await topicMetadata(client, topic).partitions.map { TopicPartition(topic, $0.partitionIndex) }
        }
        let to: OffsetReset
        switch reset.to {
        case "earliest": to = .earliest
        case "latest": to = .latest
        case "offset":
            guard let value = reset.value else { throw ConsoleError(400, "an offset to reset to is needed") }
            to = .offset(Offset(value))
        case "timestamp":
            guard let value = reset.value else { throw ConsoleError(400, "a time (ms) to reset to is needed") }
            to = .timestamp(value)
        default:
            throw ConsoleError(400, "reset to earliest, latest, offset or timestamp")
        }
        let chosen = try await admin(client).resetGroupOffsets(id, partitions: partitions, to: to, execute: true)
        guard !chosen.isEmpty else { throw ConsoleError(400, "group \(id) has no offsets to reset; name a topic") }
        return ResetView(offsets: chosen.sorted { $0.key < $1.key }.map { .init(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value.value) })
    }
}
