import ArgumentParser
import BrookSimulation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs the Raft core through the deterministic simulator: one seed to replay, or many in a row.
@main
struct BrookSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "brook-sim",
        abstract: "Deterministic simulation of the Raft quorum with injected faults.",
        discussion: """
            Each seed builds 3 or 5 nodes on a fake clock, network and disk, injects message loss, \
            delay, reordering, duplication, partitions, crashes (losing unsynced writes) and clock \
            skew, and checks election safety, log matching, leader completeness and state machine \
            safety after every step, then that a leader commits new entries once faults stop. \
            A failure prints its seed; `--seed S` replays it exactly.
            """)

    @Option(help: "Replay this one seed.")
    var seed: UInt64?

    @Option(help: "Run this many seeds in a row.")
    var seeds: Int = 1

    @Option(name: .customLong("first-seed"), help: "The first seed of a --seeds run.")
    var firstSeed: UInt64 = 1

    @Option(help: "Voters per run (3 or 5); drawn from the seed when absent.")
    var voters: Int?

    @Option(name: .customLong("faults-ms"), help: "Simulated milliseconds of faults per seed.")
    var faultsMs: Int64 = 20_000

    @Option(name: .customLong("liveness-ms"), help: "After faults stop, a new entry must commit within this many simulated ms.")
    var livenessMs: Int64 = 10_000

    @Option(help: "Plant a bug in the simulated driver to see the checks catch it (\(InjectedBug.allCases.map(\.rawValue).joined(separator: ", "))).")
    var bug: String?

    @Flag(help: "Simulate the replicated cluster (controller, brokers, partition replication, acks=all producers) instead of the Raft quorum.")
    var cluster = false

    @Option(help: "Brokers per run with --cluster (3 to 9); drawn from the seed (3 to 5) when absent.")
    var brokers: Int?

    @Option(name: .customLong("min-isr"), help: "min.insync.replicas of the topic with --cluster (1 to 3, replication factor 3).")
    var minISR = 2

    @Flag(help: "Print every event.")
    var trace = false

    @Flag(help: "Print one line per passing seed.")
    var verbose = false

    func validate() throws {
        if let voters, voters != 3 && voters != 5 { throw ValidationError("--voters must be 3 or 5") }
        if let bug, !cluster, InjectedBug(rawValue: bug) == nil { throw ValidationError("unknown --bug \(bug)") }
        if let bug, cluster, ClusterBug(rawValue: bug) == nil {
            throw ValidationError("unknown --bug \(bug) for --cluster (\(ClusterBug.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        if let brokers, !(3...9).contains(brokers) { throw ValidationError("--brokers must be 3 to 9") }
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
        guard faultsMs > 0, livenessMs > 0 else { throw ValidationError("durations must be positive") }
    }

    func run() throws {
        if cluster { return try runCluster() }
        var options = SimulationOptions()
        options.voterCount = voters
        options.faultsMs = faultsMs
        options.livenessMs = livenessMs
        options.bug = bug.flatMap(InjectedBug.init(rawValue:))
        options.trace = trace
        let range: [UInt64] = seed.map { [$0] } ?? (0..<UInt64(seeds)).map { firstSeed &+ $0 }
        var failures = 0
        var recoveryMsTotal: Int64 = 0
        for s in range {
            switch Simulation.run(seed: s, options: options) {
            case .success(let report):
                recoveryMsTotal += report.recoveryMs
                if verbose || range.count == 1 { print(report) }
            case .failure(let failure):
                failures += 1
                print(failure)
            }
        }
        if range.count > 1 {
            let passed = range.count - failures
            print("\(passed)/\(range.count) seeds passed (seeds \(range.first!)...\(range.last!)); mean recovery \(passed > 0 ? recoveryMsTotal / Int64(passed) : 0) simulated ms after faults stopped")
        }
        if failures > 0 { throw ExitCode(1) }
    }

    func runCluster() throws {
        var options = ClusterSimulationOptions()
        options.brokerCount = brokers
        options.faultsMs = faultsMs
        options.livenessMs = max(livenessMs, 20_000)
        options.bug = bug.flatMap(ClusterBug.init(rawValue:))
        guard (1...3).contains(minISR) else { throw ValidationError("--min-isr is 1 to 3") }
        options.minInSyncReplicas = minISR
        options.trace = trace
        let range: [UInt64] = seed.map { [$0] } ?? (0..<UInt64(seeds)).map { firstSeed &+ $0 }
        var failures = 0
        var acknowledged = 0
        var fromELR = 0
        for s in range {
            switch ClusterSimulation.run(seed: s, options: options) {
            case .success(let report):
                acknowledged += report.acknowledged
                fromELR += report.eligibleLeaderElections
                if verbose || range.count == 1 { print(report) }
            case .failure(let failure):
                failures += 1
                print(failure)
            }
        }
        if range.count > 1 {
            print("\(range.count - failures)/\(range.count) cluster seeds passed (seeds \(range.first!)...\(range.last!)); \(acknowledged) records acknowledged in all, \(fromELR) clean elections from the ELR")
        }
        if failures > 0 { throw ExitCode(1) }
    }
}
