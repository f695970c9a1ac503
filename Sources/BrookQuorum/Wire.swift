import BrookCluster
import BrookCore
import BrookProtocol
import BrookRaft
import NIOCore

/// The controllers' own framing on TCP (not the Kafka protocol): a 4-byte length, a 1-byte kind,
/// then the payload. Raft messages go between controllers; requests and answers between a
/// controller and `brook quorum`.
enum Frame: Equatable {
    case raft(Message)
    case request(id: UInt32, QuorumRequest)
    case answer(id: UInt32, ok: Bool, text: String)
    /// A binary answer (metadata log entries for a broker).
    case data(id: UInt32, [UInt8])

    /// A frame larger than this closes the connection.
    static let bytesMax = 48 << 20
    /// Entries per append message on the wire (the core sends at most 64).
    static let entriesMax = 4096

    func encode(into buffer: inout ByteBuffer) {
        let start = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        switch self {
        case .raft(let message):
            buffer.writeInteger(UInt8(1))
            Self.write(message, into: &buffer)
        case .request(let id, let request):
            buffer.writeInteger(UInt8(2))
            buffer.writeInteger(id)
            switch request {
            case .status: buffer.writeInteger(UInt8(1))
            case .propose(let data): buffer.writeInteger(UInt8(2)); buffer.writeBytes(data)
            case .read(let index): buffer.writeInteger(UInt8(3)); buffer.writeInteger(index.value)
            case .transfer(let node): buffer.writeInteger(UInt8(4)); buffer.writeInteger(node.value)
            case .registerBroker(let r):
                buffer.writeInteger(UInt8(5))
                buffer.writeInteger(r.id.value)
                buffer.writeInteger(r.incarnation.high)
                buffer.writeInteger(r.incarnation.low)
                Self.writeString(r.rack, into: &buffer)
                buffer.writeInteger(UInt16(r.endpoints.count))
                for e in r.endpoints {
                    Self.writeString(e.name, into: &buffer)
                    Self.writeString(e.host, into: &buffer)
                    buffer.writeInteger(Int32(e.port))
                    buffer.writeInteger(e.securityProtocol)
                }
                buffer.writeInteger(UInt8(r.cleanShutdown ? 1 : 0))
            case .brokerHeartbeat(let r):
                buffer.writeInteger(UInt8(6))
                buffer.writeInteger(r.id.value)
                buffer.writeInteger(r.epoch.value)
                buffer.writeInteger(r.metadataOffset.value)
                buffer.writeInteger(UInt8(r.wantFence ? 1 : 0))
                buffer.writeInteger(UInt8(r.wantShutdown ? 1 : 0))
                // Only when there are some: a controller from before they were sent reads none.
                if !r.offlineReplicas.isEmpty { buffer.writeInteger(UInt16(r.offlineReplicas.count)) }
                for key in r.offlineReplicas {
                    buffer.writeInteger(key.topicID.high)
                    buffer.writeInteger(key.topicID.low)
                    buffer.writeInteger(key.partition)
                }
            case .fetchMetadata(let after, let maxWaitMs):
                buffer.writeInteger(UInt8(7))
                buffer.writeInteger(after.value)
                buffer.writeInteger(maxWaitMs)
            case .describeCluster:
                buffer.writeInteger(UInt8(8))
            case .describeQuorum:
                buffer.writeInteger(UInt8(15))
            case .admin(let admin):
                buffer.writeInteger(UInt8(9))
                Self.write(admin, into: &buffer)
            case .alterPartitions(let changes):
                // The broker and its epoch once, then each partition's change.
                precondition(!changes.isEmpty && changes.count <= AlterPartitionRequest.partitionsMax, "\(changes.count) ISR changes in one request")
                let (broker, epoch) = (changes[0].broker, changes[0].brokerEpoch)
                buffer.writeInteger(UInt8(14))
                buffer.writeInteger(broker.value)
                buffer.writeInteger(epoch.value)
                buffer.writeInteger(UInt16(changes.count))
                for change in changes {
                    precondition(change.broker == broker && change.brokerEpoch == epoch, "ISR changes of one request come from one broker")
                    let (partition, proposal) = (change.partition, change.proposal)
                    buffer.writeInteger(partition.topicID.high)
                    buffer.writeInteger(partition.topicID.low)
                    buffer.writeInteger(partition.partition)
                    buffer.writeInteger(proposal.leaderEpoch.value)
                    buffer.writeInteger(proposal.partitionEpoch.value)
                    buffer.writeInteger(UInt16(proposal.isr.count))
                    for id in proposal.isr { buffer.writeInteger(id.value) }
                }
            case .allocateProducerIDs(let broker, let epoch):
                buffer.writeInteger(UInt8(11))
                buffer.writeInteger(broker.value)
                buffer.writeInteger(epoch.value)
            case .addVoter(let voter):
                buffer.writeInteger(UInt8(12))
                buffer.writeInteger(voter.id.value)
                buffer.writeInteger(UInt16(voter.port))
                let host = Array(voter.host.utf8)
                buffer.writeInteger(UInt16(host.count))
                buffer.writeBytes(host)
            case .removeVoter(let node):
                buffer.writeInteger(UInt8(13))
                buffer.writeInteger(node.value)
            }
        case .answer(let id, let ok, let text):
            buffer.writeInteger(UInt8(3))
            buffer.writeInteger(id)
            buffer.writeInteger(UInt8(ok ? 1 : 0))
            buffer.writeString(text)
        case .data(let id, let bytes):
            buffer.writeInteger(UInt8(4))
            buffer.writeInteger(id)
            buffer.writeBytes(bytes)
        }
        buffer.setInteger(UInt32(buffer.writerIndex - start - 4), at: start)
    }

