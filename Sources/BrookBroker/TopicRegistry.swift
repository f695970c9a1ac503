import BrookCore
import BrookProtocol
import BrookStorage
import Dispatch
import Logging
import Synchronization

/// A topic as the broker knows it: its id, partitions and config overrides.
public struct Topic: Sendable {
    public let name: String
    public let id: KafkaUUID
    /// Every partition of the topic by index: the replica this broker hosts, or nil where it
    /// holds none (in a cluster a broker hosts only the partitions the image places on it; a
    /// single node hosts all).
    public var partitions: [Partition?]
    /// Configs set on the topic (Kafka's names); the rest come from the broker's defaults.
    public var overrides: [String: String]

    /// The replicas hosted here, in partition order.
    public var hosted: [Partition] { partitions.compactMap { $0 } }
}

/// What a broker has of one partition.
public enum PartitionLookup {
    case hosted(Partition)
    /// The topic has the partition, and another broker holds it (NOT_LEADER_OR_FOLLOWER).
    case elsewhere
    /// No such topic or partition (UNKNOWN_TOPIC_OR_PARTITION).
    case unknown

    /// What a request for the partition is answered with when no replica is hosted here.
    public var absentCode: ErrorCode {
        if case .elsewhere = self { .notLeaderOrFollower } else { .unknownTopicOrPartition }
    }
}

/// Why a topic operation was refused, with the Kafka error code it answers with.
public struct TopicError: Error, Sendable, CustomStringConvertible {
    public let code: ErrorCode
    public let message: String
    public init(_ code: ErrorCode, _ message: String) { self.code = code; self.message = message }
    public var description: String { message }
}

/// The topics of this broker and their partitions. Topic metadata (names, ids, partition counts,
/// config overrides) lives in `brook-topics` in the first log directory, rewritten atomically on
/// every change; the cluster issue moves it into the Raft metadata log.
public final class TopicRegistry: Sendable {
    struct State {
        var topics: [String: Topic] = [:]
        var names: [KafkaUUID: String] = [:]
        var random = SystemRandomNumberGenerator()
        /// Partitions hosted, plus those being opened by changes in progress.
        var partitionsCounted = 0
        /// Topics being created or deleted: no other change may touch their directories meanwhile.
        var changing: Set<String> = []
    }

    let state = Mutex(State())
    let logDirs: [String]
    /// The log directories that failed, and the replicas that went with them.
    public let health = LogDirHealth()
    /// Replica moves between log dirs (AlterReplicaLogDirs), one at a time.
    public let moves = ReplicaDirMoves()
    /// The broker's topic defaults (by topic config name): its static settings, and in a
    /// cluster its dynamic ones over them (`setBrokerDefaults`).
    let defaults: Mutex<[String: String]>
    public var brokerDefaults: [String: String] { defaults.withLock { $0 } }
    let clock: any Clock
    let logger: Logger
    /// The most partitions this broker hosts (`Limits.partitionsPerBrokerMax`). No longer the
    /// open-file limit's: segments open their files and map their indexes on demand
    /// (`OnDemandPool`), so a partition holds none while it is idle.
    public let partitionsMax: Int
    /// The role a partition has when opened: a single node leads everything; in a cluster a
    /// partition follows (serving no client) until the metadata image says it leads.
    let initialRole: Partition.Role
    /// Threads that open the logs at a start (`num.recovery.threads.per.data.dir` per log dir).
    let recoveryThreads: Int
    /// In a cluster (partitions open as followers) a broker hosts only its replicas.
    var hostsReplicasOnly: Bool { if case .follower = initialRole { true } else { false } }
    static let metadataFileName = "brook-topics"

    public init(logDirs: [String], brokerDefaults: [String: String], clock: any Clock, logger: Logger,
                partitionsMax: Int = Limits.partitionsPerBrokerMax,
                initialRole: Partition.Role = .leader(LeaderEpoch(0)), recoveryThreads: Int = 2) {
        self.initialRole = initialRole
        self.recoveryThreads = max(1, recoveryThreads)
        precondition(!logDirs.isEmpty, "at least one log directory")
        precondition(partitionsMax > 0, "a broker hosts at least one partition")
        self.logDirs = logDirs
        self.defaults = Mutex(brokerDefaults)
        self.clock = clock
        self.logger = logger
        self.partitionsMax = partitionsMax
    }

