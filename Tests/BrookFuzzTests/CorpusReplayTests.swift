import BrookFuzzTargets
import BrookProtocol
import Foundation
import Testing

/// Every committed corpus input (Tests/Fuzz/corpus/TARGET/) through its target, so that
/// `swift test` guards what the fuzzer found without libFuzzer. A crash fails the run.
@Suite struct CorpusReplayTests {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz/corpus")

    static func inputs(_ target: FuzzTarget) throws -> [URL] {
        let directory = corpus.appendingPathComponent(target.name)
        return try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    @Test(arguments: FuzzTargets.all.map(\.name))
    func replay(_ name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let inputs = try Self.inputs(target)
        #expect(!inputs.isEmpty, "\(name) has no seed corpus in Tests/Fuzz/corpus/\(name)")
        for file in inputs {
            target.replay(Array(try Data(contentsOf: file)))
        }
    }

    /// Crashes found in code the harness does not own and not fixed yet: their targets step
    /// around them (KnownOpenCrashes), and their reproducers stay in the corpus.
    @Test func knownOpenCrashesHaveReproducers() {
        for entry in KnownOpenCrashes.reproducers {
            #expect(FileManager.default.fileExists(atPath: Self.corpus.appendingPathComponent(entry).path),
                    "\(entry) is listed as a known open crash but is not in the corpus")
        }
    }

    /// A new API gets fuzzed: the request and response targets decode every API in the catalog.
    @Test func requestTargetsCoverTheCatalog() {
        #expect(FuzzTargets.requestApiKeys == Set(ApiCatalog.entries.map(\.key)))
    }

    @Test func targetNamesAreUnique() {
        #expect(Set(FuzzTargets.all.map(\.name)).count == FuzzTargets.all.count)
    }
}
