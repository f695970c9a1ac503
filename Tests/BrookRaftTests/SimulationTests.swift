import BrookCore
import BrookRaft
import BrookSimulation
import Testing

/// The whole quorum under faults, from fixed seeds (`brook-sim --seeds N` runs many more).
@Suite struct SimulationTests {
    /// Seeds that once failed stay here (none yet); CI runs them and a fixed range.
    static let regressionSeeds: [UInt64] = []

    @Test func fixedSeedsKeepEverySafetyPropertyAndRecover() {
        for seed in Self.regressionSeeds + Array(1...40) {
            if case .failure(let failure) = Simulation.run(seed: seed) { Issue.record("\(failure)") }
        }
    }

    @Test func aSeedReplaysExactly() throws {
        let first = try Simulation.run(seed: 7).get()
        let second = try Simulation.run(seed: 7).get()
        #expect(first.description == second.description)
        #expect(first.steps > 1000 && first.crashes > 0 && first.dropped > 0)
    }

    @Test func aDriverThatSendsBeforeItSyncsIsCaught() {
        var options = SimulationOptions()
        options.bug = .sendBeforeSync
        let failures = (1...40).compactMap { seed -> SimulationFailure? in
            if case .failure(let failure) = Simulation.run(seed: UInt64(seed), options: options) { return failure }
            return nil
        }
        #expect(!failures.isEmpty, "acknowledging unsynced writes must lose committed entries under crashes")
        #expect(failures.allSatisfy { $0.message.contains("completeness") || $0.message.contains("safety") || $0.message.contains("matching") })
    }

    @Test func fiveVotersSurviveToo() {
        var options = SimulationOptions()
        options.voterCount = 5
        for seed in UInt64(100)...110 {
            if case .failure(let failure) = Simulation.run(seed: seed, options: options) { Issue.record("\(failure)") }
        }
    }
}
