import BrookCore
import BrookProtocol

/// A group member committing under its id and epoch (KIP-848) or generation.
public struct GroupMember: Sendable, Equatable {
    public var id: String
    public var epoch: Int32
    public var instanceID: String?

    public init(id: String, epoch: Int32, instanceID: String? = nil) {
        self.id = id
        self.epoch = epoch
        self.instanceID = instanceID
    }
}

/// A group's committed offsets, read and written at its coordinator.
extension ClusterClient {
    /// Codes that send a group request to its coordinator again (found anew).
    static let coordinatorMoved: Set<ErrorCode> = [.coordinatorNotAvailable, .notCoordinator, .coordinatorLoadInProgress,
                                                   .unstableOffsetCommit, .requestTimedOut, .staleMemberEpoch]

    /// Commits `offsets` (the next record to read, per partition) to `group`: as `member()`
    /// when it names one (asked again at each attempt), else as an admin commit (generation -1,
    /// which a group with members refuses).
    public func commitOffsets(_ offsets: [TopicPartition: Offset], group: String, timeoutMs: Int64, backoffMs: Int64,
                              metadata: [TopicPartition: String] = [:],
                              member: @Sendable () async -> GroupMember? = { nil }) async throws {
        guard !offsets.isEmpty else { return }
        let byTopic = Dictionary(grouping: offsets, by: \.key.topic)
        var request = OffsetCommitRequest(groupId: group, generationIdOrMemberEpoch: -1, memberId: "", topics: byTopic.keys.sorted().map { topic in
            .init(name: topic, partitions: byTopic[topic]!.sorted { $0.key.partition < $1.key.partition }.map {
                .init(partitionIndex: $0.key.partition, committedOffset: $0.value, committedMetadata: metadata[$0.key])
            })
        })
        try await toCoordinator(of: group, timeoutMs: timeoutMs, backoffMs: backoffMs) { node in
            let who = await member()
            request.memberId = who?.id ?? ""
            request.generationIdOrMemberEpoch = who?.epoch ?? -1
            request.groupInstanceId = who?.instanceID
            let answer = try await self.send(request, toNode: node, timeoutMs: timeoutMs)
            for topic in answer.topics {
                for p in topic.partitions where p.errorCode != 0 {
                    throw ConsumeError(ErrorCode(rawValue: p.errorCode), "commit of \(topic.name)-\(p.partitionIndex) to group \(group)")
                }
            }
        }
    }

    /// `group`'s committed offsets of `partitions` (nil: of every partition it has one for); a
    /// partition without one is left out.
    public func committedOffsets(_ partitions: [TopicPartition]?, group: String, timeoutMs: Int64, backoffMs: Int64) async throws -> [TopicPartition: Offset] {
        try await committedEntries(partitions, group: group, timeoutMs: timeoutMs, backoffMs: backoffMs).mapValues(\.offset)
    }

    /// As `committedOffsets`, with each offset's commit metadata.
    public func committedEntries(_ partitions: [TopicPartition]?, group: String, timeoutMs: Int64,
                                 backoffMs: Int64, requireStable: Bool = true) async throws -> [TopicPartition: (offset: Offset, metadata: String?)] {
        let byTopic = Dictionary(grouping: partitions ?? [], by: \.topic)
        let topics = byTopic.keys.sorted().map { (name: $0, partitions: byTopic[$0]!.map(\.partition).sorted()) }
        // Both shapes (the version negotiated picks one): `groups` from v8.
        let request = OffsetFetchRequest(
            groupId: group, topics: partitions == nil ? nil : topics.map { .init(name: $0.name, partitionIndexes: $0.partitions) },
            groups: [.init(groupId: group, topics: partitions == nil ? nil : topics.map { .init(name: $0.name, partitionIndexes: $0.partitions) })],
            requireStable: requireStable)
        return try await toCoordinator(of: group, timeoutMs: timeoutMs, backoffMs: backoffMs) { node in
            let answer = try await self.send(request, toNode: node, timeoutMs: timeoutMs)
            var found: [TopicPartition: (offset: Offset, metadata: String?)] = [:]
            func take(_ topic: String, _ partition: Int32, _ offset: Offset, _ metadata: String?, _ code: Int16) throws {
                guard code == 0 else { throw ConsumeError(ErrorCode(rawValue: code), "committed offset of \(topic)-\(partition) in group \(group)") }
                if offset.value >= 0 { found[TopicPartition(topic, partition)] = (offset, metadata) }
            }
            if let entry = answer.groups.first {
                guard entry.errorCode == 0 else { throw ConsumeError(ErrorCode(rawValue: entry.errorCode), "committed offsets of group \(group)") }
                for t in entry.topics { for p in t.partitions { try take(t.name, p.partitionIndex, p.committedOffset, p.metadata, p.errorCode) } }
            } else {
                guard answer.errorCode == 0 else { throw ConsumeError(ErrorCode(rawValue: answer.errorCode), "committed offsets of group \(group)") }
                for t in answer.topics { for p in t.partitions { try take(t.name, p.partitionIndex, p.committedOffset, p.metadata, p.errorCode) } }
            }
            return found
        }
    }

    /// Runs `body` against `group`'s coordinator, finding it again after a coordinator error
    /// or a lost connection, until `timeoutMs` has passed.
    func toCoordinator<T: Sendable>(of group: String, timeoutMs: Int64, backoffMs: Int64,
                                    _ body: (NodeID) async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + .milliseconds(timeoutMs)
        while true {
            do {
                return try await body(try await coordinator(ofGroup: group))
            } catch let error as ConsumeError where !Self.coordinatorMoved.contains(error.code ?? .none) {
                throw error
            } catch {
                guard ContinuousClock.now < deadline else { throw ConsumeError(.requestTimedOut, "group \(group)'s coordinator: \(error)") }
                try await Task.sleep(for: .milliseconds(max(backoffMs, 10)))
            }
        }
    }
}
