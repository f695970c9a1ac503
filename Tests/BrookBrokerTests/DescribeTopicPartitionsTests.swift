@testable import BrookBroker
import BrookCluster
import BrookCore
import BrookProtocol
import Testing

/// DescribeTopicPartitions (API 75, KIP-966): pages of topics in name order, as Kafka's handler
/// answers; tests/interop/test_conformance.py checks it with kafka-python.
@Suite struct DescribeTopicPartitionsTests {
    typealias Handler = DescribeTopicPartitionsHandler
    typealias Request = DescribeTopicPartitionsRequest

    func pages(_ h: BrokerHarness, limit: Int32) throws -> [[(String, [Int32])]] {
        var pages: [[(String, [Int32])]] = []
        var cursor: Request.Cursor? = nil
        repeat {
            let answer = try h.send(Request(topics: [], responsePartitionLimit: limit, cursor: cursor), version: 0)
            pages.append(answer.topics.map { ($0.name ?? "", $0.partitions.map(\.partitionIndex)) })
            cursor = answer.nextCursor.map { .init(topicName: $0.topicName, partitionIndex: $0.partitionIndex) }
            precondition(pages.count < 100)
        } while cursor != nil
        return pages
    }

    @Test func namedTopicsAreAnsweredInNameOrderWithTheirErrors() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("b", partitions: 2)
        try h.createTopic("a", partitions: 1)
        let answer = try h.send(Request(topics: [.init(name: "b"), .init(name: "nope"), .init(name: "a"), .init(name: "bad name!"),
                                                 .init(name: "a")]), version: 0)
        #expect(answer.topics.map(\.name) == ["a", "b", "bad name!", "nope"])
        #expect(answer.topics.map(\.errorCode) == [0, 0, ErrorCode.invalidTopicException.rawValue, ErrorCode.unknownTopicOrPartition.rawValue])
        #expect(answer.topics[1].topicId == h.broker.topics.topic("b")?.id && answer.topics[3].topicId == .zero)
        let partition = answer.topics[1].partitions[1]
        #expect(partition.partitionIndex == 1 && partition.leaderId == NodeID(1) && partition.replicaNodes == [NodeID(1)])
        #expect(partition.isrNodes == [NodeID(1)] && partition.eligibleLeaderReplicas == [] && partition.offlineReplicas.isEmpty)
        // Authorized operations are always given (with no authorizer: every topic operation).
        #expect(answer.topics.allSatisfy { $0.topicAuthorizedOperations == 0b1101_1111_1000 })
        #expect(answer.nextCursor == nil)
    }

    @Test func pagesCoverEveryPartitionOnceAndTheBrokersLimitCapsThem() throws {
        let h = try BrokerHarness([("max.request.partition.size.limit", "3")])
        defer { h.close() }
        try h.createTopic("x", partitions: 2)
        try h.createTopic("y", partitions: 5)
        try h.createTopic("z", partitions: 1)
        let pages = try pages(h, limit: 4)
        #expect(pages.map { $0.map(\.0) } == [["x", "y"], ["y"], ["y", "z"]])
        #expect(pages.map { $0.map(\.1) } == [[[0, 1], [0]], [[1, 2, 3]], [[4], [0]]])
        // A page that ends with a topic's last partition points at the next topic's first.
        let h2 = try BrokerHarness()
        defer { h2.close() }
        try h2.createTopic("x", partitions: 2)
        try h2.createTopic("y", partitions: 1)
        let first = try h2.send(Request(topics: [], responsePartitionLimit: 2), version: 0)
        #expect(first.topics.map(\.name) == ["x"] && first.nextCursor == DescribeTopicPartitionsResponse.Cursor(topicName: "y", partitionIndex: 0))
        // A limit below one is taken as one.
        #expect(try h2.send(Request(topics: [], responsePartitionLimit: 0), version: 0).topics.map(\.partitions.count) == [1])
    }

    @Test func aCursorOutsideTheNamedTopicsIsAnInvalidRequest() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("a", partitions: 1)
        let answer = try h.send(Request(topics: [.init(name: "a")], cursor: .init(topicName: "zz", partitionIndex: 0)), version: 0)
        #expect(answer.topics.map(\.errorCode) == [ErrorCode.invalidRequest.rawValue] && answer.topics[0].partitions.isEmpty)
        // A negative partition in the cursor: refused too (a full list: nothing answered).
        let negative = try h.send(Request(topics: [.init(name: "a")], cursor: .init(topicName: "a", partitionIndex: -1)), version: 0)
        #expect(negative.topics.map(\.errorCode) == [ErrorCode.invalidRequest.rawValue])
        let negativeAll = try h.send(Request(topics: [], cursor: .init(topicName: "a", partitionIndex: -1)), version: 0)
        #expect(negativeAll.topics.isEmpty && negativeAll.nextCursor == nil)
        // The largest numbers a client can send: no page past the broker's limit, no overflow.
        let huge = try h.send(Request(topics: [.init(name: "a")], responsePartitionLimit: Int32.max,
                                      cursor: .init(topicName: "a", partitionIndex: Int32.max)), version: 0)
        #expect(huge.topics.map(\.errorCode) == [0] && huge.topics[0].partitions.isEmpty && huge.nextCursor == nil)
        // Past the topic's last partition: the topic with none.
        let past = try h.send(Request(topics: [.init(name: "a")], cursor: .init(topicName: "a", partitionIndex: 9)), version: 0)
        #expect(past.topics.map(\.errorCode) == [0] && past.topics[0].partitions.isEmpty && past.nextCursor == nil)
    }

    /// With an authorizer: a named topic the client may not describe is refused after the page
    /// (no id, whether it exists or not); a full list leaves it out; a cursor on one starts the
    /// next topic at partition 0.
    @Test func topicsTheClientMayNotDescribeAreRefusedOrLeftOut() {
        let topics = ["a": 2, "b": 3, "c": 2]
        let lookup: (String) -> Handler.Described? = { name in
            topics[name].map { count in
                Handler.Described(id: KafkaUUID(high: 1, low: UInt64(count)), isInternal: false, count: count) {
                    .init(partitionIndex: Int32($0), leaderId: NodeID(1))
                }
            }
        }
        func answer(_ request: Request) -> DescribeTopicPartitionsResponse {
            Handler.answer(request, limit: 10, allNames: { Array(topics.keys) }, lookup: lookup, mayDescribe: { $0 != "b" && $0 != "secret" },
                           operations: { _ in 8 })
        }
        let named = answer(Request(topics: [.init(name: "secret"), .init(name: "b"), .init(name: "a")]))
        #expect(named.topics.map(\.name) == ["a", "b", "secret"])
        #expect(named.topics.map(\.errorCode) == [0, ErrorCode.topicAuthorizationFailed.rawValue, ErrorCode.topicAuthorizationFailed.rawValue])
        #expect(named.topics[1].topicId == .zero && named.topics[1].topicAuthorizedOperations == Int32.min)
        let all = answer(Request(topics: []))
        #expect(all.topics.map(\.name) == ["a", "c"])
        let fromB = answer(Request(topics: [], cursor: .init(topicName: "b", partitionIndex: 1)))
        #expect(fromB.topics.map(\.name) == ["c"] && fromB.topics[0].partitions.map(\.partitionIndex) == [0, 1])
    }

    /// A seeded property: for any topics, limits, names the client may not describe and names
    /// that do not exist, following the cursors lists every partition of every topic it may
    /// describe exactly once, in order; no page holds more than the limit; a named topic it
    /// may not describe is refused on every page from its own on, and a named unknown one
    /// answered as such.
    @Test(arguments: 0..<40) func followingTheCursorsListsEveryPartitionOnce(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        var topics: [String: Int] = [:]
        for i in 0..<Int.random(in: 0...8, using: &random) { topics["t\(i)-\(Int.random(in: 0...99, using: &random))"] = Int.random(in: 0...7, using: &random) }
        let hidden = Set(topics.keys.filter { _ in Int.random(in: 0..<4, using: &random) == 0 })
        let unknown = (0..<Int.random(in: 0...2, using: &random)).map { "u\($0)-\(Int.random(in: 0...99, using: &random))" }
        let limit = Int.random(in: 1...6, using: &random)
        let named = Bool.random(using: &random)
        let lookup: (String) -> Handler.Described? = { name in
            topics[name].map { count in
                Handler.Described(id: .zero, isInternal: false, count: count) { .init(partitionIndex: Int32($0)) }
            }
        }
        var seen: [String] = []
        var answered: [String: Int16] = [:]
        var cursor: Request.Cursor? = nil
        var rounds = 0
        repeat {
            let request = Request(topics: named ? (Array(topics.keys) + unknown).map { .init(name: $0) } : [], cursor: cursor)
            let answer = Handler.answer(request, limit: limit, allNames: { Array(topics.keys) }, lookup: lookup,
                                        mayDescribe: { !hidden.contains($0) }, operations: { _ in 0 })
            #expect(answer.topics.reduce(0) { $0 + $1.partitions.count } <= limit)
            for topic in answer.topics where topic.errorCode != 0 { answered[topic.name ?? ""] = topic.errorCode }
            if named {
                // (Those before the cursor's topic are not looked at again, as in Kafka.)
                let from = cursor?.topicName ?? ""
                #expect(Set(answer.topics.filter { $0.errorCode == ErrorCode.topicAuthorizationFailed.rawValue }.map { $0.name ?? "" })
                        == hidden.filter { $0 >= from }, "seed \(seed)")
            }
            seen += answer.topics.flatMap { topic in topic.partitions.map { "\(topic.name ?? "")/\($0.partitionIndex)" } }
            cursor = answer.nextCursor.map { .init(topicName: $0.topicName, partitionIndex: $0.partitionIndex) }
            rounds += 1
        } while cursor != nil && rounds < 200
        let expected = topics.keys.filter { !hidden.contains($0) }.sorted().flatMap { name in (0..<topics[name]!).map { "\(name)/\($0)" } }
        #expect(seen == expected, "seed \(seed)")
        if named {
            for name in unknown { #expect(answered[name] == ErrorCode.unknownTopicOrPartition.rawValue, "seed \(seed): \(name)") }
        } else {
            #expect(answered.isEmpty, "seed \(seed): a full list names no errors")
        }
    }

    /// In a cluster: every replica listed, those on fenced or unknown brokers as offline too, the
    /// ELR given, and a partition without a leader answered with leader -1 and no error.
    @Test func aClusterTopicIsDescribedFromTheImage() throws {
        var image = MetadataImage()
        let id = KafkaUUID(high: 7, low: 7)
        var led = PartitionRecord()
        led.partitionId = 0
        led.topicId = id
        led.replicas = [NodeID(1), NodeID(2), NodeID(4)]
        led.isr = [NodeID(1)]
        led.leader = NodeID(1)
        led.leaderEpoch = LeaderEpoch(3)
        led.partitionEpoch = 5
        led.eligibleLeaderReplicas = [NodeID(2)]
        var leaderless = led
        leaderless.partitionId = 1
        leaderless.leader = NodeID(-1)
        leaderless.isr = [NodeID(4)]
        leaderless.eligibleLeaderReplicas = nil
        try image.apply([registerBroker(1), registerBroker(2, fenced: true), .topic(TopicRecord(name: "t", topicId: id)),
                         .partition(led), .partition(leaderless)], at: MetadataOffset(1))
        let topic = try #require(image.topic(named: "t"))
        let described = Handler.describe(topic, image)
        #expect(described.id == id && described.count == 2 && !described.isInternal)
        let first = described.partition(0), second = described.partition(1)
        #expect(first.leaderId == NodeID(1) && first.leaderEpoch == LeaderEpoch(3) && first.errorCode == 0)
        #expect(first.replicaNodes == [NodeID(1), NodeID(2), NodeID(4)] && first.isrNodes == [NodeID(1)])
        #expect(first.offlineReplicas == [NodeID(2), NodeID(4)] && first.eligibleLeaderReplicas == [NodeID(2)] && first.lastKnownElr == [])
        #expect(second.leaderId == NodeID(-1) && second.errorCode == 0 && second.isrNodes == [NodeID(4)] && second.eligibleLeaderReplicas == [])
        #expect(TopicRegistry.isInternal("__consumer_offsets") && TopicRegistry.isInternal("__transaction_state") && !TopicRegistry.isInternal("t"))
    }
}
