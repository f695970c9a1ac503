import BrookCore
import BrookProtocol

/// A broker as the metadata log knows it.
public struct BrokerInfo: Equatable, Sendable {
    public struct Endpoint: Equatable, Sendable {
        public var name: String
        public var host: String
        public var port: Int
        public var securityProtocol: Int16
        public init(name: String, host: String, port: Int, securityProtocol: Int16 = 0) {
            self.name = name
            self.host = host
            self.port = port
            self.securityProtocol = securityProtocol
        }
    }
    public var id: NodeID
    public var epoch: BrokerEpoch
    public var incarnation: KafkaUUID
    public var endpoints: [Endpoint]
    public var rack: String?
    public var fenced: Bool
    public var inControlledShutdown: Bool
    /// Where its registration sits in the metadata log: it is unfenced once it read that far.
    public var registeredAt: MetadataOffset
    /// Neither fenced nor leaving: it may lead, and join an ISR.
    public var isActive: Bool { !fenced && !inControlledShutdown }
}

/// One partition's replicas, ISR and leader.
public struct PartitionInfo: Equatable, Sendable {
    public var replicas: [NodeID]
    public var isr: [NodeID]
    /// nil when no replica can lead (offline).
    public var leader: NodeID?
    public var leaderEpoch: LeaderEpoch
    public var partitionEpoch: PartitionEpoch
    /// While a reassignment runs (KIP-455): the replicas being added, which `replicas` already
    /// holds, and those to be removed once every target replica is in the ISR.
    public var adding: [NodeID] = []
    public var removing: [NodeID] = []
    /// Eligible leader replicas (KIP-966): replicas that left the ISR while it was below
    /// min.insync.replicas, when the high watermark stopped, so they hold every committed
    /// record; a clean election may pick one when no ISR member is active. Never in the ISR,
    /// always replicas, in replica order.
    public var elr: [NodeID] = []
    public init(replicas: [NodeID], isr: [NodeID], leader: NodeID?, leaderEpoch: LeaderEpoch, partitionEpoch: PartitionEpoch,
                adding: [NodeID] = [], removing: [NodeID] = [], elr: [NodeID] = []) {
        self.replicas = replicas
        self.isr = isr
        self.leader = leader
        self.leaderEpoch = leaderEpoch
        self.partitionEpoch = partitionEpoch
        self.adding = adding
        self.removing = removing
        self.elr = elr
    }

    /// The ELR as the rest of the state allows it: replicas only, none in the ISR.
    mutating func keepELRConsistent() {
        elr = replicas.filter { elr.contains($0) && !isr.contains($0) }
    }

    /// The replicas a running reassignment moves to (nil when none runs).
    public var reassignmentTarget: [NodeID]? {
        adding.isEmpty && removing.isEmpty ? nil : replicas.filter { !removing.contains($0) }
    }
}

public struct TopicInfo: Equatable, Sendable {
    public var name: String
    public var id: KafkaUUID
    /// Indexed by partition number: partitions are numbered 0..<count without gaps.
    public var partitions: [PartitionInfo]
}

/// A config resource, as Kafka's ConfigRecord names it.
public struct ConfigResource: Hashable, Sendable {
    public enum Kind: Int8, Sendable { case topic = 2, broker = 4, group = 32 }
    public var kind: Kind
    /// The topic's name, the broker's id as text ("" for the cluster-wide default), or the
    /// consumer group's id.
    public var name: String
    public init(_ kind: Kind, _ name: String) {
        self.kind = kind
        self.name = name
    }
}

/// Why a record cannot apply to an image. A committed record that does not apply means the
/// metadata log is corrupt or was written by a bug: the replayer stops rather than guess.
public struct MetadataError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The cluster's metadata at one offset of the metadata log: brokers, topics, partitions,
/// configs, producer ids, feature levels. Built only by applying records, in log order, so
/// every controller and broker that applied the same records holds the same image.
public struct MetadataImage: Equatable, Sendable {
    public private(set) var offset = MetadataOffset.zero
    public private(set) var brokers: [NodeID: BrokerInfo] = [:]
    public private(set) var topics: [KafkaUUID: TopicInfo] = [:]
    public private(set) var topicIDs: [String: KafkaUUID] = [:]
    public private(set) var configs: [ConfigResource: [String: String]] = [:]
    /// The first producer id not yet handed out in a block.
    public private(set) var nextProducerID = ProducerID(0)
    public private(set) var features: [String: Int16] = [:]
    /// The highest broker epoch ever given: the next registration gets a higher one.
    public private(set) var highestBrokerEpoch = BrokerEpoch(0)
    /// Users' SCRAM credentials, by user and mechanism (1: SCRAM-SHA-256, 2: SCRAM-SHA-512).
    public private(set) var scramCredentials: [String: [Int8: UserScramCredentialRecord]] = [:]
    /// Access control entries, by id (CreateAcls / DeleteAcls).
    public private(set) var acls = AclTable()
    /// Client quota values by entity and key (AlterClientQuotas).
    public private(set) var clientQuotas: [QuotaEntity: [String: Double]] = [:]
    /// Entities with quota values the image holds at most.
    public static let quotaEntitiesMax = 100_000