    /// Decodes one whole frame body (after the length); nil if it is malformed.
    static func decode(_ body: inout ByteBuffer) -> Frame? {
        guard let kind = body.readInteger(as: UInt8.self) else { return nil }
        switch kind {
        case 1:
            guard let message = readMessage(&body), body.readableBytes == 0 else { return nil }
            return .raft(message)
        case 2:
            guard let id = body.readInteger(as: UInt32.self), let op = body.readInteger(as: UInt8.self) else { return nil }
            switch op {
            case 1: return body.readableBytes == 0 ? .request(id: id, .status) : nil
            case 2: return .request(id: id, .propose(body.readBytes(length: body.readableBytes) ?? []))
            case 3: return body.readInteger(as: Int64.self).map { .request(id: id, .read(LogIndex($0))) }
            case 4: return body.readInteger(as: Int32.self).map { .request(id: id, .transfer(NodeID($0))) }
            case 5: return readRegistration(&body).map { .request(id: id, .registerBroker($0)) }
            case 6:
                guard let node = body.readInteger(as: Int32.self), let epoch = body.readInteger(as: Int64.self),
                      let offset = body.readInteger(as: Int64.self), offset >= 0,
                      let fence = body.readInteger(as: UInt8.self), fence <= 1, let shutdown = body.readInteger(as: UInt8.self), shutdown <= 1
                else { return nil }
                // The offline replicas (absent in a heartbeat from before they were sent: none).
                var offline: [TopicIDPartition] = []
                if body.readableBytes > 0 {
                    guard let count = body.readInteger(as: UInt16.self), Int(count) <= BrokerHeartbeatRequest.offlineReplicasMax else { return nil }
                    for _ in 0..<count {
                        guard let high = body.readInteger(as: UInt64.self), let low = body.readInteger(as: UInt64.self),
                              let partition = body.readInteger(as: Int32.self) else { return nil }
                        offline.append(TopicIDPartition(KafkaUUID(high: high, low: low), partition))
                    }
                }
                guard body.readableBytes == 0 else { return nil }
                return .request(id: id, .brokerHeartbeat(BrokerHeartbeatRequest(
                    id: NodeID(node), epoch: BrokerEpoch(epoch), metadataOffset: MetadataOffset(offset), wantFence: fence == 1,
                    wantShutdown: shutdown == 1, offlineReplicas: offline)))
            case 7:
                guard let after = body.readInteger(as: Int64.self), after >= 0, let wait = body.readInteger(as: Int32.self),
                      (0...QuorumRequest.fetchWaitMsMax).contains(wait), body.readableBytes == 0 else { return nil }
                return .request(id: id, .fetchMetadata(after: MetadataOffset(after), maxWaitMs: wait))
            case 8: return body.readableBytes == 0 ? .request(id: id, .describeCluster) : nil
            case 15: return body.readableBytes == 0 ? .request(id: id, .describeQuorum) : nil
            case 9: return readAdmin(&body).flatMap { body.readableBytes == 0 ? .request(id: id, .admin($0)) : nil }
            case 14:
                guard let broker = body.readInteger(as: Int32.self), let epoch = body.readInteger(as: Int64.self),
                      let count = body.readInteger(as: UInt16.self), count > 0, count <= AlterPartitionRequest.partitionsMax else { return nil }
                var changes: [AlterPartitionRequest] = []
                changes.reserveCapacity(Int(count))
                for _ in 0..<count {
                    guard let high = body.readInteger(as: UInt64.self), let low = body.readInteger(as: UInt64.self),
                          let partition = body.readInteger(as: Int32.self), let leaderEpoch = body.readInteger(as: Int32.self),
                          let partitionEpoch = body.readInteger(as: Int32.self), let size = body.readInteger(as: UInt16.self),
                          size <= QuorumRequest.isrSizeMax else { return nil }
                    var isr: [NodeID] = []
                    for _ in 0..<size {
                        guard let node = body.readInteger(as: Int32.self) else { return nil }
                        isr.append(NodeID(node))
                    }
                    changes.append(AlterPartitionRequest(
                        broker: NodeID(broker), brokerEpoch: BrokerEpoch(epoch), partition: TopicIDPartition(KafkaUUID(high: high, low: low), partition),
                        proposal: ISRProposal(leaderEpoch: LeaderEpoch(leaderEpoch), partitionEpoch: PartitionEpoch(partitionEpoch), isr: isr)))
                }
                guard body.readableBytes == 0 else { return nil }
                return .request(id: id, .alterPartitions(changes))
            case 11:
                guard let broker = body.readInteger(as: Int32.self), let epoch = body.readInteger(as: Int64.self),
                      body.readableBytes == 0 else { return nil }
                return .request(id: id, .allocateProducerIDs(broker: NodeID(broker), epoch: BrokerEpoch(epoch)))
            case 12:
                guard let node = body.readInteger(as: Int32.self), node >= 0, let port = body.readInteger(as: UInt16.self), port > 0,
                      let length = body.readInteger(as: UInt16.self), length > 0, length <= QuorumRequest.hostBytesMax,
                      let bytes = body.readBytes(length: Int(length)), let host = String(validating: bytes, as: UTF8.self),
                      body.readableBytes == 0 else { return nil }
                return .request(id: id, .addVoter(VoterAddress(id: NodeID(node), host: host, port: Int(port))))
            case 13:
                guard let node = body.readInteger(as: Int32.self), body.readableBytes == 0 else { return nil }
                return .request(id: id, .removeVoter(NodeID(node)))
            default: return nil
            }
        case 3:
            guard let id = body.readInteger(as: UInt32.self), let ok = body.readInteger(as: UInt8.self) else { return nil }
            return .answer(id: id, ok: ok == 1, text: body.readString(length: body.readableBytes) ?? "")
        case 4:
            guard let id = body.readInteger(as: UInt32.self) else { return nil }
            return .data(id: id, body.readBytes(length: body.readableBytes) ?? [])
        default:
            return nil
        }
    }

