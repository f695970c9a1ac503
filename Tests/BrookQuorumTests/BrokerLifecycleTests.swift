import BrookCluster
@testable import BrookQuorum
import Testing

/// When a broker heartbeats (`BrokerLifecycle.heartbeatDue`).
@Suite struct BrokerLifecycleTests {
    func view(fenced: Bool, through: Int64) -> BrokerView {
        var view = BrokerView()
        view.fenced = fenced
        view.fetchedThrough = MetadataOffset(through)
        return view
    }

    @Test func aFencedBrokerReportsEachStepOfItsCatchUpAtOnce() {
        let due = { (v: BrokerView, reported: Int64) in
            BrokerLifecycle.heartbeatDue(sinceLastMs: 10, intervalMs: 2000, view: v, lastReported: MetadataOffset(reported), wantShutdown: false)
        }
        #expect(due(view(fenced: true, through: 40), 12))
        #expect(!due(view(fenced: true, through: 40), 40))
        // Unfenced, it keeps to the interval.
        #expect(!due(view(fenced: false, through: 40), 12))
    }

    @Test func theIntervalAndAShutdownsFasterPaceStillHold() {
        let unfenced = view(fenced: false, through: 5)
        #expect(BrokerLifecycle.heartbeatDue(sinceLastMs: 2000, intervalMs: 2000, view: unfenced, lastReported: MetadataOffset(5), wantShutdown: false))
        #expect(!BrokerLifecycle.heartbeatDue(sinceLastMs: 1999, intervalMs: 2000, view: unfenced, lastReported: MetadataOffset(5), wantShutdown: false))
        #expect(BrokerLifecycle.heartbeatDue(sinceLastMs: 200, intervalMs: 2000, view: unfenced, lastReported: MetadataOffset(5), wantShutdown: true))
        // A broker asking to leave, fenced by then, keeps to the shutdown pace.
        let leaving = view(fenced: true, through: 9)
        #expect(!BrokerLifecycle.heartbeatDue(sinceLastMs: 100, intervalMs: 2000, view: leaving, lastReported: MetadataOffset(5), wantShutdown: true))
    }
}