    /// More than this many topics or brokers in one image is refused (a runaway writer).
    public static let topicsMax = 200_000
    public static let brokersMax = 10_000
    /// Users with SCRAM credentials the image holds at most.
    public static let scramUsersMax = 100_000

    public init() {}

    public static let empty = MetadataImage()

    public func topic(named name: String) -> TopicInfo? { topicIDs[name].flatMap { topics[$0] } }

    /// A partition's replicas that cannot serve: on a fenced broker or one not registered.
    public func offlineReplicas(_ partition: PartitionInfo) -> [NodeID] {
        partition.replicas.filter { brokers[$0]?.fenced ?? true }
    }

    public func partition(_ key: TopicIDPartition) -> PartitionInfo? {
        guard let topic = topics[key.topicID], key.partition >= 0, Int(key.partition) < topic.partitions.count else { return nil }
        return topic.partitions[Int(key.partition)]
    }
    public func config(_ resource: ConfigResource, _ name: String) -> String? { configs[resource]?[name] }

    /// The cluster's id, a cluster-wide broker config in the log (Kafka keeps it in each
    /// node's meta.properties, written by `kafka-storage format`; Brook has no format step).
    public static let clusterIDConfig = "cluster.id"
    public var clusterID: String? { config(ConfigResource(.broker, ""), Self.clusterIDConfig) }

    // MARK: applying records

    /// Applies the records of one metadata log entry at `offset`, all or none.
    public mutating func apply(_ records: [MetadataRecord], at offset: MetadataOffset) throws(MetadataError) {
        guard offset > self.offset else { throw MetadataError("entry at \(offset) applied after \(self.offset)") }
        var next = self
        for record in records { try next.apply(record, at: offset) }
        next.offset = offset
        self = next
    }

    mutating func apply(_ record: MetadataRecord, at offset: MetadataOffset) throws(MetadataError) {
        switch record {
        case .registerBroker(let r): try registerBroker(r, at: offset)
        case .unregisterBroker(let r):
            guard brokers[r.brokerId]?.epoch == BrokerEpoch(r.brokerEpoch) else { throw MetadataError("unregister of unknown broker \(r.brokerId) epoch \(r.brokerEpoch)") }
            brokers[r.brokerId] = nil
        case .fenceBroker(let r): try setFenced(r.id, epoch: BrokerEpoch(r.epoch), fenced: true)
        case .unfenceBroker(let r): try setFenced(r.id, epoch: BrokerEpoch(r.epoch), fenced: false)
        case .brokerRegistrationChange(let r): try changeRegistration(r)
        case .topic(let r): try addTopic(r)
        case .partition(let r): try addPartition(r)
        case .partitionChange(let r): try changePartition(r)
        case .removeTopic(let r):
            guard let topic = topics.removeValue(forKey: r.topicId) else { throw MetadataError("remove of unknown topic id \(r.topicId)") }
            topicIDs[topic.name] = nil
            configs[ConfigResource(.topic, topic.name)] = nil
        case .config(let r): try setConfig(r)
        case .producerIds(let r):
            guard r.nextProducerId >= nextProducerID else { throw MetadataError("producer ids went back from \(nextProducerID) to \(r.nextProducerId)") }
            nextProducerID = r.nextProducerId
        case .featureLevel(let r): features[r.name] = r.featureLevel
        case .noOp: break
        case .userScramCredential(let r):
            guard (1...2).contains(r.mechanism), !r.name.isEmpty else { throw MetadataError("SCRAM credential of mechanism \(r.mechanism) for '\(r.name)'") }
            guard scramCredentials[r.name] != nil || scramCredentials.count < Self.scramUsersMax else {
                throw MetadataError("more than \(Self.scramUsersMax) users with SCRAM credentials")
            }
            scramCredentials[r.name, default: [:]][r.mechanism] = r
        case .removeUserScramCredential(let r):
            guard scramCredentials[r.name]?.removeValue(forKey: r.mechanism) != nil else {
                throw MetadataError("removal of SCRAM credential \(r.mechanism) that '\(r.name)' lacks")
            }
            if scramCredentials[r.name]?.isEmpty == true { scramCredentials[r.name] = nil }
        case .clientQuota(let r):
            guard let entity = r.quotaEntity, QuotaEntity.keys.contains(r.key), r.remove || (r.value.isFinite && r.value > 0) else {
                throw MetadataError("client quota \(r.key) that cannot be set")
            }
            if r.remove {
                clientQuotas[entity]?[r.key] = nil
                if clientQuotas[entity]?.isEmpty == true { clientQuotas[entity] = nil }
            } else {
                guard clientQuotas[entity] != nil || clientQuotas.count < Self.quotaEntitiesMax else {
                    throw MetadataError("more than \(Self.quotaEntitiesMax) client quota entities")
                }
                clientQuotas[entity, default: [:]][r.key] = r.value
            }
        case .accessControlEntry(let r):
            guard let binding = AclBinding(r), binding.problem == nil, acls.byID[r.id] == nil else { throw MetadataError("access control entry \(r.id) that cannot be added") }
            guard acls.count < AclTable.entriesMax else { throw MetadataError("more than \(AclTable.entriesMax) access control entries") }
            acls.add(r.id, binding)
        case .removeAccessControlEntry(let r):
            guard acls.remove(r.id) != nil else { throw MetadataError("removal of unknown access control entry \(r.id)") }
        }
    }

