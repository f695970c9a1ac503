import ArgumentParser
import BrookClient
import BrookCore
import BrookProtocol
import BrookRecords

#if canImport(Glibc)
import Glibc
#endif

struct ProduceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce", abstract: "Console producer: one record per line of standard input (as kafka-console-producer.sh).")
    @OptionGroup var client: ClientOptions
    @Option(help: "The topic.") var topic: String
    @Option(name: .customLong("key-separator"), help: "Split each line into key and value at the first occurrence.") var keySeparator: String?
    @Option(name: .customLong("header"), help: "A header key=value added to every record (repeatable).") var headers: [String] = []
    @Option(help: "Send every record to this partition (default: by key, else round robin per batch).") var partition: Int32?
    @Option(help: "Acknowledgements: 0, 1 or all (-1).") var acks: String = "all"
    @Option(name: .customLong("batch-records"), help: "Records per request at most.") var batchRecords = 500
    @Option(help: "Compress batches: none, gzip, snappy, lz4 or zstd.") var compression: String = "none"
    @Option(name: .customLong("compression-level"), help: "The codec's level (default: the codec's own).") var compressionLevel: Int?

    func run() async throws {
        let acks: Int16 = switch self.acks { case "all", "-1": -1; case "0": 0; case "1": 1; default: throw ValidationError("--acks takes 0, 1 or all") }
        let headers = try parsePairs(self.headers, option: "--header").sorted { $0.key < $1.key }
            .map { SimpleRecord.Header(key: Array($0.key.utf8), value: Array($0.value.utf8)) }
        let codec = try parseCodec(compression)
        let connection = try await client.connect()
        let count = try await connection.partitionCounts([topic], create: true)[topic] ?? 1
        var pending: [SimpleRecord] = []
        var sent = 0
        var roundRobin: Int32 = 0
        func flush() async throws {
            guard !pending.isEmpty else { return }
            var byPartition: [Int32: [SimpleRecord]] = [:]
            for record in pending {
                let target = partition ?? record.key.map { Partitioner.partition(forKey: $0, count: count) } ?? roundRobin
                byPartition[target, default: []].append(record)
            }
            roundRobin = (roundRobin + 1) % count
            let batches = try byPartition.mapValues { records throws(CodecError) in
                try RecordBatchBuilder.build(baseOffset: .zero, records: records, compression: codec, level: compressionLevel)
            }
            _ = try await connection.produce(topic: topic, batches: batches, acks: acks)
            sent += pending.count
            pending.removeAll(keepingCapacity: true)
        }
        while let line = readLine(strippingNewline: true) {
            var key: [UInt8]? = nil
            var value = Array(line.utf8)
            let split = keySeparator.map { line.split(separator: $0, maxSplits: 1, omittingEmptySubsequences: false) } ?? []
            if split.count == 2 {
                key = Array(split[0].utf8)
                value = Array(split[1].utf8)
            }
            pending.append(SimpleRecord(key: key, value: value, headers: headers, timestamp: Timestamp(ms: wallClockMs())))
            if pending.count >= batchRecords { try await flush() }
        }
        try await flush()
        printError("brook produce: \(sent) records sent to \(topic)")
    }
}

struct ConsumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume", abstract: "Console consumer: prints records (as kafka-console-consumer.sh, without a group).")
    @OptionGroup var client: ClientOptions
    @Option(help: "The topic.") var topic: String
    @Option(help: "Only this partition (default: all).") var partition: Int32?
    @Flag(name: .customLong("from-beginning"), help: "Start at the earliest offset (default: the end).") var fromBeginning = false
    @Option(help: "Start at this offset (with --partition).") var offset: Int64?
    @Option(name: .customLong("from-time"), help: "Start at the first record at or after this time (ms since the epoch).") var fromTime: Int64?
    @Option(name: .customLong("max-messages"), help: "Stop after this many records.") var maxMessages: Int?
    @Option(name: .customLong("timeout-ms"), help: "Stop when no record came for this long.") var timeoutMs: Int64?
    @Flag(name: .customLong("print-key"), help: "Print keys.") var printKey = false
    @Flag(name: .customLong("print-headers"), help: "Print headers.") var printHeaders = false
    @Flag(name: .customLong("print-offset"), help: "Print partition and offset.") var printOffset = false
    @Option(name: .customLong("key-separator"), help: "Between key and value when printing keys.") var keySeparator = "\t"

    func run() async throws {
        let connection = try await client.connect()
        guard let count = try await connection.partitionCounts([topic])[topic] else { throw CommandFailure("no topic \(topic)") }
        let partitions = partition.map { [$0] } ?? Array(0..<count)
        var positions: [Int32: Offset]
        if let offset {
            guard partition != nil else { throw ValidationError("--offset needs --partition") }
            positions = Dictionary(uniqueKeysWithValues: partitions.map { ($0, Offset(offset)) })
        } else {
            let spec: Int64 = fromTime ?? (fromBeginning ? -2 : -1)
            positions = try await connection.listOffsets(topic: topic, partitions: partitions, timestamp: spec)
            if fromTime != nil {
                // No record that late: start at the end.
                let ends = try await connection.listOffsets(topic: topic, partitions: partitions, timestamp: -1)
                for (p, o) in positions where o.value < 0 { positions[p] = ends[p] }
            }
        }
        var printed = 0
        var lastRecordMs = wallClockMs()
        while maxMessages.map({ printed < $0 }) ?? true {
            let (records, _) = try await connection.fetch(topic: topic, offsets: positions, maxWaitMs: 500)
            for record in records {
                if let maxMessages, printed >= maxMessages { break }
                var line = ""
                if printOffset { line += "\(record.partition)\t\(record.offset)\t" }
                if printHeaders { line += record.headers.map { "\(text($0.key))=\($0.value.map(text) ?? "null")" }.joined(separator: ",") + "\t" }
                if printKey { line += (record.key.map(text) ?? "null") + keySeparator }
                line += record.value.map(text) ?? "null"
                print(line)
                printed += 1
                positions[record.partition] = record.offset + 1
            }
            if !records.isEmpty { lastRecordMs = wallClockMs() }
            if let timeoutMs, wallClockMs() - lastRecordMs >= timeoutMs { break }
        }
        printError("brook consume: \(printed) records")
    }

    func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}

func wallClockMs() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}

/// A `--compression` value as a codec, refusing one this machine lacks the library for.
func parseCodec(_ name: String) throws -> CompressionCodec {
    guard let codec = CompressionCodec(name: name) else {
        throw ValidationError("--compression takes none, gzip, snappy, lz4 or zstd (not \(name))")
    }
    guard Codecs.isAvailable(codec) else { throw ValidationError("\(CodecError.unavailable(codec))") }
    return codec
}
