/// Named bounds. Every buffer, loop and decode allocation in Brook is bounded by one of these
/// (units last in every name).
public enum Limits {
    /// Largest record batch accepted anywhere (Kafka's `message.max.bytes` tops out near here).
    public static let batchBytesMax = 64 * 1024 * 1024
    /// The smallest well-formed RecordBatch v2: its header and nothing else.
    public static let batchHeaderBytes = 61
    /// Records in one batch; a count above this is treated as corrupt.
    public static let batchRecordsMax = 1 << 24
    /// Headers on one record.
    public static let recordHeadersMax = 1 << 16
    /// A segment's positions are 32-bit in its index, as in Kafka.
    public static let segmentBytesMax = Int(Int32.max)
    /// Largest index file (`segment.index.bytes` can not exceed it).
    public static let indexBytesMax = 256 * 1024 * 1024
    /// Read buffer used when scanning a segment (recovery, index rebuild, dumps).
    public static let scanChunkBytes = 4 * 1024 * 1024
    /// Segments in one partition.
    public static let segmentsPerPartitionMax = 1 << 20

    /// Partitions of one topic (Kafka has no hard limit; past this a typo, not a plan).
    public static let partitionsPerTopicMax = 100_000
    /// Partitions on one broker, whatever its open-file limit allows (TopicRegistry.partitionsMax).
    public static let partitionsPerBrokerMax = 200_000
    /// Partitions one CreateTopics or CreatePartitions request may add (Kafka 4's
    /// MAX_PARTITIONS_PER_BATCH): more is refused with POLICY_VIOLATION.
    public static let partitionsPerRequestMax = 10_000
    /// Topics on one broker.
    public static let topicsMax = 100_000
    /// Longest topic name (Kafka's 249: the directory name adds a partition suffix).
    public static let topicNameBytesMax = 249
    /// Requests read from one connection but not yet answered; more waits in the socket.
    public static let inflightRequestsPerConnectionMax = 128
    /// Fetch requests parked on one partition waiting for data (long poll); each append to the
    /// partition touches every one of them, so this bounds an append's wake-up work. More are
    /// answered at once with what there is. (Per connection, `inflightRequestsPerConnectionMax`
    /// bounds them, and they end with their connection.)
    public static let parkedFetchesPerPartitionMax = 4096
    /// Requests one connection may leave waiting in the broker (parked fetches, held group
    /// requests). A client keeps one fetch outstanding per broker; more are answered at once, so
    /// that a few connections cannot take every parked slot of a partition from the others.
    public static let waitingRequestsPerConnectionMax = 16
}
