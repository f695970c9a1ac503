import BrookCore

/// Where a mirror wrote each source record, kept sparsely per partition, to translate a
/// consumer group's committed source offsets into target offsets (as MirrorMaker 2's offset
/// syncs and checkpoints). Pure.
///
/// A record copied from source offset `s` to target offset `t` has the delta `t - s`. Within a
/// run the target's offsets follow on without gaps, so the delta changes only where the source
/// has a gap (transaction markers, compaction) or the target has records the source does not
/// (copies made again after a restart, other writers). Only the points where it changes are
/// kept (at most `pointsMax` per partition, the oldest dropped), and the last record copied.
struct OffsetSyncs {
    struct Point: Equatable {
        var source: Int64
        var target: Int64
        var delta: Int64 { target - source }
    }

    static let pointsMax = 10_000
    private(set) var changes: [TopicPartition: [Point]] = [:]
    private(set) var last: [TopicPartition: Point] = [:]
    /// Partitions where records that began on the target came back and were left out (loop
    /// prevention): the target holds records of its own among the copies, so a source offset
    /// does not say which of those a group read (two mirrors both ways): not translated.
    private(set) var mixed: Set<TopicPartition> = []
    static let mixedMark = "mixed"

    /// A record of `partition` that began on the target was left out.
    mutating func markMixed(_ partition: TopicPartition) {
        mixed.insert(partition)
    }

    /// The record at source offset `source` of `partition` was written at `target`. Records of a
    /// partition come in source order; one out of order (none should be) is ignored.
    mutating func record(_ partition: TopicPartition, source: Offset, target: Offset) {
        precondition(source.value >= 0 && target.value >= 0, "offsets, not sentinels")
        let point = Point(source: source.value, target: target.value)
        if let previous = last[partition] {
            guard point.source > previous.source, point.target > previous.target else { return }
            if point.delta != previous.delta { append(point, to: partition) }
        } else {
            append(point, to: partition)
        }
        last[partition] = point
    }

    /// The newest points of `partition` (where the delta changed, then the last record copied)
    /// as text, `source:target` comma-separated in source order, at most `bytesMax` long: kept
    /// in a checkpoint's commit metadata so that a restarted mirror translates from them.
    func encoded(_ partition: TopicPartition, bytesMax: Int = 2048) -> String? {
        // (Mixed: only the mark, the points serve nothing.)
        if mixed.contains(partition) { return Self.mixedMark }
        guard let last = last[partition] else { return nil }
        var points = changes[partition] ?? []
        if points.last != last { points.append(last) }
        var parts = points.map { "\($0.source):\($0.target)" }
        var bytes = parts.reduce(0) { $0 + $1.utf8.count + 1 }
        while bytes > bytesMax, parts.count > 1 {
            bytes -= parts.removeFirst().utf8.count + 1
        }
        return parts.joined(separator: ",")
    }

    /// Takes back the points `encoded` gave (text that is not theirs is left alone).
    mutating func restore(_ partition: TopicPartition, from text: String) {
        if text == Self.mixedMark {
            mixed.insert(partition)
            return
        }
        for part in text.split(separator: ",") {
            let numbers = part.split(separator: ":").compactMap { Int64($0) }
            guard numbers.count == 2, numbers[0] >= 0, numbers[1] >= 0 else { return }
            record(partition, source: Offset(numbers[0]), target: Offset(numbers[1]))
        }
    }

    private mutating func append(_ point: Point, to partition: TopicPartition) {
        changes[partition, default: []].append(point)
        if changes[partition]!.count > Self.pointsMax { changes[partition]!.removeFirst(changes[partition]!.count - Self.pointsMax) }
    }

    /// The target offset a group that committed source offset `committed` (the next record it
    /// would read) resumes at: after the target copy of the last source record before it, never
    /// past a record it has not read. nil when that record's copy is not known (before the
    /// syncs kept, or not copied yet).
    func translate(_ partition: TopicPartition, _ committed: Offset) -> Offset? {
        guard !mixed.contains(partition), let last = last[partition], let points = changes[partition], let first = points.first else { return nil }
        // Exactly at the first record copied: its copy is next.
        if committed.value == first.source { return Offset(first.target) }
        let before = committed.value - 1
        guard before >= first.source, before <= last.source else { return nil }
        // The last change at or before `before` (binary search: points are in source order).
        var low = 0
        var high = points.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if points[middle].source <= before { low = middle } else { high = middle - 1 }
        }
        var target = committed.value + points[low].delta
        // Inside a source gap: no further than the next copied record.
        if low + 1 < points.count { target = min(target, points[low + 1].target) }
        return Offset(target)
    }
}
