@testable import BrookBroker
import BrookCluster
import BrookCore
import BrookProtocol
import BrookStorage
import BrookTxn
import Foundation
import Testing

/// The replica manager hosts exactly the replicas its image places on this broker (node 1):
/// a partition held by other brokers has no directory here, a replica moved away is closed and
/// its files deleted, and a restart opens only what is hosted.
@Suite struct ReplicaHostingTests {
    let topicID = KafkaUUID(high: 0x77, low: 0x99)
    let n1 = NodeID(1), n2 = NodeID(2), n3 = NodeID(3)

    func partition(_ index: Int32, _ replicas: [NodeID], leader: NodeID) -> MetadataRecord {
        var r = PartitionRecord()
        r.topicId = topicID
        r.partitionId = index
        r.replicas = replicas
        r.isr = replicas
        r.leader = leader
        r.leaderEpoch = LeaderEpoch(0)
        return .partition(r)
    }

    func move(_ index: Int32, to replicas: [NodeID], leader: NodeID) -> MetadataRecord {
        var r = PartitionChangeRecord()
        r.topicId = topicID
        r.partitionId = index
        r.replicas = replicas
        r.isr = replicas
        r.leader = leader
        return .partitionChange(r)
    }

    func hostedHere(_ h: BrokerHarness) throws -> [Bool] {
        try #require(h.broker.topics.topic("t")).partitions.map { $0 != nil }
    }

    func directories(_ h: BrokerHarness) -> [Bool] {
        (0..<3).map { FileManager.default.fileExists(atPath: "\(h.directory)/t-\($0)") }
    }

    /// An image that makes this broker lead many partitions (every one at a start) writes no
    /// file for them: each leads in its epoch at once and takes produces; its epoch checkpoint is
    /// written when its log's recovery point moves (a flush here), the others' stay as they were.
    @Test func leadershipsOfOneImageWriteTheirCheckpointsWithTheirLogs() throws {
        let h = try BrokerHarness([("process.roles", "broker,controller")])
        defer { h.close() }
        h.broker.cluster.attach(forward: { _, done in done(.success([])) }, alterPartitions: { changes, done in done(changes.map { _ in (.none, nil) }) })
        let manager = ReplicaManager(broker: h.broker, node: n1)
        defer { manager.stop() }
        for (round, (count, name)) in [(ReplicaManager.leadershipsLoggedMin + 8, "many"), (3, "few")].enumerated() {
            let id = KafkaUUID(high: 0x42, low: UInt64(count))
            var records: [MetadataRecord] = [.topic(TopicRecord(name: name, topicId: id))]
            for index in 0..<Int32(count) {
                var r = PartitionRecord()
                r.topicId = id
                r.partitionId = index
                r.replicas = [n1]
                r.isr = [n1]
                r.leader = n1
                r.leaderEpoch = LeaderEpoch(3)
                records.append(.partition(r))
            }
            var image = MetadataImage()
            try image.apply(records, at: MetadataOffset(Int64(round + 1)))
            manager.imageChanged(image)
            manager.drain()
            let named = { (index: Int32) throws -> [LeaderEpochCache.Entry] in
                let p = try #require(h.broker.topics.partition(name, index))
                return try ReplicaCheckpoints.readLeaderEpochs(directory: p.logDirectory).entries
            }
            for index in 0..<Int32(count) {
                #expect(try #require(h.broker.topics.partition(name, index)).role == .leader(LeaderEpoch(3)))
                #expect(try named(index).isEmpty)
            }
            let answer = try h.send(h.produceRequest(name, partition: 1, batches: [batch(["x"], timestamps: [1])], acks: 1), version: 9)
            #expect(answer.responses[0].partitionResponses[0].errorCode == 0)
            try #require(h.broker.topics.partition(name, 1)).withLog { log throws(StorageError) in try log.flush() }
            #expect(try named(1) == [LeaderEpochCache.Entry(epoch: LeaderEpoch(3), startOffset: .zero)])
            #expect(try named(0).isEmpty)
        }
    }

