import BrookCluster
import BrookCore
import BrookProtocol
import BrookRaft
import NIOCore

/// The controllers' wire codec as the fuzzing harness drives it (Sources/BrookFuzzTargets):
/// `Frame` and `FrameDecoder` stay internal, and this is their one public door.
public enum QuorumWireFuzzing {
    /// Cuts `stream` into frames as `FrameDecoder` does (a 4-byte length, at most
    /// `Frame.bytesMax`), decodes each body, and checks that a frame that decodes encodes back
    /// to bytes that decode to the same frame. Stops at the first frame that is malformed or
    /// over the limit (where the connection would close). Returns the frames decoded.
    @discardableResult
    public static func decodeStream(_ stream: ByteBuffer) -> Int {
        var stream = stream
        var decoded = 0
        while let length = stream.getInteger(at: stream.readerIndex, as: UInt32.self), length <= Frame.bytesMax,
              stream.readableBytes >= 4 + Int(length) {
            stream.moveReaderIndex(forwardBy: 4)
            var body = stream.readSlice(length: Int(length))!
            guard let frame = Frame.decode(&body) else { break }
            var encoded = ByteBuffer()
            frame.encode(into: &encoded)
            precondition(encoded.readInteger(as: UInt32.self) == UInt32(encoded.readableBytes), "frame length")
            precondition(Frame.decode(&encoded) == frame, "a decoded frame encodes to a different frame: \(frame)")
            if case .answer(_, _, let text) = frame { readAnswer(text) }
            decoded += 1
        }
        return decoded
    }

    /// A controller's text answer read as a broker reads it: the topic answers, and the quorum's
    /// description, which must read back the same once written again.
    static func readAnswer(_ text: String) {
        _ = TopicAnswerText.parse(text)
        if let quorum = QuorumDescriptionText.parse(text) {
            precondition(QuorumDescriptionText.parse(QuorumDescriptionText.text(quorum)) == quorum, "a quorum description reads back differently")
        }
    }