    mutating func registerBroker(_ r: RegisterBrokerRecord, at offset: MetadataOffset) throws(MetadataError) {
        let epoch = BrokerEpoch(r.brokerEpoch)
        guard epoch > highestBrokerEpoch else { throw MetadataError("broker \(r.brokerId) registered with epoch \(epoch), not above \(highestBrokerEpoch)") }
        guard brokers[r.brokerId] != nil || brokers.count < Self.brokersMax else { throw MetadataError("more than \(Self.brokersMax) brokers") }
        highestBrokerEpoch = epoch
        brokers[r.brokerId] = BrokerInfo(
            id: r.brokerId, epoch: epoch, incarnation: r.incarnationId,
            endpoints: r.endPoints.map { BrokerInfo.Endpoint(name: $0.name, host: $0.host, port: Int($0.port), securityProtocol: $0.securityProtocol) },
            rack: r.rack, fenced: r.fenced, inControlledShutdown: r.inControlledShutdown, registeredAt: offset)
    }

    mutating func setFenced(_ id: NodeID, epoch: BrokerEpoch, fenced: Bool) throws(MetadataError) {
        guard var broker = brokers[id], broker.epoch == epoch else { throw MetadataError("fence change for broker \(id) epoch \(epoch), which is not registered") }
        broker.fenced = fenced
        if fenced { broker.inControlledShutdown = false }
        brokers[id] = broker
    }

    mutating func changeRegistration(_ r: BrokerRegistrationChangeRecord) throws(MetadataError) {
        guard var broker = brokers[r.brokerId], broker.epoch == BrokerEpoch(r.brokerEpoch) else {
            throw MetadataError("registration change for broker \(r.brokerId) epoch \(r.brokerEpoch), which is not registered")
        }
        // Kafka's encoding: fenced 1 = fence, -1 = unfence, 0 = unchanged; inControlledShutdown 1 = yes.
        if r.fenced == 1 { broker.fenced = true } else if r.fenced == -1 { broker.fenced = false }
        if r.inControlledShutdown == 1 { broker.inControlledShutdown = true }
        brokers[r.brokerId] = broker
    }

    mutating func addTopic(_ r: TopicRecord) throws(MetadataError) {
        guard topicIDs[r.name] == nil, topics[r.topicId] == nil, r.topicId != .zero else { throw MetadataError("topic \(r.name) (\(r.topicId)) exists or has no id") }
        guard topics.count < Self.topicsMax else { throw MetadataError("more than \(Self.topicsMax) topics") }
        topics[r.topicId] = TopicInfo(name: r.name, id: r.topicId, partitions: [])
        topicIDs[r.name] = r.topicId
    }

