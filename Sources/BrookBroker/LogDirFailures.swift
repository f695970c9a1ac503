import BrookCore
import BrookProtocol
import BrookStorage
import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A log directory that failed, and what went with it.
public struct LogDirFailure: Sendable {
    public var directory: String
    /// The replicas that were hosted there: offline now, until the broker restarts.
    public var replicas: [(topic: String, index: Int32, wasLeading: Bool)]
    /// The first log directory (the broker's own files, and by default the metadata log) or the
    /// last healthy one failed: the broker cannot go on and must stop, as Kafka's does. A dir
    /// that failed before is told again when a replica placed there meanwhile goes offline.
    public var fatal: Bool
}

/// Which of the broker's `log.dirs` failed, and the replicas lost with them. A directory fails
/// at the first I/O error (EIO, EROFS, a vanished directory...) of any partition log in it, as
/// Kafka's LogDirFailureChannel has it; a full disk is not a failure (the log rolls the write
/// back and goes on once there is room).
public final class LogDirHealth: Sendable {
    struct State {
        var failed: Set<String> = []
        var offline: [String: Set<Int32>] = [:]
        var listeners: [@Sendable (LogDirFailure) -> Void] = []
    }
    let state = Mutex(State())
    /// Failures are handled here, off the partition locks the I/O errors are met under.
    let queue = DispatchQueue(label: "brook.log-dir-failures")

    public init() {}

    public var failedDirectories: Set<String> { state.withLock { $0.failed } }

    /// Whether this broker's replica of `topic`-`index` went offline with its directory.
    public func isOffline(_ topic: String, _ index: Int32) -> Bool {
        state.withLock { $0.offline[topic]?.contains(index) ?? false }
    }

    /// `body` is told of every failure, once its replicas are offline (on the failure queue).
    public func onFailure(_ body: @escaping @Sendable (LogDirFailure) -> Void) {
        state.withLock { $0.listeners.append(body) }
    }

    /// Runs queued failure handling to its end (tests).
    public func drain() { queue.sync {} }
}

extension TopicRegistry {
    /// The log directory a partition directory lies in.
    func logDir(of partitionDirectory: String) -> String? {
        logDirs.first { partitionDirectory.hasPrefix($0 + "/") }
    }

    /// A partition log met an I/O error: its log directory fails (once), on the failure queue.
    /// Called from anywhere, a partition's lock held or not.
    func ioFailed(partitionDirectory: String, _ error: StorageError) {
        // A full disk is no failure (ENOSPC from a mkdir comes as an I/O error, not diskFull).
        if case .io(_, _, let errno) = error, errno == ENOSPC || errno == EDQUOT { return }
        guard let dir = logDir(of: partitionDirectory) else { return }
        health.queue.async { self.failDirectory(dir, cause: "\(error)") }
    }

    /// Takes every replica in `dir` offline: out of the registry (requests for them are
    /// answered NOT_LEADER_OR_FOLLOWER, and the replica manager does not host them again), their
    /// produces waiting for the ISR released as when leadership moves, their logs closed as
    /// far as the failed disk lets. The controller hears of them in the next heartbeat and
    /// elects other leaders. Runs on the failure queue.
    func failDirectory(_ dir: String, cause: String) {
        // Again for a dir already failed: a replica placed there meanwhile goes too.
        let (first, removed, listeners, failedCount) = state.withLock { s in
            // Removed and marked offline in one step (registry lock, then health lock, the
            // order host() takes them in too): no image applied in between can host them anew.
            health.state.withLock { h -> (Bool, [Partition], [@Sendable (LogDirFailure) -> Void], Int) in
                let first = h.failed.insert(dir).inserted
                var out: [Partition] = []
                for (name, topic) in s.topics {
                    for (i, hosted) in topic.partitions.enumerated() {
                        guard let partition = hosted, partition.logDirectory.hasPrefix(dir + "/") else { continue }
                        s.topics[name]!.partitions[i] = nil
                        h.offline[name, default: []].insert(Int32(i))
                        out.append(partition)
                    }
                }
                s.partitionsCounted -= out.count
                return (first, out.sorted { ($0.topic, $0.index) < ($1.topic, $1.index) }, h.listeners, h.failed.count)
            }
        }
        guard first || !removed.isEmpty else { return }
        if first { logger.error("log directory \(dir) failed (\(cause)): its replicas go offline") }
        var replicas: [(topic: String, index: Int32, wasLeading: Bool)] = []
        for partition in removed {
            let leading = partition.isLeader
            replicas.append((partition.topic, partition.index, leading))
            partition.becomeFollower(leader: nil, epoch: partition.leaderEpoch)
            do { try partition.close() } catch {
                logger.debug("\(partition.name): not closed cleanly on its failed directory: \(error)")
            }
        }
        logger.error("log directory \(dir) failed: \(removed.count) replicas offline: \(removed.prefix(20).map(\.name).joined(separator: ", "))\(removed.count > 20 ? ", ..." : "")")
        let failure = LogDirFailure(directory: dir, replicas: replicas, fatal: dir == logDirs[0] || failedCount >= logDirs.count)
        for listener in listeners { listener(failure) }
    }

    /// The offline replicas by topic id, for the controller (at most `limit`; nil when more
    /// are offline, which a heartbeat cannot carry).
    public func offlineReplicas(limit: Int) -> [(topicID: KafkaUUID, index: Int32)]? {
        let offline = health.state.withLock { $0.offline }
        var out: [(topicID: KafkaUUID, index: Int32)] = []
        for (name, indexes) in offline.sorted(by: { $0.key < $1.key }) {
            guard let id = topic(name)?.id else { continue }
            for index in indexes.sorted() {
                out.append((id, index))
                if out.count > limit { return nil }
            }
        }
        return out
    }
}
