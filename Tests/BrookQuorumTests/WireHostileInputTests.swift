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
