import BrookCore
@testable import BrookQuorum
import Testing

/// DescribeQuorum's times, as Kafka's leader keeps them: a replica is caught up at an answer
/// that reaches the leader's end, or at its previous answer when this one reaches where the
/// leader's end was then.
@Suite struct ReplicaContactsTests {
    let node = NodeID(2)

    @Test func caughtUpWhenLevelWithTheLeader() {
        var contacts = ReplicaContacts()
        contacts.heard(node, holds: 10, leaderEnd: 10, nowMs: 1000)
        #expect(contacts.seen[node] == .init(holds: 10, heardMs: 1000, caughtUpMs: 1000, leaderEndThen: 10))
        // Behind the leader's end now, but past where it was at the last answer: caught up as of then.
        contacts.heard(node, holds: 12, leaderEnd: 15, nowMs: 1100)
        #expect(contacts.seen[node]?.caughtUpMs == 1000)
        contacts.heard(node, holds: 15, leaderEnd: 18, nowMs: 1200)
        #expect(contacts.seen[node]?.caughtUpMs == 1100, "it held 15 at 1200: the leader's end of 1100")
        // Under steady writes it keeps being credited, one answer late.
        contacts.heard(node, holds: 18, leaderEnd: 21, nowMs: 1300)
        #expect(contacts.seen[node]?.caughtUpMs == 1200)
    }

    @Test func aReplicaFallingBehindKeepsItsLastCaughtUpTime() {
        var contacts = ReplicaContacts()
        contacts.heard(node, holds: 5, leaderEnd: 5, nowMs: 100)
        contacts.heard(node, holds: 5, leaderEnd: 50, nowMs: 200)
        contacts.heard(node, holds: 20, leaderEnd: 90, nowMs: 300)
        #expect(contacts.seen[node] == .init(holds: 20, heardMs: 300, caughtUpMs: 100, leaderEndThen: 90))
        // First heard while behind: never caught up yet.
        contacts.heard(NodeID(3), holds: 1, leaderEnd: 90, nowMs: 300)
        #expect(contacts.seen[NodeID(3)]?.caughtUpMs == -1)
    }

    @Test func theNumberOfNodesIsBounded() {
        var contacts = ReplicaContacts()
        for id in 0..<(ReplicaContacts.nodesMax + 5) { contacts.heard(NodeID(Int32(id)), holds: 1, leaderEnd: 1, nowMs: 1) }
        #expect(contacts.seen.count == ReplicaContacts.nodesMax)
    }
}
