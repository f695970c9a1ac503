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
        /// The number of the fetch in flight (`sent(slot:fetch:)`; 0: not numbered).
        var inFlightFetch: UInt64 = 0
        /// Fetched, not yet returned.
        var buffered: ArraySlice<ConsumedRecord> = []
        /// Where the position goes once `buffered` is returned.
        var bufferedNext: Offset?
        /// The last high watermark a fetch saw (nil: none yet).
        var highWatermark: Offset?
    }

    /// Assigned partitions in the order `drain` visits them (it starts one further each call),
    /// and each one's state at the same index (its slot). The passes of every fetch and poll
    /// walk the slots; only a call that names a partition looks it up (`slotOf`): with 1,000
    /// partitions, a lookup per partition per pass was most of a consumer's time.
    private(set) var order: [TopicPartition] = []
    private var states: [State] = []
    private var slotOf: [TopicPartition: Int] = [:]
    private var nextDrain = 0
    private var nextEpoch: UInt64 = 1
    private(set) var bufferedCount = 0

    var assigned: [TopicPartition] { order }

    func state(_ partition: TopicPartition) -> State? { slotOf[partition].map { states[$0] } }

    /// Assigns exactly `partitions`: ones kept keep their state; the rest is forgotten.
    mutating func assign(_ partitions: [TopicPartition]) {
        var seen = Set<TopicPartition>()
        let kept = partitions.filter { seen.insert($0).inserted }
        var newStates: [State] = []
        newStates.reserveCapacity(kept.count)
        var newSlots: [TopicPartition: Int] = [:]
        newSlots.reserveCapacity(kept.count)
        for partition in kept {
            if let slot = slotOf[partition] {
                newStates.append(states[slot])
            } else {
                newStates.append(State(epoch: nextEpoch))
                nextEpoch &+= 1
            }
            newSlots[partition] = newStates.count - 1
        }
        order = kept
        states = newStates
        slotOf = newSlots
        bufferedCount = states.reduce(0) { $0 + $1.buffered.count }
        nextDrain = 0
        precondition(order.count == states.count && slotOf.count == states.count, "the drain order holds each assigned partition once")
    }

    /// Reads `partition` from `offset` next (nil: finds its start again). What was fetched is
    /// dropped. False when the partition is not assigned.
    @discardableResult
    mutating func seek(_ partition: TopicPartition, to offset: Offset?, byPolicy: Bool = false) -> Bool {
        guard let slot = slotOf[partition] else { return false }
        precondition(offset.map { $0.value >= 0 } ?? true, "a position is an offset, not a sentinel")
        var state = states[slot]
        bufferedCount -= state.buffered.count
        state.buffered = []
        state.bufferedNext = nil
        state.position = offset
        state.byPolicy = offset == nil && byPolicy
        state.blocked = false
        state.epoch = nextEpoch
        nextEpoch &+= 1
        states[slot] = state
        return true
    }

    /// Sets the start of a partition found without a position, if it is still without one
    /// and no seek came since `epoch`.
    mutating func start(_ partition: TopicPartition, at offset: Offset, epoch: UInt64) {
        guard let slot = slotOf[partition], states[slot].position == nil, states[slot].epoch == epoch else { return }
        states[slot].position = offset
        states[slot].byPolicy = false
    }

    mutating func pause(_ partition: TopicPartition, _ paused: Bool) {
        guard let slot = slotOf[partition] else { return }
        states[slot].paused = paused
    }

    /// Stops `partition` until a seek (see `State.blocked`).
    mutating func block(_ partition: TopicPartition) {
        guard let slot = slotOf[partition] else { return }
        states[slot].blocked = true
    }

    /// The partitions with no position (their epochs, and whether by the reset policy), to be
    /// found; paused and blocked ones wait.
    var unstarted: [(partition: TopicPartition, epoch: UInt64, byPolicy: Bool)] {
        states.indices.compactMap { slot in
            let state = states[slot]
            guard state.position == nil, !state.paused, !state.blocked else { return nil }
            return (order[slot], state.epoch, state.byPolicy)
        }
    }

    /// The partitions a fetch may ask for now, with their positions: started, not paused,
    /// nothing in flight, nothing waiting to be returned.
    var fetchable: [(TopicPartition, Offset)] {
        fetchableSlots.map { (order[$0.slot], $0.offset) }
    }

    /// `fetchable` by slot, with each one's last high watermark (nil: none yet).
    var fetchableSlots: [(slot: Int, offset: Offset, highWatermark: Offset?)] {
        states.indices.compactMap { slot in
            let state = states[slot]
            guard let position = state.position, !state.paused, !state.blocked, state.inFlight == nil,
                  state.buffered.isEmpty, state.bufferedNext == nil else { return nil }
            return (slot, position, state.highWatermark)
        }
    }

    /// The partitions whose records wait for `poll` (not paused nor blocked, whose records wait
    /// for none), nothing in flight for them.
    var waitingForPoll: [TopicPartition] {
        guard bufferedCount > 0 else { return [] }
        return states.indices.compactMap { slot in
            let state = states[slot]
            return state.inFlight == nil && !state.paused && !state.blocked && !state.buffered.isEmpty ? order[slot] : nil
        }
    }

    /// A fetch for `partition` is sent; its epoch comes back with the answer. Not numbered:
    /// `ended(fetch:)` never frees it (the consumer numbers its fetches; tests need not).
    mutating func sent(_ partition: TopicPartition) -> UInt64 {
        guard let slot = slotOf[partition] else { preconditionFailure("a fetch for a partition not assigned") }
        return sent(slot: slot, fetch: 0)
    }

    /// A fetch (numbered `fetch`, from 1; 0: not numbered) for the partition at `slot` is sent;
    /// its epoch comes back with the answer.
    mutating func sent(slot: Int, fetch: UInt64) -> UInt64 {
        precondition(states[slot].inFlight == nil, "one fetch in flight per partition")
        states[slot].inFlight = states[slot].epoch
        states[slot].inFlightFetch = fetch
        return states[slot].epoch
    }

    /// The fetch sent at `epoch` ended without records for the partition (an error, a lost
    /// connection): it may be fetched again.
    mutating func failed(_ partition: TopicPartition, epoch: UInt64) {
        guard let slot = slotOf[partition], states[slot].inFlight == epoch else { return }
        states[slot].inFlight = nil
    }

    /// Fetch `fetch` ended: its partitions not answered for (`received` or `failed`) had
    /// nothing new and may be fetched again. One pass over the slots, no lookup: an incremental
    /// fetch session's answer names only the partitions with news.
    mutating func ended(fetch: UInt64) {
        precondition(fetch > 0, "a numbered fetch")
        for slot in states.indices where states[slot].inFlight != nil && states[slot].inFlightFetch == fetch {
            states[slot].inFlight = nil
        }
    }

    /// The fetch sent at `epoch` brought `fetched`; false when it is stale (a seek came since,
    /// or the partition is no longer assigned), and then nothing changed but the fetch ended.
    @discardableResult
    mutating func received(_ partition: TopicPartition, epoch: UInt64, _ fetched: FetchedRecords, highWatermark: Offset) -> Bool {
        guard let slot = slotOf[partition], states[slot].inFlight == epoch else { return false }
        var state = states[slot]
        state.inFlight = nil
        // The high watermark holds whatever the position: kept from a stale answer too (in an
        // incremental fetch session the broker tells it again only when it moves).
        state.highWatermark = highWatermark
        guard state.epoch == epoch, let position = state.position else {
            states[slot] = state
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
        states[slot] = state
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
            let slot = (start + step) % order.count
            guard !states[slot].buffered.isEmpty else { continue }
            var state = states[slot]
            guard !state.paused, !state.blocked, !state.buffered.isEmpty else { continue }
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
            states[slot] = state
        }
        return out
    }

    /// The positions of the started partitions (what a commit of "everything consumed" sends).
    var positions: [TopicPartition: Offset] {
        var out: [TopicPartition: Offset] = [:]
        for slot in states.indices { if let position = states[slot].position { out[order[slot]] = position } }
        return out
    }
}
