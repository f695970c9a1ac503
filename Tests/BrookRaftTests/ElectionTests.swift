import BrookCore
@testable import BrookRaft
import Testing

let n1 = NodeID(1), n2 = NodeID(2), n3 = NodeID(3), n4 = NodeID(4)

/// §5.2 Leader election and §5.4.1 the election restriction, with pre-vote and check-quorum.
@Suite struct ElectionTests {
    @Test func aFollowerThatHearsNothingCampaignsAndWins() {
        var cluster = TestCluster(3)
        cluster.campaign(n1)
        #expect(cluster.leader() == n1)
        #expect(cluster.nodes[n1]!.term == Term(1))
        for id in [n2, n3] {
            #expect(cluster.nodes[id]!.role == .follower)
            #expect(cluster.nodes[id]!.leader == n1)
            #expect(cluster.disks[id]!.hardState.votedFor == n1, "the vote is persisted before it is sent")
        }
    }

    @Test func electionSafetyEachNodeVotesOncePerTerm() {
        var cluster = TestCluster(3, preVote: false)
        // Nodes 1 and 2 both become candidates in term 1 before either hears from the other.
        cluster.tick(n1, 20)
        cluster.tick(n2, 20)
        #expect(cluster.nodes[n1]!.role == .candidate && cluster.nodes[n2]!.role == .candidate)
        cluster.deliver()
        let leaders = cluster.nodes.values.filter { $0.role == .leader && $0.term == Term(1) }
        #expect(leaders.count <= 1, "at most one leader per term")
        let votes = cluster.nodes.values.compactMap { $0.votedFor }
        #expect(votes.count == 3, "every node voted once in term 1")
    }

    @Test func aCandidateWithAStaleLogLoses() throws {
        var cluster = TestCluster(3)
        cluster.campaign(n1)
        cluster.isolate(n3)
        try cluster.propose(n1, "committed")
        cluster.deliver()
        #expect(cluster.appliedData(n2) == ["committed"])
        cluster.heal()
        cluster.crash(n1)
        // Node 3 lacks the committed entry: node 2 refuses it, so it cannot win.
        cluster.campaign(n3)
        #expect(cluster.nodes[n3]!.role != .leader)
        cluster.campaign(n2)
        #expect(cluster.leader() == n2)
        cluster.tick(n2)
        cluster.deliver()
        #expect(cluster.appliedData(n3) == ["committed"])
    }

    @Test func preVoteKeepsAReturningPartitionedNodeFromDisruptingTheLeader() {
        var cluster = TestCluster(3)
        cluster.campaign(n1)
        cluster.isolate(n3)
        cluster.tick(n3, 200)
        cluster.deliver()
        #expect(cluster.nodes[n3]!.term == Term(1), "pre-votes change no term")
        cluster.heal()
        for _ in 0..<30 {
            cluster.tickAll()
            cluster.deliver()
        }
        #expect(cluster.leader() == n1)
        #expect(cluster.nodes[n1]!.term == Term(1))
    }

    @Test func withoutPreVoteAReturningNodeForcesANewTerm() {
        var cluster = TestCluster(3, preVote: false, checkQuorum: false)
        cluster.campaign(n1)
        cluster.isolate(n3)
        cluster.tick(n3, 200)
        cluster.deliver()
        #expect(cluster.nodes[n3]!.term > Term(2), "the cut-off node kept raising its term")
        cluster.heal()
        cluster.tick(n1)
        cluster.deliver()
        #expect(cluster.nodes[n1]!.term > Term(1), "its return unseated the leader: what pre-vote prevents")
    }

    @Test func checkQuorumMakesAnIsolatedLeaderStepDown() {
        var cluster = TestCluster(3)
        cluster.campaign(n1)
        cluster.isolate(n1)
        // The first check after taking over counts everyone active; the next one finds nobody.
        cluster.tick(n1, 10)
        #expect(cluster.nodes[n1]!.role == .leader)
        cluster.tick(n1, 10)
        #expect(cluster.nodes[n1]!.role == .follower)
        #expect(throws: ProposalError.notLeader(leader: nil)) { try cluster.propose(n1, "x") }
    }

    @Test func aVoterIgnoresVotesWhileItHearsFromItsLeader() {
        var cluster = TestCluster(3, preVote: false)
        cluster.campaign(n1)
        cluster.isolate(n3)
        cluster.tick(n3, 20)
        #expect(cluster.nodes[n3]!.role == .candidate && cluster.nodes[n3]!.term == Term(2))
        cluster.heal()
        cluster.tick(n1) // a heartbeat renews the lease of node 2
        cluster.deliver(where: { $0.from == n1 })
        cluster.deliver(where: { $0.from == n3 && $0.to == n2 })
        #expect(cluster.nodes[n2]!.term == Term(1), "the vote request was ignored")
        #expect(cluster.nodes[n2]!.leader == n1)
    }

    @Test func aRestartedNodeRemembersItsTermAndVote() {
        var cluster = TestCluster(3)
        cluster.campaign(n1)
        cluster.crash(n2)
        cluster.restart(n2)
        #expect(cluster.nodes[n2]!.term == Term(1))
        #expect(cluster.nodes[n2]!.votedFor == n1)
        #expect(cluster.nodes[n2]!.lastIndex == LogIndex(1))
    }
}
