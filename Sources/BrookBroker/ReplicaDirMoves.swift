import BrookCore
import BrookProtocol
import BrookStorage

/// Moving a replica between this broker's log dirs (AlterReplicaLogDirs). Kafka copies into a
/// "future" log that catches up while the replica serves on; Brook takes the replica out while
/// its closed files are copied, so a move costs the partition's availability on this broker
/// for the copy's length (clients and followers retry, as after a leadership move), and never
/// its data:
/// 1. out of the registry, its log closed (producer snapshot written);
/// 2. its files copied into `DIR/NAME.move` and made durable;
/// 3. the old directory renamed `NAME.delete`, then `NAME.move` renamed `NAME` (the order a
///    start after a crash reads: a `.delete` beside a `.move` means the copy was whole);
/// 4. opened again from the new directory and put back, the old one removed.
extension TopicRegistry {
    static let moveSuffix = ".move"
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

    /// Moves this broker's replica of `name`-`index` to `dir` (one of `log.dirs`). Returns the
    /// replica as it was and as it is now, or nil when it was already there. The caller gives
    /// the new one its role (in a cluster, the replica manager); the old one is closed.
    public func moveReplica(name: String, index: Int32, to dir: String) throws(TopicError) -> (old: Partition, new: Partition)? {
        guard let topic = topic(name), index >= 0, Int(index) < topic.partitions.count else {
            throw TopicError(.unknownTopicOrPartition, "Topic '\(name)' has no partition \(index).")
        }
        guard let current = topic.partitions[Int(index)] else {
            throw TopicError(.replicaNotAvailable, "This broker holds no replica of \(name)-\(index).")
        }
        guard !health.failedDirectories.contains(dir) else {
            throw TopicError(.kafkaStorageError, "Log directory \(dir) failed.")
        }
        let base = "\(name)-\(index)"
        let target = dir + "/" + base
        guard current.logDirectory != target else { return nil }
        let taken = state.withLock { s -> Bool in
            guard let t = s.topics[name], t.id == topic.id, t.partitions[Int(index)] === current else { return false }
            s.topics[name]!.partitions[Int(index)] = nil
            return true
        }
        guard taken else { throw TopicError(.replicaNotAvailable, "The replica of \(base) changed meanwhile; ask again.") }
        logger.info("moving the replica of \(base) from \(current.logDirectory) to \(target)")
        if case .follower = initialRole { current.becomeFollower(leader: nil, epoch: current.leaderEpoch) }
        do { try current.close() } catch {
            // A log that cannot close cleanly is not copied: its directory may be failing.
            ioFailed(partitionDirectory: current.logDirectory, error)
            throw TopicError(.kafkaStorageError, "\(base) could not be closed: \(error)")
        }
        let staging = target + Self.moveSuffix
        let copied: StorageError?
        do throws(StorageError) {
            if FileSystem.exists(staging) { try FileSystem.removeTree(staging) }
            try FileSystem.createDirectory(staging)
            for file in try FileSystem.list(current.logDirectory) {
                try FileSystem.copyFile(from: current.logDirectory + "/" + file, to: staging + "/" + file)
            }
            try FileSystem.syncDirectory(staging)
            try FileSystem.rename(current.logDirectory, current.logDirectory + Self.deleteSuffix)
            try FileSystem.rename(staging, target)
            try FileSystem.syncDirectory(dir)
            if let from = logDir(of: current.logDirectory) { try FileSystem.syncDirectory(from) }
            copied = nil
        } catch {
            copied = error
        }
        let home: String
        if let copied {
            // Back where it was (the copy goes): nothing of the replica changed.
            logger.error("moving \(base) to \(dir) failed: \(copied)")
            try? FileSystem.removeTree(staging)
            if !FileSystem.exists(current.logDirectory), FileSystem.exists(current.logDirectory + Self.deleteSuffix) {
                try? FileSystem.rename(current.logDirectory + Self.deleteSuffix, current.logDirectory)
            }
            home = current.logDirectory
        } else {
            home = target
            try? FileSystem.removeTree(current.logDirectory + Self.deleteSuffix)
        }
        let config: LogConfig
        do { config = try logConfig(for: topic) } catch { throw TopicError(.invalidConfig, "\(error)") }
        let reopened: Partition
        do {
            reopened = try Partition.open(topic: name, index: index, directory: home, config: config, role: initialRole, clock: clock,
                                          logger: logger, onIOError: { [weak self] error in self?.ioFailed(partitionDirectory: home, error) })
        } catch {
            ioFailed(partitionDirectory: home, error)
            uncount(1)
            throw TopicError(.kafkaStorageError, "\(base) could not be opened again in \(home): \(error)")
        }
        let placed = state.withLock { s -> Bool in
            guard let t = s.topics[name], t.id == topic.id, t.partitions[Int(index)] == nil else { return false }
            s.topics[name]!.partitions[Int(index)] = reopened
            return true
        }
        guard placed else {
            // The topic went meanwhile: its files go too.
            closeAll([reopened])
            removeDirectory(of: reopened)
            uncount(1)
            return nil
        }
        if let copied { throw TopicError(.kafkaStorageError, "\(base) could not be copied to \(dir): \(copied)") }
        logger.info("moved the replica of \(base) to \(target)")
        return (current, reopened)
    }

    /// At start: a move a crash interrupted is finished (its copy was whole once the old
    /// directory had been renamed `.delete`) or given up (a `.move` alone), in every log dir.
    func finishInterruptedMoves() throws(StorageError) {
        var entries: [String: [String]] = [:]
        for dir in logDirs { entries[dir] = try FileSystem.list(dir) }
        for (dir, names) in entries {
            for name in names where name.hasSuffix(Self.deleteSuffix) {
                let base = String(name.dropLast(Self.deleteSuffix.count))
                let current = logDirs.contains { FileSystem.exists($0 + "/" + base) }
                if !current, let copy = logDirs.first(where: { FileSystem.exists($0 + "/" + base + Self.moveSuffix) }) {
                    try FileSystem.rename(copy + "/" + base + Self.moveSuffix, copy + "/" + base)
                    logger.notice("finished the move of \(base) to \(copy) that a stop interrupted")
                }
                if logDirs.contains(where: { FileSystem.exists($0 + "/" + base) }) { try FileSystem.removeTree(dir + "/" + name) }
            }
        }
        for dir in logDirs {
            for name in try FileSystem.list(dir) where name.hasSuffix(Self.moveSuffix) {
                logger.notice("gave up the move of \(name.dropLast(Self.moveSuffix.count)) to \(dir) that a stop interrupted")
                try FileSystem.removeTree(dir + "/" + name)
            }
        }
    }
}
