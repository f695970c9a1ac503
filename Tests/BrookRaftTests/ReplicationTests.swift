import BrookCore
@testable import BrookRaft
import Testing

/// §5.3 Log replication and §5.4.2 committing entries from previous terms.
@Suite struct ReplicationTests {
    @Test func entriesReplicateAndApplyInOrderOnEveryNode() throws {
        var cluster = TestCluster(3)
        cluster.campaign(n1)
        for text in ["a", "b", "c"] { try cluster.propose(n1, text) }
        cluster.deliver()
        cluster.tick(n1)
        cluster.deliver()
        for id in [n1, n2, n3] { #expect(cluster.appliedData(id) == ["a", "b", "c"]) }
    }

    @Test func aMajorityCommitsAndTheLaggardCatchesUp() throws {
        var cluster = TestCluster(3)
        cluster.campaign(n1)
        cluster.isolate(n3)
        try cluster.propose(n1, "x")
        cluster.deliver()
        #expect(cluster.appliedData(n1) == ["x"])
        #expect(cluster.appliedData(n3).isEmpty)
        cluster.heal()
        cluster.tick(n1)
        cluster.deliver()
        cluster.tick(n1)
        cluster.deliver()
        #expect(cluster.appliedData(n3) == ["x"])
    }

    @Test func lostAppendsAreResentAfterTheFollowerRejectsAHeartbeat() throws {
        var cluster = TestCluster(3)
        cluster.campaign(n1)
        try cluster.propose(n1, "a")
        cluster.deliver()
        try cluster.propose(n1, "b")
        try cluster.propose(n1, "c")
        cluster.deliver(where: { !($0.to == n3) }) // node 3 loses both appends
        #expect(cluster.nodes[n3]!.lastIndex == LogIndex(2))
        for _ in 0..<3 {
            cluster.tick(n1)
            cluster.deliver()
        }
        #expect(cluster.appliedData(n3) == ["a", "b", "c"])
    }

    @Test func aFollowersDivergentTailIsTruncatedAndReplaced() throws {
        var cluster = TestCluster(3)
        cluster.campaign(n1)
        cluster.isolate(n1)
        try cluster.propose(n1, "lost-1")
        try cluster.propose(n1, "lost-2")
        cluster.deliver()
        // The others elect node 2 (node 3's lease must lapse first) and commit more.
        cluster.tick(n3, 10)
        cluster.campaign(n2)
        #expect(cluster.nodes[n2]!.role == .leader)
        try cluster.propose(n2, "kept")
        cluster.deliver()
        cluster.heal()
        for _ in 0..<4 {
            cluster.tick(n2)
            cluster.deliver()
        }
        #expect(cluster.nodes[n1]!.role == .follower)
        for id in [n1, n2, n3] {
            #expect(cluster.appliedData(id) == ["kept"])
            #expect(cluster.disks[id]!.entries == cluster.disks[n2]!.entries, "the logs match")
        }
        #expect(!cluster.disks[n1]!.entries.contains { $0.data == Array("lost-1".utf8) })
    }

    /// Figure 8: an entry of an older term stored on a majority is not committed by counting
    /// replicas; it commits only with an entry of the leader's own term.
    @Test func anOlderTermsEntryCommitsOnlyThroughTheLeadersOwn() throws {
        var cluster = TestCluster(3)
        cluster.campaign(n1)
        cluster.isolate(n1)
        let old = try cluster.propose(n1, "old")
        cluster.inFlight = []
        cluster.heal()
        cluster.crash(n1)
        cluster.restart(n1)
        cluster.tick(n2, 10)
        cluster.tick(n3, 10)
        cluster.tick(n1, 20)
        // Deliver everything, except that appends carry nothing past the old entry.
        for _ in 0..<20 {
            let batch = cluster.inFlight
            cluster.inFlight = []
            for var message in batch {
                if case .append(let prev, let prevTerm, let entries, let commit) = message.body {
                    message.body = .append(prevIndex: prev, prevTerm: prevTerm, entries: entries.filter { $0.index <= old }, commit: commit)
                }
                cluster.nodes[message.to]!.step(message)
                cluster.drain(message.to)
            }
        }
        #expect(cluster.leader() == n1)
        #expect(cluster.nodes[n2]!.term(at: old) == Term(1), "the old entry is on a majority")
        #expect(cluster.nodes[n1]!.commit < old, "but not committed by counting replicas")
        cluster.tick(n1)
        cluster.deliver()
        #expect(cluster.nodes[n1]!.commit == old + 1)
        #expect(cluster.appliedData(n1) == ["old"])
    }
}
