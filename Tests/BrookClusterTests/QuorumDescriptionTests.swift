import BrookCluster
import BrookCore
import Testing

/// The controller's text answer to a broker's DescribeQuorum.
@Suite struct QuorumDescriptionTests {
    let sample = QuorumDescription(
        leader: NodeID(2), term: 7, highWatermark: 120,
        voters: [.init(id: NodeID(1), logEnd: 118, lastFetchMs: 1_765_000_000_100, lastCaughtUpMs: 1_765_000_000_000),
                 .init(id: NodeID(2), logEnd: 121, lastFetchMs: -1, lastCaughtUpMs: 1_765_000_000_200),
                 .init(id: NodeID(3), logEnd: -1)],
        observers: [.init(id: NodeID(4), logEnd: 119, lastFetchMs: 1_765_000_000_050, lastCaughtUpMs: -1)],
        endpoints: [NodeID(1): "127.0.0.1:9093", NodeID(2): "[::1]:9094"])

    @Test func theTextAnswerReadsBackAsWritten() {
        #expect(QuorumDescriptionText.parse(QuorumDescriptionText.text(sample)) == sample)
        let empty = QuorumDescription(leader: NodeID(1), term: 1, highWatermark: 0, voters: [], observers: [])
        #expect(QuorumDescriptionText.parse(QuorumDescriptionText.text(empty)) == empty)
    }

    @Test func anythingElseIsRefused() {
        let text = QuorumDescriptionText.text(sample)
        #expect(QuorumDescriptionText.parse("") == nil)
        #expect(QuorumDescriptionText.parse("error=not the leader\nleader=1\n") == nil)
        // A replica before the leader line, a number missing, a key twice, a line unknown.
        #expect(QuorumDescriptionText.parse("voter=1 log_end=3 last_fetch_ms=-1 last_caught_up_ms=-1\n" + text) == nil)
        #expect(QuorumDescriptionText.parse(text + "voter=5 log_end=x last_fetch_ms=-1 last_caught_up_ms=-1\n") == nil)
        #expect(QuorumDescriptionText.parse(text + "voter=5 voter=6 log_end=1 last_fetch_ms=-1 last_caught_up_ms=-1\n") == nil)
        #expect(QuorumDescriptionText.parse(text + "mystery=1\n") == nil)
        #expect(QuorumDescriptionText.parse(text + text) == nil, "two leader lines")
    }

    @Test func theNumberOfReplicasIsBounded() {
        var text = "leader=1 term=1 high_watermark=5\n"
        for i in 0...(2 * QuorumDescription.replicasMax) { text += "observer=\(i) log_end=1 last_fetch_ms=-1 last_caught_up_ms=-1\n" }
        #expect(QuorumDescriptionText.parse(text) == nil)
    }
}
