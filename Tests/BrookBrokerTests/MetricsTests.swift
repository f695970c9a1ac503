@testable import BrookBroker
import BrookCore
import BrookProtocol
@testable import BrookServer
import NIOCore
import Testing

/// The node's metrics as `/metrics` renders them: answers' error codes counted by API and code,
/// partition series, consumer lag in records and seconds, series of what is gone taken out.
@Suite struct MetricsTests {
    func render(_ metrics: ServerMetrics, _ h: BrokerHarness) -> String {
        String(decoding: metrics.render(nowMs: h.clock.now().ms), as: UTF8.self)
    }

    /// The value of the one sample whose line starts with `series` (name and labels as rendered).
    func sample(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    @Test func errorCodesAtAnyDepthAreVisited() {
        var response = ProduceResponse()
        response.responses = [.init(name: "t", partitionResponses: [
            .init(index: 0, errorCode: 0), .init(index: 1, errorCode: ErrorCode.notLeaderOrFollower.rawValue),
            .init(index: 2, errorCode: ErrorCode.notLeaderOrFollower.rawValue),
        ])]
        var seen: [Int16] = []
        response.visitErrorCodes { seen.append($0) }
        #expect(seen == [0, 6, 6])
        var none: [Int16] = []
        ProduceRequest().visitErrorCodes { none.append($0) }
        #expect(none.isEmpty)
    }

    @Test func answersErrorsPartitionsAndLagAreRendered() throws {
        let metrics = ServerMetrics()
        let h = try BrokerHarness(responseErrors: metrics.requests)
        defer { h.close() }
        metrics.attach(broker: h.broker)
        try h.createTopic("t", partitions: 2)
        let now = h.clock.now().ms
        try h.produce("t", partition: 0, batch(["a"], timestamps: [now - 5000]))
        try h.produce("t", partition: 0, batch(["b", "c"], timestamps: [now - 4000, now - 3000]))
        // Partition 7 does not exist: the answer's code is counted.
        #expect(try h.produce("t", partition: 7, batch(["x"], timestamps: [now])).errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
        _ = try h.send(OffsetCommitRequest(groupId: "g", generationIdOrMemberEpoch: -1, memberId: "", topics: [
            .init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: Offset(1)), .init(partitionIndex: 1, committedOffset: Offset(0))]),
        ]), version: 8)
        h.clock.advance(ms: 1000)
        let text = render(metrics, h)
        #expect(sample(text, #"brook_request_errors_total{api="Produce",error="UNKNOWN_TOPIC_OR_PARTITION"}"#) == 1)
        #expect(sample(text, #"brook_partition_log_end_offset{topic="t",partition="0"}"#) == 3)
        #expect(sample(text, #"brook_partition_high_watermark{topic="t",partition="1"}"#) == 0)
        #expect(sample(text, #"brook_partition_log_segments{topic="t",partition="0"}"#) == 1)
        #expect(sample(text, #"brook_topic_records_in_total{topic="t"}"#) == 3)
        // Offset 1 ("b", first of its batch, stamped 4 s before the commit) is the oldest unread:
        // 5 s old now. (The time is its batch's first record's: within a batch, an upper bound.)
        #expect(sample(text, #"brook_consumer_group_lag{group="g",topic="t",partition="0"}"#) == 2)
        #expect(sample(text, #"brook_consumer_group_lag_seconds{group="g",topic="t",partition="0"}"#) == 5)
        #expect(sample(text, #"brook_consumer_group_lag{group="g",topic="t",partition="1"}"#) == 0)
        #expect(sample(text, #"brook_consumer_group_lag_seconds{group="g",topic="t",partition="1"}"#) == 0)
        #expect(sample(text, #"brook_consumer_groups{protocol="classic",state="Empty"}"#) == 1)
        #expect(sample(text, "brook_partitions") == 2 + Double(h.broker.topics.topic("__consumer_offsets")?.hosted.count ?? 0))
        #expect(text.contains("# HELP brook_consumer_group_lag "))

        // The topic deleted: its series go at the next scrape; the counts stay.
        let deleted = try h.send(DeleteTopicsRequest(topicNames: ["t"], timeoutMs: 1000), version: 5)
        #expect(deleted.responses[0].errorCode == 0)
        let after = render(metrics, h)
        #expect(!after.contains(#"topic="t""#))
        #expect(sample(after, "brook_partitions") != nil)
    }

    @Test func partitionSeriesCanBeTurnedOff() throws {
        let metrics = ServerMetrics()
        let h = try BrokerHarness([("metrics.partition.series.enable", "false")])
        defer { h.close() }
        metrics.attach(broker: h.broker)
        try h.createTopic("t", partitions: 3)
        let text = render(metrics, h)
        #expect(!text.contains("brook_partition_log_end_offset{"))
        #expect(sample(text, "brook_leader_partitions") == 3)
    }

    @Test func lagSeriesAreBounded() throws {
        let metrics = ServerMetrics()
        let h = try BrokerHarness([("metrics.consumer.lag.series.max", "1")])
        defer { h.close() }
        metrics.attach(broker: h.broker)
        try h.createTopic("t", partitions: 3)
        _ = try h.send(OffsetCommitRequest(groupId: "g", generationIdOrMemberEpoch: -1, memberId: "", topics: [
            .init(name: "t", partitions: (0..<3).map { .init(partitionIndex: $0, committedOffset: Offset(0)) }),
        ]), version: 8)
        let text = render(metrics, h)
        #expect(text.split(separator: "\n").filter { $0.hasPrefix("brook_consumer_group_lag{") }.count == 1)
        #expect(sample(text, "brook_consumer_group_lag_series_dropped") == 2)
    }

    @Test func httpListenersAreParsed() throws {
        #expect(try BrokerConfig([]).httpListeners == [Listener(name: "http", host: "127.0.0.1", port: 9644)])
        #expect(try BrokerConfig([("http.listeners", "")]).httpListeners.isEmpty)
        #expect(try BrokerConfig([("http.listeners", "http://0.0.0.0:8080,http://[::1]:8081")]).httpListeners
            == [Listener(name: "http", host: "0.0.0.0", port: 8080), Listener(name: "http", host: "::1", port: 8081)])
        #expect(try BrokerConfig([("http.listeners", "https://127.0.0.1:9443")]).httpListeners == [Listener(name: "https", host: "127.0.0.1", port: 9443)])
        for bad in ["ftp://127.0.0.1:9644", "127.0.0.1:9644", "http://127.0.0.1:http"] {
            #expect(throws: BrokerConfigError.self, "\(bad)") { try BrokerConfig([("http.listeners", bad)]) }
        }
    }

    @Test func familiesTakeOutWhatIsGone() {
        let metrics = ServerMetrics()
        var family = GaugeFamily("brook_test_gauge", "A test gauge", labels: ["k"])
        family.update([(["a"], 1), (["b"], 2)], in: metrics.registry)
        #expect(metrics.registry.emitToString().contains(#"brook_test_gauge{k="b"} 2.0"#))
        family.update([(["a"], 3)], in: metrics.registry)
        let text = metrics.registry.emitToString()
        #expect(text.contains(#"brook_test_gauge{k="a"} 3.0"#) && !text.contains(#"k="b""#))
        var counter = CounterFamily("brook_test_total", "A test counter")
        counter.update([([], 5)], in: metrics.registry)
        counter.update([([], 8)], in: metrics.registry)
        #expect(metrics.registry.emitToString().contains("brook_test_total 8"))
        counter.update([([], 2)], in: metrics.registry)  // the total went back (a topic made again)
        #expect(metrics.registry.emitToString().contains("brook_test_total 2"))
    }
}
