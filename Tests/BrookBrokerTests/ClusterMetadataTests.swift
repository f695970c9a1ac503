@testable import BrookBroker
import BrookCluster
import BrookCore
import BrookProtocol
import Testing

/// Metadata in a cluster answers from the image this broker follows.
@Suite struct ClusterMetadataTests {
    func register(_ id: Int32, fenced: Bool) -> MetadataRecord {
        var r = RegisterBrokerRecord()
        r.brokerId = NodeID(id)
        r.brokerEpoch = Int64(id)
        r.incarnationId = KafkaUUID(high: 3, low: UInt64(id))
        r.endPoints = [.init(name: "PLAINTEXT", host: "127.0.0.1", port: UInt16(9090 + id), securityProtocol: 0)]
        r.fenced = fenced
        return .registerBroker(r)
    }

    /// A fenced broker (dead, or not yet caught up) stays in the broker list: librdkafka drops
    /// the handle of a broker missing from Metadata, and its coordinator lookups then wait on
    /// that handle forever (found by the transactional interop test, one run in about 20).
    @Test func fencedBrokersAreListedButNeverLead() throws {
        let h = try BrokerHarness([("process.roles", "broker,controller")])
        defer { h.close() }
        h.broker.cluster.attach(forward: { _, done in done(.success([])) }, alterPartition: { _, _, done in done(.none, nil) })
        var image = MetadataImage()
        try image.apply([register(1, fenced: false), register(2, fenced: true), register(3, fenced: false)], at: MetadataOffset(1))
        h.broker.cluster.update(.init(image: image, activeController: NodeID(1), fenced: false))
        let response = try h.send(MetadataRequest(topics: nil), version: 12)
        #expect(response.brokers.map(\.nodeId) == [NodeID(1), NodeID(2), NodeID(3)])
        #expect(response.brokers.map(\.port) == [9091, 9092, 9093])
    }

    /// While the coordinator's partition has no leader (an election), FindCoordinator holds its
    /// answer instead of COORDINATOR_NOT_AVAILABLE at once: librdkafka retries it only twice and
    /// its send_offsets_to_transaction then waited for good (found by the fault campaign).
    @Test func findCoordinatorHoldsItsAnswerWhileTheCoordinatorIsElected() throws {
        let h = try BrokerHarness([("process.roles", "broker,controller")])
        defer { h.close() }
        h.broker.cluster.attach(forward: { _, done in done(.success([])) }, alterPartition: { _, _, done in done(.none, nil) })
        let id = KafkaUUID(high: 9, low: 9)
        _ = try h.broker.topics.create(name: "__consumer_offsets", partitions: 1, configs: [:], id: id, hosting: { _ in true })
        var partition = PartitionRecord()
        partition.topicId = id
        partition.partitionId = 0
        partition.replicas = [NodeID(1)]
        partition.isr = [NodeID(1)]
        partition.leader = NodeID(-1)
        partition.leaderEpoch = LeaderEpoch(0)
        var image = MetadataImage()
        try image.apply([register(1, fenced: false), .topic(TopicRecord(name: "__consumer_offsets", topicId: id)), .partition(partition)],
                        at: MetadataOffset(1))
        h.broker.cluster.update(.init(image: image, activeController: NodeID(1), fenced: false))

        func ask() throws -> () -> FindCoordinatorResponse? {
            let outcome = try h.outcome(FindCoordinatorRequest(keyType: 0, coordinatorKeys: ["g"]), version: 4)
            guard case .later(let future) = outcome else {
                Issue.record("answered at once")
                return { nil }
            }
            var encoded: EncodedResponse?
            future.assumeIsolated().whenSuccess { encoded = $0 }
            let correlation = h.correlation
            return {
                try? encoded.map { try h.decodeResponse($0, FindCoordinatorResponse.self, apiKey: FindCoordinatorRequest.apiKey, version: 4,
                                                      correlation: correlation) }
            }
        }
        let elected = try ask()
        h.loop.advanceTime(by: .milliseconds(300))
        #expect(elected() == nil)
        var change = PartitionChangeRecord()
        change.topicId = id
        change.partitionId = 0
        change.leader = NodeID(1)
        try image.apply([.partitionChange(change)], at: MetadataOffset(2))
        h.broker.cluster.update(.init(image: image, activeController: NodeID(1), fenced: false))
        h.loop.advanceTime(by: .milliseconds(100))
        #expect(elected()?.coordinators.map(\.errorCode) == [0])
        #expect(elected()?.coordinators.map(\.nodeId) == [NodeID(1)])

        // Never elected: COORDINATOR_NOT_AVAILABLE once the wait is over.
        change.leader = NodeID(-1)
        try image.apply([.partitionChange(change)], at: MetadataOffset(3))
        h.broker.cluster.update(.init(image: image, activeController: NodeID(1), fenced: false))
        let never = try ask()
        h.clock.advance(ms: FindCoordinatorHandler.unavailableWaitMs - 200)
        h.loop.advanceTime(by: .milliseconds(100))
        #expect(never() == nil)
        h.clock.advance(ms: 300)
        h.loop.advanceTime(by: .milliseconds(100))
        #expect(never()?.coordinators.map(\.errorCode) == [ErrorCode.coordinatorNotAvailable.rawValue])
    }
}

