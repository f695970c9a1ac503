import BrookCore
import BrookProtocol
import BrookStorage
import Dispatch
import Synchronization

/// The moves between log dirs this broker has been asked for (AlterReplicaLogDirs), by
/// partition name: the dir each goes to. A new request for a partition replaces the one before
/// (which stops at its next pass); moves run one at a time on `queue`.
public final class ReplicaDirMoves: Sendable {
    struct Entry: Sendable {
        var dir: String
        var ticket: UInt64
    }
    struct State {
        var next: UInt64 = 0
        var entries: [String: Entry] = [:]
        /// Replicas in their last step (closed until their copy takes their place).
        var swapping: Set<String> = []
        /// The broker is stopping: no move starts or goes on.
        var stopping = false
    }
    let state = Mutex(State())
    let queue = DispatchQueue(label: "brook.replica-moves")
    /// A move copies pass after pass until one copies less than this; the last pass copies the
    /// rest with the partition's lock held.
    static let finalPassBytes: Int64 = 1 << 20
    /// At most this many passes before the last one (a log written faster than it is copied
    /// has its rest copied under the lock).
    static let passesMax = 50

    /// The last step may wait for the copy to catch up at most this many times (each time one
    /// more pass outside the lock) before it copies the rest under the lock anyway.
    static let finalAttemptsMax = 10

    /// Records a move of `name` to `dir`; nil when that move is already under way (or the
    /// broker is stopping).
    func request(_ name: String, to dir: String) -> UInt64? {
        state.withLock { s in
            if s.stopping || s.entries[name]?.dir == dir { return nil }
            s.next += 1
            s.entries[name] = Entry(dir: dir, ticket: s.next)
            return s.next
        }
    }

    /// Stops the move of `name` (at its next pass), if any.
    func cancel(_ name: String) { state.withLock { _ = $0.entries.removeValue(forKey: name) } }

    func isCurrent(_ name: String, _ ticket: UInt64) -> Bool { state.withLock { $0.entries[name]?.ticket == ticket } }

    func finished(_ name: String, _ ticket: UInt64) {
        state.withLock { s in if s.entries[name]?.ticket == ticket { s.entries[name] = nil } }
    }

    /// Whether `name` is in its last step (closed until its copy takes its place).
    public func isSwapping(_ name: String) -> Bool { state.withLock { $0.swapping.contains(name) } }

    func swapping(_ name: String, _ on: Bool) {
        state.withLock { s in if on { s.swapping.insert(name) } else { s.swapping.remove(name) } }
    }

    var isStopping: Bool { state.withLock { $0.stopping } }

    /// At shutdown, before the logs close: every move stops (a copy under way is given up at
    /// its next file; a last step finishes), and none starts.
    public func stop() {
        state.withLock { s in
            s.stopping = true
            s.entries.removeAll()
        }
        queue.sync {}
    }

    /// The moves under way: partition name to the log dir it goes to.
    public var underWay: [String: String] { state.withLock { $0.entries.mapValues(\.dir) } }

    /// Runs queued moves to their end (tests).
    public func drain() { queue.sync {} }
}

extension Partition {
    /// The log directory's files now, read under the partition's lock.
    func directoryListing() throws(StorageError) -> DirectoryListing {
        try withLogIO { (s: inout Locked) throws(StorageError) -> DirectoryListing in try DirectoryListing.of(s.log) }
    }

    /// The last step of a move, under the partition's lock: unless `ready` says the copy is too
    /// far behind (then nil, nothing closed), the partition closes (as `close`) and `body` runs
    /// with the listing of its closed files, or the close's failure. Nothing reads or writes
    /// the files meanwhile, and whoever waited for the lock finds the partition closed.
    func closeForMove<T>(ready: (DirectoryListing) -> Bool,
                         _ body: (Result<DirectoryListing, StorageError>) -> sending T) throws(StorageError) -> sending T? {
        try withLogIO { (s: inout Locked) throws(StorageError) -> sending T? in
            guard ready(try DirectoryListing.of(s.log)) else { return nil }
            let closed: Result<DirectoryListing, StorageError>
            do throws(StorageError) {
                try closeLocked(&s)
                closed = .success(try DirectoryListing.of(s.log))
            } catch {
                closed = .failure(error)
            }
            return body(closed)
        }
    }
}

