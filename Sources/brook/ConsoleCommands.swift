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
    @Option(help: "Send every record to this partition (default: by the key's hash, else sticky).") var partition: Int32?
    @Option(help: "Acknowledgements: 0, 1 or all (-1).") var acks: String = "all"
    @Option(help: "Compress batches: none, gzip, snappy, lz4 or zstd.") var compression: String = "none"
    @Option(name: .customLong("compression-level"), help: "The codec's level (default: the codec's own).") var compressionLevel: Int?
    @Option(name: .customLong("producer-property"),
            help: "A producer setting under the Java client's name, key=value (repeatable): linger.ms, batch.size, enable.idempotence, ...")
    var producerProperties: [String] = []
    @Option(name: .customLong("transactional-id"),
            help: "Write in transactions under this transactional.id (fencing an older producer with the same id): read_committed consumers see the records once their transaction commits.")
    var transactionalID: String?
    @Option(name: .customLong("transaction-records"),
            help: "With a transactional id: commit after this many records (and at the end of the input).")
    var transactionRecords = 10_000

    func run() async throws {
        guard transactionRecords > 0 else { throw ValidationError("--transaction-records takes a positive count") }
        let headers = try parsePairs(self.headers, option: "--header").sorted { $0.key < $1.key }
            .map { SimpleRecord.Header(key: Array($0.key.utf8), value: Array($0.value.utf8)) }
        let codec = try parseCodec(compression)
        var properties = try client.commandSettings()
        properties["bootstrap.servers"] = client.bootstrapServer
        properties["acks"] = acks
        properties["compression.type"] = "\(codec)"
        if let compressionLevel { properties["compression.\(codec).level"] = "\(compressionLevel)" }
        properties["client.id"] = properties["client.id"] ?? "brook-produce"
        properties.merge(try parsePairs(producerProperties, option: "--producer-property")) { $1 }
        if let transactionalID { properties["transactional.id"] = transactionalID }
        let config: ProducerConfig
        do { config = try ProducerConfig(properties: properties) } catch { throw ValidationError("\(error)") }
        let producer = KafkaProducer(config) { address in try await client.connect(to: address, clientID: config.clientID) }
        let transactional = config.transactionalID != nil
        var tally = DeliveryTally()
        var sent = 0
        var committed = 0
        do {
            if transactional {
                try await producer.initTransactions()
                try await producer.beginTransaction()
            }
            while let line = readLine(strippingNewline: true) {
                var key: [UInt8]? = nil
                var value = Array(line.utf8)
                let split = keySeparator.map { line.split(separator: $0, maxSplits: 1, omittingEmptySubsequences: false) } ?? []
                if split.count == 2 {
                    key = Array(split[0].utf8)
                    value = Array(split[1].utf8)
                }
                tally.add(try await producer.send(ProducerRecord(topic: topic, partition: partition, key: key, value: value, headers: headers)))
                sent += 1
                if transactional && sent - committed >= transactionRecords {
                    try await producer.commitTransaction()
                    committed = sent
                    try await producer.beginTransaction()
                }
                if tally.pending.count >= 10_000 { tally.settle() }
            }
            if transactional { try await producer.commitTransaction() }
        } catch {
            // What the open transaction holds is aborted: read_committed consumers never see it.
            if transactional { try? await producer.abortTransaction() }
            await producer.close()
            throw CommandFailure("\(error)\(transactional ? " (\(committed) records committed before)" : "")")
        }
        await producer.close()
        tally.settle()
        precondition(tally.pending.isEmpty, "a record without a delivery report after close")
        if let firstFailure = tally.firstFailure {
            throw CommandFailure("\(tally.failed) of \(sent) records not written to \(topic): \(firstFailure)")
        }
        printError("brook produce: \(sent) records sent to \(topic)\(transactional ? " in committed transactions" : "")")
    }
}