    /// Strings in broker requests: a 2-byte length (-1 for none), at most `stringBytesMax`.
    static let stringBytesMax = ControllerAdminRequest.stringBytesMax
    static let endpointsMax = 64

    static func writeString(_ text: String?, into buffer: inout ByteBuffer) {
        guard let text else {
            buffer.writeInteger(Int16(-1))
            return
        }
        let bytes = Array(text.utf8.prefix(stringBytesMax))
        buffer.writeInteger(Int16(bytes.count))
        buffer.writeBytes(bytes)
    }

    static func readString(_ buffer: inout ByteBuffer) -> String?? {
        guard let length = buffer.readInteger(as: Int16.self) else { return nil }
        if length == -1 { return .some(nil) }
        guard length >= 0, Int(length) <= stringBytesMax, let text = buffer.readString(length: Int(length)) else { return nil }
        return .some(text)
    }

    static let topicsPerAdminMax = 10_000
    static let configsPerTopicMax = 1000
    static let assignmentsMax = 10_000

    static func write(_ admin: ControllerAdminRequest, into buffer: inout ByteBuffer) {
        switch admin {
        case .createTopics(let topics, let validateOnly):
            buffer.writeInteger(UInt8(1))
            buffer.writeInteger(UInt8(validateOnly ? 1 : 0))
            buffer.writeInteger(UInt32(topics.count))
            for topic in topics {
                writeString(topic.name, into: &buffer)
                buffer.writeInteger(Int32(clamping: topic.partitions ?? -1))
                buffer.writeInteger(Int32(clamping: topic.replicationFactor ?? -1))
                let assignments = topic.assignments ?? []
                buffer.writeInteger(UInt32(topic.assignments == nil ? UInt32.max : UInt32(assignments.count)))
                for replicas in assignments {
                    buffer.writeInteger(UInt16(replicas.count))
                    for id in replicas { buffer.writeInteger(id.value) }
                }
                writeConfigs(topic.configs, into: &buffer)
            }
        case .deleteTopics(let names):
            buffer.writeInteger(UInt8(2))
            buffer.writeInteger(UInt32(names.count))
            for name in names { writeString(name, into: &buffer) }
        case .createPartitions(let topic, let total):
            buffer.writeInteger(UInt8(3))
            writeString(topic, into: &buffer)
            buffer.writeInteger(Int32(clamping: total))
        case .electLeaders(let type, let targets):
            buffer.writeInteger(UInt8(5))
            buffer.writeInteger(type.rawValue)
            buffer.writeInteger(UInt32(targets == nil ? UInt32.max : UInt32(targets!.count)))
            for target in targets ?? [] {
                writeString(target.topic, into: &buffer)
                buffer.writeInteger(UInt32(target.partitions.count))
                for p in target.partitions { buffer.writeInteger(p) }
            }
        case .reassign(let requests, let allow):
            buffer.writeInteger(UInt8(6))
            buffer.writeInteger(UInt8(allow ? 1 : 0))
            buffer.writeInteger(UInt32(requests.count))
            for r in requests {
                writeString(r.topic, into: &buffer)
                buffer.writeInteger(r.partition)
                buffer.writeInteger(r.replicas.map { UInt16($0.count) } ?? UInt16.max)
                for id in r.replicas ?? [] { buffer.writeInteger(id.value) }
            }
        case .unregisterBroker(let id):
            buffer.writeInteger(UInt8(7))
            buffer.writeInteger(id.value)
        case .setTopicConfigs(let topic, let configs):
            buffer.writeInteger(UInt8(4))
            writeString(topic, into: &buffer)
            writeConfigs(configs, into: &buffer)
        case .setBrokerConfigs(let broker, let configs):
            buffer.writeInteger(UInt8(8))
            writeString(broker, into: &buffer)
            writeConfigs(configs, into: &buffer)
        case .setGroupConfigs(let group, let configs):
            buffer.writeInteger(UInt8(9))
            writeString(group, into: &buffer)
            writeConfigs(configs, into: &buffer)
        case .alterScramCredentials(let removals, let upsertions):
            buffer.writeInteger(UInt8(10))
            buffer.writeInteger(UInt32(removals.count))
            for r in removals {
                writeString(r.name, into: &buffer)
                buffer.writeInteger(r.mechanism)
            }
            buffer.writeInteger(UInt32(upsertions.count))
            for u in upsertions {
                writeString(u.name, into: &buffer)
                buffer.writeInteger(u.mechanism)
                buffer.writeInteger(u.iterations)
                for var bytes in [u.salt, u.storedKey, u.serverKey] {
                    buffer.writeInteger(UInt16(clamping: bytes.readableBytes))
                    buffer.writeBuffer(&bytes)
                }
            }
        case .createAcls(let bindings):
            buffer.writeInteger(UInt8(11))
            buffer.writeInteger(UInt32(bindings.count))
            for b in bindings {
                buffer.writeInteger(b.resourceType.rawValue)
                writeString(b.name, into: &buffer)
                buffer.writeInteger(b.patternType.rawValue)
                writeString(b.principal, into: &buffer)
                writeString(b.host, into: &buffer)
                buffer.writeInteger(b.operation.rawValue)
                buffer.writeInteger(b.permission.rawValue)
            }
        case .deleteAcls(let ids):
            buffer.writeInteger(UInt8(12))
            buffer.writeInteger(UInt32(ids.count))
            for id in ids {
                buffer.writeInteger(id.high)
                buffer.writeInteger(id.low)
            }
        case .alterClientQuotas(let changes):
            buffer.writeInteger(UInt8(13))
            buffer.writeInteger(UInt32(changes.count))
            for change in changes {
                buffer.writeInteger(UInt8(change.entity.count))
                for component in change.entity {
                    writeString(component.entityType, into: &buffer)
                    writeString(component.entityName, into: &buffer)
                }
                writeString(change.key, into: &buffer)
                buffer.writeInteger(change.value.bitPattern)
                buffer.writeInteger(UInt8(change.remove ? 1 : 0))
            }
        }
    }

