import BrookCluster
import BrookCore
import BrookProtocol

/// Metadata log entries (`MetadataEntry`, what the quorum's log holds) applied to a metadata
/// image: a hostile or corrupt entry must be refused with an error, never crash the image or
/// leave it half-changed, and whatever applies must survive the snapshot round trip (the
/// image's records rebuild the same image).
enum ClusterFuzzing {
    static let target = FuzzTarget(
        name: "metadata-entry",
        input: "one metadata log entry: the records tag (0x01), a 4-byte count, then length-prefixed framed records; applied to an image that holds one topic"
    ) { bytes in
        guard case .records(let records) = try? MetadataEntry(decoding: Array(bytes)) else { return }
        var image = base
        let before = image
        do {
            try image.apply(records, at: MetadataOffset(before.offset.value + 1))
        } catch {
            precondition(image == before, "a refused entry changed the image")
            return
        }
        let rebuilt: MetadataImage
        do {
            rebuilt = try MetadataImage(snapshot: image.snapshotRecords(), at: image.offset)
        } catch {
            preconditionFailure("an image's own snapshot does not load: \(error)")
        }
        // (A snapshot dates every registration at its own offset: brokers compare without it.)
        precondition(rebuilt.topics == image.topics && rebuilt.configs == image.configs
                     && rebuilt.brokers.mapValues { [$0.epoch.value, $0.fenced ? 1 : 0, $0.inControlledShutdown ? 1 : 0] }
                        == image.brokers.mapValues { [$0.epoch.value, $0.fenced ? 1 : 0, $0.inControlledShutdown ? 1 : 0] },
                     "an image does not survive its snapshot")
    }

    static let topicID = KafkaUUID(high: 0x0102_0304_0506_0708, low: 0x090A_0B0C_0D0E_0F10)

    /// An image with two brokers and a topic of two partitions, which entries may change.
    static let base: MetadataImage = {
        var image = MetadataImage()
        var records: [MetadataRecord] = []
        for id in [Int32(1), 2] {
            records.append(.registerBroker(RegisterBrokerRecord(
                brokerId: NodeID(id), incarnationId: KafkaUUID(high: 9, low: UInt64(id)), brokerEpoch: Int64(id),
                endPoints: [.init(name: "PLAINTEXT", host: "localhost", port: UInt16(9090 + id), securityProtocol: 0)])))
        }
        records.append(.topic(TopicRecord(name: "orders", topicId: topicID)))
        for p in Int32(0)..<2 {
            records.append(.partition(PartitionRecord(partitionId: p, topicId: topicID, replicas: [NodeID(1), NodeID(2)],
                                                      isr: [NodeID(1), NodeID(2)], leader: NodeID(1 + p), leaderEpoch: LeaderEpoch(0),
                                                      partitionEpoch: 0)))
        }
        do { try image.apply(records, at: MetadataOffset(1)) } catch { preconditionFailure("the fuzz image does not build: \(error)") }
        return image
    }()

    /// Entries a controller writes: a reassignment's start, an election, configs, a removal.
    static var seeds: [FuzzSeeds.Seed] {
        let entries: [(String, [MetadataRecord])] = [
            ("isr-shrink", [.partitionChange(PartitionChangeRecord(partitionId: 0, topicId: topicID, isr: [NodeID(1)]))]),
            ("election", [.partitionChange(PartitionChangeRecord(partitionId: 1, topicId: topicID, leader: NodeID(2)))]),
            ("reassignment", [.partitionChange(PartitionChangeRecord(partitionId: 0, topicId: topicID, leader: NodeID(1),
                                                                      replicas: [NodeID(2), NodeID(1)], removingReplicas: [NodeID(1)],
                                                                      addingReplicas: []))]),
            ("configs", [.config(ConfigRecord(resourceType: 2, resourceName: "orders", name: "retention.ms", value: "1000")),
                         .config(ConfigRecord(resourceType: 2, resourceName: "orders", name: "min.insync.replicas", value: "2"))]),
            ("fence-and-move", [.fenceBroker(FenceBrokerRecord(id: NodeID(2), epoch: 2)),
                                .partitionChange(PartitionChangeRecord(partitionId: 1, topicId: topicID, isr: [NodeID(1)], leader: NodeID(1)))]),
            ("remove-topic", [.removeTopic(RemoveTopicRecord(topicId: topicID))]),
        ]
        return entries.map { name, records in
            FuzzSeeds.Seed(target: "metadata-entry", name: "seed-\(name)", bytes: MetadataEntry.records(records).encoded)
        }
    }
}
