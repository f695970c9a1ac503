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
}
