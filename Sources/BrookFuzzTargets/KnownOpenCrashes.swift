/// Crashes the fuzzer found in code this harness does not own, not fixed yet. While one is
/// open, its target steps around the one input shape that triggers it (a guard in the target,
/// named after the crash), so that a run keeps exploring the rest instead of stopping at the
/// same trap every time; the reproducer stays in the corpus (`crash-...`, listed here). Remove
/// the guard and the entry with the fix. None is open: the last one (`forEachBatch` trusting a
/// negative batch length, batch/crash-forEachBatch-negative-length) is fixed and its reproducer
/// now replays as a regression case.
public enum KnownOpenCrashes {
    /// The reproducers of the open crashes, as TARGET/FILE under Tests/Fuzz/corpus.
    public static let reproducers: [String] = []
}
