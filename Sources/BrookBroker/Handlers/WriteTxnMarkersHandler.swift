import BrookCore
import BrookProtocol
import BrookTxn
import NIOCore

/// WriteTxnMarkers (broker to broker): a transaction coordinator has this broker write the
/// commit or abort markers of a transaction to the partitions it leads. Each partition is
/// answered once its marker is in the ISR (in a cluster), NOT_LEADER_OR_FOLLOWER where this
/// broker does not lead, UNKNOWN_TOPIC_OR_PARTITION where the partition does not exist. A marker
/// into `__consumer_offsets` also settles the transaction's offsets in the group coordinator.
/// Versions 1-2 as Kafka 4 (0 was removed there).
struct WriteTxnMarkersHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 1...2
    /// Between brokers.
    func exemptFromRequestQuota(_ request: WriteTxnMarkersRequest) -> Bool { true }

    typealias Result = WriteTxnMarkersResponse.WritableTxnMarkerResult

    func handle(_ request: WriteTxnMarkersRequest, version: Int16, context: RequestContext) -> Reply<WriteTxnMarkersResponse> {
        let service = context.broker.transactions
        let loop = context.eventLoop
        var waits: [EventLoopFuture<(Int, String, Int32, ErrorCode)>] = []
        var results: [Result] = []
        for (markerIndex, marker) in request.markers.enumerated() {
            var topics: [Result.WritableTxnMarkerTopicResult] = []
            for topic in marker.topics {
                var partitions: [Result.WritableTxnMarkerTopicResult.WritableTxnMarkerPartitionResult] = []
                for index in topic.partitionIndexes {
                    let (code, written) = service.writeMarker(TxnPartition(topic.name, index), producerID: marker.producerId,
                                                              epoch: marker.producerEpoch, commit: marker.transactionResult,
                                                              coordinatorEpoch: LeaderEpoch(marker.coordinatorEpoch))
                    partitions.append(.init(partitionIndex: index, errorCode: code.rawValue))
                    if let written, service.isCluster {
                        let name = topic.name
                        waits.append(written.partition.highWatermark(reaching: written.end, timeoutMs: InternalWrite.writeTimeoutMs, on: loop)
                            .map { (markerIndex, name, index, $0) })
                    }
                }
                topics.append(.init(name: topic.name, partitions: partitions))
            }
            results.append(Result(producerId: marker.producerId, topics: topics))
        }
        if waits.isEmpty { return .now(WriteTxnMarkersResponse(markers: results)) }
        let answered = results
        return .later(EventLoopFuture.whenAllSucceed(waits, on: loop).map { outcomes in
            var results = answered
            for (marker, topic, index, code) in outcomes where code != .none {
                for t in results[marker].topics.indices where results[marker].topics[t].name == topic {
                    for p in results[marker].topics[t].partitions.indices where results[marker].topics[t].partitions[p].partitionIndex == index {
                        results[marker].topics[t].partitions[p].errorCode = code.rawValue
                    }
                }
            }
            return WriteTxnMarkersResponse(markers: results)
        })
    }

    func refused(_ request: WriteTxnMarkersRequest, version: Int16, code: ErrorCode, message: String) -> WriteTxnMarkersResponse? {
        WriteTxnMarkersResponse(markers: request.markers.map { marker in
            Result(producerId: marker.producerId, topics: marker.topics.map { topic in
                .init(name: topic.name, partitions: topic.partitionIndexes.map { .init(partitionIndex: $0, errorCode: code.rawValue) })
            })
        })
    }
}
