import BrookCore
import BrookRecords

/// Where a segment's last few batches lie, kept as they are appended, so that a read at the
/// tail of the log (a consumer or a follower that is caught up, the common case) finds its
/// batches without reading the file. Without it, each such read made two reads of the file
/// (the scan from the sparse index entry to the batch, then the batch's header for its end),
/// each with a scan buffer of its own. A pure value, used under the partition's lock.
struct RecentBatches {
    struct Entry: Equatable {
        var position: Int
        var prefix: RecordBatchHeader.Prefix
        var end: Int { position + prefix.totalBytes }
    }

    /// Batches remembered: enough for a reader a few appends behind, small enough to keep for
    /// every active segment (about 300 bytes each at most).
    static let capacity = 8

    /// The segment's last batches, oldest first, each starting where the one before ends; the
    /// last one ends where the segment does.
    private(set) var entries: [Entry] = []
    /// Every batch of the segment before `entries` ends below this offset, so an offset at or
    /// after it is in `entries` or past the segment's end.
    private(set) var coveredFrom = Offset(Int64.max)

    /// What the entries say of an offset.
    enum Lookup: Equatable {
        /// The first batch at or after the position asked whose last offset reaches it.
        case found(position: Int, prefix: RecordBatchHeader.Prefix)
        /// Past every batch of the segment.
        case pastEnd
        /// Not known here: read the file.
        case unknown
    }

    /// Notes a batch written at `position`, right after the segment's last one. `nextOffset` is
    /// the segment's next offset before it (what earlier batches end below).
    mutating func appended(position: Int, prefix: RecordBatchHeader.Prefix, nextOffset: Offset) {
        if let last = entries.last {
            precondition(position == last.end && prefix.baseOffset > last.prefix.lastOffset,
                         "batch at \(position) (offset \(prefix.baseOffset)) does not follow the last one")
        } else {
            coveredFrom = nextOffset
        }
        if entries.count == Self.capacity {
            coveredFrom = entries.removeFirst().prefix.lastOffset + 1
        }
        if entries.isEmpty && entries.capacity < Self.capacity { entries.reserveCapacity(Self.capacity) }
        entries.append(Entry(position: position, prefix: prefix))
    }

    /// Forgets everything (the segment was recovered, cut or sealed).
    mutating func clear() {
        entries = []
        coveredFrom = Offset(Int64.max)
    }

    /// The first batch at or after `minimum` whose last offset is at or after `offset`, as a
    /// scan of the file would find it.
    func translate(_ offset: Offset, from minimum: Int = 0) -> Lookup {
        guard let last = entries.last, offset >= coveredFrom else { return .unknown }
        guard offset <= last.prefix.lastOffset, minimum < last.end else { return .pastEnd }
        // Few entries: a walk from the newest, where tail reads land.
        var found = entries.count - 1
        while found > 0, entries[found - 1].prefix.lastOffset >= offset, entries[found - 1].position >= minimum {
            found -= 1
        }
        let entry = entries[found]
        // A minimum inside the last batch (never from the log's reads, which name batch
        // starts) is left to the scan.
        guard entry.position >= minimum else { return .unknown }
        return .found(position: entry.position, prefix: entry.prefix)
    }

    /// The end of the last whole batch that starts at or after `start` (a batch's position)
    /// and ends at or before `limit`; `start` when the first does not fit; nil when `start` is
    /// no remembered batch.
    func lastBatchEnd(from start: Int, notAfter limit: Int) -> Int? {
        guard let first = entries.first, start >= first.position else { return nil }
        guard let i = entries.firstIndex(where: { $0.position == start }) else { return nil }
        var end = start
        for entry in entries[i...] {
            guard entry.end <= limit else { break }
            end = entry.end
        }
        return end
    }
}
