import BrookCore
import BrookGroups
import Testing

@Suite struct GroupRecordsTests {
    @Test func offsetRecordRoundTrips() throws {
        let c = CommittedOffset(offset: Offset(42), leaderEpoch: LeaderEpoch(3), metadata: "méta", commitTimestamp: Timestamp(ms: 1_700_000_000_123))
        let r = GroupRecord.offset(group: "g", TopicPartition("t", 7), c)
        #expect(try GroupRecord.decode(key: r.key, value: r.value) == r)
        let t = GroupRecord.offsetTombstone(group: "g", TopicPartition("t", 7))
        #expect(t.key == r.key)
        #expect(try GroupRecord.decode(key: t.key, value: nil) == t)
    }
}
