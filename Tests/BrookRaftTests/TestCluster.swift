import BrookCore
@testable import BrookRaft

/// A hand-driven cluster for tests that read like the paper: messages go only when `deliver`
/// is called, and a test can drop or hold any of them.
struct TestCluster {
    var nodes: [NodeID: Raft] = [:]
    /// What each node fsynced (the driver contract: persist before send).
    var disks: [NodeID: PersistentState] = [:]
    var inFlight: [Message] = []
    var applied: [NodeID: [Entry]] = [:]
    /// Links that lose every message (both directions are listed separately).
    var cut: Set<[NodeID]> = []
    let founders: Configuration
    var config: RaftConfig

    init(_ count: Int, preVote: Bool = true, checkQuorum: Bool = true) {
        founders = Configuration(voters: (1...count).map { NodeID(Int32($0)) })
        config = RaftConfig()
        config.preVote = preVote
        config.checkQuorum = checkQuorum
        for id in founders.voters { start(id, bootstrap: founders) }
    }

    static func id(_ n: Int32) -> NodeID { NodeID(n) }

    mutating func start(_ id: NodeID, bootstrap: Configuration) {
        nodes[id] = Raft(id: id, config: config, restoring: disks[id] ?? PersistentState(), bootstrap: bootstrap,
                         randomSeed: UInt64(id.value) * 7919)
        if disks[id] == nil { disks[id] = PersistentState() }
        let snapshotIndex = nodes[id]!.snapshotIndex
        applied[id] = (applied[id] ?? []).filter { $0.index <= snapshotIndex }
        drain(id)
    }

    /// Crash: the node is gone; its disk keeps what was fsynced.
    mutating func crash(_ id: NodeID) {
        nodes[id] = nil
        inFlight.removeAll { $0.to == id || $0.from == id }
    }

    mutating func restart(_ id: NodeID) { start(id, bootstrap: founders) }

    mutating func drain(_ id: NodeID) {
        while nodes[id]?.hasReady == true {
            let ready = nodes[id]!.ready()
            disks[id]!.write(ready)
            if ready.snapshot != nil { applied[id] = [] }
            inFlight.append(contentsOf: ready.messages)
            applied[id, default: []].append(contentsOf: ready.committedEntries)
            nodes[id]!.advance(ready)
        }
    }

    mutating func tick(_ id: NodeID, _ times: Int = 1) {
        for _ in 0..<times {
            nodes[id]?.tick()
            drain(id)
        }
    }

    mutating func tickAll(_ times: Int = 1) {
        for _ in 0..<times { for id in nodes.keys.sorted() { tick(id) } }
    }

    /// Delivers messages (and the ones they cause) until none is left, or `limit` rounds.
    mutating func deliver(limit: Int = 1000, where keep: (Message) -> Bool = { _ in true }) {
        var rounds = 0
        while !inFlight.isEmpty && rounds < limit {
            rounds += 1
            let batch = inFlight
            inFlight = []
            for message in batch where keep(message) && !cut.contains([message.from, message.to]) {
                guard nodes[message.to] != nil else { continue }
                nodes[message.to]!.step(message)
                drain(message.to)
            }
        }
    }

    mutating func isolate(_ id: NodeID) {
        for other in founders.voters where other != id {
            cut.insert([id, other])
            cut.insert([other, id])
        }
    }

    mutating func heal() { cut = [] }

    /// Lets `id` time out and campaign, and delivers everything.
    mutating func campaign(_ id: NodeID) {
        tick(id, 2 * config.electionTicks)
        deliver()
    }

    @discardableResult
    mutating func propose(_ id: NodeID, _ text: String) throws(ProposalError) -> LogIndex {
        let index = try nodes[id]!.propose(Array(text.utf8))
        drain(id)
        return index
    }

    func leader() -> NodeID? {
        nodes.values.filter { $0.role == .leader }.max { $0.term < $1.term }?.id
    }

    func appliedData(_ id: NodeID) -> [String] {
        (applied[id] ?? []).filter { $0.kind == .data }.map { String(decoding: $0.data, as: UTF8.self) }
    }
}