    /// Access control entries one admin request carries at most.
    static let aclsMax = 10_000
    /// Client quota changes one admin request carries at most.
    static let quotaChangesMax = 10_000

    /// Users' credential changes one admin request carries at most, and the longest salt or key.
    static let scramChangesMax = 10_000
    static let scramBytesMax = 1024

    static func writeConfigs(_ configs: [String: String], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt16(configs.count))
        for (key, value) in configs.sorted(by: { $0.key < $1.key }) {
            writeString(key, into: &buffer)
            writeString(value, into: &buffer)
        }
    }

    /// A map written by writeConfigs; nil when cut short, too long or naming a key twice.
    static func readConfigs(_ body: inout ByteBuffer) -> [String: String]? {
        guard let count = body.readInteger(as: UInt16.self), Int(count) <= configsPerTopicMax else { return nil }
        var configs: [String: String] = [:]
        for _ in 0..<count {
            guard let key = readString(&body) ?? nil, let value = readString(&body) ?? nil else { return nil }
            configs[key] = value
        }
        return configs.count == Int(count) ? configs : nil
    }

    static func readAdmin(_ body: inout ByteBuffer) -> ControllerAdminRequest? {
        guard let kind = body.readInteger(as: UInt8.self) else { return nil }
        switch kind {
        case 1:
            guard let validate = body.readInteger(as: UInt8.self), validate <= 1, let count = body.readInteger(as: UInt32.self),
                  count <= topicsPerAdminMax else { return nil }
            var topics: [NewTopic] = []
            for _ in 0..<count {
                guard let name = readString(&body) ?? nil, let partitions = body.readInteger(as: Int32.self),
                      let factor = body.readInteger(as: Int32.self), let assignmentCount = body.readInteger(as: UInt32.self) else { return nil }
                var assignments: [[NodeID]]?
                if assignmentCount != UInt32.max {
                    guard assignmentCount <= assignmentsMax else { return nil }
                    var lists: [[NodeID]] = []
                    for _ in 0..<assignmentCount {
                        guard let n = body.readInteger(as: UInt16.self), n <= 64 else { return nil }
                        var ids: [NodeID] = []
                        for _ in 0..<n {
                            guard let id = body.readInteger(as: Int32.self) else { return nil }
                            ids.append(NodeID(id))
                        }
                        lists.append(ids)
                    }
                    assignments = lists
                }
                guard let configs = readConfigs(&body) else { return nil }
                topics.append(NewTopic(name: name, partitions: partitions < 0 ? nil : Int(partitions),
                                       replicationFactor: factor < 0 ? nil : Int(factor), assignments: assignments, configs: configs))
            }
            return .createTopics(topics, validateOnly: validate == 1)
        case 2:
            guard let count = body.readInteger(as: UInt32.self), count <= topicsPerAdminMax else { return nil }
            var names: [String] = []
            for _ in 0..<count {
                guard let name = readString(&body) ?? nil else { return nil }
                names.append(name)
            }
            return .deleteTopics(names)
        case 3:
            guard let topic = readString(&body) ?? nil, let total = body.readInteger(as: Int32.self) else { return nil }
            return .createPartitions(topic: topic, total: Int(total))
        case 4:
            guard let topic = readString(&body) ?? nil, let configs = readConfigs(&body) else { return nil }
            return .setTopicConfigs(topic: topic, configs: configs)
        case 8:
            guard let broker = readString(&body) ?? nil, let configs = readConfigs(&body) else { return nil }
            return .setBrokerConfigs(broker: broker, configs: configs)
        case 9:
            guard let group = readString(&body) ?? nil, let configs = readConfigs(&body) else { return nil }
            return .setGroupConfigs(group: group, configs: configs)
        case 5:
            guard let raw = body.readInteger(as: Int8.self), let type = ElectionType(rawValue: raw),
                  let count = body.readInteger(as: UInt32.self) else { return nil }
            guard count != UInt32.max else { return .electLeaders(type, nil) }
            guard count <= topicsPerAdminMax else { return nil }
            var targets: [ElectionTarget] = []
            var total = 0
            for _ in 0..<count {
                guard let topic = readString(&body) ?? nil, let n = body.readInteger(as: UInt32.self), n <= assignmentsMax else { return nil }
                total += Int(n)
                guard total <= assignmentsMax else { return nil }
                var partitions: [Int32] = []
                for _ in 0..<n {
                    guard let p = body.readInteger(as: Int32.self) else { return nil }
                    partitions.append(p)
                }
                targets.append(ElectionTarget(topic: topic, partitions: partitions))
            }
            return .electLeaders(type, targets)
        case 6:
            guard let allow = body.readInteger(as: UInt8.self), allow <= 1, let count = body.readInteger(as: UInt32.self),
                  count <= assignmentsMax else { return nil }
            var requests: [ReassignmentRequest] = []
            for _ in 0..<count {
                guard let topic = readString(&body) ?? nil, let partition = body.readInteger(as: Int32.self),
                      let n = body.readInteger(as: UInt16.self) else { return nil }
                var replicas: [NodeID]?
                if n != UInt16.max {
                    guard n <= 64 else { return nil }
                    var ids: [NodeID] = []
                    for _ in 0..<n {
                        guard let id = body.readInteger(as: Int32.self) else { return nil }
                        ids.append(NodeID(id))
                    }
                    replicas = ids
                }
                requests.append(ReassignmentRequest(topic: topic, partition: partition, replicas: replicas))
            }
            return .reassign(requests, allowReplicationFactorChange: allow == 1)
        case 7:
            guard let id = body.readInteger(as: Int32.self), id >= 0 else { return nil }
            return .unregisterBroker(NodeID(id))
        case 10:
            guard let removalCount = body.readInteger(as: UInt32.self), removalCount <= scramChangesMax else { return nil }
            var removals: [RemoveUserScramCredentialRecord] = []
            for _ in 0..<removalCount {
                guard let name = readString(&body) ?? nil, let mechanism = body.readInteger(as: Int8.self) else { return nil }
                removals.append(RemoveUserScramCredentialRecord(name: name, mechanism: mechanism))
            }
            guard let upsertCount = body.readInteger(as: UInt32.self), upsertCount <= scramChangesMax else { return nil }
            var upsertions: [UserScramCredentialRecord] = []
            for _ in 0..<upsertCount {
                guard let name = readString(&body) ?? nil, let mechanism = body.readInteger(as: Int8.self),
                      let iterations = body.readInteger(as: Int32.self) else { return nil }
                var parts: [ByteBuffer] = []
                for _ in 0..<3 {
                    guard let n = body.readInteger(as: UInt16.self), Int(n) <= scramBytesMax, let bytes = body.readSlice(length: Int(n)) else { return nil }
                    parts.append(bytes)
                }
                upsertions.append(UserScramCredentialRecord(name: name, mechanism: mechanism, salt: parts[0], storedKey: parts[1],
                                                            serverKey: parts[2], iterations: iterations))
            }
            return .alterScramCredentials(removals: removals, upsertions: upsertions)
        case 11:
            guard let count = body.readInteger(as: UInt32.self), count <= aclsMax else { return nil }
            var bindings: [AclBinding] = []
            for _ in 0..<count {
                guard let type = body.readInteger(as: Int8.self), let name = readString(&body) ?? nil,
                      let pattern = body.readInteger(as: Int8.self), let principal = readString(&body) ?? nil,
                      let host = readString(&body) ?? nil, let operation = body.readInteger(as: Int8.self),
                      let permission = body.readInteger(as: Int8.self),
                      let binding = AclBinding(resourceType: type, name: name, patternType: pattern, principal: principal, host: host,
                                               operation: operation, permission: permission) else { return nil }
                bindings.append(binding)
            }
            return .createAcls(bindings)
        case 12:
            guard let count = body.readInteger(as: UInt32.self), count <= aclsMax else { return nil }
            var ids: [KafkaUUID] = []
            for _ in 0..<count {
                guard let high = body.readInteger(as: UInt64.self), let low = body.readInteger(as: UInt64.self) else { return nil }
                ids.append(KafkaUUID(high: high, low: low))
            }
            return .deleteAcls(ids)
        case 13:
            guard let count = body.readInteger(as: UInt32.self), count <= quotaChangesMax else { return nil }
            var changes: [ClientQuotaRecord] = []
            for _ in 0..<count {
                guard let components = body.readInteger(as: UInt8.self), components <= 4 else { return nil }
                var entity: [ClientQuotaRecord.EntityData] = []
                for _ in 0..<components {
                    guard let type = readString(&body) ?? nil, let name = readString(&body) else { return nil }
                    entity.append(.init(entityType: type, entityName: name))
                }
                // A value that is not a number is no quota (and equals nothing, not even itself):
                // the frame is malformed (found by the fuzz target quorum-wire).
                guard let key = readString(&body) ?? nil, let bits = body.readInteger(as: UInt64.self), !Double(bitPattern: bits).isNaN,
                      let remove = body.readInteger(as: UInt8.self), remove <= 1 else { return nil }
                changes.append(ClientQuotaRecord(entity: entity, key: key, value: Double(bitPattern: bits), remove: remove == 1))
            }
            return .alterClientQuotas(changes)
        default:
            return nil
        }
    }

    static func readRegistration(_ body: inout ByteBuffer) -> BrokerRegistrationRequest? {
        guard let node = body.readInteger(as: Int32.self), node >= 0, let high = body.readInteger(as: UInt64.self),
              let low = body.readInteger(as: UInt64.self), let rack = readString(&body),
              let count = body.readInteger(as: UInt16.self), Int(count) <= endpointsMax else { return nil }
        var endpoints: [BrokerInfo.Endpoint] = []
        for _ in 0..<count {
            guard let name = readString(&body) ?? nil, let host = readString(&body) ?? nil,
                  let port = body.readInteger(as: Int32.self), (0...65535).contains(port),
                  let security = body.readInteger(as: Int16.self) else { return nil }
            endpoints.append(BrokerInfo.Endpoint(name: name, host: host, port: Int(port), securityProtocol: security))
        }
        // The clean-shutdown byte came later: a registration without it (an older broker) says clean.
        let clean = body.readableBytes == 0 ? 1 : body.readInteger(as: UInt8.self)
        guard let clean, clean <= 1, body.readableBytes == 0 else { return nil }
        return BrokerRegistrationRequest(id: NodeID(node), incarnation: KafkaUUID(high: high, low: low), endpoints: endpoints, rack: rack,
                                         cleanShutdown: clean == 1)
    }

    static func write(_ m: Message, into buffer: inout ByteBuffer) {
        buffer.writeInteger(m.from.value)
        buffer.writeInteger(m.to.value)
        buffer.writeInteger(m.term.value)
        switch m.body {
        case .preVote(let lastIndex, let lastTerm):
            buffer.writeInteger(UInt8(1)); buffer.writeInteger(lastIndex.value); buffer.writeInteger(lastTerm.value)
        case .preVoteResponse(let granted):
            buffer.writeInteger(UInt8(2)); buffer.writeInteger(UInt8(granted ? 1 : 0))
        case .vote(let lastIndex, let lastTerm, let transfer):
            buffer.writeInteger(UInt8(3)); buffer.writeInteger(lastIndex.value); buffer.writeInteger(lastTerm.value)
            buffer.writeInteger(UInt8(transfer ? 1 : 0))
        case .voteResponse(let granted):
            buffer.writeInteger(UInt8(4)); buffer.writeInteger(UInt8(granted ? 1 : 0))
        case .append(let prevIndex, let prevTerm, let entries, let commit):
            buffer.writeInteger(UInt8(5)); buffer.writeInteger(prevIndex.value); buffer.writeInteger(prevTerm.value)
            buffer.writeInteger(commit.value); buffer.writeInteger(UInt32(entries.count))
            for entry in entries {
                buffer.writeInteger(entry.term.value); buffer.writeInteger(entry.index.value); buffer.writeInteger(entry.kind.rawValue)
                buffer.writeInteger(UInt32(entry.data.count)); buffer.writeBytes(entry.data)
            }
        case .appendResponse(let success, let index, let hint):
            buffer.writeInteger(UInt8(6)); buffer.writeInteger(UInt8(success ? 1 : 0)); buffer.writeInteger(index.value)
            buffer.writeInteger(hint.value)
        case .installSnapshot(let snapshot):
            buffer.writeInteger(UInt8(7)); buffer.writeInteger(snapshot.index.value); buffer.writeInteger(snapshot.term.value)
            let configuration = snapshot.configuration.encoded
            buffer.writeInteger(UInt32(configuration.count)); buffer.writeBytes(configuration)
            buffer.writeInteger(UInt32(snapshot.data.count)); buffer.writeBytes(snapshot.data)
        case .timeoutNow:
            buffer.writeInteger(UInt8(8))
        }
    }

    /// Indexes and terms are checked non-negative as they are read, so that arithmetic on them
    /// (`entryIndex - prevIndex`) cannot overflow; `prevIndex + 1` could (found writing the
    /// fuzz target quorum-wire, docs/reliability.md).
    static func readMessage(_ buffer: inout ByteBuffer) -> Message? {
        guard let from = buffer.readInteger(as: Int32.self), let to = buffer.readInteger(as: Int32.self),
              let term = buffer.readInteger(as: Int64.self), term >= 0, let tag = buffer.readInteger(as: UInt8.self) else { return nil }
        func readIndex() -> LogIndex? { buffer.readInteger(as: Int64.self).flatMap { $0 >= 0 ? LogIndex($0) : nil } }
        func termValue() -> Term? { buffer.readInteger(as: Int64.self).flatMap { $0 >= 0 ? Term($0) : nil } }
        func flag() -> Bool? { buffer.readInteger(as: UInt8.self).flatMap { $0 <= 1 ? $0 == 1 : nil } }
        func bytes() -> [UInt8]? { buffer.readInteger(as: UInt32.self).flatMap { buffer.readBytes(length: Int($0)) } }
        let body: Message.Body
        switch tag {
        case 1:
            guard let lastIndex = readIndex(), let lastTerm = termValue() else { return nil }
            body = .preVote(lastIndex: lastIndex, lastTerm: lastTerm)
        case 2:
            guard let granted = flag() else { return nil }
            body = .preVoteResponse(granted: granted)
        case 3:
            guard let lastIndex = readIndex(), let lastTerm = termValue(), let transfer = flag() else { return nil }
            body = .vote(lastIndex: lastIndex, lastTerm: lastTerm, transfer: transfer)
        case 4:
            guard let granted = flag() else { return nil }
            body = .voteResponse(granted: granted)
        case 5:
            guard let prevIndex = readIndex(), let prevTerm = termValue(), let commit = readIndex(),
                  let count = buffer.readInteger(as: UInt32.self), count <= Frame.entriesMax else { return nil }
            var entries: [Entry] = []
            for _ in 0..<count {
                guard let entryTerm = termValue(), let entryIndex = readIndex(),
                      let kind = buffer.readInteger(as: UInt8.self).flatMap(Entry.Kind.init(rawValue:)), let data = bytes(),
                      entryIndex - prevIndex == Int64(entries.count + 1) else { return nil }
                entries.append(Entry(term: entryTerm, index: entryIndex, kind: kind, data: data))
            }
            body = .append(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commit)
        case 6:
            guard let success = flag(), let matchOrRejected = readIndex(), let hint = readIndex() else { return nil }
            body = .appendResponse(success: success, index: matchOrRejected, hint: hint)
        case 7:
            guard let snapshotIndex = readIndex(), let snapshotTerm = termValue(), let configurationBytes = bytes(),
                  let configuration = Configuration(encoded: configurationBytes), let data = bytes() else { return nil }
            body = .installSnapshot(Snapshot(index: snapshotIndex, term: snapshotTerm, configuration: configuration, data: data))
        case 8:
            body = .timeoutNow
        default:
            return nil
        }
        return Message(from: NodeID(from), to: NodeID(to), term: Term(term), body: body)
    }
}