    mutating func addPartition(_ r: PartitionRecord) throws(MetadataError) {
        guard let topic = topics[r.topicId].map({ (name: $0.name, count: $0.partitions.count) }) else {
            throw MetadataError("partition of unknown topic id \(r.topicId)")
        }
        guard Int(r.partitionId) == topic.count else { throw MetadataError("partition \(r.partitionId) of \(topic.name) out of order (has \(topic.count))") }
        try Self.checkReplicas(r.replicas, isr: r.isr, leader: r.leader, what: "\(topic.name)-\(r.partitionId)")
        try Self.checkMoving(r.replicas, adding: r.addingReplicas, removing: r.removingReplicas, what: "\(topic.name)-\(r.partitionId)")
        var added = PartitionInfo(
            replicas: r.replicas, isr: r.isr, leader: r.leader.value < 0 ? nil : r.leader,
            leaderEpoch: r.leaderEpoch, partitionEpoch: PartitionEpoch(r.partitionEpoch),
            adding: r.addingReplicas, removing: r.removingReplicas, elr: r.eligibleLeaderReplicas ?? [])
        added.keepELRConsistent()
        // In place: a copy of the topic would copy its partitions for every one added.
        topics[r.topicId]!.partitions.append(added)
    }

    /// Kafka's rules: -2 leaves the leader as it is, -1 leaves none; the leader epoch moves with
    /// the leader; the partition epoch moves with every change.
    mutating func changePartition(_ r: PartitionChangeRecord) throws(MetadataError) {
        let key = TopicIDPartition(r.topicId, r.partitionId)
        guard let name = topics[r.topicId]?.name, var changed = partition(key) else { throw MetadataError("change of unknown partition \(key)") }
        if let replicas = r.replicas { changed.replicas = replicas }
        if let isr = r.isr { changed.isr = isr }
        if let adding = r.addingReplicas { changed.adding = adding }
        if let removing = r.removingReplicas { changed.removing = removing }
        if let elr = r.eligibleLeaderReplicas { changed.elr = elr }
        // A replica back in the ISR, or moved away, is no longer an eligible leader.
        changed.keepELRConsistent()
        if r.leader.value != -2 {
            changed.leader = r.leader.value < 0 ? nil : r.leader
            changed.leaderEpoch = LeaderEpoch(changed.leaderEpoch.value + 1)
        }
        changed.partitionEpoch = changed.partitionEpoch.next
        try Self.checkReplicas(changed.replicas, isr: changed.isr, leader: changed.leader ?? NodeID(-1), what: "\(name)-\(r.partitionId)")
        try Self.checkMoving(changed.replicas, adding: changed.adding, removing: changed.removing, what: "\(name)-\(r.partitionId)")
        // In place: a copy of the topic would copy its partitions for every change.
        topics[r.topicId]!.partitions[Int(r.partitionId)] = changed
    }

    /// Replicas being added or removed are replicas, and none is both.
    static func checkMoving(_ replicas: [NodeID], adding: [NodeID], removing: [NodeID], what: @autoclosure () -> String) throws(MetadataError) {
        guard Set(adding).isSubset(of: replicas), Set(removing).isSubset(of: replicas), Set(adding).isDisjoint(with: removing),
              removing.count < replicas.count else {
            throw MetadataError("\(what()): bad reassignment, adding \(adding) removing \(removing) of \(replicas)")
        }
    }

    static func checkReplicas(_ replicas: [NodeID], isr: [NodeID], leader: NodeID, what: @autoclosure () -> String) throws(MetadataError) {
        guard !replicas.isEmpty, Set(replicas).count == replicas.count else { throw MetadataError("\(what()): bad replicas \(replicas)") }
        guard !isr.isEmpty, Set(isr).count == isr.count, Set(isr).isSubset(of: replicas) else { throw MetadataError("\(what()): bad ISR \(isr) for replicas \(replicas)") }
        guard leader.value < 0 || isr.contains(leader) else { throw MetadataError("\(what()): leader \(leader) outside the ISR \(isr)") }
    }

    mutating func setConfig(_ r: ConfigRecord) throws(MetadataError) {
        guard let kind = ConfigResource.Kind(rawValue: r.resourceType) else { throw MetadataError("config for resource type \(r.resourceType)") }
        let resource = ConfigResource(kind, r.resourceName)
        var values = configs[resource] ?? [:]
        values[r.name] = r.value
        configs[resource] = values.isEmpty ? nil : values
    }
}
