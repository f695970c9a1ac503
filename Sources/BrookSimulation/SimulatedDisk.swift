import BrookRaft

/// A node's disk in the simulation: what was fsynced survives a crash, what was only written
/// does not.
struct SimulatedDisk {
    private(set) var durable = PersistentState()
    private var written: PersistentState?

    var latest: PersistentState { written ?? durable }

    mutating func write(_ ready: Ready) {
        var contents = latest
        contents.write(ready)
        written = contents
    }

    mutating func install(_ snapshot: Snapshot) {
        var contents = latest
        contents.install(snapshot)
        written = contents
    }

    mutating func sync() {
        if let written { durable = written }
        written = nil
    }

    /// Power loss: everything not fsynced is gone.
    mutating func crash() { written = nil }
}

/// A min-heap of timed events, ordered by time then by insertion, so runs are deterministic.
struct EventQueue<Event> {
    private var heap: [(time: Int64, sequence: UInt64, event: Event)] = []
    private var sequence: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }

    mutating func push(_ event: Event, at time: Int64) {
        sequence += 1
        heap.append((time, sequence, event))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard precedes(child, parent) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (time: Int64, event: Event)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count && precedes(left, smallest) { smallest = left }
            if right < heap.count && precedes(right, smallest) { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return (top.time, top.event)
    }

    private func precedes(_ a: Int, _ b: Int) -> Bool {
        (heap[a].time, heap[a].sequence) < (heap[b].time, heap[b].sequence)
    }
}
