import BrookCluster
import BrookCore
import BrookProtocol
import Testing

@Suite struct TakeoverTests {
    static let node = NodeID(1)
    static func data(_ topics: [(String, Int)], configs: [String: String] = [:]) -> SingleNodeData {
        SingleNodeData(node: node, topics: topics.enumerated().map { i, t in
            SingleNodeData.Topic(name: t.0, id: KafkaUUID(high: 7, low: UInt64(i + 1)), partitions: t.1, configs: configs)
        }, nextProducerID: ProducerID(3000))
    }

    static func harness(_ data: SingleNodeData, perEntry: Int = 10_000) -> ControllerHarness {
        var config = ControllerConfig()
        config.takeover = data
        config.recordsPerEntryMax = perEntry
        config.clusterID = "single-node-id"
        return ControllerHarness(config: config)
    }

    static func check(_ image: MetadataImage, _ data: SingleNodeData) {
        #expect(image.clusterID == "single-node-id")
        #expect(!image.takeoverPending)
        #expect(image.nextProducerID == data.nextProducerID)
        #expect(image.topics.count == data.topics.count)
        for topic in data.topics {
            let info = image.topic(named: topic.name)
            #expect(info?.id == topic.id)
            #expect(info?.partitions.count == topic.partitions)
            for p in info?.partitions ?? [] {
                #expect(p.replicas == [node] && p.isr == [node] && p.leader == node)
            }
            for (name, value) in topic.configs { #expect(image.config(ConfigResource(.topic, topic.name), name) == value) }
        }
    }

    @Test func aSmallDirectoryIsTakenOverInTheFirstEntry() {
        let data = Self.data([("orders", 3), ("__consumer_offsets", 50)], configs: ["retention.ms": "1000"])
        var h = Self.harness(data)
        h.commit(h.controller.tick(nowMs: 0))
        #expect(h.log.count == 1)
        Self.check(h.image, data)
        // Later ticks add nothing more; the broker registers and leads its partitions again.
        h.commit(h.controller.tick(nowMs: 10))
        h.startBrokers(1)
        let orders = h.image.topic(named: "orders")!
        #expect(orders.partitions.allSatisfy { $0.leader == Self.node && $0.isr == [Self.node] })
    }

    @Test func aLargeDirectoryTakesSeveralEntriesAndAControllerChangeGoesOn() throws {
        let data = Self.data([("a", 7), ("b", 1), ("c", 12)], configs: ["cleanup.policy": "compact", "segment.bytes": "1048576"])
        var h = Self.harness(data, perEntry: 5)
        h.commit(h.controller.tick(nowMs: 0))
        #expect(h.image.takeoverPending)
        // A new controller (the old one stopped) starts from the committed image and finishes.
        var config = h.controller.config
        config.recordsPerEntryMax = 6
        h.controller = ClusterController(committed: h.controller.committed, config: config, nowMs: 0, randomSeed: 9)
        var ticks = 0
        while h.image.takeoverPending {
            h.commit(h.controller.tick(nowMs: Int64(ticks)))
            ticks += 1
            try #require(ticks < 100)
        }
        #expect(h.log.allSatisfy { $0.count <= 6 })
        Self.check(h.image, data)
    }

    @Test func aLogThatStartedBeforeIsNotTakenOverAgain() {
        var plain = ControllerConfig()
        plain.clusterID = "single-node-id"
        var h = ControllerHarness(config: plain)
        h.commit(h.controller.tick(nowMs: 0))
        let data = Self.data([("orders", 2)])
        var config = plain
        config.takeover = data
        h.controller = ClusterController(committed: h.controller.committed, config: config, nowMs: 0, randomSeed: 3)
        h.commit(h.controller.tick(nowMs: 1))
        #expect(h.image.topics.isEmpty)
        #expect(h.image.nextProducerID == ProducerID(0))
    }

    @Test func aNameTheLogGivesAnotherIdIsSkipped() {
        var image = MetadataImage()
        try! image.apply([.topic(TopicRecord(name: "orders", topicId: KafkaUUID(high: 1, low: 1)))], at: MetadataOffset(1))
        let (records, complete) = ClusterController.takeoverRecords(Self.data([("orders", 2), ("other", 1)]), in: image, budget: 100)
        #expect(complete)
        #expect(!records.contains { if case .topic(let t) = $0 { t.name == "orders" } else { false } })
        #expect(records.contains { if case .topic(let t) = $0 { t.name == "other" } else { false } })
    }

    /// `brook serve --add-scram`: the records a new cluster starts with go into the first entry
    /// beside the cluster id, and a controller given them over a log that exists writes nothing.
    @Test func bootstrapRecordsAreWrittenOnlyWhenTheLogIsNew() throws {
        let record = MetadataRecord.userScramCredential(UserScramCredentialRecord(
            name: "admin", mechanism: 1, salt: .init(bytes: [1]), storedKey: .init(bytes: [2]), serverKey: .init(bytes: [3]), iterations: 4096))
        var config = ControllerConfig()
        config.clusterID = "c"
        config.bootstrapRecords = [record]
        var h = ControllerHarness(config: config)
        h.commit(h.controller.tick(nowMs: 0))
        #expect(h.log.count == 1 && h.log[0].contains(record))
        #expect(h.image.scramCredentials["admin"]?[1] != nil)
        // Removed later, then a restart with the same bootstrap: it stays removed.
        for entry in h.controller.admin(.alterScramCredentials(removals: [.init(name: "admin", mechanism: 1)], upsertions: [])).entries {
            h.log.append(entry)
            try h.controller.replay(entry, at: MetadataOffset(Int64(h.log.count)))
        }
        #expect(h.image.scramCredentials["admin"] == nil)
        h.controller = ClusterController(committed: h.controller.committed, config: config, nowMs: 0, randomSeed: 5)
        h.commit(h.controller.tick(nowMs: 1))
        #expect(h.image.scramCredentials["admin"] == nil)
    }
}