/// Moving a replica between this broker's log dirs, the way Kafka's future logs do it: the
/// replica serves on from its directory while a copy (`DIR/NAME.future`) catches up, pass after
/// pass (DirectoryMirror); then, under the partition's lock, the log is closed, the last bytes
/// copied and made durable, the old directory renamed `NAME.delete` and the copy renamed `NAME`
/// (a start after a crash reads that order: a `.delete` beside a `.future` means the copy was
/// whole); the replica opens again from there and takes the old one's place, and the old
/// directory goes. Clients see the replica unavailable (KAFKA_STORAGE_ERROR, retried) only
/// between the close and the swap. Any failure before the renames leaves the replica where it
/// was and removes the copy.
extension TopicRegistry {
    static let futureSuffix = ".future"
    static let deleteSuffix = ".delete"

    /// The configured log dir `path` names: as configured, or the same absolute path.
    public func configuredLogDir(_ path: String) -> String? {
        logDirs.first { $0 == path || Self.absolute($0) == Self.absolute(path) }
    }

    static func absolute(_ path: String) -> String {
        var parts: [Substring] = []
        let full = path.hasPrefix("/") ? path : FileSystem.currentDirectory() + "/" + path
        for part in full.split(separator: "/") {
            switch part {
            case ".": continue
            case "..": _ = parts.popLast()
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// A move whose copy has caught up with the serving replica, ready for `completeMove`.
    public struct PreparedMove {
        let old: Partition
        let topicID: KafkaUUID
        let mirror: DirectoryMirror
        let dir: String
        var target: String { dir + "/" + old.name }
    }

    /// Copies this broker's replica of `name`-`index` into `dir` (one of `log.dirs`) while it
    /// serves, until the copy is nearly caught up. Nil when it is there already; throws when
    /// it cannot move (the copy removed) or `proceed` says stop.
    public func copyForMove(name: String, index: Int32, to dir: String, proceed: @escaping () -> Bool) throws(TopicError) -> PreparedMove? {
        let (partition, topicID) = try movable(name, index, to: dir)
        let base = partition.name
        guard partition.logDirectory != dir + "/" + base else { return nil }
        let mirror = DirectoryMirror(source: partition.logDirectory, target: dir + "/" + base + Self.futureSuffix)
        logger.info("moving the replica of \(base) from \(partition.logDirectory) to \(dir): copying")
        let going = { proceed() && !self.moves.isStopping }
        do throws(StorageError) {
            if FileSystem.exists(mirror.target) { try FileSystem.removeTree(mirror.target) }
            for _ in 0..<ReplicaDirMoves.passesMax {
                guard going() else { throw .invalidArgument("the move was cancelled") }
                let listing = try partition.directoryListing()
                if try mirror.pass(listing, final: false, proceed: going) < ReplicaDirMoves.finalPassBytes { break }
            }
            guard going() else { throw .invalidArgument("the move was cancelled") }
        } catch {
            abandon(mirror, error)
            throw TopicError(.kafkaStorageError, "\(base) could not be copied to \(dir): \(error)")
        }
        return PreparedMove(old: partition, topicID: topicID, mirror: mirror, dir: dir)
    }

    func movable(_ name: String, _ index: Int32, to dir: String) throws(TopicError) -> (Partition, KafkaUUID) {
        guard let topic = topic(name), index >= 0, Int(index) < topic.partitions.count else {
            throw TopicError(.unknownTopicOrPartition, "Topic '\(name)' has no partition \(index).")
        }
        guard let current = topic.partitions[Int(index)] else {
            throw TopicError(health.isOffline(name, index) ? .kafkaStorageError : .replicaNotAvailable,
                             "This broker holds no replica of \(name)-\(index).")
        }
        guard !health.failedDirectories.contains(dir) else {
            throw TopicError(.kafkaStorageError, "Log directory \(dir) failed.")
        }
        return (current, topic.id)
    }

    /// The copy goes; an I/O failure fails the log dir it happened in (a full disk does not).
    func abandon(_ mirror: DirectoryMirror, _ error: StorageError?) {
        if let error { failed(error) }
        try? FileSystem.removeTree(mirror.target)
    }

    /// An I/O failure fails the log dir of the path it happened on.
    func failed(_ error: StorageError) {
        if case .io(_, let path, _) = error { ioFailed(partitionDirectory: path + "/", error) }
    }

    /// What a move's last step did: the replica it put in place (moved, or opened again where
    /// it was; nil when none: the replica went meanwhile or is offline with a failed dir), and
    /// why the move did not happen, if it did not.
    public struct MoveResult {
        public var replica: Partition?
        public var error: TopicError?
    }

    /// Finishes a prepared move: under the old replica's lock (once the copy is less than
    /// `finalPassBytes` behind), its log closed, the rest copied, the old directory renamed
    /// `.delete` and made durable, the copy renamed into place and made durable; then the
    /// replica opened from there takes the old one's place in the registry, and the old
    /// directory goes. When the move fails before the copy is in place the replica is opened
    /// again where it was.
    public func completeMove(_ move: PreparedMove) -> MoveResult {
        let old = move.old
        let base = old.name
        let source = old.logDirectory
        let trash = source + Self.deleteSuffix
        enum Step { case closed, copied, renamedOld, renamedCopy }
        moves.swapping(base, true)
        defer { moves.swapping(base, false) }
        var reached: Step?
        var closedAt: Int64?
        var failure: StorageError?
        var attempts = 0
        while true {
            attempts += 1
            let force = attempts >= ReplicaDirMoves.finalAttemptsMax
            let outcome: StorageError??
            do throws(StorageError) {
                outcome = try old.closeForMove(ready: { force || move.mirror.behind($0) < ReplicaDirMoves.finalPassBytes }) { closed in
                    do throws(StorageError) {
                        let listing = try closed.get()
                        closedAt = clock.monotonicMs()
                        reached = .closed
                        try move.mirror.pass(listing, final: true)
                        reached = .copied
                        try FileSystem.rename(source, trash)
                        reached = .renamedOld
                        // Durable before the copy takes the name: never two live directories.
                        if let from = logDir(of: source) { try FileSystem.syncDirectory(from) }
                        try FileSystem.rename(move.mirror.target, move.target)
                        reached = .renamedCopy
                        try FileSystem.syncDirectory(move.dir)
                        return nil
                    } catch {
                        return error
                    }
                }
            } catch {
                // Not closed: it went meanwhile (unhosted, deleted, its dir failed), or its
                // files could not be listed. Whoever holds its place is not this move's.
                abandon(move.mirror, error)
                return MoveResult(replica: nil, error: TopicError(.kafkaStorageError, "\(base) was not moved: \(error)"))
            }
            guard let outcome else {
                // Too far behind to copy the rest under the lock: one more pass first.
                do throws(StorageError) { try move.mirror.pass(old.directoryListing(), final: false) } catch {
                    abandon(move.mirror, error)
                    return MoveResult(replica: topics(holding: old), error: TopicError(.kafkaStorageError, "\(base) was not moved: \(error)"))
                }
                continue
            }
            failure = outcome
            break
        }
        var home = move.target
        if let failure {
            logger.error("moving \(base) to \(move.dir) failed: \(failure)")
            failed(failure)
            switch reached {
            case nil, .closed?, .copied?:
                abandon(move.mirror, nil)
                home = source
            case .renamedOld?:
                // The copy could not take its place: the old directory comes back (and the
                // copy, whole, stays if it cannot: a start finishes the move with it).
                do throws(StorageError) {
                    try FileSystem.rename(trash, source)
                    if let from = logDir(of: source) { try FileSystem.syncDirectory(from) }
                    abandon(move.mirror, nil)
                } catch {
                    failed(error)
                }
                home = source
            case .renamedCopy?:
                // In place but not known durable: the copy is the replica now; the old files
                // stay until a start has seen the rename through.
                break
            }
        }
        let reopened = reopen(old, in: home, topicID: move.topicID)
        if failure == nil {
            try? FileSystem.removeTree(trash)
            if reopened != nil {
                let closedMs = closedAt.map { clock.monotonicMs() - $0 } ?? 0
                logger.info("moved the replica of \(base) to \(move.dir) (\(move.mirror.bytesCopied) bytes copied; out of service for \(closedMs) ms)")
            }
        }
        let error = failure.map { TopicError(.kafkaStorageError, "\(base) was not moved to \(move.dir): \($0)") }
            ?? (reopened == nil ? TopicError(.kafkaStorageError, "\(base) could not be opened in \(home)") : nil)
        return MoveResult(replica: reopened, error: error)
    }

    /// `partition` if it still holds its place in the registry.
    func topics(holding partition: Partition) -> Partition? {
        self.partition(partition.topic, partition.index) === partition ? partition : nil
    }

    /// Opens `old`'s replica again from `home` and puts it in `old`'s place. When it cannot be
    /// opened (`home` is missing, or its directory failed) the replica goes offline with that
    /// directory; when the replica went meanwhile (unhosted, its topic deleted) its files go.
    func reopen(_ old: Partition, in home: String, topicID: KafkaUUID) -> Partition? {
        let name = old.topic, index = old.index
        var opened: Partition?
        var problem: StorageError?
        if FileSystem.exists(home), let topic = topic(name), topic.id == topicID {
            do {
                let config = try logConfig(for: topic)
                opened = try Partition.open(topic: name, index: index, directory: home, config: config, role: initialRole, clock: clock,
                                            logger: logger, onIOError: { [weak self] error in self?.ioFailed(partitionDirectory: home, error) })
            } catch {
                problem = error
            }
        }
        enum Placed { case placed, offline, gone }
        let placed = state.withLock { s -> Placed in
            health.state.withLock { h -> Placed in
                guard let t = s.topics[name], t.id == topicID, t.partitions[Int(index)] === old else {
                    return h.offline[name]?.contains(index) == true ? .offline : .gone
                }
                let failed = logDir(of: home).map { h.failed.contains($0) } ?? true
                guard let opened, !failed else {
                    // Offline, as the replicas of a failed dir are (the controller hears of it).
                    s.topics[name]!.partitions[Int(index)] = nil
                    h.offline[name, default: []].insert(index)
                    s.partitionsCounted -= 1
                    return .offline
                }
                s.topics[name]!.partitions[Int(index)] = opened
                return .placed
            }
        }
        if let problem { failed(problem) }
        guard placed == .placed, let opened else {
            if let opened { closeAll([opened]) }
            // Unhosted or deleted meanwhile: its files go (not at shutdown, which empties the
            // registry too: moves.stop() lets a last step finish before the logs close).
            if placed == .gone && !moves.isStopping { try? FileSystem.removeTree(home) }
            logger.warning("the replica of \(old.name) is not back after its move: \(placed == .gone ? "it went meanwhile" : "offline")")
            return nil
        }
        return opened
    }

    /// At start: a move a crash interrupted is finished (its copy was whole once the old
    /// directory had been renamed `.delete`) or given up (a `.future` alone), in every log dir.
    func finishInterruptedMoves() throws(StorageError) {
        var entries: [String: [String]] = [:]
        for dir in logDirs { entries[dir] = try FileSystem.list(dir) }
        for (dir, names) in entries {
            for name in names where name.hasSuffix(Self.deleteSuffix) {
                let base = String(name.dropLast(Self.deleteSuffix.count))
                let current = logDirs.contains { FileSystem.exists($0 + "/" + base) }
                if !current {
                    if let copy = logDirs.first(where: { FileSystem.exists($0 + "/" + base + Self.futureSuffix) }) {
                        try FileSystem.rename(copy + "/" + base + Self.futureSuffix, copy + "/" + base)
                        // Durable before the old files go.
                        try FileSystem.syncDirectory(copy)
                        logger.notice("finished the move of \(base) to \(copy) that a stop interrupted")
                    } else {
                        // No copy to finish with (its disk went): the old directory comes back.
                        try FileSystem.rename(dir + "/" + name, dir + "/" + base)
                        try FileSystem.syncDirectory(dir)
                        logger.notice("gave up the move of \(base) that a stop interrupted: its copy is gone")
                        continue
                    }
                }
                try FileSystem.removeTree(dir + "/" + name)
            }
        }
        for dir in logDirs {
            for name in try FileSystem.list(dir) where name.hasSuffix(Self.futureSuffix) {
                logger.notice("gave up the move of \(name.dropLast(Self.futureSuffix.count)) to \(dir) that a stop interrupted")
                try FileSystem.removeTree(dir + "/" + name)
            }
        }
    }
}
