import BrookCore
import BrookProtocol

/// Requests answered by partitions' leaders: offsets looked up, records deleted.
extension KafkaAdmin {
    /// Each partition's offset for `spec` (with `readCommitted`, "latest" is the last stable
    /// offset), from its leader.
    public func listOffsets(_ partitions: [TopicPartition], _ spec: OffsetQuery, readCommitted: Bool = false) async throws -> [TopicPartition: ListedOffset] {
        try await toLeaders("list offsets", partitions) { leader, partitions in
            let byTopic = Dictionary(grouping: partitions, by: \.topic)
            let request = ListOffsetsRequest(replicaId: NodeID(-1), isolationLevel: readCommitted ? 1 : 0, topics: byTopic.keys.sorted().map { topic in
                .init(name: topic, partitions: byTopic[topic]!.map { .init(partitionIndex: $0.partition, timestamp: spec.wire) })
            })
            let answer = try await self.cluster.send(request, toNode: leader, timeoutMs: self.config.requestTimeoutMs)
            return answer.topics.flatMap { t in
                t.partitions.map { (TopicPartition(t.name, $0.partitionIndex), $0.errorCode,
                                    ListedOffset(offset: $0.offset, timestamp: $0.timestamp, leaderEpoch: $0.leaderEpoch)) }
            }
        }
    }

    /// Deletes the records before each offset given (Offset(-1): before the high watermark);
    /// returns each partition's new log start offset.
    public func deleteRecords(before offsets: [TopicPartition: Offset]) async throws -> [TopicPartition: Offset] {
        try await toLeaders("delete records", offsets.keys.sorted()) { leader, partitions in
            let byTopic = Dictionary(grouping: partitions, by: \.topic)
            let request = DeleteRecordsRequest(topics: byTopic.keys.sorted().map { topic in
                .init(name: topic, partitions: byTopic[topic]!.map { .init(partitionIndex: $0.partition, offset: offsets[$0]!) })
            }, timeoutMs: Int32(clamping: self.config.requestTimeoutMs))
            let answer = try await self.cluster.send(request, toNode: leader, timeoutMs: self.config.requestTimeoutMs)
            return answer.topics.flatMap { t in
                t.partitions.map { (TopicPartition(t.name, $0.partitionIndex), $0.errorCode, $0.lowWatermark) }
            }
        }
    }

    /// Sends `partitions` to their leaders (`send` asks one leader for some of them and returns
    /// each one's code and answer). Partitions whose leader is unknown or moved are asked again,
    /// of the leader the metadata gives next, until `default.api.timeout.ms`; the first lasting
    /// refusal, in the order given, is thrown.
    func toLeaders<T: Sendable>(_ what: String, _ partitions: [TopicPartition],
                                _ send: (NodeID, [TopicPartition]) async throws -> [(TopicPartition, Int16, T)]) async throws -> [TopicPartition: T] {
        let deadline = ContinuousClock.now + .milliseconds(config.apiTimeoutMs)
        var done: [TopicPartition: T] = [:]
        var refused: [TopicPartition: KafkaError] = [:]
        var pending = Array(Set(partitions))
        while !pending.isEmpty {
            var passing: KafkaError?
            let topics = try await retrying("\(what): metadata") { try await self.cluster.metadata(topics: Array(Set(pending.map(\.topic))).sorted()) }
            var leaders: [TopicPartition: NodeID] = [:]
            var known: Set<TopicPartition> = []
            for topic in topics.topics {
                guard let name = topic.name, topic.errorCode == 0 else { continue }
                for p in topic.partitions {
                    known.insert(TopicPartition(name, p.partitionIndex))
                    if p.leaderId.value >= 0 { leaders[TopicPartition(name, p.partitionIndex)] = p.leaderId }
                }
            }
            var again: [TopicPartition] = []
            for tp in pending where !known.contains(tp) {
                let code = topics.topics.first { $0.name == tp.topic }.map { ErrorCode(rawValue: $0.errorCode) }
                let error = KafkaError(code.flatMap { $0 == .none ? nil : $0 } ?? .unknownTopicOrPartition, "\(what): \(tp)")
                // A topic being made (LEADER_NOT_AVAILABLE) is asked again.
                if Self.passing.contains(error.code ?? .none) {
                    passing = error
                    again.append(tp)
                } else { refused[tp] = error }
            }
            var byLeader: [NodeID: [TopicPartition]] = [:]
            for tp in pending where known.contains(tp) {
                if let leader = leaders[tp] { byLeader[leader, default: []].append(tp) } else { again.append(tp) }
            }
            for (leader, asked) in byLeader.sorted(by: { $0.key < $1.key }) {
                let answered: [(TopicPartition, Int16, T)]
                do { answered = try await send(leader, asked.sorted()) } catch is CancellationError { throw CancellationError() } catch {
                    passing = KafkaError(nil, "\(what) at broker \(leader): \(error)")
                    again += asked
                    continue
                }
                var heard: Set<TopicPartition> = []
                for (tp, code, value) in answered where asked.contains(tp) {
                    heard.insert(tp)
                    let error = ErrorCode(rawValue: code)
                    if error == .none { done[tp] = value }
                    else if Self.passing.contains(error) || error == .unknownLeaderEpoch {
                        passing = KafkaError(error, "\(what): \(tp)")
                        again.append(tp)
                    } else { refused[tp] = KafkaError(error, "\(what): \(tp)") }
                }
                again += asked.filter { !heard.contains($0) }
            }
            pending = again
            guard !pending.isEmpty else { break }
            guard ContinuousClock.now < deadline else {
                for tp in pending { refused[tp] = passing ?? KafkaError(.leaderNotAvailable, "\(what): \(tp)") }
                break
            }
            try await Task.sleep(for: .milliseconds(config.backoffMs))
        }
        for tp in partitions { if let error = refused[tp] { throw error } }
        return done
    }
}
