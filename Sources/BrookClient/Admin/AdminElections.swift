import BrookCore
import BrookProtocol

/// Leader elections (KIP-460), at the controller through any broker.
extension KafkaAdmin {
    public enum ElectionType: Int8, Sendable {
        /// The first replica of the assignment, when it is in the ISR.
        case preferred = 0
        /// A replica out of the ISR, where no replica leads (records may be lost).
        case unclean = 1
    }

    /// Elects leaders of `partitions` (nil: every partition); each partition's outcome (nil:
    /// elected; else Kafka's code with the broker's message, ELECTION_NOT_NEEDED where the
    /// leader already is the one wanted).
    public func electLeaders(_ type: ElectionType, partitions: [TopicPartition]?) async throws -> [TopicPartition: KafkaError?] {
        let byTopic = Dictionary(grouping: partitions ?? [], by: \.topic)
        let request = ElectLeadersRequest(electionType: type.rawValue, topicPartitions: partitions.map { _ in
            byTopic.keys.sorted().map { .init(topic: $0, partitions: byTopic[$0]!.map(\.partition).sorted()) }
        }, timeoutMs: Int32(clamping: config.requestTimeoutMs))
        let answer = try await retrying("elect leaders") { try await self.sendToController(request) }
        try Self.check(answer.errorCode, nil, "elect leaders")
        var out: [TopicPartition: KafkaError?] = [:]
        for result in answer.replicaElectionResults {
            for p in result.partitionResult {
                let code = ErrorCode(rawValue: p.errorCode)
                out[TopicPartition(result.topic, p.partitionId)] = code == .none ? nil : KafkaError(code, p.errorMessage ?? "")
            }
        }
        return out
    }
}