    /// Partitions hosted now (with those of changes in progress).
    public var partitionCount: Int { state.withLock { $0.partitionsCounted } }

    /// Counts `n` more partitions against `partitionsMax` under the lock, or refuses.
    func admit(_ n: Int, _ s: inout State) throws(TopicError) {
        guard s.partitionsCounted + n <= partitionsMax else { throw overLimit(hosted: s.partitionsCounted, adding: n) }
        s.partitionsCounted += n
    }

    /// `admit` on its own; `uncount` gives them back.
    func count(_ n: Int) throws(TopicError) {
        try state.withLock { (s: inout State) throws(TopicError) in try admit(n, &s) }
    }

    /// Refuses `n` more partitions if they would pass the limit now (`count` is what reserves).
    func checkRoom(for n: Int) throws(TopicError) {
        let hosted = partitionCount
        if hosted + n > partitionsMax { throw overLimit(hosted: hosted, adding: n) }
    }

    func overLimit(hosted: Int, adding n: Int) -> TopicError {
        TopicError(.policyViolation, "This broker hosts \(hosted) partitions; \(n) more would pass its limit of \(partitionsMax).")
    }

    /// Gives back `n` counted partitions, and the name of a change that ends (if any).
    func uncount(_ n: Int, ending name: String? = nil) {
        state.withLock { s in
            s.partitionsCounted -= n
            precondition(s.partitionsCounted >= 0, "partitions uncounted twice")
            if let name { s.changing.remove(name) }
        }
    }

    var metadataPath: String { logDirs[0] + "/" + Self.metadataFileName }

    // MARK: lookups

    public func topic(_ name: String) -> Topic? { state.withLock { $0.topics[name] } }
    public func topic(id: KafkaUUID) -> Topic? { state.withLock { s in s.names[id].flatMap { s.topics[$0] } } }

    /// A topic's `brook.mirror.link` ("" when it is not an offset-preserving mirror topic), nil
    /// when the topic is unknown: read for every topic of every produce request.
    public func mirrorLink(of topic: String) -> String? {
        state.withLock { s in s.topics[topic].map { $0.overrides[TopicConfigs.mirrorLink] ?? "" } }
    }
    /// The topic, or UNKNOWN_TOPIC_OR_PARTITION.
    public func existing(_ name: String) throws(TopicError) -> Topic {
        guard let topic = topic(name) else { throw TopicError(.unknownTopicOrPartition, "Topic '\(name)' does not exist.") }
        return topic
    }

    public func allTopics() -> [Topic] { state.withLock { Array($0.topics.values) }.sorted { $0.name < $1.name } }

    /// The replica of `topic`-`index` hosted here, if any.
    public func partition(_ topic: String, _ index: Int32) -> Partition? {
        if case .hosted(let partition) = lookup(topic, index) { partition } else { nil }
    }

    public func lookup(_ topic: String, _ index: Int32) -> PartitionLookup {
        state.withLock { s in
            guard let t = s.topics[topic], index >= 0, Int(index) < t.partitions.count else { return .unknown }
            return t.partitions[Int(index)].map { .hosted($0) } ?? .elsewhere
        }
    }

    /// Whether the topic has partition `index` (hosted here or not).
    public func exists(_ topic: String, _ index: Int32) -> Bool {
        if case .unknown = lookup(topic, index) { false } else { true }
    }

    public func logConfig(for topic: Topic) throws(StorageError) -> LogConfig {
        try TopicConfigs.logConfig(brokerDefaults: brokerDefaults, overrides: topic.overrides)
    }

    // MARK: validation

    /// Kafka's internal topics: the group offsets and the transaction state, which clients
    /// neither write nor delete.
    public static func isInternal(_ name: String) -> Bool { name == GroupService.offsetsTopic || name == TxnService.stateTopic }

