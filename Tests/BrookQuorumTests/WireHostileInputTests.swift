import BrookCluster
import BrookCore
import BrookProtocol
@testable import BrookQuorum
import BrookRaft
import NIOCore
import Testing

/// The controllers' wire frames: what decodes round-trips, and hostile bytes are refused
/// without trapping (found writing the fuzz target quorum-wire, docs/reliability.md).
@Suite struct WireHostileInputTests {
    /// A frame body with an append message: previous index and term, commit, then entries of
    /// (term, index, kind, data length, data).
    static func appendBody(prevIndex: Int64, entryIndexes: [Int64]) -> ByteBuffer {
        var body = ByteBuffer()
        body.writeInteger(UInt8(1))
        body.writeInteger(Int32(1)); body.writeInteger(Int32(2)); body.writeInteger(Int64(3))
        body.writeInteger(UInt8(5))
        body.writeInteger(prevIndex); body.writeInteger(Int64(2)); body.writeInteger(Int64(0))
        body.writeInteger(UInt32(entryIndexes.count))
        for index in entryIndexes {
            body.writeInteger(Int64(3)); body.writeInteger(index); body.writeInteger(UInt8(0)); body.writeInteger(UInt32(0))
        }
        return body
    }

    /// A client quota change whose value is not a number is refused as malformed: it once
    /// decoded, and the decoded frame did not equal itself (NaN), which the fuzz target
    /// quorum-wire took for a broken round trip (Tests/Fuzz/corpus/quorum-wire/crash-quota-nan).
    @Test func aQuotaValueThatIsNotANumberIsRefused() {
        func frame(_ value: Double) -> Frame? {
            let change = ClientQuotaRecord(entity: [.init(entityType: "user", entityName: "alice")], key: "producer_byte_rate",
                                           value: value, remove: false)
            var encoded = ByteBuffer()
            Frame.request(id: 7, .admin(.alterClientQuotas([change]))).encode(into: &encoded)
            _ = encoded.readInteger(as: UInt32.self)
            return Frame.decode(&encoded)
        }
        #expect(frame(1024) != nil)
        #expect(frame(.infinity) != nil, "refused later, by the controller; it round-trips")
        #expect(frame(.nan) == nil)
        #expect(frame(-Double.nan) == nil)
    }

    @Test func sampleFramesRoundTrip() {
        for frame in QuorumWireFuzzing.sampleFrames {
            #expect(QuorumWireFuzzing.decodeStream(frame) == 1)
        }
    }

    /// AddVoter: a node id, a port (not 0), a host of 1 to 255 bytes, nothing after.
    @Test func anAddedVotersAddressIsBounded() {
        func frame(_ host: [UInt8], port: UInt16 = 9094, node: Int32 = 4, trailing: [UInt8] = []) -> Frame? {
            var body = ByteBuffer()
            body.writeInteger(UInt8(2)); body.writeInteger(UInt32(1)); body.writeInteger(UInt8(12))
            body.writeInteger(node); body.writeInteger(port); body.writeInteger(UInt16(host.count)); body.writeBytes(host)
            body.writeBytes(trailing)
            return Frame.decode(&body)
        }
        #expect(frame(Array("h".utf8)) == .request(id: 1, .addVoter(VoterAddress(id: NodeID(4), host: "h", port: 9094))))
        #expect(frame([]) == nil)
        #expect(frame(Array(repeating: 0x61, count: 256)) == nil)
        #expect(frame(Array("h".utf8), port: 0) == nil)
        #expect(frame(Array("h".utf8), node: -1) == nil)
        #expect(frame(Array("h".utf8), trailing: [0]) == nil)
        #expect(frame([0xff, 0xfe]) == nil, "not UTF-8")
    }