/// What `brook quorum` asks a controller.
public enum QuorumRequest: Equatable, Sendable {
    /// Role, term, leader, commit and applied indexes, voters (one `key=value` per line).
    case status
    /// Append an entry (leader only); answered once it is committed and applied.
    case propose([UInt8])
    /// The entry at an index, if this node's log holds it and it is committed.
    case read(LogIndex)
    /// Hand leadership to a voter.
    case transfer(NodeID)
    /// A broker registers with the active controller (Kafka's BrokerRegistration).
    case registerBroker(BrokerRegistrationRequest)
    /// A broker's heartbeat to the active controller (Kafka's BrokerHeartbeat).
    case brokerHeartbeat(BrokerHeartbeatRequest)
    /// A broker (an observer of the quorum) reads the committed metadata log after `after`,
    /// waiting up to `maxWaitMs` for something new. Any controller answers.
    case fetchMetadata(after: MetadataOffset, maxWaitMs: Int32)
    /// The brokers and controller as this controller's committed image knows them.
    case describeCluster
    /// The quorum as the leader sees it (Kafka's DescribeQuorum): leader only.
    case describeQuorum
    /// Topic changes a broker forwards (CreateTopics, DeleteTopics, CreatePartitions),
    /// answered once their entries are committed.
    case admin(ControllerAdminRequest)
    /// A partition leader's ISR changes (Kafka's AlterPartition), at most
    /// `AlterPartitionRequest.partitionsMax`, made in one entry and answered once committed.
    /// All from one broker at one epoch.
    case alterPartitions([AlterPartitionRequest])
    /// A block of producer ids for a broker (Kafka's AllocateProducerIds), answered once committed.
    case allocateProducerIDs(broker: NodeID, epoch: BrokerEpoch)
    /// Adds a controller to the voters (Kafka's AddRaftVoter), answered once the new voter
    /// set is committed. Leader only; one change at a time.
    case addVoter(VoterAddress)
    /// Removes a controller from the voters (Kafka's RemoveRaftVoter), answered once committed.
    case removeVoter(NodeID)

