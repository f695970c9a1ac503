@testable import BrookServer
import Synchronization
import Testing

/// The replica fetcher's hot loop sleeps on a `Doorbell` while it has no partitions: a ring it
/// misses would leave a busy partition unfetched by it, and a cancellation it misses would keep
/// a leader's loops alive after the supervisor ended them.
@Suite struct DoorbellTests {
    @Test func aRingBeforeTheWaitIsKept() async {
        let bell = Doorbell()
        bell.ring()
        bell.ring()
        await bell.wait()
        // Two rings before one wait are one: the next wait needs a new ring.
        final class Woke: Sendable { let value = Atomic<Bool>(false) }
        let woke = Woke()
        let waiter = Task {
            await bell.wait()
            woke.value.store(true, ordering: .sequentiallyConsistent)
        }
        try? await Task.sleep(nanoseconds: 50_000_000)
        let early = woke.value.load(ordering: .sequentiallyConsistent)
        #expect(!early)
        bell.ring()
        await waiter.value
        let late = woke.value.load(ordering: .sequentiallyConsistent)
        #expect(late)
    }

    @Test func aRingWakesTheWaiter() async {
        let bell = Doorbell()
        let waiter = Task { await bell.wait() }
        try? await Task.sleep(nanoseconds: 20_000_000)
        bell.ring()
        await waiter.value
    }

    @Test func cancellingTheWaiterEndsItsWait() async {
        let bell = Doorbell()
        let waiter = Task { await bell.wait() }
        try? await Task.sleep(nanoseconds: 20_000_000)
        waiter.cancel()
        await waiter.value
        // Cancelled before it waits: returns at once too.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            await bell.wait()
        }
        await early.value
    }
}
