import BrookCore
import BrookProtocol

/// Topic changes a broker forwards to the active controller (CreateTopics, DeleteTopics,
/// CreatePartitions, a Metadata request's auto-creation): in a cluster the metadata log owns
/// topics, so a broker answers these only once the controller's entry is committed.
public enum ControllerAdminRequest: Equatable, Sendable {
    case createTopics([NewTopic], validateOnly: Bool)
    case deleteTopics([String])
    case createPartitions(topic: String, total: Int)
    /// AlterConfigs / IncrementalAlterConfigs of a topic: its whole set of overrides after the
    /// change (the broker checked the names and values).
    case setTopicConfigs(topic: String, configs: [String: String])
    /// AlterConfigs / IncrementalAlterConfigs of a broker (its id as text) or of every broker
    /// (""): its whole set of dynamic configs after the change (the broker checked the names
    /// and values). Answered one TopicAnswer named by the resource.
    case setBrokerConfigs(broker: String, configs: [String: String])
    /// IncrementalAlterConfigs / AlterConfigs of a consumer group (Kafka 4.0's GROUP resource):
    /// its whole set of configs after the change (the broker checked the names and values).
    /// Answered one TopicAnswer named by the group.
    case setGroupConfigs(group: String, configs: [String: String])
    /// ElectLeaders (nil targets: every partition). Answered one TopicAnswer per partition, its
    /// index in `partitions`.
    case electLeaders(ElectionType, [ElectionTarget]?)
    /// AlterPartitionReassignments. Answered one TopicAnswer per partition, as elections are.
    case reassign([ReassignmentRequest], allowReplicationFactorChange: Bool)
    /// UnregisterBroker. Answered one TopicAnswer named by the broker id.
    case unregisterBroker(NodeID)
    /// AlterUserScramCredentials, checked by the broker (mechanisms, iterations, no user and
    /// mechanism twice) and its keys derived there: removals by (user, mechanism) and the
    /// credentials to set. Answered one TopicAnswer per user, named by the user, in the order
    /// users first appear; a user's changes apply all or none.
    case alterScramCredentials(removals: [RemoveUserScramCredentialRecord], upsertions: [UserScramCredentialRecord])
    /// CreateAcls, checked by the broker (AclBinding.problem). One entry for them all; an entry
    /// equal to one that exists is not added again. Answered one TopicAnswer per binding, named
    /// by its index.
    case createAcls([AclBinding])
    /// DeleteAcls, the ids the broker's filters matched: those still there are removed in one
    /// entry. Answered one TopicAnswer, named "".
    case deleteAcls([KafkaUUID])
    /// AlterClientQuotas, checked by the broker (entities, keys, values): every change in one
    /// entry. Answered one TopicAnswer, named "".
    case alterClientQuotas([ClientQuotaRecord])

    /// The longest name or value (UTF-8 bytes) a request to the controller carries; brokers
    /// refuse longer ones before forwarding.
    public static let stringBytesMax = 1024
    /// Consumer groups with configs of their own the metadata holds at most.
    public static let groupConfigResourcesMax = 100_000
}

/// The controller's answer for one topic.
public struct TopicAnswer: Equatable, Sendable {
    public var name: String
    public var error: ErrorCode
    public var message: String?
    public var topicID: KafkaUUID
    public var partitions: Int
    public var replicationFactor: Int
    public init(name: String, error: ErrorCode, message: String? = nil, topicID: KafkaUUID = .zero, partitions: Int = -1, replicationFactor: Int = -1) {
        self.name = name
        self.error = error
        self.message = message
        self.topicID = topicID
        self.partitions = partitions
        self.replicationFactor = replicationFactor
    }
}

