import BrookCore
import BrookProtocol
import BrookRecords
import NIOCore

extension BrokerConnection {
    /// Partition counts of `topics` (auto-creating them when the broker allows and `create`).
    public func partitionCounts(_ topics: [String], create: Bool = false) async throws -> [String: Int32] {
        let answer = try await send(MetadataRequest(
            topics: topics.map { MetadataRequest.MetadataRequestTopic(name: $0) }, allowAutoTopicCreation: create))
        var counts: [String: Int32] = [:]
        for topic in answer.topics {
            let name = topic.name ?? "?"
            guard topic.errorCode == 0 else { throw ClientError("topic \(name): \(ErrorCode(rawValue: topic.errorCode))") }
            counts[name] = Int32(topic.partitions.count)
        }
        return counts
    }

    /// Appends one batch per partition in one request; returns the base offset per partition.
    /// With acks=0 nothing comes back and the offsets are unknown (-1).
    public func produce(topic: String, batches: [Int32: [UInt8]], acks: Int16, timeoutMs: Int32 = 30_000) async throws -> [Int32: Offset] {
        let data = batches.sorted { $0.key < $1.key }.map { partition, bytes in
            ProduceRequest.TopicProduceData.PartitionProduceData(index: partition, records: .bytes(ByteBuffer(bytes: bytes)))
        }
        let request = ProduceRequest(acks: acks, timeoutMs: timeoutMs, topicData: [.init(name: topic, partitionData: data)])
        if acks == 0 {
            try await sendWithoutResponse(request)
            return Dictionary(uniqueKeysWithValues: batches.keys.map { ($0, Offset(-1)) })
        }
        let answer = try await send(request)
        var offsets: [Int32: Offset] = [:]
        for response in answer.responses {
            for p in response.partitionResponses {
                guard p.errorCode == 0 else {
                    throw ClientError("produce to \(topic)-\(p.index): \(ErrorCode(rawValue: p.errorCode))\(p.errorMessage.map { ": \($0)" } ?? "")")
                }
                offsets[p.index] = p.baseOffset
            }
        }
        return offsets
    }

    /// ListOffsets for every partition: -2 earliest, -1 latest, or a timestamp in ms.
    public func listOffsets(topic: String, partitions: [Int32], timestamp: Int64) async throws -> [Int32: Offset] {
        let answer = try await send(ListOffsetsRequest(replicaId: NodeID(-1), topics: [.init(name: topic, partitions: partitions.map {
            .init(partitionIndex: $0, timestamp: timestamp)
        })]))
        var offsets: [Int32: Offset] = [:]
        for t in answer.topics {
            for p in t.partitions {
                guard p.errorCode == 0 else { throw ClientError("list offsets \(topic)-\(p.partitionIndex): \(ErrorCode(rawValue: p.errorCode))") }
                offsets[p.partitionIndex] = p.offset
            }
        }
        return offsets
    }
}