    public static let fetchWaitMsMax: Int32 = 60_000
    /// The longest host name an added voter may have.
    public static let hostBytesMax: UInt16 = 255
    /// The most replicas an ISR on the wire may name.
    public static let isrSizeMax: UInt16 = 64
}

/// Cuts the byte stream into frames; a frame over the limit or one that does not decode
/// closes the connection.
struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = Frame

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard length <= Frame.bytesMax else { throw FrameError.tooLarge(Int(length)) }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        var body = buffer.readSlice(length: Int(length))!
        guard let frame = Frame.decode(&body) else { throw FrameError.malformed }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }
}

enum FrameError: Error {
    case tooLarge(Int)
    case malformed
}

/// A TopicAnswer as one line of a controller's text answer:
/// `topic=NAME error_code=N topic_id=ID partitions=P replication_factor=R message=...` (the
/// message, which may hold spaces, last).
enum TopicAnswerText {
    static func line(_ a: TopicAnswer) -> String {
        let message = (a.message ?? "").replacingNewlines
        return "topic=\(a.name) error_code=\(a.error.rawValue) topic_id=\(a.topicID) partitions=\(a.partitions) replication_factor=\(a.replicationFactor) message=\(message)\n"
    }

    /// The first line: the metadata offset the answer's entries are committed in.
    static func offsetLine(_ offset: MetadataOffset) -> String { "offset=\(offset.value)\n" }

