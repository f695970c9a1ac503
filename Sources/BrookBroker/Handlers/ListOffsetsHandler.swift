import BrookCore
import BrookProtocol
import BrookStorage

/// ListOffsets: the earliest (-2), latest (-1; the last stable offset for read_committed) and
/// max-timestamp (-3) offsets, or the first offset whose record is at or after a timestamp.
struct ListOffsetsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 1...10

    static let latest: Int64 = -1
    static let earliest: Int64 = -2
    static let maxTimestamp: Int64 = -3
    static let earliestLocal: Int64 = -4
    static let latestTiered: Int64 = -5

    typealias PartitionResult = ListOffsetsResponse.ListOffsetsTopicResponse.ListOffsetsPartitionResponse

    func handle(_ request: ListOffsetsRequest, version: Int16, context: RequestContext) -> Reply<ListOffsetsResponse> {
        // An isolation level other than read_uncommitted (0) or read_committed (1) is refused.
        let validIsolation = request.isolationLevel == 0 || request.isolationLevel == 1
        let authorization = context.authorization
        let topics = request.topics.map { topic in
            let described = authorization.mayDescribeTopic(topic.name)
            return ListOffsetsResponse.ListOffsetsTopicResponse(name: topic.name, partitions: topic.partitions.map { p in
                guard validIsolation else { return PartitionResult(partitionIndex: p.partitionIndex, errorCode: ErrorCode.invalidRequest.rawValue) }
                guard described else { return PartitionResult(partitionIndex: p.partitionIndex, errorCode: ErrorCode.topicAuthorizationFailed.rawValue) }
                return lookup(p, topic: topic.name, readCommitted: request.isolationLevel == 1, context: context)
            })
        }
        return .now(ListOffsetsResponse(throttleTimeMs: 0, topics: topics))
    }

    func lookup(_ p: ListOffsetsRequest.ListOffsetsTopic.ListOffsetsPartition, topic: String, readCommitted: Bool,
                context: RequestContext) -> PartitionResult {
        var result = PartitionResult(partitionIndex: p.partitionIndex, errorCode: 0)
        let found = context.broker.topics.lookup(topic, p.partitionIndex)
        guard case .hosted(let partition) = found else {
            result.errorCode = found.absentCode.rawValue
            return result
        }
        if let problem = partition.checkLeaderEpoch(p.currentLeaderEpoch) {
            result.errorCode = problem.rawValue
            return result
        }
        do throws(StorageError) {
            // The latest offset is the high watermark (what consumers may read, as Kafka
            // answers), the last stable offset for read_committed.
            let readable = p.timestamp == Self.latest ? partition.offsets : nil
            let lastStable = readable.map { readCommitted ? $0.lastStable : $0.highWatermark }
            let found: TimestampedOffset? = try partition.withLog { log throws(StorageError) -> TimestampedOffset? in
                switch p.timestamp {
                case Self.latest: TimestampedOffset(offset: lastStable ?? log.logEndOffset, timestamp: .none)
                case Self.earliest, Self.earliestLocal: TimestampedOffset(offset: log.logStartOffset, timestamp: .none)
                case Self.maxTimestamp: try log.maxTimestampOffset()
                case Self.latestTiered: nil
                case ..<0: nil
                default: try log.offset(forTimestamp: Timestamp(ms: p.timestamp))
                }
            }
            if let found {
                result.offset = found.offset
                result.timestamp = found.timestamp.ms
                result.leaderEpoch = partition.leaderEpoch
            }
        } catch {
            result.errorCode = ErrorMapping.code(for: error).rawValue
        }
        return result
    }
}
