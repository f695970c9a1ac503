import BrookCore
import BrookProtocol
import BrookStorage
import BrookTxn
import NIOCore

/// Produce: validates and appends record batches. acks=1 and acks=all are the same on a single
/// node (it is the whole ISR); acks=0 gets no answer, and a failure closes the connection. A batch with a producer id is checked
/// against the partition's producer state (a retry gets its original offsets); a transactional
/// one must belong to its producer's open transaction (KIP-890's verification).
struct ProduceHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 3...12
    /// Kafka 4 still lists v0-v2 (it answers them with an error): librdkafka enables
    /// compression only when it sees them listed.
    let advertised: ClosedRange<Int16> = 0...12

    typealias PartitionResult = ProduceResponse.TopicProduceResponse.PartitionProduceResponse

    func handle(_ request: ProduceRequest, version: Int16, context: RequestContext) -> Reply<ProduceResponse> {
        let validAcks = request.acks == -1 || request.acks == 0 || request.acks == 1
        let responses = request.topicData.map { topic in
            ProduceResponse.TopicProduceResponse(name: topic.name, partitionResponses: topic.partitionData.map { data in
                guard validAcks else { return failure(data.index, .invalidRequiredAcks, nil) }
                return append(data, topic: topic.name, transactionalID: request.transactionalId, context: context)
            })
        }
        if request.acks == 0 {
            let failed = responses.flatMap { topic in topic.partitionResponses.filter { $0.errorCode != 0 }.map { (topic.name, $0) } }
            guard let (topic, first) = failed.first else { return .none }
            return .closeConnection("an acks=0 produce failed (\(topic)-\(first.index): error \(first.errorCode)\(first.errorMessage.map { ", " + $0 } ?? ""))")
        }
        return .now(ProduceResponse(responses: responses, throttleTimeMs: 0))
    }

    func append(_ data: ProduceRequest.TopicProduceData.PartitionProduceData, topic: String, transactionalID: String?,
                context: RequestContext) -> PartitionResult {
        guard let partition = context.broker.topics.partition(topic, data.index) else {
            return failure(data.index, .unknownTopicOrPartition, nil)
        }
        guard partition.isLeader else { return failure(data.index, .notLeaderOrFollower, "This broker does not lead \(partition.name)") }
        // The coordinators write their internal topics; clients may not (as in Kafka).
        if topic == GroupService.offsetsTopic || topic == TxnService.stateTopic {
            return failure(data.index, .invalidTopicException, "\(topic) is an internal topic")
        }
        guard case .bytes(var records)? = data.records, records.readableBytes > 0 else {
            return failure(data.index, .corruptMessage, "The request holds no record batch")
        }
        // Only a transactional producer's request pays for the verification closure.
        let verify: ((ProducerBatch) -> ErrorCode?)? = transactionalID.map { id in
            let transactions = context.broker.transactions
            let target = TxnPartition(topic, data.index)
            return { batch in
                transactions.verify(transactionalID: id, producerID: batch.producerID, epoch: batch.epoch, partition: target)
            }
        }
        do throws(Partition.AppendError) {
            let appended = try partition.append(&records, now: context.broker.clock.now().ms, verify: verify)
            let result = appended.result
            return PartitionResult(index: data.index, errorCode: 0, baseOffset: result.firstOffset,
                                   logAppendTimeMs: result.logAppendTime?.ms ?? -1, logStartOffset: appended.logStart)
        } catch {
            switch error {
            case .producer(let code, let message):
                return failure(data.index, code, message)
            case .storage(let error):
                let code = ErrorMapping.code(for: error)
                if code == .kafkaStorageError { context.broker.logger.error("append to \(partition.name) failed: \(error)") }
                return failure(data.index, code, "\(error)")
            }
        }
    }

    func failure(_ index: Int32, _ code: ErrorCode, _ message: String?) -> PartitionResult {
        PartitionResult(index: index, errorCode: code.rawValue, baseOffset: Offset(-1), errorMessage: message)
    }
}
