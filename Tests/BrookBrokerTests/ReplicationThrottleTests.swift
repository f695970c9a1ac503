@testable import BrookBroker
import BrookCluster
import BrookCore
import BrookProtocol
import Synchronization
import Testing

/// Replication throttles (KIP-73): dynamic broker configs through the controller, and a leader
/// that holds back a throttled follower out of the ISR once over its rate.
@Suite struct ReplicationThrottleTests {
    let topicID = KafkaUUID(high: 0x55, low: 0x66)
    let n1 = NodeID(1), n2 = NodeID(2)

    func partition(_ index: Int32, isr: [NodeID]) -> MetadataRecord {
        var r = PartitionRecord()
        r.topicId = topicID
        r.partitionId = index
        r.replicas = [n1, n2]
        r.isr = isr
        r.leader = n1
        r.leaderEpoch = LeaderEpoch(0)
        return .partition(r)
    }

    func followerFetch(_ h: BrokerHarness, partition: Int32) throws -> FetchResponse.FetchableTopicResponse.PartitionData {
        var request = h.fetchRequest("t", partition: partition, offset: 0)
        request.replicaId = n2
        return try h.send(request, version: 12).responses[0].partitions[0]
    }

    @Test func theListsNameReplicasAsKafkaWritesThem() {
        #expect(ReplicationThrottles.names("0:1,1:2", partition: 1, node: NodeID(2)))
        #expect(!ReplicationThrottles.names("0:1,1:2", partition: 1, node: NodeID(1)))
        #expect(ReplicationThrottles.names(" 3 : 7 ", partition: 3, node: NodeID(7)))
        #expect(ReplicationThrottles.names("*", partition: 9, node: NodeID(4)))
        #expect(!ReplicationThrottles.names("", partition: 0, node: NodeID(1)))
        #expect(!ReplicationThrottles.names(nil, partition: 0, node: NodeID(1)))
        #expect(!ReplicationThrottles.names("0:x,junk,1:", partition: 0, node: NodeID(1)))
    }

    @Test func aLeaderOverItsRateHoldsBackAThrottledFollowerOutOfTheISR() throws {
        let h = try BrokerHarness([("process.roles", "broker,controller")])
        defer { h.close() }
        h.broker.cluster.attach(forward: { _, done in done(.success([])) }, alterPartitions: { changes, done in done(changes.map { _ in (.none, nil) }) })
        let manager = ReplicaManager(broker: h.broker, node: n1)
        defer { manager.stop() }
        var image = MetadataImage()
        try image.apply([.topic(TopicRecord(name: "t", topicId: topicID)), partition(0, isr: [n1]), partition(1, isr: [n1]),
                         .config(ConfigRecord(resourceType: 2, resourceName: "t", name: "leader.replication.throttled.replicas", value: "0:1")),
                         .config(ConfigRecord(resourceType: 4, resourceName: "1", name: DynamicBrokerConfigs.leaderRate, value: "1000"))],
                        at: MetadataOffset(1))
        manager.imageChanged(image)
        manager.drain()
        h.broker.cluster.update(.init(image: image, activeController: n1, fenced: false))
        let big = String(repeating: "x", count: 20_000)
        for p in Int32(0)...1 {
            let answer = try h.send(h.produceRequest("t", partition: p, batches: [batch([big], timestamps: [1])], acks: 1), version: 9)
            #expect(answer.responses[0].partitionResponses[0].errorCode == 0)
        }
        // The first read goes out (nothing sent yet); 20 kB over 10 s is above 1000 B/s, so the
        // next is held back, with the offsets still given.
        #expect(try fetchedRecords(followerFetch(h, partition: 0).records).count == 1)
        let held = try followerFetch(h, partition: 0)
        #expect(try fetchedRecords(held.records).isEmpty)
        #expect(held.errorCode == 0 && held.highWatermark == Offset(1))
        // A partition the list does not name is not throttled.
        #expect(try fetchedRecords(followerFetch(h, partition: 1).records).count == 1)
        #expect(try fetchedRecords(followerFetch(h, partition: 1).records).count == 1)
        // In the ISR, the follower is never held back (a throttle must not hold the HW).
        var change = PartitionChangeRecord()
        change.topicId = topicID
        change.partitionId = 0
        change.isr = [n1, n2]
        try image.apply([.partitionChange(change)], at: MetadataOffset(2))
        manager.imageChanged(image)
        manager.drain()
        h.broker.cluster.update(.init(image: image, activeController: n1, fenced: false))
        #expect(try fetchedRecords(followerFetch(h, partition: 0).records).count == 1)
    }