    /// One frame of each kind and message body, encoded: the fuzzer's seeds.
    public static var sampleFrames: [ByteBuffer] {
        let configuration = Configuration(voters: [NodeID(1), NodeID(2), NodeID(3), NodeID(4)], endpoints: [NodeID(4): "127.0.0.1:9094"])
        let entries = [Entry(term: Term(3), index: LogIndex(11), data: [1, 2, 3]),
                       Entry(term: Term(3), index: LogIndex(12), kind: .configuration, data: configuration.encoded)]
        let bodies: [Message.Body] = [
            .preVote(lastIndex: LogIndex(10), lastTerm: Term(2)), .preVoteResponse(granted: true),
            .vote(lastIndex: LogIndex(10), lastTerm: Term(2), transfer: true), .voteResponse(granted: false),
            .append(prevIndex: LogIndex(10), prevTerm: Term(2), entries: entries, commit: LogIndex(9)),
            .appendResponse(success: false, index: LogIndex(10), hint: LogIndex(7)),
            .installSnapshot(Snapshot(index: LogIndex(20), term: Term(3), configuration: configuration, data: [9, 8, 7])),
            .timeoutNow,
        ]
        let frames = bodies.map { Frame.raft(Message(from: NodeID(1), to: NodeID(2), term: Term(3), body: $0)) } + [
            .request(id: 1, .status), .request(id: 2, .propose([0x61, 0x62])), .request(id: 3, .read(LogIndex(5))),
            .request(id: 4, .transfer(NodeID(2))), .answer(id: 5, ok: true, text: "role=leader"),
            .request(id: 6, .registerBroker(BrokerRegistrationRequest(
                id: NodeID(2), incarnation: KafkaUUID(high: 7, low: 9),
                endpoints: [.init(name: "PLAINTEXT", host: "127.0.0.1", port: 9092, securityProtocol: 0)], rack: "r1", cleanShutdown: false))),
            .request(id: 7, .brokerHeartbeat(BrokerHeartbeatRequest(id: NodeID(2), epoch: BrokerEpoch(5), metadataOffset: MetadataOffset(40), wantShutdown: true))),
            .request(id: 25, .brokerHeartbeat(BrokerHeartbeatRequest(id: NodeID(3), epoch: BrokerEpoch(6), metadataOffset: MetadataOffset(41),
                                                                     offlineReplicas: [TopicIDPartition(KafkaUUID(high: 1, low: 2), 0),
                                                                                       TopicIDPartition(KafkaUUID(high: 1, low: 2), 3)]))),
            .request(id: 8, .fetchMetadata(after: MetadataOffset(12), maxWaitMs: 500)), .request(id: 9, .describeCluster), .request(id: 15, .describeQuorum),
            .answer(id: 26, ok: true, text: QuorumDescriptionText.text(QuorumDescription(
                leader: NodeID(1), term: 3, highWatermark: 9,
                voters: [.init(id: NodeID(1), logEnd: 9, lastCaughtUpMs: 1_765_000_000_000), .init(id: NodeID(2), logEnd: 7, lastFetchMs: 5, lastCaughtUpMs: -1)],
                observers: [.init(id: NodeID(4), logEnd: 8)], endpoints: [NodeID(1): "127.0.0.1:9093"]))),
            .data(id: 10, [0, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 0]),
            .request(id: 11, .admin(.createTopics([NewTopic(name: "t", partitions: 3, replicationFactor: 1, configs: ["retention.ms": "100"]),
                                                   NewTopic(name: "u", assignments: [[NodeID(1)], [NodeID(2)]])], validateOnly: false))),
            .request(id: 12, .admin(.deleteTopics(["t", "u"]))), .request(id: 13, .admin(.createPartitions(topic: "t", total: 9))),
            .request(id: 17, .admin(.electLeaders(.preferred, [ElectionTarget(topic: "t", partitions: [0, 2])]))),
            .request(id: 18, .admin(.electLeaders(.unclean, nil))),
            .request(id: 19, .admin(.reassign([ReassignmentRequest(topic: "t", partition: 0, replicas: [NodeID(2), NodeID(3)]),
                                               ReassignmentRequest(topic: "t", partition: 1, replicas: nil)],
                                              allowReplicationFactorChange: false))),
            .request(id: 20, .allocateProducerIDs(broker: NodeID(2), epoch: BrokerEpoch(7))),
            .request(id: 21, .admin(.unregisterBroker(NodeID(3)))),
            .request(id: 22, .addVoter(VoterAddress(id: NodeID(4), host: "127.0.0.1", port: 9094))), .request(id: 23, .removeVoter(NodeID(1))),
            .request(id: 16, .admin(.setTopicConfigs(topic: "t", configs: ["retention.ms": "1000", "min.insync.replicas": "2"]))),
            .request(id: 24, .admin(.setBrokerConfigs(broker: "2", configs: ["leader.replication.throttled.rate": "1000"]))),
            .request(id: 25, .admin(.setGroupConfigs(group: "g", configs: ["consumer.heartbeat.interval.ms": "6000"]))),
            .request(id: 26, .admin(.alterScramCredentials(
                removals: [RemoveUserScramCredentialRecord(name: "old", mechanism: 2)],
                upsertions: [UserScramCredentialRecord(name: "alice", mechanism: 1, salt: ByteBuffer(bytes: [1, 2, 3]),
                                                       storedKey: ByteBuffer(bytes: [4, 5]), serverKey: ByteBuffer(bytes: [6]), iterations: 4096)]))),
            .request(id: 27, .admin(.createAcls([AclBinding(resourceType: .topic, name: "orders", patternType: .prefixed, principal: "User:alice",
                                                            host: "*", operation: .read, permission: .allow)]))),
            .request(id: 28, .admin(.deleteAcls([KafkaUUID(high: 7, low: 9)]))),
            .request(id: 14, .alterPartitions([
                AlterPartitionRequest(broker: NodeID(1), brokerEpoch: BrokerEpoch(4), partition: TopicIDPartition(KafkaUUID(high: 1, low: 2), 3),
                                      proposal: ISRProposal(leaderEpoch: LeaderEpoch(2), partitionEpoch: PartitionEpoch(5), isr: [NodeID(1), NodeID(3)])),
                AlterPartitionRequest(broker: NodeID(1), brokerEpoch: BrokerEpoch(4), partition: TopicIDPartition(KafkaUUID(high: 1, low: 2), 4),
                                      proposal: ISRProposal(leaderEpoch: LeaderEpoch(1), partitionEpoch: PartitionEpoch(9), isr: [NodeID(1)])),
            ])),
        ]
        return frames.map { frame in
            var buffer = ByteBuffer()
            frame.encode(into: &buffer)
            return buffer
        }
    }
}
