import BrookCore
import BrookRecords

/// A producer's settings, under the Java client's names and with its defaults.
public struct ProducerConfig: Sendable {
    /// `bootstrap.servers`: brokers to ask for the cluster's metadata first.
    public var bootstrapServers: [String]
    /// `client.id`
    public var clientID = "brook-producer"
    /// `acks`: 0 (no answer), 1 (the leader wrote it) or -1, `all` (every in-sync replica has it).
    public var acks: Int16 = -1
    /// `enable.idempotence`: batches carry a producer id and sequences, so a batch sent again
    /// after a lost answer is written once. Needs acks=all. On unless set off, or unless acks is
    /// set to something else (as the Java client does when idempotence was not asked for).
    public var idempotent = true
    /// `linger.ms`: how long a batch waits for more records before it goes.
    public var lingerMs: Int64 = 5
    /// `batch.size`: a batch's bytes at most (a larger record gets a batch of its own).
    /// 1,000,000 as librdkafka, not the Java client's 16384: with one batch in flight per
    /// partition, 16 KiB batches cost this client 2.7 times the CPU per record, the broker 4
    /// times, and run at a third of the rate (docs/benchmarks.md); linger.ms still sends a
    /// batch after 5 ms, full or not.
    public var batchBytes = 1_000_000
    /// `buffer.memory`: bytes of records waiting to be written, at most; `send` waits for room.
    public var bufferBytes = 33_554_432
    /// `max.request.size`: the largest record (and request) sent.
    public var maxRequestBytes = 1_048_576
    /// `compression.type` and `compression.<codec>.level`.
    public var compression = CompressionCodec.none
    public var compressionLevel: Int?
    /// `request.timeout.ms`: how long the broker may take to answer a produce.
    public var requestTimeoutMs: Int32 = 30_000
    /// `delivery.timeout.ms`: a record not written this long after `send` fails.
    public var deliveryTimeoutMs: Int64 = 120_000
    /// `retry.backoff.ms`
    public var retryBackoffMs: Int64 = 100
    /// `max.block.ms`: how long `send` waits for metadata or for room in the buffer.
    public var maxBlockMs: Int64 = 60_000
    /// `metadata.max.age.ms`: metadata older than this is asked again.
    public var metadataMaxAgeMs: Int64 = 300_000
    /// `allow.auto.create.topics`: sending to a missing topic creates it where the broker allows.
    public var allowAutoCreateTopics = true
    /// `transactional.id`: the producer writes in transactions (`initTransactions`,
    /// `beginTransaction`, `commitTransaction`); a newer producer with the same id fences it.
    public var transactionalID: String?
    /// `transaction.timeout.ms`: a transaction open longer is aborted by its coordinator.
    public var transactionTimeoutMs: Int32 = 60_000
    /// `max.in.flight.requests.per.connection`: batches of a partition in flight at once. An
    /// idempotent producer sends at most 5 (what a partition remembers to find a repeat); more
    /// asked turns idempotence off unless it was asked for (then it is an error). Not set (nil):
    /// 5 for an idempotent producer, as in the Java client, and `maxInFlightNotIdempotent` for
    /// one that is not (acks 0 or 1, or idempotence turned off), which 5 would hold back for no
    /// guarantee: such a producer may reorder a partition's batches on a retry with 5 as with
    /// more (librdkafka's default is 1,000,000). See docs/client.md.
    public var maxInFlight: Int?

    /// A producer that is not idempotent keeps up to this many batches of a partition in flight
    /// unless told otherwise. With 16 KiB batches on loopback, 5 held the producer to 63% of
    /// librdkafka's rate and 50 let it pass it (docs/benchmarks.md, thirty-second session);
    /// without a limit (librdkafka's way) each batch went alone, at twice the context switches.
    public static let maxInFlightNotIdempotent = 50

    /// The batches of a partition in flight at once, with the defaults applied.
    /// (A transactional producer set up on the struct without idempotence is refused when it
    /// starts its transactions; meanwhile it keeps 5.)
    public var effectiveMaxInFlight: Int { maxInFlight ?? (isIdempotent || transactionalID != nil ? 5 : Self.maxInFlightNotIdempotent) }

