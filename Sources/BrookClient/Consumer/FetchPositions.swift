import BrookCore

/// The consumer's pure core: for each assigned partition, where it reads next, whether it is
/// paused, the fetch in flight for it and the records fetched and not yet returned. No I/O, no
/// clock.
///
/// A partition is fetched only when nothing of it waits to be returned, so at most one fetch's
/// worth (`max.partition.fetch.bytes`) of a partition is held, and its position is where its
/// next fetch starts. A seek makes whatever was fetched for the old position stale: each fetch
/// carries the partition's epoch at its start, and an answer from an older epoch is dropped.
struct FetchPositions {
    struct State {
        /// nil: to be found (a committed offset, or `auto.offset.reset`).
        var position: Offset?
        /// Its start is found by `auto.offset.reset`, not from a committed offset.
        var byPolicy = false
        var paused = false
        /// Stopped by an error (a damaged batch, an offset out of range with no reset policy),
        /// or being given up: not fetched nor returned until a seek.
        var blocked = false
        /// Bumped by every seek and reset (from a counter of all partitions', so that a partition
        /// assigned again never takes an answer meant for its earlier self).
        var epoch: UInt64
        /// The epoch of the fetch in flight (nil: none).
        var inFlight: UInt64?
        /// Fetched, not yet returned.
        var buffered: ArraySlice<ConsumedRecord> = []
        /// Where the position goes once `buffered` is returned.
        var bufferedNext: Offset?
        /// The last high watermark a fetch saw (nil: none yet).
        var highWatermark: Offset?
    }

    private(set) var states: [TopicPartition: State] = [:]
    /// Assigned partitions in the order `drain` visits them (it starts one further each call).
    private(set) var order: [TopicPartition] = []
    private var nextDrain = 0
    private var nextEpoch: UInt64 = 1
    private(set) var bufferedCount = 0

    var assigned: [TopicPartition] { order }

    func state(_ partition: TopicPartition) -> State? { states[partition] }

    /// Assigns exactly `partitions`: ones kept keep their state; the rest is forgotten.
    mutating func assign(_ partitions: [TopicPartition]) {
        let wanted = Set(partitions)
        for (partition, state) in states where !wanted.contains(partition) {
            bufferedCount -= state.buffered.count
            states[partition] = nil
        }
        for partition in partitions where states[partition] == nil {
            states[partition] = State(epoch: nextEpoch)
            nextEpoch &+= 1
        }
        var seen = Set<TopicPartition>()
        order = partitions.filter { seen.insert($0).inserted }
        nextDrain = 0
        precondition(order.count == states.count, "the drain order holds each assigned partition once")
    }

    /// Reads `partition` from `offset` next (nil: finds its start again). What was fetched is
    /// dropped. False when the partition is not assigned.
    @discardableResult
    mutating func seek(_ partition: TopicPartition, to offset: Offset?, byPolicy: Bool = false) -> Bool {
        guard var state = states[partition] else { return false }
        precondition(offset.map { $0.value >= 0 } ?? true, "a position is an offset, not a sentinel")
        bufferedCount -= state.buffered.count
        state.buffered = []
        state.bufferedNext = nil
        state.position = offset
        state.byPolicy = offset == nil && byPolicy
        state.blocked = false
        state.epoch = nextEpoch
        nextEpoch &+= 1
        states[partition] = state
        return true
    }

    /// Sets the start of a partition found without a position, if it is still without one
    /// and no seek came since `epoch`.
    mutating func start(_ partition: TopicPartition, at offset: Offset, epoch: UInt64) {
        guard var state = states[partition], state.position == nil, state.epoch == epoch else { return }
        state.position = offset
        state.byPolicy = false
        states[partition] = state
    }

    mutating func pause(_ partition: TopicPartition, _ paused: Bool) {
        states[partition]?.paused = paused
    }

    /// Stops `partition` until a seek (see `State.blocked`).
    mutating func block(_ partition: TopicPartition) {
        states[partition]?.blocked = true
    }

