/// The transaction settings, under Kafka's names and with its defaults.
public struct TxnConfig: Sendable, Equatable {
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask for.
    public var maxTimeoutMs: Int32 = 900_000
    /// `transactional.id.expiration.ms`: an idle transactional id is forgotten after this long.
    public var transactionalIDExpirationMs: Int64 = 604_800_000
    /// `producer.id.expiration.ms`: a partition forgets an idle producer after this long.
    public var producerIDExpirationMs: Int64 = 86_400_000
    /// `transaction.state.log.num.partitions`.
    public var stateLogPartitions: Int32 = 50
    /// `transaction.state.log.segment.bytes`.
    public var stateLogSegmentBytes: Int64 = 104_857_600
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    public var abortTimedOutIntervalMs: Int64 = 10_000
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    public var removeExpiredIntervalMs: Int64 = 3_600_000
    /// Partitions one transaction may write to (a limit of ours).
    public var partitionsPerTransactionMax = 10_000
    /// Transactional ids one coordinator keeps (a limit of ours).
    public var transactionalIDsMax = 1_000_000

    public init() {}
}
