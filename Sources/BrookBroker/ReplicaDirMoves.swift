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
    }
    let state = Mutex(State())
    let queue = DispatchQueue(label: "brook.replica-moves")
    /// A move copies pass after pass until one copies less than this; the last pass copies the
    /// rest with the partition's lock held.
    static let finalPassBytes: Int64 = 1 << 20
    /// At most this many passes before the last one (a log written faster than it is copied
    /// has its rest copied under the lock).
    static let passesMax = 50

    /// Records a move of `name` to `dir`; nil when that move is already under way.
    func request(_ name: String, to dir: String) -> UInt64? {
        state.withLock { s in
            if s.entries[name]?.dir == dir { return nil }
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

    /// Closes the partition for a move (as `close`), then runs `body` with the listing of its
    /// closed files, all under the partition's lock: nothing reads or writes them meanwhile,
    /// and whoever waited for the lock finds the partition closed.
    func closeForMove<T>(_ body: (DirectoryListing) -> sending T) throws(StorageError) -> sending T {
        try withLogIO { (s: inout Locked) throws(StorageError) -> sending T in
            try closeLocked(&s)
            return body(try DirectoryListing.of(s.log))
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
        let mirror: DirectoryMirror
        let dir: String
        var target: String { dir + "/" + old.name }
    }

    /// Copies this broker's replica of `name`-`index` into `dir` (one of `log.dirs`) while it
    /// serves, until the copy is nearly caught up. Nil when it is there already; throws when
    /// it cannot move (the copy removed) or `proceed` says stop.
    public func copyForMove(name: String, index: Int32, to dir: String, proceed: () -> Bool) throws(TopicError) -> PreparedMove? {
        let partition = try movable(name, index, to: dir)
        let base = partition.name
        guard partition.logDirectory != dir + "/" + base else { return nil }
        let mirror = DirectoryMirror(source: partition.logDirectory, target: dir + "/" + base + Self.futureSuffix)
        logger.info("moving the replica of \(base) from \(partition.logDirectory) to \(dir): copying")
        do throws(StorageError) {
            if FileSystem.exists(mirror.target) { try FileSystem.removeTree(mirror.target) }
            for _ in 0..<ReplicaDirMoves.passesMax {
                guard proceed() else { throw .invalidArgument("the move was cancelled") }
                let listing = try partition.directoryListing()
                if try mirror.pass(listing, final: false) < ReplicaDirMoves.finalPassBytes { break }
            }
        } catch {
            abandon(mirror, error)
            throw TopicError(.kafkaStorageError, "\(base) could not be copied to \(dir): \(error)")
        }
        return PreparedMove(old: partition, mirror: mirror, dir: dir)
    }

    func movable(_ name: String, _ index: Int32, to dir: String) throws(TopicError) -> Partition {
        guard let topic = topic(name), index >= 0, Int(index) < topic.partitions.count else {
            throw TopicError(.unknownTopicOrPartition, "Topic '\(name)' has no partition \(index).")
        }
        guard let current = topic.partitions[Int(index)] else {
            throw TopicError(.replicaNotAvailable, "This broker holds no replica of \(name)-\(index).")
        }
        guard !health.failedDirectories.contains(dir) else {
            throw TopicError(.kafkaStorageError, "Log directory \(dir) failed.")
        }
        return current
    }

    /// The copy goes; an I/O failure fails the log dir it happened in (a full disk does not).
    func abandon(_ mirror: DirectoryMirror, _ error: StorageError?) {
        if let error, case .io(_, let path, _) = error { ioFailed(partitionDirectory: path + "/", error) }
        try? FileSystem.removeTree(mirror.target)
    }

    /// Finishes a prepared move: under the old replica's lock, its log closed, the rest copied,
    /// the copy renamed into place; then the replica opened from there takes the old one's
    /// place in the registry. Returns it. When the move fails the replica is back where it was
    /// (opened again), or offline with a directory that failed; the error says which.
    public func completeMove(_ move: PreparedMove) throws(TopicError) -> Partition {
        let old = move.old
        let base = old.name
        let source = old.logDirectory
        let trash = source + Self.deleteSuffix
        enum Step { case copied, renamedOld, renamedCopy }
        var reached: Step?
        let failure: StorageError?
        do throws(StorageError) {
            failure = try old.closeForMove { listing -> StorageError? in
                do throws(StorageError) {
                    try move.mirror.pass(listing, final: true)
                    reached = .copied
                    try FileSystem.rename(source, trash)
                    reached = .renamedOld
                    try FileSystem.rename(move.mirror.target, move.target)
                    reached = .renamedCopy
                    try FileSystem.syncDirectory(move.dir)
                    if let from = logDir(of: source) { try FileSystem.syncDirectory(from) }
                    return nil
                } catch {
                    return error
                }
            }
        } catch {
            // Not closed (it went meanwhile: unhosted, deleted, its dir failed), or its close
            // failed on its own disk (told to the failure handling by withLogIO).
            abandon(move.mirror, error)
            let code: ErrorCode = if case .closed = error { .replicaNotAvailable } else { .kafkaStorageError }
            throw TopicError(code, "\(base) was not moved: \(error)")
        }
        var home = move.target
        if let failure {
            logger.error("moving \(base) to \(move.dir) failed (\(failure)); it stays in \(source)")
            switch reached {
            case nil, .copied?:
                abandon(move.mirror, failure)
                home = source
            case .renamedOld?:
                // The copy could not take its place: the old directory comes back.
                abandon(move.mirror, failure)
                do throws(StorageError) { try FileSystem.rename(trash, source) } catch {
                    ioFailed(partitionDirectory: source, error)
                }
                home = source
            case .renamedCopy?:
                // In place, only not yet durable: the copy is the replica now.
                if case .io(_, let path, _) = failure { ioFailed(partitionDirectory: path + "/", failure) }
            }
        }
        if home == move.target {
            // The copy is the replica from here on (a start would say so too): the old files go.
            try? FileSystem.removeTree(trash)
            logger.info("moved the replica of \(base) to \(move.dir) (\(move.mirror.bytesCopied) bytes copied)")
        }
        let reopened = try reopen(old, in: home)
        if let failure { throw TopicError(.kafkaStorageError, "\(base) was not moved to \(move.dir): \(failure)") }
        return reopened
    }

    /// Opens `old`'s replica again from `home` and puts it in `old`'s place; when it cannot be
    /// opened (or its directory failed meanwhile) the replica goes offline with that directory.
    func reopen(_ old: Partition, in home: String) throws(TopicError) -> Partition {
        let name = old.topic, index = old.index
        guard let topic = topic(name) else { throw TopicError(.unknownTopicOrPartition, "Topic '\(name)' went meanwhile.") }
        var opened: Partition?
        var problem: StorageError?
        do {
            let config = try logConfig(for: topic)
            opened = try Partition.open(topic: name, index: index, directory: home, config: config, role: initialRole, clock: clock,
                                        logger: logger, onIOError: { [weak self] error in self?.ioFailed(partitionDirectory: home, error) })
        } catch {
            problem = error
        }
        enum Placed { case placed, offline, gone }
        let placed = state.withLock { s -> Placed in
            health.state.withLock { h -> Placed in
                guard let t = s.topics[name], t.id == topic.id, t.partitions[Int(index)] === old else {
                    // Unhosted or deleted meanwhile (its files go), or offline with a failed dir.
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
        if let problem, case .io = problem { ioFailed(partitionDirectory: home, problem) }
        guard placed == .placed, let opened else {
            if let opened { closeAll([opened]) }
            if placed == .gone { try? FileSystem.removeTree(home) }
            throw TopicError(.kafkaStorageError, "\(old.name) could not be opened again in \(home): \(problem.map { "\($0)" } ?? "its directory failed, or the replica went meanwhile")")
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
                        logger.notice("finished the move of \(base) to \(copy) that a stop interrupted")
                    } else {
                        // No copy to finish with (its disk went): the old directory comes back.
                        try FileSystem.rename(dir + "/" + name, dir + "/" + base)
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
