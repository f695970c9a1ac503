import BrookCluster
import BrookCore
import BrookProtocol
import NIOCore

/// ElectLeaders: the preferred replica leads again (type 0), or a leaderless partition gets the
/// first live replica (type 1, unclean). In a cluster the controller decides and the answer comes
/// once its entry is committed; partitions this broker's image does not know are answered
/// UNKNOWN_TOPIC_OR_PARTITION here. A single node leads every partition already:
/// ELECTION_NOT_NEEDED.
struct ElectLeadersHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...2

    typealias Result = ElectLeadersResponse.ReplicaElectionResult

    func handle(_ request: ElectLeadersRequest, version: Int16, context: RequestContext) -> Reply<ElectLeadersResponse> {
        let broker = context.broker
        guard let type = ElectionType(rawValue: version == 0 ? 0 : request.electionType) else {
            return .now(ElectLeadersResponse(errorCode: ErrorCode.invalidRequest.rawValue))
        }
        let asked = request.topicPartitions.map { list in list.map { ElectionTarget(topic: $0.topic, partitions: $0.partitions) } }
        guard broker.cluster.isCluster, let image = broker.cluster.current?.image else {
            let answers = (asked ?? []).flatMap { t in t.partitions.map { p -> (String, Int32, ErrorCode, String?) in
                guard let topic = broker.topics.topic(t.topic), p >= 0, Int(p) < topic.partitions.count else {
                    return (t.topic, p, .unknownTopicOrPartition, "The partition does not exist.")
                }
                return (t.topic, p, .electionNotNeeded, "Leader is already the preferred replica.")
            } }
            return .now(Self.response(answers))
        }
        var local: [(String, Int32, ErrorCode, String?)] = []
        var forwarded: [ElectionTarget]? = asked.map { _ in [] }
        for target in asked ?? [] {
            let known = image.topic(named: target.topic)
            var kept: [Int32] = []
            for p in target.partitions {
                if let known, p >= 0, Int(p) < known.partitions.count { kept.append(p) } else {
                    local.append((target.topic, p, .unknownTopicOrPartition, "The partition does not exist."))
                }
            }
            if !kept.isEmpty { forwarded?.append(ElectionTarget(topic: target.topic, partitions: kept)) }
        }
        if let forwarded, forwarded.isEmpty { return .now(Self.response(local)) }
        let (refused, sent) = (local, forwarded)
        return .later(broker.cluster.forward(.electLeaders(type, sent), on: context.eventLoop).map { result in
            switch result {
            case .success(let answers):
                return Self.response(refused + answers.map { ($0.name, Int32($0.partitions), $0.error, $0.message) })
            case .failure(let error):
                let failed = (sent ?? []).flatMap { t in t.partitions.map { (t.topic, $0, ErrorCode.requestTimedOut, Optional("The controller did not answer: \(error)")) } }
                return Self.response(refused + failed, error: sent == nil ? .requestTimedOut : .none)
            }
        })
    }

    /// Results grouped by topic, in the order first named.
    static func response(_ answers: [(String, Int32, ErrorCode, String?)], error: ErrorCode = .none) -> ElectLeadersResponse {
        var order: [String] = []
        var byTopic: [String: [Result.PartitionResult]] = [:]
        for (topic, partition, code, message) in answers {
            if byTopic[topic] == nil { order.append(topic) }
            byTopic[topic, default: []].append(.init(partitionId: partition, errorCode: code.rawValue, errorMessage: message))
        }
        return ElectLeadersResponse(throttleTimeMs: 0, errorCode: error.rawValue,
                                    replicaElectionResults: order.map { Result(topic: $0, partitionResult: byTopic[$0]!) })
    }

    func refused(_ request: ElectLeadersRequest, version: Int16, code: ErrorCode, message: String) -> ElectLeadersResponse? {
        let asked = (request.topicPartitions ?? []).prefix(Limits.partitionsPerRequestMax)
        return Self.response(asked.flatMap { topic in topic.partitions.map { (topic.topic, $0, code, message) } }, error: code)
    }
}
