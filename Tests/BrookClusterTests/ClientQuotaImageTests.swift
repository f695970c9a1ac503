import BrookCluster
import BrookCore
import BrookProtocol
import Testing

@Suite struct ClientQuotaImageTests {
    @Test func theControllerWritesQuotasAndTheSnapshotKeepsThem() throws {
        var controller = ClusterController(committed: MetadataImage(), nowMs: 0, randomSeed: 7)
        let alice = QuotaEntity(user: .named("alice"), clientID: .defaultEntity)
        let (entries, answers) = controller.admin(.alterClientQuotas([
            ClientQuotaRecord(alice, key: "producer_byte_rate", value: 1024),
            ClientQuotaRecord(QuotaEntity(clientID: .named("app")), key: "consumer_byte_rate", value: 2048),
        ]))
        #expect(answers.map(\.error) == [.none])
        var image = MetadataImage()
        try image.apply(entries[0], at: MetadataOffset(1))
        #expect(image.clientQuotas[alice] == ["producer_byte_rate": 1024])
        let restored = try MetadataImage(snapshot: image.snapshotRecords(), at: MetadataOffset(1))
        #expect(restored.clientQuotas == image.clientQuotas)
        try image.apply([.clientQuota(ClientQuotaRecord(alice, key: "producer_byte_rate", value: nil))], at: MetadataOffset(2))
        #expect(image.clientQuotas[alice] == nil && image.clientQuotas.count == 1)
        // What the broker would refuse is refused here too.
        let (none, refused) = controller.admin(.alterClientQuotas([ClientQuotaRecord(alice, key: "no_such_quota", value: 1)]))
        #expect(none.isEmpty && refused.map(\.error) == [.invalidRequest])
        #expect(throws: MetadataError.self) {
            try image.apply([.clientQuota(ClientQuotaRecord(alice, key: "producer_byte_rate", value: -1))], at: MetadataOffset(3))
        }
    }
}