    static func parse(_ text: String) -> (answers: [TopicAnswer], offset: MetadataOffset)? {
        var answers: [TopicAnswer] = []
        var offset = MetadataOffset.zero
        for line in text.split(separator: "\n") {
            if line.hasPrefix("offset=") {
                guard let value = Int64(line.dropFirst("offset=".count)), value >= 0 else { return nil }
                offset = MetadataOffset(value)
                continue
            }
            guard let messageStart = line.firstRange(of: " message=") else { return nil }
            var fields: [String: String] = [:]
            for word in line[..<messageStart.lowerBound].split(separator: " ") {
                let kv = word.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard kv.count == 2 else { return nil }
                fields[String(kv[0])] = String(kv[1])
            }
            let message = String(line[messageStart.upperBound...])
            guard let name = fields["topic"], let code = fields["error_code"].flatMap(Int16.init),
                  let id = fields["topic_id"].flatMap(KafkaUUID.init), let partitions = fields["partitions"].flatMap(Int.init),
                  let factor = fields["replication_factor"].flatMap(Int.init) else { return nil }
            answers.append(TopicAnswer(name: name, error: ErrorCode(rawValue: code), message: message.isEmpty ? nil : message,
                                       topicID: id, partitions: partitions, replicationFactor: factor))
        }
        return (answers, offset)
    }
}

