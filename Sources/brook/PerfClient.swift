import ArgumentParser
import BrookClient
import BrookCore
import BrookProtocol
import BrookRecords

/// Latencies of acknowledged requests, weighted by the records each carried.
struct LatencyLog {
    var samples: [(ms: Double, records: Int)] = []
    mutating func add(_ ms: Double, records: Int) { samples.append((ms, records)) }

    func percentile(_ p: Double) -> Double {
        let sorted = samples.sorted { $0.ms < $1.ms }
        let total = sorted.reduce(0) { $0 + $1.records }
        var seen = 0
        for sample in sorted {
            seen += sample.records
            if Double(seen) >= p * Double(total) { return sample.ms }
        }
        return sorted.last?.ms ?? 0
    }

    var average: Double {
        let total = samples.reduce(0) { $0 + $1.records }
        return total == 0 ? 0 : samples.reduce(0) { $0 + $1.ms * Double($1.records) } / Double(total)
    }
}

struct PerfProduce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce", abstract: "Produce load and report throughput and latency (as kafka-producer-perf-test.sh).")
    @OptionGroup var client: ClientOptions
    @Option(help: "The topic (created with the broker's defaults if missing).") var topic = "brook-perf"
    @Option(name: .customLong("num-records"), help: "Records to send.") var numRecords = 1_000_000
    @Option(name: .customLong("record-size"), help: "Value bytes per record.") var recordSize = 100
    @Option(help: "Records per second at most; -1 for no cap.") var throughput = -1
    @Option(help: "Acknowledgements: 0, 1 or all.") var acks = "1"
    @Option(name: .customLong("batch-size"), help: "Bytes of records per batch (as the producer's batch.size).") var batchSize = 16_384
    @Option(name: .customLong("max-in-flight"), help: "Requests awaiting an answer at once.") var maxInFlight = 5
    @Option(help: "Compress batches: none, gzip, snappy, lz4 or zstd.") var compression = "none"
    @Option(name: .customLong("compression-level"), help: "The codec's level (default: the codec's own).") var compressionLevel: Int?
    @Option(help: "Record values: 'text' (random letters and words from a pool of 1,000, so batches compress as real data does) or 'zeros'.")
    var payload = "text"
    @Option(help: "Give records keys from this many distinct ones, in turn (for a compacted topic); 0 for none.")
    var keys = 0

    func run() async throws {
        let acks: Int16 = switch self.acks { case "all", "-1": -1; case "0": 0; case "1": 1; default: throw ValidationError("--acks takes 0, 1 or all") }
        let codec = try parseCodec(compression)
        guard payload == "text" || payload == "zeros" else { throw ValidationError("--payload takes text or zeros") }
        guard numRecords > 0, recordSize >= 0, batchSize > 0, maxInFlight > 0, keys >= 0 else { throw ValidationError("counts must be positive") }
        let keyBytes = (0..<min(keys, numRecords)).map { Array("key-\($0)".utf8) }
        var nextKey = 0
        let connection = try await client.connect()
        let partitions = try await connection.partitionCounts([topic], create: true)[topic] ?? 1
        let perBatch = max(1, min(numRecords, batchSize / max(1, recordSize + 8)))
        let values = payload == "zeros" ? [[UInt8](repeating: 0, count: recordSize)] : perfValues(count: 1000, size: recordSize)
        var nextValue = 0
        let start = now()
        var latencies = LatencyLog()
        var sent = 0
        var batchNumber = 0
        var lastReport = start
        var reportSent = 0
        try await withThrowingTaskGroup(of: (Double, Int).self) { group in
            var inFlight = 0
            while sent < numRecords {
                if inFlight >= maxInFlight, let (ms, count) = try await group.next() {
                    latencies.add(ms, records: count)
                    inFlight -= 1
                }
                if throughput > 0 {
                    let due = start + Double(sent) / Double(throughput)
                    let wait = due - now()
                    if wait > 0 { try await Task.sleep(nanoseconds: UInt64(wait * 1e9)) }
                }
                let count = min(perBatch, numRecords - sent)
                let timestamp = Timestamp(ms: wallClockMs())
                let records = (0..<count).map { _ in
                    defer {
                        nextValue = (nextValue + 1) % values.count
                        if !keyBytes.isEmpty { nextKey = (nextKey + 1) % keyBytes.count }
                    }
                    return SimpleRecord(key: keyBytes.isEmpty ? nil : keyBytes[nextKey], value: values[nextValue], timestamp: timestamp)
                }
                let batch = try RecordBatchBuilder.build(baseOffset: .zero, records: records, compression: codec, level: compressionLevel)
                let partition = Int32(batchNumber % Int(partitions))
                batchNumber += 1
                sent += count
                inFlight += 1
                group.addTask {
                    let began = now()
                    _ = try await connection.produce(topic: topic, batches: [partition: batch], acks: acks)
                    return ((now() - began) * 1000, count)
                }
                if now() - lastReport >= 5 {
                    let seconds = now() - lastReport
                    printError("\(sent - reportSent) records sent, \(fixed(Double(sent - reportSent) / seconds, 1)) records/sec, \(fixed(latencies.average, 2)) ms avg latency")
                    lastReport = now()
                    reportSent = sent
                }
            }
            for try await (ms, count) in group { latencies.add(ms, records: count) }
        }
        let seconds = now() - start
        let mb = Double(numRecords * recordSize) / 1_048_576
        print("\(numRecords) records sent, \(fixed(Double(numRecords) / seconds, 1)) records/sec (\(fixed(mb / seconds, 2)) MB/sec), \(fixed(latencies.average, 2)) ms avg latency, \(fixed(latencies.percentile(1), 2)) ms max latency, \(fixed(latencies.percentile(0.5), 2)) ms 50th, \(fixed(latencies.percentile(0.95), 2)) ms 95th, \(fixed(latencies.percentile(0.99), 2)) ms 99th, \(fixed(latencies.percentile(0.999), 2)) ms 99.9th.")
    }
}

