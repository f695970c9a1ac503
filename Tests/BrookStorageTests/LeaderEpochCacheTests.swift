import BrookCore
import BrookStorage
import Testing

/// The leader-epoch cache's answers, as KIP-101 and KIP-279 define them.
@Suite struct LeaderEpochCacheTests {
    func cache(_ pairs: [(Int32, Int64)]) -> LeaderEpochCache {
        LeaderEpochCache(entries: pairs.map { .init(epoch: LeaderEpoch($0.0), startOffset: Offset($0.1)) })
    }

    @Test func anEpochEndsWhereTheNextBegins() {
        let c = cache([(0, 0), (2, 10), (5, 25)])
        #expect(c.endOffset(for: LeaderEpoch(0), logEnd: Offset(40))! == (LeaderEpoch(0), Offset(10)))
        #expect(c.endOffset(for: LeaderEpoch(2), logEnd: Offset(40))! == (LeaderEpoch(2), Offset(25)))
        // The latest epoch ends at the log's end.
        #expect(c.endOffset(for: LeaderEpoch(5), logEnd: Offset(40))! == (LeaderEpoch(5), Offset(40)))
    }

    @Test func anUnknownEpochAnswersTheLargestEpochBelowIt() {
        let c = cache([(1, 3), (4, 10)])
        #expect(c.endOffset(for: LeaderEpoch(3), logEnd: Offset(20))! == (LeaderEpoch(1), Offset(10)))
        // Older than every epoch: it ended where the first one began.
        #expect(c.endOffset(for: LeaderEpoch(0), logEnd: Offset(20))! == (LeaderEpoch(0), Offset(3)))
        // Newer than every epoch, or none at all: undefined.
        #expect(c.endOffset(for: LeaderEpoch(9), logEnd: Offset(20)) == nil)
        #expect(LeaderEpochCache().endOffset(for: LeaderEpoch(0), logEnd: Offset(0)) == nil)
        #expect(c.endOffset(for: .none, logEnd: Offset(20)) == nil)
    }

    @Test func assigningKeepsOneEntryPerEpoch() {
        var c = LeaderEpochCache()
        c.assign(LeaderEpoch(0), startOffset: Offset(0))
        c.assign(LeaderEpoch(0), startOffset: Offset(5))
        c.assign(LeaderEpoch(3), startOffset: Offset(8))
        // An epoch that wrote nothing is replaced by the next one at the same offset.
        c.assign(LeaderEpoch(4), startOffset: Offset(8))
        #expect(c.entries.map(\.description) == ["0@0", "4@8"])
    }

    @Test func truncationDropsEpochsFromTheCut() {
        var c = cache([(0, 0), (2, 10), (5, 25)])
        c.truncate(from: Offset(25))
        #expect(c.latestEpoch == LeaderEpoch(2))
        c.truncate(from: Offset(11))
        #expect(c.latestEpoch == LeaderEpoch(2))
        c.truncate(from: Offset(10))
        #expect(c.latestEpoch == LeaderEpoch(0))
        var front = cache([(0, 0), (2, 10), (5, 25)])
        front.truncate(before: Offset(12))
        #expect(front.entries.map(\.description) == ["2@12", "5@25"])
    }

    /// KIP-101's example: a follower wrote a record the new leader never had, in an old epoch.
    @Test func aFollowerCutsWhereTheLeadersLogDiverges() {
        // Follower: epoch 1 from 0, wrote up to 12. Leader: epoch 1 up to 10, then epoch 2.
        let follower = cache([(1, 0)])
        let leader = cache([(1, 0), (2, 10)])
        let answer = leader.endOffset(for: LeaderEpoch(1), logEnd: Offset(30))
        #expect(follower.truncationOffset(leaderAnswer: answer, logEnd: Offset(12), highWatermark: Offset(8)) == Offset(10))
        // No divergence: nothing to cut.
        #expect(follower.truncationOffset(leaderAnswer: (LeaderEpoch(1), Offset(40)), logEnd: Offset(12), highWatermark: Offset(8)) == Offset(12))
        // The leader knows no such epoch: back to the high watermark.
        #expect(follower.truncationOffset(leaderAnswer: nil, logEnd: Offset(12), highWatermark: Offset(8)) == Offset(8))
    }
}