    /// The partitions with no position (their epochs, and whether by the reset policy), to be
    /// found; paused and blocked ones wait.
    var unstarted: [(partition: TopicPartition, epoch: UInt64, byPolicy: Bool)] {
        order.compactMap { p in
            guard let state = states[p], state.position == nil, !state.paused, !state.blocked else { return nil }
            return (p, state.epoch, state.byPolicy)
        }
    }

    /// The partitions a fetch may ask for now, with their positions: started, not paused,
    /// nothing in flight, nothing waiting to be returned.
    var fetchable: [(TopicPartition, Offset)] {
        order.compactMap { p in
            guard let state = states[p], let position = state.position, !state.paused, !state.blocked, state.inFlight == nil,
                  state.buffered.isEmpty, state.bufferedNext == nil else { return nil }
            return (p, position)
        }
    }

    /// A fetch for `partition` is sent; its epoch comes back with the answer.
    mutating func sent(_ partition: TopicPartition) -> UInt64 {
        guard var state = states[partition] else { preconditionFailure("a fetch for a partition not assigned") }
        precondition(state.inFlight == nil, "one fetch in flight per partition")
        state.inFlight = state.epoch
        states[partition] = state
        return state.epoch
    }

    /// The fetch sent at `epoch` ended without records for the partition (an error, a lost
    /// connection): it may be fetched again.
    mutating func failed(_ partition: TopicPartition, epoch: UInt64) {
        guard var state = states[partition], state.inFlight == epoch else { return }
        state.inFlight = nil
        states[partition] = state
    }

    /// The fetch sent at `epoch` brought `fetched`; false when it is stale (a seek came since,
    /// or the partition is no longer assigned), and then nothing changed but the fetch ended.
    @discardableResult
    mutating func received(_ partition: TopicPartition, epoch: UInt64, _ fetched: FetchedRecords, highWatermark: Offset) -> Bool {
        guard var state = states[partition], state.inFlight == epoch else { return false }
        state.inFlight = nil
        // The high watermark holds whatever the position: kept from a stale answer too (in an
        // incremental fetch session the broker tells it again only when it moves).
        state.highWatermark = highWatermark
        guard state.epoch == epoch, let position = state.position else {
            states[partition] = state
            return false
        }
        precondition(state.buffered.isEmpty, "fetched while records waited")
        let records = fetched.records.drop { $0.offset < position }
        if records.isEmpty {
            state.position = max(position, fetched.nextOffset)
        } else {
            state.buffered = records
            state.bufferedNext = max(fetched.nextOffset, records.last!.offset + 1)
            bufferedCount += records.count
        }
        states[partition] = state
        return true
    }

    /// Up to `max` buffered records, a partition's in offset order, visiting the partitions
    /// round robin from one further than the last call; positions move past what is returned.
    /// Paused partitions keep theirs.
    mutating func drain(max: Int) -> [ConsumedRecord] {
        precondition(max > 0, "drain at least one record")
        guard bufferedCount > 0, !order.isEmpty else { return [] }
        var out: [ConsumedRecord] = []
        let start = nextDrain % order.count
        nextDrain = (start + 1) % order.count
        for step in 0..<order.count where out.count < max {
            let partition = order[(start + step) % order.count]
            guard var state = states[partition], !state.paused, !state.blocked, !state.buffered.isEmpty else { continue }
            let taken = state.buffered.prefix(max - out.count)
            out.append(contentsOf: taken)
            state.buffered = state.buffered.dropFirst(taken.count)
            bufferedCount -= taken.count
            if state.buffered.isEmpty {
                state.position = state.bufferedNext
                state.bufferedNext = nil
            } else {
                state.position = taken.last!.offset + 1
            }
            states[partition] = state
        }
        return out
    }

    /// The positions of the started partitions (what a commit of "everything consumed" sends).
    var positions: [TopicPartition: Offset] {
        states.compactMapValues(\.position)
    }
}