private extension String {
    var replacingNewlines: String { String(map { $0 == "\n" ? " " : $0 }) }
}

/// The answers to an AlterPartition with many partitions, as text: one line per partition in
/// request order, `error_code leader_epoch partition_epoch isr elr` (replica lists comma
/// separated, `-` when empty; the epochs and lists only when the partition exists).
public enum ISRChangeAnswers {
    static func text(_ answers: [(ErrorCode, PartitionInfo?)]) -> String {
        func list(_ nodes: [NodeID]) -> String { nodes.isEmpty ? "-" : nodes.map(\.description).joined(separator: ",") }
        var text = ""
        text.reserveCapacity(answers.count * 24)
        for (code, info) in answers {
            text += "\(code.rawValue)"
            if let info { text += " \(info.leaderEpoch) \(info.partitionEpoch) \(list(info.isr)) \(list(info.elr))" }
            text += "\n"
        }
        return text
    }

    /// Each line's error and, for a change made (or already so), the committed ISR, ELR and
    /// partition epoch; nil when the text does not hold `count` lines.
    static func parse(_ text: String, count: Int) -> [(ErrorCode, CommittedISR?)]? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        guard lines.count == count else { return nil }
        func list(_ field: Substring) -> [NodeID]? {
            if field == "-" { return [] }
            let ids = field.split(separator: ",").compactMap { Int32($0) }.map(NodeID.init)
            return ids.isEmpty ? nil : ids
        }
        var answers: [(ErrorCode, CommittedISR?)] = []
        answers.reserveCapacity(count)
        for line in lines {
            let fields = line.split(separator: " ")
            guard let raw = fields.first.flatMap({ Int16($0) }) else { return nil }
            let code = ErrorCode(rawValue: raw)
            guard code == .none, fields.count == 5 else {
                answers.append((code == .none ? .unknownServerError : code, nil))
                continue
            }
            guard let epoch = Int32(fields[2]), let isr = list(fields[3]), let elr = list(fields[4]) else { return nil }
            answers.append((.none, (isr, elr, PartitionEpoch(epoch))))
        }
        return answers
    }
}
