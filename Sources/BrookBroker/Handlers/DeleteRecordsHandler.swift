import BrookCore
import BrookProtocol
import BrookStorage

/// DeleteRecords: moves a partition's log start offset forward (-1: to the high watermark).
struct DeleteRecordsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...2

    func handle(_ request: DeleteRecordsRequest, version: Int16, context: RequestContext) -> Reply<DeleteRecordsResponse> {
        // With an authorizer: DELETE on each topic.
        let authorization = context.authorization
        let topics = request.topics.map { topic in
            let deletable = authorization.allows(.delete, .topic, topic.name)
            return DeleteRecordsResponse.DeleteRecordsTopicResult(name: topic.name, partitions: topic.partitions.map { p in
                var result = DeleteRecordsResponse.DeleteRecordsTopicResult.DeleteRecordsPartitionResult(
                    partitionIndex: p.partitionIndex, lowWatermark: Offset(-1), errorCode: 0)
                guard deletable else {
                    result.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                    return result
                }
                let found = context.broker.topics.lookup(topic.name, p.partitionIndex)
                guard case .hosted(let partition) = found else {
                    result.errorCode = found.absentCode.rawValue
                    return result
                }
                guard partition.isLeader else {
                    result.errorCode = ErrorCode.notLeaderOrFollower.rawValue
                    return result
                }
                do throws(StorageError) {
                    result.lowWatermark = try partition.deleteRecords(before: p.offset.value == -1 ? nil : p.offset)
                } catch {
                    result.errorCode = ErrorMapping.code(for: error).rawValue
                }
                return result
            })
        }
        return .now(DeleteRecordsResponse(throttleTimeMs: 0, topics: topics))
    }
}
