import BrookCore
import Testing

@Suite struct RateMeterTests {
    @Test func aFirstBurstIsSpreadOverTheWindow() {
        var meter = RateMeter(samples: 11, sampleMs: 1000)
        meter.record(100_000, nowMs: 0)
        // Measured over ten seconds, not over the first instant.
        #expect(meter.rate(nowMs: 1) == 10_000)
        #expect(!meter.exceeds(10_000, nowMs: 1))
        #expect(meter.exceeds(9_999, nowMs: 1))
    }

    @Test func aSteadyRateIsMeasuredAsItIs() {
        var meter = RateMeter(samples: 11, sampleMs: 1000)
        for ms in stride(from: Int64(0), to: 30_000, by: 100) { meter.record(5_000, nowMs: ms) }
        let rate = meter.rate(nowMs: 30_000)
        #expect(rate > 45_000 && rate <= 50_000, "measured \(rate)")
    }

    @Test func oldSamplesLeaveTheWindow() {
        var meter = RateMeter(samples: 11, sampleMs: 1000)
        meter.record(1_000_000, nowMs: 0)
        #expect(meter.exceeds(1000, nowMs: 5_000))
        #expect(meter.rate(nowMs: 11_000) == 0)
        #expect(!meter.exceeds(0, nowMs: 11_000))
    }

    @Test func noLimitIsNeverExceeded() {
        var meter = RateMeter()
        meter.record(Int.max, nowMs: 0)
        meter.record(Int.max, nowMs: 0)
        #expect(!meter.exceeds(Int64.max, nowMs: 0))
        #expect(meter.exceeds(0, nowMs: 0))
    }

    @Test func aClockThatGoesBackCountsInTheCurrentSample() {
        var meter = RateMeter(samples: 3, sampleMs: 1000)
        meter.record(3000, nowMs: 10_000)
        meter.record(3000, nowMs: 9_000)
        #expect(meter.rate(nowMs: 10_000) == 3000)
    }
}