    /// Kafka's rules: 1 to 249 characters of [a-zA-Z0-9._-], not "." or "..".
    public static func validateName(_ name: String) -> TopicError? {
        if name.isEmpty { return TopicError(.invalidTopicException, "Topic name is illegal, it can't be empty") }
        if name == "." || name == ".." { return TopicError(.invalidTopicException, "Topic name cannot be \".\" or \"..\"") }
        if name.utf8.count > Limits.topicNameBytesMax {
            return TopicError(.invalidTopicException, "Topic name is illegal, it can't be longer than \(Limits.topicNameBytesMax) characters")
        }
        let legal = name.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x2E || c == 0x5F || c == 0x2D
        }
        if !legal {
            return TopicError(.invalidTopicException, "Topic name \"\(name)\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'")
        }
        return nil
    }

    public static func validateConfigs(_ configs: [String: String]) -> TopicError? {
        for (key, value) in configs.sorted(by: { $0.key < $1.key }) {
            if let problem = TopicConfigs.validate(key, value) { return TopicError(.invalidConfig, problem) }
            if value.contains("\n") { return TopicError(.invalidConfig, "Invalid value for \(key): line breaks are not allowed") }
        }
        return nil
    }

    // MARK: changes

    /// Checks that a topic could be created, without creating it (CreateTopics validate_only).
    /// `hosted` is how many of its partitions would be hosted here (all, unless given).
    public func checkCreate(name: String, partitions: Int32, configs: [String: String], hosted: Int? = nil) -> TopicError? {
        if let problem = Self.validateName(name) { return problem }
        if state.withLock({ $0.topics[name] != nil }) {
            return TopicError(.topicAlreadyExists, "Topic '\(name)' already exists.")
        }
        guard partitions >= 1, Int(partitions) <= Limits.partitionsPerTopicMax else {
            return TopicError(.invalidPartitions, "Number of partitions must be between 1 and \(Limits.partitionsPerTopicMax).")
        }
        if state.withLock({ $0.topics.count }) >= Limits.topicsMax {
            return TopicError(.policyViolation, "This broker already has \(Limits.topicsMax) topics.")
        }
        do throws(TopicError) { try checkRoom(for: hosted ?? Int(partitions)) } catch { return error }
        return Self.validateConfigs(configs)
    }

    /// Creates a topic: the name is taken first (a concurrent create of it, from CreateTopics,
    /// auto-creation or a coordinator, gets TOPIC_ALREADY_EXISTS, so no two ever open the same
    /// directories), then its partitions are opened, all or nothing.
    /// `id` is the topic id the cluster's metadata gave it; a single node draws one. `hosting`
    /// says which partitions this broker holds a replica of (all, on a single node).
    public func create(name: String, partitions: Int32, configs: [String: String], id given: KafkaUUID? = nil,
                       hosting: (Int32) -> Bool = { _ in true }) throws(TopicError) -> Topic {
        let hosted = (0..<max(0, partitions)).filter(hosting).count
        if let problem = checkCreate(name: name, partitions: partitions, configs: configs, hosted: hosted) { throw problem }
        let id = try beginCreate(name: name, partitions: hosted, id: given)
        var topic = Topic(name: name, id: id, partitions: [], overrides: configs)
        do throws(TopicError) {
            topic.partitions = try openPartitions(of: topic, range: 0..<partitions, hosting: hosting)
        } catch {
            uncount(hosted, ending: name)
            throw error
        }
        let created = topic
        state.withLock { s in
            precondition(s.topics[name] == nil && s.names[id] == nil, "topic \(name) created twice")
            s.topics[name] = created
            s.names[id] = name
            s.changing.remove(name)
        }
        try save()
        logger.info("created topic \(name) with \(partitions) partitions", metadata: ["topic_id": "\(id)"])
        return created
    }

    /// Takes the name and counts the partitions, or refuses; returns the new topic's id.
    func beginCreate(name: String, partitions: Int, id given: KafkaUUID? = nil) throws(TopicError) -> KafkaUUID {
        try state.withLock { (s: inout State) throws(TopicError) -> KafkaUUID in
            if s.topics[name] != nil || s.changing.contains(name) {
                throw TopicError(.topicAlreadyExists, "Topic '\(name)' already exists.")
            }
            if let given, s.names[given] != nil { throw TopicError(.topicAlreadyExists, "Topic id \(given) already exists.") }
            try admit(partitions, &s)
            var id = given ?? KafkaUUID.random(using: &s.random)
            while s.names[id] != nil { id = KafkaUUID.random(using: &s.random) }
            s.changing.insert(name)
            return id
        }
    }

    public func delete(name: String) throws(TopicError) -> KafkaUUID {
        guard let removed = state.withLock({ s -> Topic? in
            guard let t = s.topics.removeValue(forKey: name) else { return nil }
            s.names[t.id] = nil
            s.changing.insert(name)
            return t
        }) else { throw TopicError(.unknownTopicOrPartition, "This server does not host this topic-partition.") }
        health.state.withLock { $0.offline[name] = nil }
        // The logs go whether or not the metadata file could be written (the next start then
        // finds the topic without its directories and recreates them empty, as after a crash).
        let saved: TopicError?
        do throws(TopicError) { try save(); saved = nil } catch { saved = error }
        closeAll(removed.hosted)
        for partition in removed.hosted { removeDirectory(of: partition) }
        uncount(removed.hosted.count, ending: name)
        if let saved { throw saved }
        logger.info("deleted topic \(name)")
        return removed.id
    }

    public func addPartitions(name: String, totalCount: Int32, validateOnly: Bool,
                              hosting: (Int32) -> Bool = { _ in true }) throws(TopicError) {
        let topic = try existing(name)
        let current = Int32(topic.partitions.count)
        guard totalCount > current else {
            throw TopicError(.invalidPartitions, "Topic currently has \(current) partitions, \(totalCount) would not be an increase.")
        }
        guard Int(totalCount) <= Limits.partitionsPerTopicMax else {
            throw TopicError(.invalidPartitions, "Number of partitions must be at most \(Limits.partitionsPerTopicMax).")
        }
        let adding = (current..<totalCount).filter(hosting).count
        if validateOnly { return try checkRoom(for: adding) }
        try count(adding)
        let added: [Partition?]
        do throws(TopicError) { added = try openPartitions(of: topic, range: current..<totalCount, hosting: hosting) } catch {
            uncount(adding)
            throw error
        }
        state.withLock { s in s.topics[name]?.partitions.append(contentsOf: added) }
        try save()
    }

    /// Replaces a topic's config overrides (after validation) and applies them to its logs.
    public func setConfigs(name: String, overrides: [String: String], validateOnly: Bool) throws(TopicError) {
        var topic = try existing(name)
        if let problem = Self.validateConfigs(overrides) { throw problem }
        if validateOnly { return }
        topic.overrides = overrides
        let config: LogConfig
        do { config = try logConfig(for: topic) } catch { throw TopicError(.invalidConfig, "\(error)") }
        state.withLock { $0.topics[name]?.overrides = overrides }
        for partition in topic.hosted {
            do { try partition.withLog { log throws(StorageError) in log.update(config: config) } } catch { logger.warning("\(error)") }
        }
        try save()
    }

    /// New broker-wide topic defaults (dynamic broker configs): every hosted partition of a topic
    /// without its own value takes them at once.
    public func setBrokerDefaults(_ new: [String: String]) {
        let changed = defaults.withLock { current in
            guard current != new else { return false }
            current = new
            return true
        }
        guard changed else { return }
        for topic in allTopics() {
            let config: LogConfig
            do { config = try logConfig(for: topic) } catch {
                logger.warning("topic \(topic.name) keeps its settings: the broker's new defaults do not apply to it: \(error)")
                continue
            }
            for partition in topic.hosted {
                do { try partition.withLog { log throws(StorageError) in log.update(config: config) } } catch { logger.warning("\(error)") }
            }
        }
    }

    /// Opens this broker's replica of `name`-`index` (it joined the partition's replicas): a new
    /// one starts empty and catches up from the leader. Nothing happens where it is hosted already.
    public func host(name: String, index: Int32) throws(TopicError) {
        let topic = try existing(name)
        guard index >= 0, Int(index) < topic.partitions.count else {
            throw TopicError(.unknownTopicOrPartition, "Topic '\(name)' has no partition \(index).")
        }
        guard topic.partitions[Int(index)] == nil else { return }
        guard !health.isOffline(name, index) else {
            throw TopicError(.kafkaStorageError, "The replica of \(name)-\(index) went offline with its log directory.")
        }
        try count(1)
        let opened: Partition?
        do throws(TopicError) { opened = try openPartitions(of: topic, range: index..<(index + 1)).first ?? nil } catch {
            uncount(1)
            throw error
        }
        guard let opened else { return uncount(1) }
        let placed = state.withLock { s -> Bool in
            guard let t = s.topics[name], t.id == topic.id, t.partitions[Int(index)] == nil else { return false }
            // Its directory failed while it opened: it goes offline with the others there.
            let lost = health.state.withLock { h in
                h.offline[name]?.contains(index) == true || logDir(of: opened.logDirectory).map { h.failed.contains($0) } == true
            }
            guard !lost else { return false }
            s.topics[name]!.partitions[Int(index)] = opened
            return true
        }
        // The topic went (or the replica came) meanwhile: only the replica manager's queue hosts,
        // so this is a delete racing it; the files go with the topic.
        guard placed else {
            closeAll([opened])
            removeDirectory(of: opened)
            return uncount(1)
        }
        logger.info("hosting a replica of \(opened.name)")
    }

    /// Closes this broker's replica of `name`-`index` and deletes its files (it left the
    /// partition's replicas); returns it, or nil where none was hosted.
    @discardableResult
    public func unhost(name: String, index: Int32) -> Partition? {
        let removed = state.withLock { s -> Partition? in
            guard let t = s.topics[name], index >= 0, Int(index) < t.partitions.count, let p = t.partitions[Int(index)] else { return nil }
            s.topics[name]!.partitions[Int(index)] = nil
            return p
        }
        guard let removed else { return nil }
        closeAll([removed])
        removeDirectory(of: removed)
        uncount(1)
        logger.info("removed the replica of \(removed.name): this broker no longer holds one")
        return removed
    }

    func removeDirectory(of partition: Partition) {
        do { try FileSystem.removeTree(partition.logDirectory) } catch {
            logger.warning("could not remove \(partition.logDirectory): \(error)")
        }
    }

    /// Opens the partitions of `range` that `hosting` names (nil for the others), all or nothing.
    func openPartitions(of topic: Topic, range: Range<Int32>, durable: Bool = true,
                        hosting: (Int32) -> Bool = { _ in true }) throws(TopicError) -> [Partition?] {
        let config: LogConfig
        do { config = try logConfig(for: topic) } catch { throw TopicError(.invalidConfig, "\(error)") }
        var opened: [Partition?] = []
        var made: [String] = []  // directories this call made, removed again if it fails
        for index in range {
            guard hosting(index) else { opened.append(nil); continue }
            let directory = directory(topic: topic.name, index: index, alsoPlaced: opened.compactMap { $0?.logDirectory })
            if !FileSystem.exists(directory) { made.append(directory) }
            do {
                opened.append(try Partition.open(topic: topic.name, index: index, directory: directory, config: config, role: initialRole,
                                                 clock: clock, logger: logger, durable: durable, onIOError: { [weak self] error in
                                                     self?.ioFailed(partitionDirectory: directory, error)
                                                 }))
            } catch {
                // A dir that cannot even open a log has failed (nothing else may go there).
                if case .io = error { ioFailed(partitionDirectory: directory, error) }
                // All or nothing: what this call opened and made goes.
                closeAll(opened.compactMap { $0 })
                for path in made { try? FileSystem.removeTree(path) }
                throw TopicError(.kafkaStorageError, "cannot open \(directory): \(error)")
            }
        }
        return opened
    }

    /// Where a partition lives: its existing directory, or the healthy log dir holding fewest
    /// partitions (counting those `alsoPlaced` by the same change, not hosted yet).
    func directory(topic: String, index: Int32, alsoPlaced: [String] = []) -> String {
        let name = "\(topic)-\(index)"
        if logDirs.count == 1 { return logDirs[0] + "/" + name }
        let failed = health.failedDirectories
        let healthy = logDirs.filter { !failed.contains($0) }
        if let existing = healthy.first(where: { FileSystem.exists($0 + "/" + name) }) { return existing + "/" + name }
        let counts = state.withLock { s in
            healthy.map { dir in
                s.topics.values.reduce(0) { $0 + $1.hosted.filter { $0.logDirectory.hasPrefix(dir + "/") }.count }
                    + alsoPlaced.filter { $0.hasPrefix(dir + "/") }.count
            }
        }
        guard let chosen = counts.indices.min(by: { counts[$0] < counts[$1] }) else { return logDirs[0] + "/" + name }
        return healthy[chosen] + "/" + name
    }

    /// Closes each partition; false when one could not be closed cleanly (logged).
    @discardableResult
    func closeAll(_ partitions: [Partition]) -> Bool {
        var clean = true
        for partition in partitions {
            do { try partition.close() } catch {
                logger.warning("closing \(partition.name): \(error)")
                clean = false
            }
        }
        return clean
    }

    // MARK: persistence

    func save() throws(TopicError) {
        let text = state.withLock { s -> String in
            var lines = ["# Brook topic metadata: topic NAME ID PARTITIONS, then config NAME KEY VALUE"]
            for topic in s.topics.values.sorted(by: { $0.name < $1.name }) {
                lines.append("topic \(topic.name) \(topic.id) \(topic.partitions.count)")
                for (key, value) in topic.overrides.sorted(by: { $0.key < $1.key }) {
                    lines.append("config \(topic.name) \(key) \(value)")
                }
            }
            return lines.joined(separator: "\n") + "\n"
        }
        do { try FileSystem.writeAtomically(metadataPath, contents: text, durable: true) } catch {
            throw TopicError(.kafkaStorageError, "cannot write \(metadataPath): \(error)")
        }
    }

    /// Opens every topic recorded in the metadata file (at broker start). In a cluster only the
    /// partitions with a directory here are opened: the replica manager hosts the rest of this
    /// broker's replicas, and removes those it no longer holds, once it has the image.
    public func load() throws(TopicError) {
        for dir in logDirs {
            // A dir that cannot be used stops the start: the replicas it held are unknown, and
            // made again elsewhere they would be empty where the controller counts on their
            // data. Replace the disk (an empty dir) or take it out of log.dirs.
            do { try FileSystem.createDirectories(dir); _ = try FileSystem.list(dir) } catch {
                throw TopicError(.kafkaStorageError, "log directory \(dir) cannot be used (\(error)): replace it, or take it out of log.dirs")
            }
        }
        do { try finishInterruptedMoves() } catch { throw TopicError(.kafkaStorageError, "cannot finish an interrupted replica move: \(error)") }
        let text: String?
        do { text = try FileSystem.readFile(metadataPath) } catch { throw TopicError(.kafkaStorageError, "\(error)") }
        guard let text else { return }
        var records: [(name: String, id: KafkaUUID, count: Int32, configs: [String: String])] = []
        for (number, line) in text.split(separator: "\n").enumerated() where !line.hasPrefix("#") {
            let words = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
            if words.count == 4, words[0] == "topic", let id = KafkaUUID(words[2]), let count = Int32(words[3]) {
                records.append((words[1], id, count, [:]))
            } else if words.count == 4, words[0] == "config", let i = records.lastIndex(where: { $0.name == words[1] }) {
                records[i].configs[words[2]] = words[3]
            } else {
                throw TopicError(.kafkaStorageError, "\(metadataPath):\(number + 1): cannot read '\(line)'")
            }
        }
        // What each log dir holds, listed once (not an existence check per partition and dir).
        var present: [Set<String>] = []
        for dir in logDirs {
            do { present.append(Set(try FileSystem.list(dir))) } catch {
                throw TopicError(.kafkaStorageError, "log directory \(dir) cannot be used (\(error)): replace it, or take it out of log.dirs")
            }
        }
        for record in records {
            for index in 0..<record.count {
                let holding = logDirs.indices.filter { present[$0].contains("\(record.name)-\(index)") }.map { logDirs[$0] }
                guard holding.count <= 1 else {
                    throw TopicError(.kafkaStorageError, "\(record.name)-\(index) has a directory in each of \(holding.joined(separator: ", ")): keep one")
                }
            }
        }
        // The logs open on `recoveryThreads` threads, in slices of a topic's partitions (opening
        // is mostly file-system calls, which run side by side); each opened without an fsync:
        // the log dirs are synced once below, before serving.
        let slices = records.indices.flatMap { r in
            stride(from: Int32(0), to: records[r].count, by: 64).map { (record: r, range: $0..<min($0 + 64, records[r].count)) }
        }
        let topics = records
        let listing = present
        let opened = Mutex([[Partition?]?](repeating: nil, count: slices.count))
        let failure = Mutex<TopicError?>(nil)
        let threads = max(1, min(recoveryThreads, slices.count))
        DispatchQueue.concurrentPerform(iterations: threads) { worker in
            for i in stride(from: worker, to: slices.count, by: threads) {
                guard failure.withLock({ $0 == nil }) else { return }
                let record = topics[slices[i].record]
                let topic = Topic(name: record.name, id: record.id, partitions: [], overrides: record.configs)
                do throws(TopicError) {
                    let partitions = try openPartitions(of: topic, range: slices[i].range, durable: false) { index in
                        !hostsReplicasOnly || listing.contains { $0.contains("\(record.name)-\(index)") }
                    }
                    opened.withLock { $0[i] = partitions }
                } catch {
                    failure.withLock { $0 = $0 ?? error }
                }
            }
        }
        let slicesOpened = opened.withLock { $0 }
        if let error = failure.withLock({ $0 }) {
            closeAll(slicesOpened.flatMap { ($0 ?? []).compactMap { $0 } })
            throw error
        }
        for (r, record) in records.enumerated() {
            var topic = Topic(name: record.name, id: record.id, partitions: [], overrides: record.configs)
            topic.partitions = slices.indices.filter { slices[$0].record == r }.flatMap { slicesOpened[$0]! }
            let loaded = topic
            state.withLock { s in
                s.topics[loaded.name] = loaded
                s.names[loaded.id] = loaded.name
                // What exists is hosted even past the limit (the limit may have been lowered).
                s.partitionsCounted += loaded.hosted.count
            }
        }
        try makeLogDirsDurable()
        logger.info("opened \(records.count) topics from \(metadataPath); this broker may host \(partitionsMax) partitions, keeping at most \(OnDemandPool.files.capacity) segment files open and \(OnDemandPool.maps.capacity) indexes mapped")
    }

    /// The end of a load: each log dir made durable at once (its logs opened without fsyncs).
    /// A dir whose disk fails here fails as it would a moment later (its replicas go offline,
    /// the broker starts on the others), as Kafka's broker takes a log dir that fails while
    /// loading offline; the first dir (the broker's own files) is fatal. A broker of the fault
    /// campaign stopped at start when its second disk failed during this step.
    func makeLogDirsDurable(_ sync: (String) throws(StorageError) -> Void = FileSystem.syncFilesystem) throws(TopicError) {
        for dir in logDirs {
            do { try sync(dir) } catch {
                guard dir != logDirs[0] else { throw TopicError(.kafkaStorageError, "cannot make \(dir) durable: \(error)") }
                health.queue.sync { failDirectory(dir, cause: "\(error)") }
            }
        }
    }

    /// Threads that close the logs at a shutdown (file writes and renames, no fsync).
    static let closingThreadsPerLogDir = 4

    /// Closes every log, leaving the clean-shutdown markers; false when one did not close cleanly.
    /// Three steps over every log, each made durable by one syncfs per log dir
    /// (`PartitionLog.beginShutdownClose` says why the order keeps a crash safe): the logs
    /// closed, their checkpoints, their markers. A log whose step failed goes no further, and
    /// its next open recovers it.
    @discardableResult
    public func closeAllLogs() -> Bool {
        let topics = state.withLock { s -> [Topic] in
            defer { s.topics.removeAll(); s.names.removeAll(); s.partitionsCounted = 0 }
            return Array(s.topics.values)
        }
        let partitions = topics.flatMap(\.hosted)
        let threads = max(1, min(Self.closingThreadsPerLogDir * logDirs.count, partitions.count))
        let failed = Mutex(Set<Int>())
        let steps: [(String, @Sendable (Partition) throws(StorageError) -> Void)] = [
            ("closing", { (p: Partition) throws(StorageError) in try p.beginShutdownClose() }),
            ("checkpointing", { (p: Partition) throws(StorageError) in try p.writeShutdownCheckpoint() }),
            ("leaving the clean-shutdown marker of", { (p: Partition) throws(StorageError) in try p.leaveShutdownMarker() }),
        ]
        for (what, step) in steps {
            DispatchQueue.concurrentPerform(iterations: threads) { worker in
                for i in stride(from: worker, to: partitions.count, by: threads) where !failed.withLock({ $0.contains(i) }) {
                    do throws(StorageError) { try step(partitions[i]) } catch {
                        logger.warning("\(what) \(partitions[i].name): \(error)")
                        failed.withLock { _ = $0.insert(i) }
                    }
                }
            }
            for dir in logDirs {
                do throws(StorageError) { try FileSystem.syncFilesystem(dir) } catch {
                    // What this step wrote may not be on disk: no log goes further.
                    logger.warning("syncing \(dir) at shutdown: \(error)")
                    return false
                }
            }
        }
        return failed.withLock { $0.isEmpty }
    }
}
