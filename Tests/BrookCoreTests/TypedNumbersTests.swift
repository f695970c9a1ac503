import BrookCore
import Testing

@Suite struct TypedNumbersTests {
    @Test func offsetArithmetic() {
        let a = Offset(10)
        #expect(a + 5 == Offset(15))
        #expect(Offset(15) - a == 5)
        #expect(a < Offset(11))
    }

    @Test func seededRandomReplays() {
        var first = SeededRandom(seed: 42)
        var second = SeededRandom(seed: 42)
        let a = (0..<100).map { _ in first.next() }
        let b = (0..<100).map { _ in second.next() }
        #expect(a == b)
        var other = SeededRandom(seed: 43)
        #expect(a[0] != other.next())
    }

    @Test func manualClockMovesOnlyWhenTold() {
        let clock = ManualClock(Timestamp(ms: 1000))
        #expect(clock.now() == Timestamp(ms: 1000))
        clock.advance(ms: 250)
        #expect(clock.now() == Timestamp(ms: 1250))
    }
}
