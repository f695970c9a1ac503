/// Kafka's error codes, as they travel in responses (the numbers are the protocol's).
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }

    public static let unknownServerError = ErrorCode(rawValue: -1)
    public static let none = ErrorCode(rawValue: 0)
    public static let offsetOutOfRange = ErrorCode(rawValue: 1)
    public static let corruptMessage = ErrorCode(rawValue: 2)
    public static let unknownTopicOrPartition = ErrorCode(rawValue: 3)
    public static let invalidFetchSize = ErrorCode(rawValue: 4)
    public static let leaderNotAvailable = ErrorCode(rawValue: 5)
    public static let notLeaderOrFollower = ErrorCode(rawValue: 6)
    public static let requestTimedOut = ErrorCode(rawValue: 7)
    public static let replicaNotAvailable = ErrorCode(rawValue: 9)
    public static let messageTooLarge = ErrorCode(rawValue: 10)
    public static let coordinatorNotAvailable = ErrorCode(rawValue: 15)
    public static let invalidTopicException = ErrorCode(rawValue: 17)
    public static let recordListTooLarge = ErrorCode(rawValue: 18)
    public static let invalidRequiredAcks = ErrorCode(rawValue: 21)
    public static let topicAuthorizationFailed = ErrorCode(rawValue: 29)
    public static let invalidTimestamp = ErrorCode(rawValue: 32)
    public static let unsupportedVersion = ErrorCode(rawValue: 35)
    public static let topicAlreadyExists = ErrorCode(rawValue: 36)
    public static let invalidPartitions = ErrorCode(rawValue: 37)
    public static let invalidReplicationFactor = ErrorCode(rawValue: 38)
    public static let invalidReplicaAssignment = ErrorCode(rawValue: 39)
    public static let invalidConfig = ErrorCode(rawValue: 40)
    public static let invalidRequest = ErrorCode(rawValue: 42)
    public static let unsupportedForMessageFormat = ErrorCode(rawValue: 43)
    public static let policyViolation = ErrorCode(rawValue: 44)
    public static let kafkaStorageError = ErrorCode(rawValue: 56)
    public static let logDirNotFound = ErrorCode(rawValue: 57)
    public static let unknownLeaderEpoch = ErrorCode(rawValue: 75)
    public static let fetchSessionIDNotFound = ErrorCode(rawValue: 70)
    public static let invalidFetchSessionEpoch = ErrorCode(rawValue: 71)
    public static let fetchSessionTopicIDError = ErrorCode(rawValue: 106)
    public static let fencedLeaderEpoch = ErrorCode(rawValue: 74)
    public static let unsupportedCompressionType = ErrorCode(rawValue: 76)
    public static let unknownTopicID = ErrorCode(rawValue: 100)
    public static let offsetNotAvailable = ErrorCode(rawValue: 78)
    public static let invalidRecord = ErrorCode(rawValue: 87)
    public static let inconsistentTopicID = ErrorCode(rawValue: 103)
    public static let resourceNotFound = ErrorCode(rawValue: 91)
    public static let throttlingQuotaExceeded = ErrorCode(rawValue: 89)
    public static let offsetMetadataTooLarge = ErrorCode(rawValue: 12)
    public static let networkException = ErrorCode(rawValue: 13)
    public static let coordinatorLoadInProgress = ErrorCode(rawValue: 14)
    public static let notCoordinator = ErrorCode(rawValue: 16)
    public static let illegalGeneration = ErrorCode(rawValue: 22)
    public static let inconsistentGroupProtocol = ErrorCode(rawValue: 23)
    public static let invalidGroupID = ErrorCode(rawValue: 24)
    public static let unknownMemberID = ErrorCode(rawValue: 25)
    public static let invalidSessionTimeout = ErrorCode(rawValue: 26)
    public static let rebalanceInProgress = ErrorCode(rawValue: 27)
    public static let invalidCommitOffsetSize = ErrorCode(rawValue: 28)
    public static let nonEmptyGroup = ErrorCode(rawValue: 68)
    public static let groupIDNotFound = ErrorCode(rawValue: 69)
    public static let memberIDRequired = ErrorCode(rawValue: 79)
    public static let groupMaxSizeReached = ErrorCode(rawValue: 81)
    public static let fencedInstanceID = ErrorCode(rawValue: 82)
    public static let groupSubscribedToTopic = ErrorCode(rawValue: 86)
    public static let unstableOffsetCommit = ErrorCode(rawValue: 88)
    public static let fencedMemberEpoch = ErrorCode(rawValue: 110)
    public static let unreleasedInstanceID = ErrorCode(rawValue: 111)
    public static let unsupportedAssignor = ErrorCode(rawValue: 112)
    public static let staleMemberEpoch = ErrorCode(rawValue: 113)
    public static let outOfOrderSequenceNumber = ErrorCode(rawValue: 45)
    public static let duplicateSequenceNumber = ErrorCode(rawValue: 46)
    public static let invalidProducerEpoch = ErrorCode(rawValue: 47)
    public static let invalidTxnState = ErrorCode(rawValue: 48)
    public static let invalidProducerIDMapping = ErrorCode(rawValue: 49)
    public static let invalidTransactionTimeout = ErrorCode(rawValue: 50)
    public static let concurrentTransactions = ErrorCode(rawValue: 51)
    public static let transactionCoordinatorFenced = ErrorCode(rawValue: 52)
    public static let unknownProducerID = ErrorCode(rawValue: 59)
    public static let producerFenced = ErrorCode(rawValue: 90)
    public static let transactionalIDNotFound = ErrorCode(rawValue: 105)
    public static let transactionAbortable = ErrorCode(rawValue: 120)
    // The replicated cluster: acks=all, the controller, AlterPartition and broker registration.
    public static let notEnoughReplicas = ErrorCode(rawValue: 19)
    public static let notEnoughReplicasAfterAppend = ErrorCode(rawValue: 20)
    public static let notController = ErrorCode(rawValue: 41)
    public static let staleBrokerEpoch = ErrorCode(rawValue: 77)
    public static let invalidUpdateVersion = ErrorCode(rawValue: 95)
    public static let duplicateBrokerRegistration = ErrorCode(rawValue: 101)
    public static let brokerIDNotRegistered = ErrorCode(rawValue: 102)
    public static let inconsistentClusterID = ErrorCode(rawValue: 104)
    public static let ineligibleReplica = ErrorCode(rawValue: 107)
    public static let newLeaderElected = ErrorCode(rawValue: 108)
    public static let preferredLeaderNotAvailable = ErrorCode(rawValue: 80)
    public static let eligibleLeadersNotAvailable = ErrorCode(rawValue: 83)
    public static let electionNotNeeded = ErrorCode(rawValue: 84)
    public static let noReassignmentInProgress = ErrorCode(rawValue: 85)
    // Authentication (SASL) and credentials.
    public static let unsupportedSaslMechanism = ErrorCode(rawValue: 33)
    public static let illegalSaslState = ErrorCode(rawValue: 34)
    public static let saslAuthenticationFailed = ErrorCode(rawValue: 58)
    public static let duplicateResource = ErrorCode(rawValue: 92)
    public static let unacceptableCredential = ErrorCode(rawValue: 93)
    public static let clusterAuthorizationFailed = ErrorCode(rawValue: 31)
    public static let groupAuthorizationFailed = ErrorCode(rawValue: 30)
    public static let transactionalIDAuthorizationFailed = ErrorCode(rawValue: 53)
    public static let securityDisabled = ErrorCode(rawValue: 54)
    public static let operationNotAttempted = ErrorCode(rawValue: 55)

    public var description: String { "\(Self.names[rawValue] ?? "ERROR") (\(rawValue))" }
    /// Kafka's name of the code (`NOT_LEADER_OR_FOLLOWER`), or `ERROR_<code>` for one Brook has no name for.
    public var name: String { Self.names[rawValue] ?? "ERROR_\(rawValue)" }

    static let names: [Int16: String] = [
        -1: "UNKNOWN_SERVER_ERROR", 0: "NONE", 1: "OFFSET_OUT_OF_RANGE", 2: "CORRUPT_MESSAGE",
        3: "UNKNOWN_TOPIC_OR_PARTITION", 4: "INVALID_FETCH_SIZE", 5: "LEADER_NOT_AVAILABLE",
        6: "NOT_LEADER_OR_FOLLOWER", 7: "REQUEST_TIMED_OUT", 9: "REPLICA_NOT_AVAILABLE", 10: "MESSAGE_TOO_LARGE",
        15: "COORDINATOR_NOT_AVAILABLE", 17: "INVALID_TOPIC_EXCEPTION", 18: "RECORD_LIST_TOO_LARGE",
        21: "INVALID_REQUIRED_ACKS", 29: "TOPIC_AUTHORIZATION_FAILED", 32: "INVALID_TIMESTAMP", 35: "UNSUPPORTED_VERSION",
        36: "TOPIC_ALREADY_EXISTS", 37: "INVALID_PARTITIONS", 38: "INVALID_REPLICATION_FACTOR",
        39: "INVALID_REPLICA_ASSIGNMENT", 40: "INVALID_CONFIG", 42: "INVALID_REQUEST",
        43: "UNSUPPORTED_FOR_MESSAGE_FORMAT", 44: "POLICY_VIOLATION", 56: "KAFKA_STORAGE_ERROR",
        57: "LOG_DIR_NOT_FOUND", 75: "UNKNOWN_LEADER_EPOCH", 70: "FETCH_SESSION_ID_NOT_FOUND",
        71: "INVALID_FETCH_SESSION_EPOCH", 74: "FENCED_LEADER_EPOCH", 76: "UNSUPPORTED_COMPRESSION_TYPE", 78: "OFFSET_NOT_AVAILABLE",
        87: "INVALID_RECORD", 89: "THROTTLING_QUOTA_EXCEEDED", 91: "RESOURCE_NOT_FOUND",
        100: "UNKNOWN_TOPIC_ID", 103: "INCONSISTENT_TOPIC_ID", 106: "FETCH_SESSION_TOPIC_ID_ERROR",
        12: "OFFSET_METADATA_TOO_LARGE", 14: "COORDINATOR_LOAD_IN_PROGRESS",
        22: "ILLEGAL_GENERATION", 23: "INCONSISTENT_GROUP_PROTOCOL", 25: "UNKNOWN_MEMBER_ID",
        26: "INVALID_SESSION_TIMEOUT", 68: "NON_EMPTY_GROUP", 69: "GROUP_ID_NOT_FOUND",
        81: "GROUP_MAX_SIZE_REACHED", 82: "FENCED_INSTANCE_ID", 88: "UNSTABLE_OFFSET_COMMIT",
        16: "NOT_COORDINATOR", 28: "INVALID_COMMIT_OFFSET_SIZE", 24: "INVALID_GROUP_ID", 27: "REBALANCE_IN_PROGRESS", 79: "MEMBER_ID_REQUIRED",
        86: "GROUP_SUBSCRIBED_TO_TOPIC", 110: "FENCED_MEMBER_EPOCH",
        111: "UNRELEASED_INSTANCE_ID", 112: "UNSUPPORTED_ASSIGNOR", 113: "STALE_MEMBER_EPOCH",
        45: "OUT_OF_ORDER_SEQUENCE_NUMBER", 46: "DUPLICATE_SEQUENCE_NUMBER", 47: "INVALID_PRODUCER_EPOCH",
        48: "INVALID_TXN_STATE", 49: "INVALID_PRODUCER_ID_MAPPING", 50: "INVALID_TRANSACTION_TIMEOUT",
        51: "CONCURRENT_TRANSACTIONS", 52: "TRANSACTION_COORDINATOR_FENCED", 59: "UNKNOWN_PRODUCER_ID",
        90: "PRODUCER_FENCED", 105: "TRANSACTIONAL_ID_NOT_FOUND", 120: "TRANSACTION_ABORTABLE",
        19: "NOT_ENOUGH_REPLICAS", 20: "NOT_ENOUGH_REPLICAS_AFTER_APPEND", 41: "NOT_CONTROLLER",
        77: "STALE_BROKER_EPOCH", 95: "INVALID_UPDATE_VERSION", 101: "DUPLICATE_BROKER_REGISTRATION",
        102: "BROKER_ID_NOT_REGISTERED", 104: "INCONSISTENT_CLUSTER_ID", 107: "INELIGIBLE_REPLICA",
        108: "NEW_LEADER_ELECTED", 80: "PREFERRED_LEADER_NOT_AVAILABLE", 83: "ELIGIBLE_LEADERS_NOT_AVAILABLE",
        84: "ELECTION_NOT_NEEDED", 85: "NO_REASSIGNMENT_IN_PROGRESS",
        33: "UNSUPPORTED_SASL_MECHANISM", 34: "ILLEGAL_SASL_STATE", 58: "SASL_AUTHENTICATION_FAILED",
        92: "DUPLICATE_RESOURCE", 93: "UNACCEPTABLE_CREDENTIAL", 31: "CLUSTER_AUTHORIZATION_FAILED",
        30: "GROUP_AUTHORIZATION_FAILED", 53: "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", 54: "SECURITY_DISABLED",
        55: "OPERATION_NOT_ATTEMPTED",
    ]
}
