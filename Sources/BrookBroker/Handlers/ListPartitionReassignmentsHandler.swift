import BrookCluster
import BrookCore
import BrookProtocol

/// ListPartitionReassignments: the moves running now, from this broker's metadata image (a
/// single node has none).
struct ListPartitionReassignmentsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...0

    typealias Ongoing = ListPartitionReassignmentsResponse.OngoingTopicReassignment

    func handle(_ request: ListPartitionReassignmentsRequest, version: Int16, context: RequestContext) -> Reply<ListPartitionReassignmentsResponse> {
        guard let image = context.broker.cluster.current?.image else { return .now(ListPartitionReassignmentsResponse(errorCode: 0)) }
        let wanted = request.topics.map { Dictionary($0.map { ($0.name, Set($0.partitionIndexes)) }, uniquingKeysWith: { $0.union($1) }) }
        var topics: [Ongoing] = []
        for topic in image.topics.values.sorted(by: { $0.name < $1.name }) {
            if let wanted, wanted[topic.name] == nil { continue }
            let partitions = topic.partitions.enumerated().compactMap { index, p -> Ongoing.OngoingPartitionReassignment? in
                guard p.reassignmentTarget != nil else { return nil }
                if let only = wanted?[topic.name], !only.contains(Int32(index)) { return nil }
                return .init(partitionIndex: Int32(index), replicas: p.replicas, addingReplicas: p.adding, removingReplicas: p.removing)
            }
            if !partitions.isEmpty { topics.append(Ongoing(name: topic.name, partitions: partitions)) }
        }
        return .now(ListPartitionReassignmentsResponse(throttleTimeMs: 0, errorCode: 0, topics: topics))
    }

    func refused(_ request: ListPartitionReassignmentsRequest, version: Int16, code: ErrorCode, message: String) -> ListPartitionReassignmentsResponse? {
        ListPartitionReassignmentsResponse(errorCode: code.rawValue, errorMessage: message)
    }
}