extension ClusterController {
    /// One admin request as decisions: each topic its own entry. Returns the decisions' records
    /// (one entry each, in order) and the answers to give once every entry is committed.
    public mutating func admin(_ request: ControllerAdminRequest) -> (entries: [[MetadataRecord]], answers: [TopicAnswer]) {
        switch request {
        case .createTopics(let topics, let validateOnly):
            var entries: [[MetadataRecord]] = []
            var answers: [TopicAnswer] = []
            var seen: [String: Int] = [:]
            for topic in topics { seen[topic.name, default: 0] += 1 }
            for topic in topics {
                guard seen[topic.name] == 1 else {
                    answers.append(TopicAnswer(name: topic.name, error: .invalidRequest, message: "The request names topic \(topic.name) more than once."))
                    continue
                }
                var probe = self
                let decision = validateOnly ? probe.createTopic(topic) : createTopic(topic)
                let (code, id) = decision.answer
                let made = (validateOnly ? probe.image : image).topic(named: topic.name)
                var answer = TopicAnswer(name: topic.name, error: code, message: code == .none ? nil : Self.message(code, topic))
                if code == .none, let made {
                    answer.topicID = validateOnly ? .zero : id
                    answer.partitions = made.partitions.count
                    answer.replicationFactor = made.partitions.first?.replicas.count ?? 0
                }
                if !validateOnly && !decision.records.isEmpty { entries.append(decision.records) }
                answers.append(answer)
            }
            return (entries, answers)
        case .deleteTopics(let names):
            var entries: [[MetadataRecord]] = []
            var answers: [TopicAnswer] = []
            for name in names {
                let decision = deleteTopic(name)
                if !decision.records.isEmpty { entries.append(decision.records) }
                answers.append(TopicAnswer(name: name, error: decision.answer,
                                           message: decision.answer == .none ? nil : "This server does not host this topic-partition."))
            }
            return (entries, answers)
        case .createPartitions(let name, let total):
            let decision = createPartitions(name, total: total)
            return (decision.records.isEmpty ? [] : [decision.records], [TopicAnswer(name: name, error: decision.answer)])
        case .electLeaders(let type, let targets):
            let decision = electLeaders(type, targets)
            return (decision.records.isEmpty ? [] : [decision.records], decision.answer.map {
                TopicAnswer(name: $0.topic, error: $0.error, message: $0.message, partitions: Int($0.partition))
            })
        case .unregisterBroker(let id):
            let decision = unregisterBroker(id)
            let message = decision.answer == .none ? nil : "Broker \(id) is not registered."
            return (decision.records.isEmpty ? [] : [decision.records], [TopicAnswer(name: "\(id.value)", error: decision.answer, message: message)])
        case .reassign(let requests, let allow):
            let decision = reassign(requests, allowReplicationFactorChange: allow)
            return (decision.records.isEmpty ? [] : [decision.records], decision.answer.map {
                TopicAnswer(name: $0.topic, error: $0.error, message: $0.message, partitions: Int($0.partition))
            })
        case .setTopicConfigs(let name, let configs):
            let resource = ConfigResource(.topic, name)
            let changes = Self.changes(from: image.configs[resource] ?? [:], to: configs)
            if image.topicIDs[name] != nil && changes.isEmpty { return ([], [TopicAnswer(name: name, error: .none)]) }
            let decision = setConfigs(resource, changes)
            return (decision.records.isEmpty ? [] : [decision.records], [TopicAnswer(name: name, error: decision.answer)])
        case .setGroupConfigs(let name, let configs):
            let resource = ConfigResource(.group, name)
            guard !name.isEmpty, name.utf8.count <= ControllerAdminRequest.stringBytesMax else {
                return ([], [TopicAnswer(name: name, error: .invalidRequest, message: "Not a consumer group's config resource.")])
            }
            let changes = Self.changes(from: image.configs[resource] ?? [:], to: configs)
            guard !changes.isEmpty else { return ([], [TopicAnswer(name: name, error: .none)]) }
            if image.configs[resource] == nil
                && image.configs.keys.count(where: { $0.kind == .group }) >= ControllerAdminRequest.groupConfigResourcesMax {
                return ([], [TopicAnswer(name: name, error: .policyViolation,
                                         message: "At most \(ControllerAdminRequest.groupConfigResourcesMax) groups may have configs of their own.")])
            }
            let decision = setConfigs(resource, changes)
            return (decision.records.isEmpty ? [] : [decision.records], [TopicAnswer(name: name, error: decision.answer)])
        case .alterScramCredentials(let removals, let upsertions):
            var users: [String] = []
            for name in removals.map(\.name) + upsertions.map(\.name) where !users.contains(name) { users.append(name) }
            var entries: [[MetadataRecord]] = []
            var answers: [TopicAnswer] = []
            var added = 0
            for user in users {
                let removing = removals.filter { $0.name == user }
                let setting = upsertions.filter { $0.name == user }
                if let missing = removing.first(where: { image.scramCredentials[user]?[$0.mechanism] == nil }) {
                    answers.append(TopicAnswer(name: user, error: .resourceNotFound,
                                               message: "Attempt to delete a user credential that does not exist: mechanism \(missing.mechanism)."))
                    continue
                }
                let isNew = image.scramCredentials[user] == nil && !setting.isEmpty
                if isNew && image.scramCredentials.count + added >= MetadataImage.scramUsersMax {
                    answers.append(TopicAnswer(name: user, error: .policyViolation, message: "At most \(MetadataImage.scramUsersMax) users may have SCRAM credentials."))
                    continue
                }
                if isNew { added += 1 }
                entries.append(removing.map { .removeUserScramCredential($0) } + setting.map { .userScramCredential($0) })
                answers.append(TopicAnswer(name: user, error: .none))
            }
            return (entries, answers)
        case .alterClientQuotas(let changes):
            let adding = Set(changes.filter { !$0.remove }.compactMap(\.quotaEntity)).subtracting(image.clientQuotas.keys)
            guard image.clientQuotas.count + adding.count <= MetadataImage.quotaEntitiesMax else {
                return ([], [TopicAnswer(name: "", error: .policyViolation, message: "At most \(MetadataImage.quotaEntitiesMax) entities may have quotas.")])
            }
            guard changes.allSatisfy({ $0.quotaEntity != nil && QuotaEntity.keys.contains($0.key) && ($0.remove || ($0.value.isFinite && $0.value > 0)) }) else {
                return ([], [TopicAnswer(name: "", error: .invalidRequest, message: "A quota change that cannot be applied.")])
            }
            return (changes.isEmpty ? [] : [changes.map { .clientQuota($0) }], [TopicAnswer(name: "", error: .none)])
        case .createAcls(let bindings):
            var records: [MetadataRecord] = []
            var answers: [TopicAnswer] = []
            var adding: Set<AclBinding> = []
            for (index, binding) in bindings.enumerated() {
                if let problem = binding.problem {
                    answers.append(TopicAnswer(name: "\(index)", error: .invalidRequest, message: problem))
                    continue
                }
                if image.acls.id(of: binding) != nil || !adding.insert(binding).inserted {
                    answers.append(TopicAnswer(name: "\(index)", error: .none))
                    continue
                }
                guard image.acls.count + adding.count <= AclTable.entriesMax else {
                    adding.remove(binding)
                    answers.append(TopicAnswer(name: "\(index)", error: .policyViolation, message: "At most \(AclTable.entriesMax) access control entries."))
                    continue
                }
                var id = KafkaUUID.random(using: &random)
                while image.acls.byID[id] != nil || id == .zero { id = KafkaUUID.random(using: &random) }
                records.append(.accessControlEntry(binding.record(id: id)))
                answers.append(TopicAnswer(name: "\(index)", error: .none))
            }
            return (records.isEmpty ? [] : [records], answers)
        case .deleteAcls(let ids):
            let records: [MetadataRecord] = Set(ids).filter { image.acls.byID[$0] != nil }.sorted { ($0.high, $0.low) < ($1.high, $1.low) }
                .map { .removeAccessControlEntry(RemoveAccessControlEntryRecord(id: $0)) }
            return (records.isEmpty ? [] : [records], [TopicAnswer(name: "", error: .none)])
        case .setBrokerConfigs(let name, let configs):
            guard name.isEmpty || Int32(name).map({ $0 >= 0 }) == true, configs[MetadataImage.clusterIDConfig] == nil else {
                return ([], [TopicAnswer(name: name, error: .invalidRequest, message: "Not a broker's dynamic config resource.")])
            }
            // The cluster's id shares the cluster-wide resource and is never a dynamic config.
            var current = image.configs[ConfigResource(.broker, name)] ?? [:]
            current[MetadataImage.clusterIDConfig] = nil
            let changes = Self.changes(from: current, to: configs)
            guard !changes.isEmpty else { return ([], [TopicAnswer(name: name, error: .none)]) }
            let decision = setConfigs(ConfigResource(.broker, name), changes)
            return (decision.records.isEmpty ? [] : [decision.records], [TopicAnswer(name: name, error: decision.answer)])
        }
    }

    /// The records' changes that turn `current` into `wanted`: removals first, each sorted by name.
    static func changes(from current: [String: String], to wanted: [String: String]) -> [(String, String?)] {
        let removed: [(String, String?)] = current.keys.filter { wanted[$0] == nil }.sorted().map { ($0, nil) }
        return removed + wanted.filter { current[$0.key] != $0.value }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    static func message(_ code: ErrorCode, _ topic: NewTopic) -> String {
        switch code {
        case .topicAlreadyExists: "Topic '\(topic.name)' already exists."
        case .invalidReplicationFactor: "Replication factor \(topic.replicationFactor.map(String.init) ?? "default") is larger than the number of active brokers, or below 1."
        case .invalidPartitions: "Number of partitions must be between 1 and \(Limits.partitionsPerRequestMax)."
        case .invalidReplicaAssignment: "A replica assignment names an unknown broker or a broker twice."
        default: "\(code)"
        }
    }
}
