import BrookCore
import BrookRaft
import Synchronization

/// What a controller's quorum is doing, for the server's metrics: set by the driver on its event
/// loop after each pass, read from any thread.
public final class QuorumStats: Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var term: Int64
        /// The leader's node id, or -1 when none is known.
        public var leader: Int64
        public var isLeader: Bool
        /// Whether this controller is the active one (leads and has applied its log).
        public var active: Bool
        public var lastIndex: Int64
        public var commitIndex: Int64
        public var appliedIndex: Int64
        public var metadataOffset: Int64
    }

    let term = Atomic<Int64>(0)
    let leader = Atomic<Int64>(-1)
    let isLeader = Atomic<Bool>(false)
    let active = Atomic<Bool>(false)
    let lastIndex = Atomic<Int64>(0)
    let commitIndex = Atomic<Int64>(0)
    let appliedIndex = Atomic<Int64>(0)
    let metadataOffset = Atomic<Int64>(0)

    public init() {}

    func set(_ status: RaftStatus, metadataOffset: Int64, active: Bool) {
        term.store(status.term.value, ordering: .relaxed)
        leader.store(status.leader.map { Int64($0.value) } ?? -1, ordering: .relaxed)
        isLeader.store(status.role == .leader, ordering: .relaxed)
        self.active.store(active, ordering: .relaxed)
        lastIndex.store(status.lastIndex.value, ordering: .relaxed)
        commitIndex.store(status.commit.value, ordering: .relaxed)
        appliedIndex.store(status.applied.value, ordering: .relaxed)
        self.metadataOffset.store(metadataOffset, ordering: .relaxed)
    }

    public var now: Snapshot {
        Snapshot(term: term.load(ordering: .relaxed), leader: leader.load(ordering: .relaxed), isLeader: isLeader.load(ordering: .relaxed),
                 active: active.load(ordering: .relaxed), lastIndex: lastIndex.load(ordering: .relaxed),
                 commitIndex: commitIndex.load(ordering: .relaxed), appliedIndex: appliedIndex.load(ordering: .relaxed),
                 metadataOffset: metadataOffset.load(ordering: .relaxed))
    }
}
