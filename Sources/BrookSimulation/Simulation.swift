import BrookCore
import BrookRaft

/// A whole quorum on one thread: nodes, disks, a network and a clock, all driven from one seed.
/// Faults are injected for `faultsMs`, then stop; the checks run after every step.
public final class Simulation {
    public static let tickMs: Int64 = 10

    enum Event {
        case tick(Int)
        case deliver(Message)
        case crash
        case restart(Int)
        case propose
        case partition
        case heal
        case membershipChange
        case transfer
        case endFaults
    }

    struct Node {
        let id: NodeID
        let bootstrap: Configuration
        let skewPercent: Int64
        var raft: Raft?
        var disk = SimulatedDisk()
        /// The state machine: a digest chained over every applied entry.
        var digest: UInt64 = 0
        var restarts: UInt64 = 0
        var isUp: Bool { raft != nil }
    }

    let seed: UInt64
    let options: SimulationOptions
    var random: SeededRandom
    let faults: FaultProfile
    var nodes: [Node] = []
    var queue = EventQueue<Event>()
    var now: Int64 = 0
    var faultsActive = true
    var faultsEndedAt: Int64?
    /// Node index -> partition side; messages between sides are lost.
    var side: [Int] = []
    var checker = Checker()
    var report: SimulationReport
    var proposalCounter: UInt64 = 0
    /// Entries leaders accepted after faults stopped; one of them committing proves liveness.
    var proposedAfterFaults: [LogIndex: Term] = [:]

    /// A run that needs more steps than this has a livelock; it fails.
    static let stepsMax = 20_000_000

    public init(seed: UInt64, options: SimulationOptions = SimulationOptions()) {
        self.seed = seed
        self.options = options
        var random = SeededRandom(seed: seed)
        faults = FaultProfile(&random)
        let drawn = random.next() % 2 == 0 ? 3 : 5
        let voters = options.voterCount ?? drawn
        precondition(voters == 3 || voters == 5, "the simulation runs 3 or 5 voters")
        report = SimulationReport(seed: seed, voters: voters)
        let founders = Configuration(voters: (1...voters).map { NodeID(Int32($0)) })
        // One spare node beyond the founders joins and leaves when membership changes are on.
        let total = voters + (faults.membershipChanges ? 1 : 0)
        var nodeList: [Node] = []
        for i in 0..<total {
            let id = NodeID(Int32(i + 1))
            let skew = Int64(random.next() % 61) - 30
            nodeList.append(Node(id: id, bootstrap: founders.contains(id) ? founders : .empty, skewPercent: skew))
        }
        nodes = nodeList
        side = Array(repeating: 0, count: total)
        self.random = random
    }

    /// Runs the seed to the end; the first violated check stops it.
    public static func run(seed: UInt64, options: SimulationOptions = SimulationOptions()) -> Result<SimulationReport, SimulationFailure> {
        Simulation(seed: seed, options: options).run()
    }