struct PerfConsume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume", abstract: "Read a topic from the start and report throughput (as kafka-consumer-perf-test.sh, without a group).")
    @OptionGroup var client: ClientOptions
    @Option(help: "The topic.") var topic = "brook-perf"
    @Option(help: "Records to read.") var messages = 1_000_000
    @Option(name: .customLong("timeout-ms"), help: "Give up when no record came for this long.") var timeoutMs: Int64 = 10_000

    func run() async throws {
        let connection = try await client.connect()
        guard let count = try await connection.partitionCounts([topic])[topic] else { throw CommandFailure("no topic \(topic)") }
        var positions = try await connection.listOffsets(topic: topic, partitions: Array(0..<count), timestamp: -2)
        let start = now()
        var read = 0
        var bytes = 0
        var last = start
        while read < messages {
            let (records, _) = try await connection.fetch(topic: topic, offsets: positions, maxWaitMs: 100, partitionMaxBytes: 4 * 1_048_576)
            for record in records {
                read += 1
                bytes += (record.value?.count ?? 0) + (record.key?.count ?? 0)
                positions[record.partition] = record.offset + 1
            }
            if !records.isEmpty { last = now() }
            if (now() - last) * 1000 >= Double(timeoutMs) { break }
        }
        let seconds = now() - start
        print("\(read) records read, \(fixed(Double(read) / seconds, 1)) records/sec, \(fixed(Double(bytes) / 1_048_576 / seconds, 2)) MB/sec, in \(fixed(seconds, 2)) s.")
        if read < messages { throw CommandFailure("only \(read) of \(messages) records arrived") }
    }
}

/// `count` record values of `size` bytes: words from a small vocabulary and random letters, so
/// a batch of them compresses about as JSON-like event data does (seeded: the same every run).
func perfValues(count: Int, size: Int) -> [[UInt8]] {
    var random = SeededRandom(seed: 42)
    let words = ["event", "user", "id", "order", "status", "created", "amount", "true", "false", "null",
                 "{", "}", ":", ",", "\"", " "].map { Array($0.utf8) }
    return (0..<count).map { _ in
        var v: [UInt8] = []
        v.reserveCapacity(size + 16)
        while v.count < size {
            if Bool.random(using: &random) {
                v += words[Int.random(in: 0..<words.count, using: &random)]
            } else {
                for _ in 0..<Int.random(in: 1...6, using: &random) { v.append(UInt8.random(in: 0x61...0x7a, using: &random)) }
            }
        }
        return Array(v.prefix(size))
    }
}