    /// AlterPartition with many partitions: 1 to `partitionsMax` of them, ISRs of at most 64,
    /// nothing after; the answer's text names one partition a line.
    @Test func manyISRChangesInOneFrameAreBounded() {
        func frame(count: UInt16, isrSize: UInt16 = 2, trailing: [UInt8] = []) -> Frame? {
            var body = ByteBuffer()
            body.writeInteger(UInt8(2)); body.writeInteger(UInt32(1)); body.writeInteger(UInt8(14))
            body.writeInteger(Int32(1)); body.writeInteger(Int64(4)); body.writeInteger(count)
            for i in 0..<Int(min(count, 3)) {
                body.writeInteger(UInt64(1)); body.writeInteger(UInt64(2)); body.writeInteger(Int32(i))
                body.writeInteger(Int32(2)); body.writeInteger(Int32(5)); body.writeInteger(isrSize)
                for n in 0..<Int32(min(isrSize, 70)) { body.writeInteger(n) }
            }
            body.writeBytes(trailing)
            return Frame.decode(&body)
        }
        guard case .request(_, .alterPartitions(let changes)) = frame(count: 3) else {
            Issue.record("three ISR changes do not decode")
            return
        }
        #expect(changes.map(\.partition.partition) == [0, 1, 2])
        #expect(changes.allSatisfy { $0.broker == NodeID(1) && $0.brokerEpoch == BrokerEpoch(4) && $0.proposal.isr == [NodeID(0), NodeID(1)] })
        #expect(frame(count: 0) == nil, "no change")
        #expect(frame(count: 4) == nil, "fewer changes than counted")
        #expect(frame(count: UInt16(AlterPartitionRequest.partitionsMax + 1)) == nil)
        #expect(frame(count: 3, isrSize: 65) == nil)
        #expect(frame(count: 3, trailing: [0]) == nil)

        let info = PartitionInfo(replicas: [NodeID(1), NodeID(2), NodeID(3)], isr: [NodeID(1), NodeID(3)], leader: NodeID(1),
                                 leaderEpoch: LeaderEpoch(2), partitionEpoch: PartitionEpoch(6), elr: [NodeID(2)])
        var noELR = info
        noELR.elr = []
        let text = ISRChangeAnswers.text([(.none, info), (.fencedLeaderEpoch, nil), (.none, noELR)])
        let parsed = ISRChangeAnswers.parse(text, count: 3)
        #expect(parsed?.count == 3)
        #expect(parsed?[0].0 == ErrorCode.none && parsed?[0].1?.isr == [NodeID(1), NodeID(3)] && parsed?[0].1?.elr == [NodeID(2)]
                && parsed?[0].1?.partitionEpoch == PartitionEpoch(6))
        #expect(parsed?[1].0 == .fencedLeaderEpoch && parsed?[1].1 == nil)
        #expect(parsed?[2].1?.elr == [])
        #expect(ISRChangeAnswers.parse(text, count: 2) == nil, "a line short")
        #expect(ISRChangeAnswers.parse("0 2 x 1 -\n", count: 1) == nil)
    }

    @Test func appendEntriesFollowThePreviousIndex() {
        var good = Self.appendBody(prevIndex: 10, entryIndexes: [11, 12])
        #expect(Frame.decode(&good) != nil)
        var gap = Self.appendBody(prevIndex: 10, entryIndexes: [11, 13])
        #expect(Frame.decode(&gap) == nil)
    }

    /// prevIndex at Int64.max: `prevIndex + 1` trapped on overflow, so any peer could crash a
    /// controller with one frame (Tests/Fuzz/corpus/quorum-wire/crash-append-prev-index-overflow).
    @Test func appendAtTheLargestPreviousIndexIsRefused() {
        var body = Self.appendBody(prevIndex: .max, entryIndexes: [5])
        #expect(Frame.decode(&body) == nil)
        var wraps = Self.appendBody(prevIndex: .max, entryIndexes: [.min])
        #expect(Frame.decode(&wraps) == nil)
    }
}

/// The controller's admin answers as text (TopicAnswerText): found in review, an answer with an
/// empty value (a field written as `topic=`) was unreadable, and the broker reported the
/// controller unreachable.
@Suite struct TopicAnswerTextTests {
    @Test func answersRoundTripEmptyNamesAndMessagesIncluded() {
        let answers = [TopicAnswer(name: "", error: .brokerIDNotRegistered, message: "Broker 3 is not registered."),
                       TopicAnswer(name: "orders", error: .none, topicID: KafkaUUID(high: 1, low: 2), partitions: 3, replicationFactor: 2),
                       TopicAnswer(name: "7", error: .none, message: "a=b c=d")]
        let text = TopicAnswerText.offsetLine(MetadataOffset(12)) + answers.map(TopicAnswerText.line).joined()
        let parsed = TopicAnswerText.parse(text)
        #expect(parsed?.offset == MetadataOffset(12))
        #expect(parsed?.answers == answers)
        #expect(TopicAnswerText.parse("topic error_code=0 message=") == nil)
    }
}
