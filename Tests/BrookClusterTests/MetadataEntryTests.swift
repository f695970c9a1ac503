import BrookCluster
import BrookCore
import BrookProtocol
import Testing

@Suite struct MetadataEntryTests {
    @Test func entriesRoundTripAndOpaqueEntriesStayOpaque() throws {
        let records: [MetadataRecord] = [.topic(TopicRecord(name: "t", topicId: KafkaUUID(high: 1, low: 2))), .noOp(NoOpRecord())]
        let bytes = MetadataEntry.records(records).encoded
        #expect(try MetadataEntry(decoding: bytes) == .records(records))
        #expect(try MetadataEntry(decoding: Array("round0-1".utf8)) == .opaque(Array("round0-1".utf8)))
        #expect(try MetadataEntry(decoding: []) == .opaque([]))
    }

    @Test func aDamagedEntryIsRefusedNeverHalfRead() {
        let bytes = MetadataEntry.records([.noOp(NoOpRecord()), .topic(TopicRecord(name: "abc", topicId: KafkaUUID(high: 3, low: 4)))]).encoded
        for cut in 1..<bytes.count {
            #expect(throws: MetadataError.self) { try MetadataEntry(decoding: Array(bytes[..<cut])) }
        }
        #expect(throws: MetadataError.self) { try MetadataEntry(decoding: bytes + [0]) }
        // A count far beyond what the bytes can hold.
        #expect(throws: MetadataError.self) { try MetadataEntry(decoding: [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]) }
    }

    @Test func aSnapshotRebuildsTheImage() throws {
        var h = ControllerHarness()
        h.startBrokers(3, racks: ["a", "b"])
        _ = h.create("orders", partitions: 4, rf: 2)
        _ = h.create("logs", partitions: 1, rf: 3)
        _ = h.commit(h.controller.setConfigs(ConfigResource(.topic, "orders"), [("retention.ms", "1000")]))
        _ = h.commit(h.controller.allocateProducerIDs(broker: NodeID(1), epoch: h.epochs[NodeID(1)]!))
        h.advance(10_000, silent: [NodeID(3)])
        let image = h.controller.committed
        let bytes = MetadataEntry.records(image.snapshotRecords()).encoded
        guard case .records(let records) = try MetadataEntry(decoding: bytes, recordsMax: MetadataEntry.snapshotRecordsMax) else {
            Issue.record("a snapshot decodes to records")
            return
        }
        let restored = try MetadataImage(snapshot: records, at: image.offset)
        #expect(restored.topics == image.topics && restored.topicIDs == image.topicIDs)
        #expect(restored.configs == image.configs && restored.nextProducerID == image.nextProducerID)
        #expect(restored.highestBrokerEpoch == image.highestBrokerEpoch)
        for (id, broker) in image.brokers {
            var same = broker
            same.registeredAt = image.offset
            #expect(restored.brokers[id] == same)
        }
        #expect(restored.brokers[NodeID(3)]?.fenced == true)
    }
}