    public func run() -> Result<SimulationReport, SimulationFailure> {
        for i in nodes.indices { start(i) }
        queue.push(.propose, at: faults.proposeEveryMs)
        queue.push(.partition, at: faults.partitionEveryMs)
        queue.push(.crash, at: faults.crashEveryMs)
        queue.push(.transfer, at: 1000 + Int64(random.next() % 3000))
        if faults.membershipChanges { queue.push(.membershipChange, at: 1000 + Int64(random.next() % 2000)) }
        queue.push(.endFaults, at: options.faultsMs)
        do {
            while let (time, event) = queue.pop() {
                now = time
                report.steps += 1
                guard report.steps < Self.stepsMax else { throw fail("step limit reached: livelock") }
                if options.trace { print("t=\(now) \(describe(event))") }
                try handle(event)
                try checkLeaders()
                if let endedAt = faultsEndedAt {
                    if report.recoveryMs > 0 { break }
                    if now - endedAt > options.livenessMs {
                        throw fail("no new entry committed within \(options.livenessMs) ms after faults stopped "
                                   + "(leaders: \(nodes.compactMap { $0.raft?.status }.filter { $0.role == .leader }.map { "\($0.id)@\($0.term)" }))")
                    }
                }
            }
            try checkLogMatching()
        } catch let failure as SimulationFailure {
            return .failure(failure)
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
        report.timeMs = now
        report.committed = checker.highestCommitted
        report.highestTerm = nodes.compactMap { $0.raft?.term }.max() ?? .zero
        return .success(report)
    }

    func fail(_ message: String) -> SimulationFailure {
        SimulationFailure(seed: seed, timeMs: now, step: report.steps, message: message)
    }

    func fail(_ violation: Violation) -> SimulationFailure { fail(violation.message) }

    func percent(_ p: UInt64) -> Bool { random.next() % 100 < p }
    func randomMs(_ upTo: Int64) -> Int64 { Int64(random.next() % UInt64(max(1, upTo))) }

    // MARK: nodes

    func start(_ i: Int) {
        let persisted = nodes[i].disk.durable
        var config = RaftConfig()
        config.electionTicks = 10
        config.heartbeatTicks = 2
        config.entriesPerAppendMax = 16
        nodes[i].restarts += 1
        let nodeSeed = seed &* 31 &+ UInt64(i) &* 1_000_003 &+ nodes[i].restarts
        nodes[i].raft = Raft(id: nodes[i].id, config: config, restoring: persisted, bootstrap: nodes[i].bootstrap, randomSeed: nodeSeed)
        nodes[i].digest = persisted.snapshot.map { EntryDigest.digest(fromSnapshot: $0.data) } ?? 0
        scheduleTick(i)
    }

    func scheduleTick(_ i: Int) {
        queue.push(.tick(i), at: now + Self.tickMs * (100 + nodes[i].skewPercent) / 100)
    }

    func index(of node: NodeID) -> Int { Int(node.value) - 1 }

    func crash(_ i: Int) {
        nodes[i].raft = nil
        nodes[i].disk.crash()
        report.crashes += 1
        queue.push(.restart(i), at: now + 50 + randomMs(2000))
        if options.trace { print("t=\(now) node \(nodes[i].id) crashed") }
    }

    /// Hands the node's Ready to its "driver": persist, sync, send, apply; repeats until idle.
    func drive(_ i: Int) throws {
        // The core is mutated in place (never copied out): a copy would duplicate its log.
        while nodes[i].raft?.hasReady == true {
            let ready = nodes[i].raft!.ready()
            nodes[i].disk.write(ready)
            if options.bug == .sendBeforeSync { send(ready.messages) }
            if ready.needsSync && faultsActive && percent(faults.crashDuringSyncPercent) {
                crash(i) // power lost between the write and the fsync
                return
            }
            nodes[i].disk.sync()
            if options.bug != .sendBeforeSync { send(ready.messages) }
            if let snapshot = ready.snapshot {
                nodes[i].digest = EntryDigest.digest(fromSnapshot: snapshot.data)
                try checker.checkRestored(snapshot, node: nodes[i].id).mapError(fail).get()
            }
            for entry in ready.committedEntries {
                nodes[i].digest = try checker.apply(entry, to: nodes[i].digest, node: nodes[i].id).mapError(fail).get()
            }
            nodes[i].raft!.advance(ready)
            let applied = nodes[i].raft!.applied
            if applied - nodes[i].raft!.snapshotIndex >= faults.compactEveryEntries {
                let snapshot = nodes[i].raft!.compact(through: applied, data: EntryDigest.snapshotData(nodes[i].digest))
                nodes[i].disk.install(snapshot)
                nodes[i].disk.sync()
            }
        }
    }

    func send(_ messages: [Message]) {
        for message in messages {
            if case .installSnapshot = message.body { report.snapshotsInstalled += 1 }
            let from = index(of: message.from), to = index(of: message.to)
            if faultsActive && (side[from] != side[to] || percent(faults.lossPercent)) {
                report.dropped += 1
                continue
            }
            queue.push(.deliver(message), at: now + 1 + randomMs(faults.delayMaxMs))
            if faultsActive && percent(faults.duplicatePercent) {
                queue.push(.deliver(message), at: now + 1 + randomMs(faults.delayMaxMs * 2))
            }
        }
    }

    // MARK: events

    func handle(_ event: Event) throws {
        switch event {
        case .tick(let i):
            guard nodes[i].isUp else { return }
            nodes[i].raft!.tick()
            try drive(i)
            if nodes[i].isUp { scheduleTick(i) }
        case .deliver(let message):
            let to = index(of: message.to)
            guard nodes[to].isUp, !faultsActive || side[index(of: message.from)] == side[to] else {
                report.dropped += 1
                return
            }
            report.delivered += 1
            nodes[to].raft!.step(message)
            try drive(to)
        case .crash:
            guard faultsActive else { return }
            let i = Int(random.next() % UInt64(nodes.count))
            if nodes[i].isUp { crash(i) }
            queue.push(.crash, at: now + randomMs(faults.crashEveryMs * 2))
        case .restart(let i):
            guard !nodes[i].isUp else { return }
            start(i)
            try drive(i)
        case .propose:
            try propose()
            queue.push(.propose, at: now + 1 + randomMs(faults.proposeEveryMs * 2))
        case .partition:
            guard faultsActive else { return }
            side = nodes.indices.map { _ in Int(random.next() % 2) }
            queue.push(.heal, at: now + 100 + randomMs(faults.partitionEveryMs))
        case .heal:
            side = Array(repeating: 0, count: nodes.count)
            if faultsActive { queue.push(.partition, at: now + randomMs(faults.partitionEveryMs * 2)) }
        case .membershipChange:
            try changeMembership()
            if faultsActive { queue.push(.membershipChange, at: now + 500 + randomMs(3000)) }
        case .transfer:
            try transferLeadership()
            if faultsActive { queue.push(.transfer, at: now + 500 + randomMs(4000)) }
        case .endFaults:
            faultsActive = false
            faultsEndedAt = now
            side = Array(repeating: 0, count: nodes.count)
            for i in nodes.indices where !nodes[i].isUp {
                start(i)
                try drive(i)
            }
        }
    }

    /// The leader of the highest term among the nodes that are up.
    func currentLeader() -> Int? {
        nodes.indices.filter { nodes[$0].raft?.role == .leader }.max { nodes[$0].raft!.term < nodes[$1].raft!.term }
    }

    func propose() throws {
        guard let i = currentLeader() else { return }
        let term = nodes[i].raft!.term
        proposalCounter += 1
        if percent(5) && term > Term(1) {
            // A controller acting under an older epoch must be fenced.
            do {
                _ = try nodes[i].raft!.propose([0xFF], expectedTerm: Term(term.value - 1))
                throw fail("a proposal under stale term \(term.value - 1) was accepted by leader \(nodes[i].id) at \(term)")
            } catch let error as ProposalError {
                guard case .staleTerm = error else { throw fail("stale proposal refused with \(error), expected staleTerm") }
                report.fencedProposals += 1
            }
            return
        }
        let data = withUnsafeBytes(of: proposalCounter.bigEndian) { Array($0) }
        if let index = try? nodes[i].raft!.propose(data, expectedTerm: term), !faultsActive {
            proposedAfterFaults[index] = term
        }
        try drive(i)
    }

    func changeMembership() throws {
        guard let i = currentLeader() else { return }
        let leader = nodes[i].id
        let voters = nodes[i].raft!.configuration.voters
        let outsiders = nodes.map(\.id).filter { !voters.contains($0) }
        var changed = false
        if let newcomer = outsiders.first, voters.count < 5 || percent(50) {
            changed = (try? nodes[i].raft!.proposeConfigurationChange(adding: newcomer)) != nil
        } else if voters.count > 3 {
            // Sometimes the leader removes itself: it must step down once that commits.
            let victim = percent(25) ? leader : voters.filter { $0 != leader }[Int(random.next() % UInt64(voters.count - 1))]
            changed = (try? nodes[i].raft!.proposeConfigurationChange(removing: victim)) != nil
        }
        if changed { report.configurationChanges += 1 }
        try drive(i)
    }

    func transferLeadership() throws {
        guard let i = currentLeader() else { return }
        let leader = nodes[i].id
        let others = nodes[i].raft!.configuration.voters.filter { $0 != leader }
        guard !others.isEmpty else { return }
        let target = others[Int(random.next() % UInt64(others.count))]
        if (try? nodes[i].raft!.transferLeadership(to: target)) != nil { report.transfers += 1 }
        try drive(i)
    }

    // MARK: checks

    func checkLeaders() throws {
        for node in nodes {
            guard let raft = node.raft, raft.role == .leader else { continue }
            try checker.checkLeader(raft).mapError(fail).get()
        }
        if let endedAt = faultsEndedAt, report.recoveryMs == 0,
           proposedAfterFaults.contains(where: { checker.isCommitted(index: $0.key, term: $0.value) }) {
            report.recoveryMs = max(1, now - endedAt)
        }
    }

    /// Log Matching (§5.3) across the disks of every pair of nodes at the end of the run.
    func checkLogMatching() throws {
        let logs = nodes.map { $0.disk.latest.entries }
        for a in logs.indices {
            for b in logs.indices where a < b {
                let byIndex = Dictionary(logs[b].map { ($0.index, $0) }, uniquingKeysWith: { $1 })
                guard let shared = logs[a].last(where: { byIndex[$0.index]?.term == $0.term }) else { continue }
                for entry in logs[a] where entry.index <= shared.index {
                    if let other = byIndex[entry.index], other != entry {
                        throw fail("log matching: nodes \(nodes[a].id) and \(nodes[b].id) agree at \(shared.index) but differ at \(entry.index)")
                    }
                }
            }
        }
    }

    func describe(_ event: Event) -> String {
        switch event {
        case .deliver(let m): return "deliver \(m.from)->\(m.to) term \(m.term) \(m.body)"
        case .tick(let i): return "tick node \(nodes[i].id) \(nodes[i].raft.map { "\($0.role) term \($0.term) commit \($0.commit)" } ?? "down")"
        default: return "\(event)"
        }
    }
}
