import BrookCore
import BrookRecords

/// A partition log's settings, under Kafka's topic-level config names and with Kafka's defaults.
public struct LogConfig: Sendable, Equatable {
    public enum TimestampType: String, Sendable { case createTime = "CreateTime", logAppendTime = "LogAppendTime" }

    /// `segment.bytes`: roll to a new segment when the active one would exceed this.
    public var segmentBytes = 1 << 30
    /// `segment.ms`: roll when the active segment's first batch is older than this.
    public var segmentMs: Int64 = 7 * 24 * 3_600_000
    /// `segment.index.bytes`: capacity of each offset and time index (roll when either is full).
    public var segmentIndexBytes = 10 * 1024 * 1024
    /// `index.interval.bytes`: log bytes between two offset index entries.
    public var indexIntervalBytes = 4096
    /// `retention.ms`: delete segments whose newest record is older; -1 keeps forever.
    public var retentionMs: Int64 = 7 * 24 * 3_600_000
    /// `retention.bytes`: delete oldest segments while the log is larger; -1 is no limit.
    public var retentionBytes: Int64 = -1
    /// `cleanup.policy`: `delete`, `compact`, or both.
    public var cleanupDelete = true
    public var cleanupCompact = false
    /// `delete.retention.ms`: how long a tombstone outlives compaction.
    public var deleteRetentionMs: Int64 = 86_400_000
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    public var minCompactionLagMs: Int64 = 0
    /// `flush.messages`: fsync after this many records; Int64.max leaves it to the page cache.
    public var flushMessages: Int64 = .max
    /// `flush.ms`: fsync when the last flush is older than this; Int64.max leaves it to the page cache.
    public var flushMs: Int64 = .max
    /// `max.message.bytes`: the largest batch accepted.
    public var maxMessageBytes = 1_048_588
    /// `message.timestamp.type`.
    public var timestampType = TimestampType.createTime
    /// `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms` (KIP-937): how far a
    /// CreateTime batch's timestamps may lie behind / ahead of the broker's clock.
    public var timestampBeforeMaxMs: Int64 = .max
    public var timestampAfterMaxMs: Int64 = 3_600_000
    /// `compression.type`: nil (`producer`) stores batches as they came; a codec (`uncompressed`
    /// is `.none`) has every other batch recompressed with it.
    public var compression: CompressionCodec?
    /// `compression.gzip.level` (-1: zlib's default), `compression.lz4.level`, `compression.zstd.level`.
    public var gzipLevel = -1
    public var lz4Level = 9
    public var zstdLevel = 3

    public init() {}

    /// The level to recompress with for the topic's codec (nil: the codec's default).
    public var compressionLevel: Int? {
        switch compression {
        case .gzip?: gzipLevel == -1 ? nil : gzipLevel
        case .lz4?: lz4Level
        case .zstd?: zstdLevel
        default: nil
        }
    }

    /// The config names understood here, in the order they are listed.
    public static let names = [
        "segment.bytes", "segment.ms", "segment.index.bytes", "index.interval.bytes", "retention.ms",
        "retention.bytes", "cleanup.policy", "delete.retention.ms", "min.compaction.lag.ms",
        "flush.messages", "flush.ms", "max.message.bytes", "message.timestamp.type",
        "message.timestamp.before.max.ms", "message.timestamp.after.max.ms",
        "compression.type", "compression.gzip.level", "compression.lz4.level", "compression.zstd.level",
    ]

    /// The default config with `overrides` (Kafka names) applied; unknown names are refused.
    public init(_ overrides: [String: String]) throws(StorageError) {
        self.init()
        for (key, value) in overrides.sorted(by: { $0.key < $1.key }) { try set(key, value) }
    }

    public mutating func set(_ key: String, _ value: String) throws(StorageError) {
        func int(_ range: ClosedRange<Int64>) throws(StorageError) -> Int64 {
            guard let n = Int64(value.trimmingSpaces), range.contains(n) else {
                throw .invalidConfig(key: key, value: value, reason: "expected an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return n
        }
        switch key {
        case "segment.bytes": segmentBytes = Int(try int(14...Int64(Limits.segmentBytesMax)))
        case "segment.ms": segmentMs = try int(1...Int64.max)
        case "segment.index.bytes": segmentIndexBytes = Int(try int(12...Int64(Limits.indexBytesMax)))
        case "index.interval.bytes": indexIntervalBytes = Int(try int(0...Int64(Int32.max)))
        case "retention.ms": retentionMs = try int(-1...Int64.max)
        case "retention.bytes": retentionBytes = try int(-1...Int64.max)
        case "delete.retention.ms": deleteRetentionMs = try int(0...Int64.max)
        case "min.compaction.lag.ms": minCompactionLagMs = try int(0...Int64.max)
        case "flush.messages": flushMessages = try int(1...Int64.max)
        case "flush.ms": flushMs = try int(0...Int64.max)
        case "max.message.bytes": maxMessageBytes = Int(try int(0...Int64(Limits.batchBytesMax)))
        case "compression.type":
            switch value {
            case "producer": compression = nil
            case "uncompressed": compression = CompressionCodec.none
            case "gzip": compression = .gzip
            case "snappy": compression = .snappy
            case "lz4": compression = .lz4
            case "zstd": compression = .zstd
            default: throw .invalidConfig(key: key, value: value, reason: "expected uncompressed, gzip, snappy, lz4, zstd or producer")
            }
        // Kafka's ranges (KIP-390).
        case "compression.gzip.level":
            let n = try int(-1...9)
            guard n != 0 else { throw .invalidConfig(key: key, value: value, reason: "expected -1 or 1...9") }
            gzipLevel = Int(n)
        case "compression.lz4.level": lz4Level = Int(try int(1...17))
        case "compression.zstd.level": zstdLevel = Int(try int(-131_072...22))
        case "message.timestamp.before.max.ms": timestampBeforeMaxMs = try int(0...Int64.max)
        case "message.timestamp.after.max.ms": timestampAfterMaxMs = try int(0...Int64.max)
        case "message.timestamp.type":
            guard let type = TimestampType(rawValue: value) else {
                throw .invalidConfig(key: key, value: value, reason: "expected CreateTime or LogAppendTime")
            }
            timestampType = type
        case "cleanup.policy":
            let policies = Set(value.split(separator: ",").map { $0.trimmingSpaces })
            guard !policies.isEmpty, policies.isSubset(of: ["delete", "compact"]) else {
                throw .invalidConfig(key: key, value: value, reason: "expected delete, compact or compact,delete")
            }
            cleanupDelete = policies.contains("delete")
            cleanupCompact = policies.contains("compact")
        default:
            throw .invalidConfig(key: key, value: value, reason: "unknown config name")
        }
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