    @Test func brokerConfigsGoToTheControllerAndAreDescribedWithTheirSource() throws {
        let h = try BrokerHarness([("process.roles", "broker,controller")])
        defer { h.close() }
        let sent = Mutex<[ControllerAdminRequest]>([])
        h.broker.cluster.attach(forward: { request, done in
            sent.withLock { $0.append(request) }
            guard case .setBrokerConfigs(let broker, _) = request else { return done(.success([])) }
            done(.success([TopicAnswer(name: broker, error: .none)]))
        }, alterPartitions: { changes, done in done(changes.map { _ in (.none, nil) }) })
        var image = MetadataImage()
        try image.apply([.config(ConfigRecord(resourceType: 4, resourceName: "1", name: DynamicBrokerConfigs.leaderRate, value: "1000")),
                         .config(ConfigRecord(resourceType: 4, resourceName: "", name: DynamicBrokerConfigs.followerRate, value: "2000")),
                         .config(ConfigRecord(resourceType: 4, resourceName: "", name: MetadataImage.clusterIDConfig, value: "c"))],
                        at: MetadataOffset(1))
        h.broker.cluster.update(.init(image: image, activeController: n1, fenced: false))

        typealias Alterable = IncrementalAlterConfigsRequest.AlterConfigsResource.AlterableConfig
        let set = IncrementalAlterConfigsRequest(resources: [
            .init(resourceType: 4, resourceName: "1", configs: [Alterable(name: DynamicBrokerConfigs.followerRate, configOperation: 0, value: "5")]),
            .init(resourceType: 4, resourceName: "1", configs: [Alterable(name: "num.partitions", configOperation: 0, value: "5")]),
            .init(resourceType: 4, resourceName: "1", configs: [Alterable(name: DynamicBrokerConfigs.leaderRate, configOperation: 0, value: "-5")]),
            .init(resourceType: 4, resourceName: "", configs: [Alterable(name: DynamicBrokerConfigs.followerRate, configOperation: 1, value: nil)]),
        ])
        let answer = try h.send(set, version: 1)
        #expect(answer.responses.map(\.errorCode) == [0, ErrorCode.invalidRequest.rawValue, ErrorCode.invalidConfig.rawValue, 0])
        // Each broker resource goes whole: what it had and the change; the cluster's id is no part of it.
        #expect(sent.withLock { $0 } == [
            .setBrokerConfigs(broker: "1", configs: [DynamicBrokerConfigs.leaderRate: "1000", DynamicBrokerConfigs.followerRate: "5"]),
            .setBrokerConfigs(broker: "", configs: [:]),
        ])

        let described = try h.send(DescribeConfigsRequest(resources: [.init(resourceType: 4, resourceName: "1", configurationKeys: nil)],
                                                          includeSynonyms: true, includeDocumentation: false), version: 4).results[0]
        let leader = try #require(described.configs.first { $0.name == DynamicBrokerConfigs.leaderRate })
        #expect(leader.value == "1000" && leader.configSource == 2 && !leader.readOnly)
        let follower = try #require(described.configs.first { $0.name == DynamicBrokerConfigs.followerRate })
        #expect(follower.value == "2000" && follower.configSource == 3)
        #expect(follower.synonyms.map(\.source) == [3, 5])
    }
}
