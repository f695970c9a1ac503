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
    @Option(name: .customLong("batch-size"), help: "Bytes of records per batch (as the producer's batch.size; default 16384, or the library's own with --client library).") var batchSizeOption: Int?
    @Option(name: .customLong("max-in-flight"), help: "Requests awaiting an answer at once (default 5; with --client library, a partition's batches in flight: max.in.flight.requests.per.connection, by default the library's: 5 when idempotent, else 50).") var maxInFlightOption: Int?
    @Option(help: "Compress batches: none, gzip, snappy, lz4 or zstd.") var compression = "none"
    @Option(name: .customLong("compression-level"), help: "The codec's level (default: the codec's own).") var compressionLevel: Int?
    @Option(help: "Record values: 'text' (random letters and words from a pool of 1,000, so batches compress as real data does) or 'zeros'.")
    var payload = "text"
    @Option(help: "Give records keys from this many distinct ones, in turn (for a compacted topic); 0 for none.")
    var keys = 0
    @Option(name: .customLong("client"), help: "How records are sent: 'batches' (whole batches built here and sent to the bootstrap broker, --max-in-flight at once: the broker's cost alone) or 'library' (one record at a time through BrookClient's KafkaProducer, with linger.ms and batch.size: the client library's cost too).")
    var sender = "batches"
    @Option(name: .customLong("linger-ms"), help: "With --client library: the producer's linger.ms.") var lingerMs: Int64 = 5

    func run() async throws {
        let acks: Int16 = switch self.acks { case "all", "-1": -1; case "0": 0; case "1": 1; default: throw ValidationError("--acks takes 0, 1 or all") }
        let codec = try parseCodec(compression)
        guard payload == "text" || payload == "zeros" else { throw ValidationError("--payload takes text or zeros") }
        let batchSize = batchSizeOption ?? 16_384
        guard numRecords > 0, recordSize >= 0, batchSize > 0, (maxInFlightOption ?? 1) > 0, keys >= 0 else { throw ValidationError("counts must be positive") }
        let keyBytes = (0..<min(keys, numRecords)).map { Array("key-\($0)".utf8) }
        var nextKey = 0
        guard sender == "batches" || sender == "library" else { throw ValidationError("--client takes batches or library") }
        if sender == "library" { return try await runLibrary(codec: codec, keyBytes: keyBytes) }
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
                if inFlight >= (maxInFlightOption ?? 5), let (ms, count) = try await group.next() {
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

extension PerfProduce {
    /// The load through KafkaProducer: records handed over 64 at a time, their delivery reports
    /// checked as they come; one record's latency in 1024 (send to delivery report) sampled.
    func runLibrary(codec: CompressionCodec, keyBytes: [[UInt8]]) async throws {
        var properties = try self.client.commandSettings()
        properties["bootstrap.servers"] = self.client.bootstrapServer
        properties["acks"] = acks
        if let batchSizeOption { properties["batch.size"] = "\(batchSizeOption)" }
        properties["linger.ms"] = "\(lingerMs)"
        if let maxInFlightOption { properties["max.in.flight.requests.per.connection"] = "\(maxInFlightOption)" }
        properties["compression.type"] = "\(codec)"
        if let compressionLevel { properties["compression.\(codec).level"] = "\(compressionLevel)" }
        let config: ProducerConfig
        do { config = try ProducerConfig(properties: properties) } catch { throw ValidationError("\(error)") }
        let options = self.client
        let producer = KafkaProducer(config) { address in try await options.connect(to: address) }
        let values = payload == "zeros" ? [[UInt8](repeating: 0, count: recordSize)] : perfValues(count: 1000, size: recordSize)
        // The options read once: a property wrapper's getter per record would be counted as the
        // client's cost.
        let (topic, numRecords, throughput) = (self.topic, self.numRecords, self.throughput)
        let start = now()
        let cpuBefore = cpuTimes()
        var tally = DeliveryTally()
        var samples: [Task<Double, Never>] = []
        // Records go to the producer in chunks (one call each), as an application with many
        // records at hand would give them.
        let chunk = 64
        var i = 0
        while i < numRecords {
            if throughput > 0 {
                let wait = start + Double(i) / Double(throughput) - now()
                if wait > 0 { try await Task.sleep(nanoseconds: UInt64(wait * 1e9)) }
            }
            let began = now()
            let records = (i..<min(numRecords, i + chunk)).map { n in
                ProducerRecord(topic: topic, key: keyBytes.isEmpty ? nil : keyBytes[n % keyBytes.count], value: values[n % values.count])
            }
            let deliveries = await producer.send(contentsOf: records)
            tally.add(contentsOf: deliveries)
            if i % 1024 == 0, let sampled = deliveries.first {
                samples.append(Task { _ = try? await sampled.metadata; return (now() - began) * 1000 })
            }
            i += records.count
            if tally.pending.count >= 100_000 { tally.settle() }
        }
        await producer.close()
        tally.settle()
        let seconds = now() - start
        let cpuAfter = cpuTimes()
        let cpu = cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system
        var latencies = LatencyLog()
        for sample in samples { latencies.add(await sample.value, records: 1) }
        if let firstFailure = tally.firstFailure { throw CommandFailure("\(tally.failed) of \(numRecords) records not written: \(firstFailure)") }
        let mb = Double(numRecords * recordSize) / 1_048_576
        print("\(numRecords) records sent, \(fixed(Double(numRecords) / seconds, 1)) records/sec (\(fixed(mb / seconds, 2)) MB/sec), \(fixed(latencies.average, 2)) ms avg latency, \(fixed(latencies.percentile(1), 2)) ms max latency, \(fixed(latencies.percentile(0.5), 2)) ms 50th, \(fixed(latencies.percentile(0.99), 2)) ms 99th (one record in 1024); client CPU \(fixed(cpu, 2)) s, \(fixed(cpu / Double(numRecords) * 1e6, 2)) us per record.")
    }
}

struct PerfConsume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume",
        abstract: "Read a topic from the start with BrookClient's consumer and report throughput and client CPU (as kafka-consumer-perf-test.sh, without a group).")
    @OptionGroup var client: ClientOptions
    @Option(help: "The topic.") var topic = "brook-perf"
    @Option(help: "Records to read.") var messages = 1_000_000
    @Option(name: .customLong("timeout-ms"), help: "Give up when no record came for this long.") var timeoutMs: Int64 = 10_000
    @Option(name: .customLong("consumer-property"),
            help: "A consumer setting under the Java client's name, key=value (repeatable): max.partition.fetch.bytes, fetch.max.wait.ms, ...")
    var consumerProperties: [String] = []

    func run() async throws {
        var properties = try client.commandSettings()
        properties["bootstrap.servers"] = client.bootstrapServer
        properties["client.id"] = "brook-perf-consume"
        properties["auto.offset.reset"] = "earliest"
        properties.merge(try parsePairs(consumerProperties, option: "--consumer-property")) { $1 }
        let config: ConsumerConfig
        do { config = try ConsumerConfig(properties: properties) } catch { throw ValidationError("\(error)") }
        let consumer = KafkaConsumer(config) { address in try await client.connect(to: address, clientID: config.clientID) }
        let partitions = try await consumer.partitions(of: topic).map { TopicPartition(topic, $0) }
        try await consumer.assign(partitions)
        let cpuBefore = cpuTimes()
        let start = now()
        var read = 0
        var bytes = 0
        var last = start
        // Each record's age when poll returned it (now less its timestamp), in ms: the latency
        // from the producer when the consumer keeps up (bounded: one per record read).
        var ages: [Int64] = []
        ages.reserveCapacity(min(messages, 10_000_000))
        while read < messages {
            let records = try await consumer.poll(timeoutMs: 100)
            let wallMs = SystemClock().now().ms
            for record in records {
                bytes += (record.value?.count ?? 0) + (record.key?.count ?? 0)
                if ages.count < 10_000_000 { ages.append(wallMs - record.timestamp.ms) }
            }
            read += records.count
            if !records.isEmpty { last = now() }
            if (now() - last) * 1000 >= Double(timeoutMs) { break }
        }
        let seconds = now() - start
        let cpuAfter = cpuTimes()
        let cpu = cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system
        await consumer.close()
        print("\(read) records read, \(fixed(Double(read) / seconds, 1)) records/sec, \(fixed(Double(bytes) / 1_048_576 / seconds, 2)) MB/sec, in \(fixed(seconds, 2)) s; client CPU \(fixed(cpu, 2)) s, \(fixed(cpu / Double(max(read, 1)) * 1e6, 2)) us per record.")
        if !ages.isEmpty {
            ages.sort()
            func at(_ q: Double) -> Int64 { ages[min(ages.count - 1, Int(Double(ages.count) * q))] }
            print("record age when polled (now less its timestamp): p50 \(at(0.5)) ms, p99 \(at(0.99)) ms, max \(ages.last!) ms.")
        }
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
