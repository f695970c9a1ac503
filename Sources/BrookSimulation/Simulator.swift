import BrookCore
import BrookRaft

/// A bug the simulator can plant in its own driver, to show that the checks catch it.
public enum InjectedBug: String, Sendable, CaseIterable {
    /// Messages leave before the fsync: a crash can then lose what a node acknowledged.
    case sendBeforeSync = "send-before-sync"
}

public struct SimulationOptions: Sendable {
    /// 3 or 5 voters; nil draws it from the seed.
    public var voterCount: Int?
    /// How long faults are injected, in simulated milliseconds.
    public var faultsMs: Int64 = 20_000
    /// After faults stop, a leader must be elected and a new entry committed within this.
    public var livenessMs: Int64 = 10_000
    public var bug: InjectedBug?
    /// Print every event (for replaying a failing seed).
    public var trace = false
    public init() {}
}

public struct SimulationFailure: Error, CustomStringConvertible, Sendable {
    public var seed: UInt64
    public var timeMs: Int64
    public var step: Int
    public var message: String
    /// The command that replays the seed, without the seed.
    public var replay = "brook-sim"
    public var description: String {
        "seed \(seed) failed at step \(step) (t=\(timeMs) ms): \(message)\n  replay: \(replay) --seed \(seed) --trace"
    }
}

public struct SimulationReport: Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var voters: Int
    public var steps = 0
    public var timeMs: Int64 = 0
    public var highestTerm = Term.zero
    public var committed = LogIndex.zero
    public var crashes = 0
    public var snapshotsInstalled = 0
    public var configurationChanges = 0
    public var transfers = 0
    public var fencedProposals = 0
    public var delivered = 0
    public var dropped = 0
    /// Simulated ms from the end of faults to the first commit of a new entry.
    public var recoveryMs: Int64 = 0
    public var description: String {
        "seed \(seed): ok, \(voters) voters, \(steps) steps, \(timeMs) ms simulated, term \(highestTerm), "
            + "\(committed) committed, \(crashes) crashes, \(snapshotsInstalled) snapshots sent, "
            + "\(configurationChanges) membership changes, \(transfers) transfers, \(fencedProposals) stale proposals fenced, "
            + "\(delivered) messages delivered, \(dropped) dropped, recovered \(recoveryMs) ms after faults stopped"
    }
}

/// The fault rates of one run, drawn from its seed.
struct FaultProfile {
    var lossPercent: UInt64
    var duplicatePercent: UInt64
    var delayMaxMs: Int64
    var partitionEveryMs: Int64
    var crashEveryMs: Int64
    var crashDuringSyncPercent: UInt64
    var proposeEveryMs: Int64
    var compactEveryEntries: Int64
    var membershipChanges: Bool

    init(_ random: inout SeededRandom) {
        lossPercent = random.next() % 25
        duplicatePercent = random.next() % 10
        delayMaxMs = 2 + Int64(random.next() % 60)
        partitionEveryMs = 500 + Int64(random.next() % 4000)
        crashEveryMs = 500 + Int64(random.next() % 4000)
        crashDuringSyncPercent = random.next() % 5
        proposeEveryMs = 5 + Int64(random.next() % 100)
        compactEveryEntries = 10 + Int64(random.next() % 200)
        membershipChanges = random.next() % 2 == 0
    }
}