struct ConsumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume",
        abstract: "Console consumer: prints records (as kafka-console-consumer.sh); with --group, starts at and commits the group's offsets.")
    @OptionGroup var client: ClientOptions
    @Option(help: "The topic.") var topic: String?
    @Option(help: "With --group: every topic whose whole name matches this regular expression (as kafka-console-consumer.sh --include), matched again every metadata.max.age.ms.")
    var include: String?
    @Option(help: "Only this partition (default: all).") var partition: Int32?
    @Option(help: "Join this group (KIP-848; --consumer-property group.protocol=classic for the classic protocol) and read the partitions it gives, from its committed offsets, committing what was printed; with --partition, --offset or --from-time, read those and commit to the group without joining.")
    var group: String?
    @Flag(name: .customLong("from-beginning"),
          help: "Start at the earliest offset (default: the end); with --group, where the group has no committed offset.")
    var fromBeginning = false
    @Option(help: "Start at this offset (with --partition).") var offset: Int64?
    @Option(name: .customLong("from-time"), help: "Start at the first record at or after this time (ms since the epoch).") var fromTime: Int64?
    @Option(name: .customLong("max-messages"), help: "Stop after this many records.") var maxMessages: Int?
    @Option(name: .customLong("timeout-ms"), help: "Stop when no record came for this long.") var timeoutMs: Int64?
    @Flag(name: .customLong("print-key"), help: "Print keys.") var printKey = false
    @Flag(name: .customLong("print-headers"), help: "Print headers.") var printHeaders = false
    @Flag(name: .customLong("print-offset"), help: "Print partition and offset.") var printOffset = false
    @Flag(name: .customLong("print-topic"), help: "Print the topic.") var printTopic = false
    @Option(name: .customLong("key-separator"), help: "Between key and value when printing keys.") var keySeparator = "\t"
    @Flag(name: .customLong("print-rebalances"),
          help: "With --group: print to stderr each change of the partitions the group gives this member (assigned, revoked, lost).")
    var printRebalances = false
    @Option(name: .customLong("consumer-property"),
            help: "A consumer setting under the Java client's name, key=value (repeatable): isolation.level, fetch.max.wait.ms, ...")
    var consumerProperties: [String] = []
    @Option(help: "With --group, how the printed records are committed: auto (enable.auto.commit, every auto.commit.interval.ms, and at the end), sync (after each poll's records are printed, waiting for it) or async (the same without waiting: commitAsync).")
    var commit = "auto"

    func run() async throws {
        if offset != nil && partition == nil { throw ValidationError("--offset needs --partition") }
        guard (topic == nil) != (include == nil) else { throw ValidationError("give --topic or --include") }
        if include != nil && (group == nil || partition != nil || fromTime != nil) {
            throw ValidationError("--include needs --group, and reads whole topics from the group's offsets")
        }
        var properties = try client.commandSettings()
        properties["bootstrap.servers"] = client.bootstrapServer
        properties["client.id"] = properties["client.id"] ?? "brook-consume"
        properties["auto.offset.reset"] = fromBeginning ? "earliest" : "latest"
        if let group { properties["group.id"] = group }
        guard ["auto", "sync", "async"].contains(commit) else { throw ValidationError("--commit takes auto, sync or async") }
        if commit != "auto" {
            guard group != nil else { throw ValidationError("--commit \(commit) needs --group") }
            properties["enable.auto.commit"] = "false"
        }
        properties.merge(try parsePairs(consumerProperties, option: "--consumer-property")) { $1 }
        let config: ConsumerConfig
        do { config = try ConsumerConfig(properties: properties) } catch { throw ValidationError("\(error)") }
        let consumer = KafkaConsumer(config) { address in try await client.connect(to: address, clientID: config.clientID) }
        do {
            let printed = try await consume(consumer)
            await consumer.close()
            printError("brook consume: \(printed) records")
        } catch {
            await consumer.close()
            throw CommandFailure("\(error)")
        }
    }

    func consume(_ consumer: KafkaConsumer) async throws -> Int {
        var listener: RebalanceListener?
        if printRebalances {
            func say(_ what: String) -> @Sendable ([TopicPartition]) async -> Void {
                { partitions in printError("brook consume: \(what) \(partitions.map { "\($0.topic)-\($0.partition)" }.joined(separator: ","))") }
            }
            listener = RebalanceListener(assigned: say("assigned"), revoked: say("revoked"), lost: say("lost"))
        }
        if let include {
            try await consumer.subscribe(matching: include, listener: listener)
        } else if let topic {
            let all = try await consumer.partitions(of: topic)
            if let partition, !all.contains(partition) { throw CommandFailure("\(topic) has no partition \(partition)") }
            let partitions = (partition.map { [$0] } ?? all).map { TopicPartition(topic, $0) }
            if group != nil && partition == nil && offset == nil && fromTime == nil {
                // A member of the group (KIP-848 or classic): the group gives this consumer its share.
                try await consumer.subscribe([topic], listener: listener)
            } else {
                try await consumer.assign(partitions)
            }
            if let offset {
                try await consumer.seek(partitions, to: .offset(Offset(offset)))
            } else if let fromTime {
                try await consumer.seek(partitions, to: .timestamp(fromTime))
            }
        }
        var printed = 0
        var lastRecordMs = wallClockMs()
        while maxMessages.map({ printed < $0 }) ?? true {
            let records = try await consumer.poll(timeoutMs: 500)
            let printedBefore = printed
            for (index, record) in records.enumerated() {
                if let maxMessages, printed >= maxMessages {
                    // What was not printed is read again (and not committed).
                    var first: [TopicPartition: Offset] = [:]
                    for rest in records[index...] where first[rest.topicPartition] == nil { first[rest.topicPartition] = rest.offset }
                    for (partition, offset) in first { try await consumer.seek([partition], to: .offset(offset)) }
                    break
                }
                var line = ""
                if printTopic { line += "\(record.topic)\t" }
                if printOffset { line += "\(record.partition)\t\(record.offset)\t" }
                if printHeaders { line += record.headers.map { "\(text($0.key))=\($0.value.map(text) ?? "null")" }.joined(separator: ",") + "\t" }
                if printKey { line += (record.key.map(text) ?? "null") + keySeparator }
                line += record.value.map(text) ?? "null"
                print(line)
                printed += 1
            }
            if !records.isEmpty {
                lastRecordMs = wallClockMs()
                // Lines reach a pipe as they are read, not when a buffer fills.
                fflush(nil)
            }
            if commit != "auto" && !records.isEmpty {
                // What was printed: the next offset after each partition's last printed record.
                var next: [TopicPartition: Offset] = [:]
                for record in records.prefix(printed - printedBefore) { next[record.topicPartition] = record.offset + 1 }
                if commit == "sync" {
                    try await consumer.commit(next)
                } else {
                    await consumer.commitAsync(next) { outcome in
                        if case .failure(let error) = outcome { printError("brook consume: a commit failed: \(error)") }
                    }
                }
            }
            if let timeoutMs, wallClockMs() - lastRecordMs >= timeoutMs { break }
        }
        return printed
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
