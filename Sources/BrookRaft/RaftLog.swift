/// The node's view of the log: the last snapshot, then the entries after it. Everything here is
/// in memory; the driver keeps the durable copy in step through `Ready`.
struct RaftLog {
    private(set) var snapshot: Snapshot
    /// `entries[i]` has index `snapshot.index + 1 + i`.
    private(set) var entries: [Entry]
    /// The lowest index changed since the driver last persisted the log (nil: nothing to persist).
    private(set) var unstableFrom: LogIndex?

    init(snapshot: Snapshot, entries: [Entry]) {
        for (i, entry) in entries.enumerated() {
            precondition(entry.index == snapshot.index + Int64(i + 1), "log entries are contiguous after the snapshot")
            precondition(i == 0 ? entry.term >= snapshot.term : entry.term >= entries[i - 1].term, "terms never decrease along the log")
        }
        self.snapshot = snapshot
        self.entries = entries
    }

    var firstIndex: LogIndex { snapshot.index + 1 }
    var lastIndex: LogIndex { snapshot.index + Int64(entries.count) }
    var lastTerm: Term { entries.last?.term ?? snapshot.term }

    /// The term of the entry at `index`, or nil when it was compacted away or is past the end.
    func term(at index: LogIndex) -> Term? {
        if index == snapshot.index { return snapshot.term }
        guard index > snapshot.index, index <= lastIndex else { return nil }
        return entries[Int(index.value - firstIndex.value)].term
    }

    func entry(at index: LogIndex) -> Entry {
        precondition(index >= firstIndex && index <= lastIndex, "entry \(index) is outside the log [\(firstIndex), \(lastIndex)]")
        return entries[Int(index.value - firstIndex.value)]
    }

    /// Entries from `start` through `end`, at most `countMax` of them and `bytesMax` in all
    /// (always at least one when any is asked for).
    func slice(from start: LogIndex, through end: LogIndex, countMax: Int = .max, bytesMax: Int = .max) -> [Entry] {
        guard start <= end else { return [] }
        precondition(start >= firstIndex && end <= lastIndex, "slice [\(start), \(end)] is outside the log")
        var out: [Entry] = []
        var bytes = 0
        var index = start
        while index <= end && out.count < countMax {
            let entry = entries[Int(index.value - firstIndex.value)]
            if !out.isEmpty && bytes + entry.sizeBytes > bytesMax { break }
            bytes += entry.sizeBytes
            out.append(entry)
            index = index + 1
        }
        return out
    }

    /// Raft's "at least as up to date" comparison (§5.4.1).
    func isUpToDate(lastIndex otherIndex: LogIndex, lastTerm otherTerm: Term) -> Bool {
        otherTerm > lastTerm || (otherTerm == lastTerm && otherIndex >= lastIndex)
    }

    func matches(index: LogIndex, term: Term) -> Bool { self.term(at: index) == term }

    mutating func append(_ entry: Entry) {
        precondition(entry.index == lastIndex + 1, "append at \(entry.index) but the log ends at \(lastIndex)")
        precondition(entry.term >= lastTerm, "an appended entry never has an older term than the last")
        entries.append(entry)
        markUnstable(from: entry.index)
    }

    /// Removes the entries from `index` on (a follower's divergent tail).
    mutating func truncate(from index: LogIndex) {
        precondition(index > snapshot.index && index <= lastIndex, "truncate at \(index) outside (\(snapshot.index), \(lastIndex)]")
        entries.removeLast(Int(lastIndex.value - index.value + 1))
        markUnstable(from: index)
    }

    private mutating func markUnstable(from index: LogIndex) {
        unstableFrom = min(unstableFrom ?? index, index)
    }

    /// The entries the driver must write, replacing whatever it holds from the first one on.
    var unstableEntries: [Entry] {
        guard let from = unstableFrom, from <= lastIndex else { return [] }
        return Array(entries[Int(from.value - firstIndex.value)...])
    }

    /// The driver persisted everything up to now.
    mutating func stabilized() { unstableFrom = nil }

    /// Drops the entries up to `newSnapshot.index`, which must be in the log.
    mutating func compact(to newSnapshot: Snapshot) {
        precondition(newSnapshot.index > snapshot.index && newSnapshot.index <= lastIndex, "compaction point outside the log")
        precondition(term(at: newSnapshot.index) == newSnapshot.term, "a snapshot's term is its last entry's")
        entries.removeFirst(Int(newSnapshot.index.value - snapshot.index.value))
        snapshot = newSnapshot
    }

    /// Replaces the whole log with a snapshot received from the leader.
    mutating func restore(_ newSnapshot: Snapshot) {
        snapshot = newSnapshot
        entries = []
        unstableFrom = nil
    }

    /// The voter set in force at `index`: the latest configuration entry at or before it, or the
    /// snapshot's.
    func configuration(at index: LogIndex) -> Configuration {
        var i = min(index, lastIndex)
        while i > snapshot.index {
            let entry = entries[Int(i.value - firstIndex.value)]
            if entry.kind == .configuration, let configuration = Configuration(encoded: entry.data) { return configuration }
            i = i - 1
        }
        return snapshot.configuration
    }

    /// The index of the latest configuration entry after the snapshot, if any.
    var lastConfigurationIndex: LogIndex? {
        entries.last { $0.kind == .configuration }?.index
    }
}
