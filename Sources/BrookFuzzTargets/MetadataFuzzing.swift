import BrookCore
import BrookProtocol

/// KRaft metadata records as the metadata log frames them (`MetadataRecord`), with the round
/// trip: a record that decodes is encoded again (at its type's highest version) and must decode
/// to the same value.
enum MetadataFuzzing {
    static let target = FuzzTarget(
        name: "metadata-record",
        input: "one framed metadata record: frame version, record type, record version (unsigned varints), then the record"
    ) { bytes in
        guard let record = try? MetadataRecord(decoding: Array(bytes)) else { return }
        let again: MetadataRecord
        do {
            again = try MetadataRecord(decoding: record.encoded())
        } catch {
            preconditionFailure("a metadata record's own bytes do not decode: \(record): \(error)")
        }
        // A float64 NaN (ClientQuotaRecord) is not equal to itself: the same bytes are the same value.
        precondition(again == record || again.encoded() == record.encoded(), "a metadata record does not round-trip: \(record)")
    }

    /// Well-formed frames for `brook-fuzz seed`, one per record type that has fields worth
    /// mutating (the committed seeds in Tests/Fuzz/corpus/metadata-record come from an encoder
    /// outside Brook).
    static var seeds: [FuzzSeeds.Seed] {
        let topic = KafkaUUID(high: 0x0102_0304_0506_0708, low: 0x090A_0B0C_0D0E_0F10)
        let directory = KafkaUUID(high: 0xA1, low: 0xA2)
        let records: [(String, MetadataRecord)] = [
            ("register-broker", .registerBroker(RegisterBrokerRecord(
                brokerId: NodeID(1), incarnationId: KafkaUUID(high: 7, low: 8), brokerEpoch: 10,
                endPoints: [.init(name: "PLAINTEXT", host: "localhost", port: 9092, securityProtocol: 0)],
                features: [.init(name: "metadata.version", minSupportedVersion: 1, maxSupportedVersion: 21)],
                rack: "rack-a", logDirs: [directory]))),
            ("topic", .topic(TopicRecord(name: "orders", topicId: topic))),
            ("partition", .partition(PartitionRecord(
                partitionId: 0, topicId: topic, replicas: [NodeID(1), NodeID(2)], isr: [NodeID(1)], leader: NodeID(1),
                leaderEpoch: LeaderEpoch(0), partitionEpoch: 0, directories: [directory, directory],
                eligibleLeaderReplicas: [NodeID(2)]))),
            ("partition-change", .partitionChange(PartitionChangeRecord(
                partitionId: 0, topicId: topic, isr: [NodeID(1), NodeID(2)], leader: NodeID(2), directories: [directory]))),
            ("config", .config(ConfigRecord(resourceType: 2, resourceName: "orders", name: "retention.ms", value: "1000"))),
            ("producer-ids", .producerIds(ProducerIdsRecord(brokerId: NodeID(1), brokerEpoch: 10, nextProducerId: ProducerID(5000)))),
            ("broker-registration-change", .brokerRegistrationChange(BrokerRegistrationChangeRecord(
                brokerId: NodeID(1), brokerEpoch: 10, fenced: -1, inControlledShutdown: 1, logDirs: [directory]))),
        ]
        return records.map { name, record in
            FuzzSeeds.Seed(target: "metadata-record", name: "seed-\(name)", bytes: record.encoded())
        }
    }
}