    /// An acks=all produce written here but not yet on the ISR when leadership moves is answered
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND ("written, maybe not kept"), not NOT_LEADER_OR_FOLLOWER,
    /// which librdkafka takes for "not written": its idempotent producer then re-sent the records
    /// under a new epoch and the log held them twice (found by the fault campaign).
    @Test func aProduceHeldWhenLeadershipMovesSaysItWasWritten() throws {
        let h = try BrokerHarness([("process.roles", "broker,controller")])
        defer { h.close() }
        h.broker.cluster.attach(forward: { _, done in done(.success([])) }, alterPartitions: { changes, done in done(changes.map { _ in (.none, nil) }) })
        let manager = ReplicaManager(broker: h.broker, node: n1)
        var image = MetadataImage()
        try image.apply([.topic(TopicRecord(name: "t", topicId: topicID)), partition(0, [n1, n2], leader: n1)], at: MetadataOffset(1))
        manager.imageChanged(image)
        manager.drain()
        let outcome = try h.outcome(h.produceRequest("t", batches: [batch(["x"], timestamps: [1])]), version: 9)
        let correlation = h.correlation
        guard case .later(let future) = outcome else {
            Issue.record("acks=all should wait for broker 2")
            manager.stop()
            return
        }
        var answer: EncodedResponse?
        future.assumeIsolated().whenSuccess { answer = $0 }
        h.loop.run()
        #expect(answer == nil, "held until broker 2 has the record")
        try image.apply([move(0, to: [n1, n2], leader: n2)], at: MetadataOffset(2))
        manager.imageChanged(image)
        manager.drain()
        h.loop.run()
        let encoded = try #require(answer)
        let response = try h.decodeResponse(encoded, ProduceResponse.self, apiKey: ProduceRequest.apiKey, version: 9, correlation: correlation)
        #expect(response.responses[0].partitionResponses[0].errorCode == ErrorCode.notEnoughReplicasAfterAppend.rawValue)
        manager.stop()
    }

    @Test func onlyTheReplicasPlacedHereAreHostedAndAMovedReplicaGoes() throws {
        let h = try BrokerHarness([("process.roles", "broker,controller")])
        defer { h.close() }
        let manager = ReplicaManager(broker: h.broker, node: n1)
        var image = MetadataImage()
        try image.apply([.topic(TopicRecord(name: "t", topicId: topicID)),
                         partition(0, [n1, n2], leader: n1), partition(1, [n2, n3], leader: n2), partition(2, [n3, n1], leader: n3)],
                        at: MetadataOffset(1))
        manager.imageChanged(image)
        manager.drain()
        #expect(try hostedHere(h) == [true, false, true])
        #expect(directories(h) == [true, false, true])
        #expect(h.broker.topics.partitionCount == 2)
        // A request for the partition other brokers hold is told to go to its leader.
        let elsewhere = try h.produce("t", partition: 1, batch(["x"], timestamps: [1]))
        #expect(elsewhere.errorCode == ErrorCode.notLeaderOrFollower.rawValue)
        let unknown = try h.produce("t", partition: 3, batch(["x"], timestamps: [1]))
        #expect(unknown.errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
        let led = try h.produce("t", partition: 0, batch(["x"], timestamps: [1]))
        #expect(led.errorCode == 0)

        // Partition 0 moves to brokers 2 and 3, partition 1 comes here.
        try image.apply([move(0, to: [n2, n3], leader: n2), move(1, to: [n2, n1], leader: n2)], at: MetadataOffset(2))
        manager.imageChanged(image)
        manager.drain()
        #expect(try hostedHere(h) == [false, true, true])
        #expect(directories(h) == [false, true, true])
        #expect(h.broker.topics.partitionCount == 2)
        guard case .follower(let leader, _) = try #require(h.broker.topics.partition("t", 1)).role else {
            Issue.record("the new replica should follow")
            return
        }
        #expect(leader == n2)
        manager.stop()

        // A restart opens what is hosted here and nothing else.
        h.broker.shutdown()
        let again = try BrokerHarness([("process.roles", "broker,controller")], directory: h.directory)
        defer { again.broker.shutdown() }
        #expect(try hostedHere(again) == [false, true, true])
        #expect(directories(again) == [false, true, true])
    }

    /// Found in review: a transaction coordinator that did not host the group's partition of
    /// `__consumer_offsets` answered AddOffsetsToTxn COORDINATOR_NOT_AVAILABLE. It needs only the
    /// partition's index.
    @Test func aGroupsOffsetsPartitionIsNamedWhereverItIsHosted() throws {
        let h = try BrokerHarness([("process.roles", "broker,controller")])
        defer { h.close() }
        _ = try h.broker.topics.create(name: GroupService.offsetsTopic, partitions: 3, configs: [:], hosting: { $0 == 0 })
        let group = (0..<100).map { "group-\($0)" }.first { InternalTopic.partitionIndex(for: $0, partitions: 3) == 2 }!
        #expect(h.broker.transactions.offsetsPartition(for: group) == TxnPartition(GroupService.offsetsTopic, 2))
    }
}