    public init(bootstrapServers: [String]) {
        precondition(!bootstrapServers.isEmpty, "a producer needs a bootstrap server")
        self.bootstrapServers = bootstrapServers
    }

    /// Settings given as the Java client's properties. Security settings
    /// (`security.protocol`, `sasl.*`, `ssl.*`) are left to whoever opens the connections;
    /// any other unknown name is an error.
    public init(properties: [String: String]) throws {
        self.init(bootstrapServers: try ClientProperty.bootstrapServers(properties))
        var idempotenceAsked: Bool?
        var acksAsked = false
        var levels: [String: Int] = [:]
        try ClientProperty.each(properties, of: "producer") { property in
            let (name, value) = (property.name, property.value)
            switch name {
            case "client.id": clientID = value
            case "acks":
                switch value.trimmed.lowercased() {
                case "all", "-1": acks = -1
                case "1": acks = 1
                case "0": acks = 0
                default: throw ClientError("acks=\(value): expected 0, 1, all or -1")
                }
                acksAsked = true
            case "enable.idempotence": idempotenceAsked = try property.flag()
            case "linger.ms": lingerMs = try property.number(0...3_600_000)
            case "batch.size": batchBytes = Int(try property.number(1...(64 << 20)))
            case "buffer.memory": bufferBytes = Int(try property.number(1024...(Int64(Int32.max))))
            case "max.request.size": maxRequestBytes = Int(try property.number(1024...(Int64(Int32.max))))
            case "compression.type":
                guard let codec = CompressionCodec(name: value.trimmed.lowercased()) else {
                    throw ClientError("compression.type=\(value): expected none, gzip, snappy, lz4 or zstd")
                }
                compression = codec
            case "compression.gzip.level", "compression.lz4.level", "compression.zstd.level":
                levels[name] = Int(try property.number(-131_072...22))
            case "request.timeout.ms": requestTimeoutMs = Int32(try property.number(1...Int64(Int32.max)))
            case "delivery.timeout.ms": deliveryTimeoutMs = try property.number(1...Int64(Int32.max))
            case "retry.backoff.ms": retryBackoffMs = try property.number(0...3_600_000)
            case "max.block.ms": maxBlockMs = try property.number(0...Int64(Int32.max))
            case "metadata.max.age.ms": metadataMaxAgeMs = try property.number(1...Int64(Int32.max))
            case "allow.auto.create.topics": allowAutoCreateTopics = try property.flag()
            case "transactional.id": transactionalID = value.isEmpty ? nil : value
            case "transaction.timeout.ms": transactionTimeoutMs = Int32(try property.number(1...Int64(Int32.max)))
            case "max.in.flight.requests.per.connection", "max.in.flight": maxInFlight = Int(try property.number(1...1_000_000))
            default: return false
            }
            return true
        }
        compressionLevel = levels["compression.\(compression).level"]
        if idempotenceAsked == true && acks != -1 { throw ClientError("enable.idempotence=true needs acks=all") }
        if idempotenceAsked == true, let maxInFlight, maxInFlight > 5 {
            throw ClientError("enable.idempotence=true needs max.in.flight.requests.per.connection at most 5")
        }
        idempotent = idempotenceAsked ?? !((acksAsked && acks != -1) || (maxInFlight ?? 5) > 5)
        if transactionalID != nil && !isIdempotent {
            throw ClientError("transactional.id needs idempotence (acks=all, enable.idempotence not false)")
        }
    }

    /// Idempotence needs acks=all: set on the struct with other acks, it is off (as the Java
    /// client does when it was not asked for; `init(properties:)` refuses asking for both).
    public var isIdempotent: Bool { idempotent && acks == -1 && (maxInFlight ?? 5) <= 5 }

    /// The accumulator's share of the settings.
    var accumulator: RecordAccumulator<Delivery>.Settings {
        RecordAccumulator.Settings(lingerMs: lingerMs, batchBytes: batchBytes, bufferBytes: bufferBytes,
                                   deliveryTimeoutMs: deliveryTimeoutMs, retryBackoffMs: retryBackoffMs, idempotent: isIdempotent,
                                   maxInFlight: effectiveMaxInFlight)
    }
}
