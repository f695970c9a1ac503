import BrookCluster
import BrookProtocol

/// What one request may do: the authorizer's answers for the connection's principal and host
/// against the access control entries of the metadata image, taken once per request. Without
/// an authorizer (`authorizer.class.name` unset) everything is allowed, as in Kafka.
public struct Authorization: Sendable {
    let authorizer: Authorizer?
    let acls: AclTable
    public let principal: String
    let host: String

    public var enabled: Bool { authorizer != nil }

    public func allows(_ operation: AclOperation, _ type: AclResourceType, _ name: String) -> Bool {
        guard let authorizer else { return true }
        return authorizer.authorize(principal, host: host, operation, type, name, acls: acls)
    }

    public func allowsCluster(_ operation: AclOperation) -> Bool { allows(operation, .cluster, AclBinding.clusterName) }

    /// Whether some ALLOW entry gives this principal WRITE (or ALL) on a topic: what an
    /// idempotent producer needs without IDEMPOTENT_WRITE on the cluster (KIP-679).
    public var mayWriteSomeTopic: Bool {
        guard let authorizer else { return true }
        if authorizer.superUsers.contains(principal) { return true }
        return acls.byID.values.contains { b in
            b.resourceType == .topic && b.permission == .allow && (b.operation == .write || b.operation == .all)
                && (b.principal == principal || b.principal == "User:*") && (b.host == AclBinding.wildcard || b.host == host)
        }
    }

    /// Kafka's rule for a config resource: `operation` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on the
    /// topic or the group it names, else on the cluster (a broker, its loggers); the error when
    /// it is refused.
    func configRefusal(_ operation: AclOperation, _ type: Int8, _ name: String) -> ErrorCode? {
        switch type {
        case ConfigResource.topic: allows(operation, .topic, name) ? nil : .topicAuthorizationFailed
        case ConfigResource.group: allows(operation, .group, name) ? nil : .groupAuthorizationFailed
        default: allowsCluster(operation) ? nil : .clusterAuthorizationFailed
        }
    }

    /// ALTER_CONFIGS on a config resource, or its refusal as the handlers' error.
    func checkAlterConfigs(_ type: Int8, _ name: String) throws(TopicError) {
        if let code = configRefusal(.alterConfigs, type, name) { throw TopicError(code, "ALTER_CONFIGS is needed.") }
    }

    /// Kafka's rule for DESCRIBE of a topic: any operation that implies it.
    public func mayDescribeTopic(_ name: String) -> Bool { allows(.describe, .topic, name) }

    /// Every API's check when an authorizer is on: done by its handler, on the cluster before
    /// the handler runs (a refusal is answered with CLUSTER_AUTHORIZATION_FAILED in the API's
    /// error fields, ApiHandler.refused), or none (the handshake APIs).
    enum Check: Equatable {
        case handler
        case cluster(AclOperation)
        case none
    }

    static let checks: [Int16: Check] = [
        18: .none, 17: .none, 36: .none,                         // ApiVersions, SaslHandshake, SaslAuthenticate
        0: .handler, 1: .handler, 2: .handler, 3: .handler,      // Produce, Fetch, ListOffsets, Metadata
        75: .handler,                                            // DescribeTopicPartitions
        8: .handler, 9: .handler, 10: .handler, 11: .handler,    // OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup
        12: .handler, 13: .handler, 14: .handler,                // Heartbeat, LeaveGroup, SyncGroup
        19: .handler, 20: .handler, 22: .handler, 23: .handler,  // CreateTopics, DeleteTopics, InitProducerId, OffsetForLeaderEpoch
        29: .handler, 30: .handler, 31: .handler,                // DescribeAcls, CreateAcls, DeleteAcls
        24: .handler, 25: .handler, 26: .handler, 28: .handler,  // AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit
        15: .handler, 16: .handler, 42: .handler, 47: .handler,  // DescribeGroups, ListGroups, DeleteGroups, OffsetDelete
        68: .handler, 69: .handler,                              // ConsumerGroupHeartbeat, ConsumerGroupDescribe
        21: .handler, 32: .handler, 37: .handler,                // DeleteRecords, DescribeConfigs, CreatePartitions
        61: .handler, 65: .handler, 66: .handler,                // DescribeProducers, DescribeTransactions, ListTransactions
        33: .handler, 44: .handler,                              // AlterConfigs, IncrementalAlterConfigs
        50: .cluster(.describe), 51: .cluster(.alter),           // Describe/AlterUserScramCredentials
        60: .cluster(.describe), 55: .cluster(.describe),        // DescribeCluster, DescribeQuorum
        35: .cluster(.describe), 46: .cluster(.describe),        // DescribeLogDirs, ListPartitionReassignments
        34: .cluster(.alter), 43: .cluster(.alter),              // AlterReplicaLogDirs, ElectLeaders
        45: .cluster(.alter), 64: .cluster(.alter),              // AlterPartitionReassignments, UnregisterBroker
        27: .cluster(.clusterAction),                            // WriteTxnMarkers
        48: .cluster(.describeConfigs), 49: .cluster(.alterConfigs), // Describe/AlterClientQuotas
        74: .cluster(.describeConfigs), 57: .cluster(.alter),    // ListConfigResources, UpdateFeatures
    ]

    /// The check an API gets: its entry, else ALTER on the cluster (an API served later without
    /// an entry is for administrators until it has one).
    static func check(_ apiKey: Int16) -> Check { checks[apiKey] ?? .cluster(.alter) }
}

extension RequestContext {
    /// Why this request is refused before its handler runs: an API checked on the cluster
    /// whose operation the principal lacks; nil when it may run.
    func clusterRefusal(_ apiKey: Int16) -> String? {
        guard broker.config.security.authorizer != nil, case .cluster(let operation) = Authorization.check(apiKey) else { return nil }
        let authorization = self.authorization
        guard !authorization.allowsCluster(operation) else { return nil }
        return "\(operation) on the cluster is not allowed for \(authorization.principal)"
    }

    /// The authorizer's view for this request.
    public var authorization: Authorization {
        let principal = connection?.principal ?? "User:ANONYMOUS"
        let host = clientHost.hasPrefix("/") ? String(clientHost.dropFirst()) : clientHost
        guard connection?.isBroker != true else { return Authorization(authorizer: nil, acls: AclTable(), principal: principal, host: host) }
        return broker.authorization(principal: principal, host: host)
    }
}

extension Broker {
    /// The authorizer's view for `principal` connecting from `host` (an MQTT client's, checked by
    /// the MQTT side): the cluster's access control entries as they are now.
    public func authorization(principal: String, host: String) -> Authorization {
        guard let authorizer = config.security.authorizer else {
            return Authorization(authorizer: nil, acls: AclTable(), principal: principal, host: host)
        }
        return Authorization(authorizer: authorizer, acls: cluster.current?.image.acls ?? AclTable(), principal: principal, host: host)
    }
}
