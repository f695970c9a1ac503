/// A byte rate measured over a sliding window of fixed samples, as Kafka's quotas measure
/// (`quota.window.num` samples of `quota.window.size.seconds`): the bytes recorded in the
/// samples still in the window, divided by the time they cover, which is never taken as less
/// than all but one sample (so a first burst is spread over the whole window, not measured
/// over its first milliseconds). Pure: the caller gives the time.
public struct RateMeter: Sendable {
    public let sampleMs: Int64
    private var starts: [Int64]
    private var bytes: [Int64]
    /// The sample being filled.
    private var current = 0

    public init(samples: Int = 11, sampleMs: Int64 = 1000) {
        precondition(samples >= 2 && samples <= 1000 && sampleMs > 0, "a rate needs at least two samples of positive length")
        self.sampleMs = sampleMs
        starts = Array(repeating: Int64.min, count: samples)
        bytes = Array(repeating: 0, count: samples)
    }

    /// Counts `count` bytes at `nowMs`.
    public mutating func record(_ count: Int, nowMs: Int64) {
        precondition(count >= 0, "a negative byte count")
        roll(nowMs)
        let (sum, overflow) = bytes[current].addingReportingOverflow(Int64(count))
        bytes[current] = overflow ? Int64.max : sum
    }

    /// Bytes per second over the window at `nowMs`.
    public func rate(nowMs: Int64) -> Double {
        let windowMs = sampleMs * Int64(starts.count)
        var total: Double = 0
        var oldest = nowMs
        for i in starts.indices where starts[i] != Int64.min && nowMs - starts[i] < windowMs {
            total += Double(bytes[i])
            oldest = min(oldest, starts[i])
        }
        let coveredMs = max(nowMs - oldest, sampleMs * Int64(starts.count - 1))
        return total * 1000 / Double(coveredMs)
    }

    /// Whether the rate at `nowMs` is above `limit` bytes per second.
    public func exceeds(_ limit: Int64, nowMs: Int64) -> Bool {
        limit < Int64.max && rate(nowMs: nowMs) > Double(limit)
    }

    /// Moves to the sample that holds `nowMs`, starting a fresh one when the current one's time
    /// has passed (a clock that went back counts in the current one).
    private mutating func roll(_ nowMs: Int64) {
        let start = starts[current]
        if start != Int64.min && nowMs < start + sampleMs { return }
        current = (current + 1) % starts.count
        starts[current] = nowMs
        bytes[current] = 0
    }
}
