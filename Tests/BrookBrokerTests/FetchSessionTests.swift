@testable import BrookBroker
import BrookCore
import BrookProtocol
import Testing

/// Incremental fetch sessions (KIP-227): opened with epoch 0, then fetches carry only changed
/// partitions and are answered with only the partitions that have something new.
@Suite struct FetchSessionTests {
    /// A fetch of partitions 0 and 1 of `t` at `offsets`, in session `id` at `epoch`.
    static func request(_ h: BrokerHarness, _ offsets: [Int32: Int64], id: Int32, epoch: Int32,
                        forget: [Int32] = []) -> FetchRequest {
        let topicID = h.broker.topics.topic("t")!.id
        return FetchRequest(maxWaitMs: 0, minBytes: 0, maxBytes: 1 << 20, isolationLevel: 0, sessionId: id, sessionEpoch: epoch,
                            topics: offsets.isEmpty ? [] : [.init(topic: "", topicId: topicID, partitions: offsets.sorted { $0.key < $1.key }.map {
                                .init(partition: $0.key, fetchOffset: Offset($0.value), partitionMaxBytes: 1 << 20)
                            })],
                            forgottenTopicsData: forget.isEmpty ? [] : [.init(topic: "", topicId: topicID, partitions: forget)])
    }

    static func partitions(_ response: FetchResponse) -> [Int32] {
        response.responses.flatMap { $0.partitions.map(\.partitionIndex) }.sorted()
    }

    @Test func anIncrementalFetchAnswersOnlyWhatChanged() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t", partitions: 2)
        let now = h.clock.now().ms
        try h.produce("t", partition: 0, batch(["a"], timestamps: [now]))
        try h.produce("t", partition: 1, batch(["b"], timestamps: [now]))
        // Opened: a session id, every partition answered.
        let opened = try h.send(Self.request(h, [0: 0, 1: 0], id: 0, epoch: 0), version: 13)
        #expect(opened.errorCode == 0)
        let id = opened.sessionId
        #expect(id > 0)
        #expect(Self.partitions(opened) == [0, 1])
        // Both read to their ends: nothing new, nothing answered (the offsets moved: both named).
        let quiet = try h.send(Self.request(h, [0: 1, 1: 1], id: id, epoch: 1), version: 13)
        #expect(quiet.errorCode == 0 && quiet.sessionId == id)
        #expect(Self.partitions(quiet) == [])
        // An append to partition 1 only: its records and high watermark come, partition 0 stays out,
        // though the request names no partition at all.
        try h.produce("t", partition: 1, batch(["c"], timestamps: [now]))
        let one = try h.send(Self.request(h, [:], id: id, epoch: 2), version: 13)
        #expect(Self.partitions(one) == [1])
        #expect(try fetchedRecords(one.responses[0].partitions[0].records).map(\.value) == ["c"])
        #expect(one.responses[0].partitions[0].highWatermark == Offset(2))
        // Partition 1 forgotten: an append there is not answered any more.
        let forgot = try h.send(Self.request(h, [:], id: id, epoch: 3, forget: [1]), version: 13)
        #expect(Self.partitions(forgot) == [])
        try h.produce("t", partition: 1, batch(["d"], timestamps: [now]))
        try h.produce("t", partition: 0, batch(["e"], timestamps: [now]))
        let after = try h.send(Self.request(h, [:], id: id, epoch: 4), version: 13)
        #expect(Self.partitions(after) == [0])
        #expect(h.broker.fetchSessions.count == 1)
        // Epoch -1 closes it; the fetch is answered in full, sessionless.
        let closed = try h.send(Self.request(h, [0: 0], id: id, epoch: -1), version: 13)
        #expect(closed.sessionId == 0 && Self.partitions(closed) == [0])
        #expect(h.broker.fetchSessions.count == 0)
    }

    @Test func aWrongEpochOrAnUnknownSessionIsRefused() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t", partitions: 2)
        let id = try h.send(Self.request(h, [0: 0], id: 0, epoch: 0), version: 13).sessionId
        #expect(id > 0)
        let stale = try h.send(Self.request(h, [:], id: id, epoch: 5), version: 13)
        #expect(stale.errorCode == ErrorCode.invalidFetchSessionEpoch.rawValue && stale.responses.isEmpty)
        let unknown = try h.send(Self.request(h, [:], id: id &+ 1, epoch: 1), version: 13)
        #expect(unknown.errorCode == ErrorCode.fetchSessionIDNotFound.rawValue)
        // A session opened with topic ids is not continued by names (v12).
        let byName = try h.send(FetchRequest(sessionId: id, sessionEpoch: 1, topics: []), version: 12)
        #expect(byName.errorCode == ErrorCode.fetchSessionTopicIDError.rawValue)
        // The right epoch still works after refusals: they used none up.
        let right = try h.send(Self.request(h, [:], id: id, epoch: 1), version: 13)
        #expect(right.errorCode == 0 && right.sessionId == id)
        // Before v7 there are no sessions: the fields are not on the wire.
        let old = try h.send(h.fetchRequest("t", offset: 0), version: 6)
        #expect(old.sessionId == 0)
    }

    @Test func sessionsAreBoundedAndTheLongIdleMakeRoom() {
        let sessions = FetchSessions(seed: 7)
        var request = FetchRequest(sessionId: 0, sessionEpoch: 0, topics: [
            .init(topic: "t", partitions: [.init(partition: 0, fetchOffset: Offset(0), partitionMaxBytes: 100)]),
        ])
        for i in 0..<FetchSessions.slotsMax {
            guard case .session(let id, true, _) = sessions.plan(request, version: 12, nowMs: Int64(i)) else {
                Issue.record("session \(i) not opened")
                return
            }
            #expect(id > 0)
        }
        #expect(sessions.count == FetchSessions.slotsMax)
        // Full, and none idle long enough: sessionless.
        guard case .sessionless = sessions.plan(request, version: 12, nowMs: 1000) else {
            Issue.record("a session past the slots")
            return
        }
        // The oldest idle past the eviction time gives its slot.
        guard case .session = sessions.plan(request, version: 12, nowMs: FetchSessions.evictableAfterMs + 1) else {
            Issue.record("no slot made")
            return
        }
        #expect(sessions.count == FetchSessions.slotsMax)
        // Too many partitions for one session: sessionless.
        request.topics[0].partitions = (0..<Int32(FetchSessions.partitionsPerSessionMax + 1)).map {
            .init(partition: $0, fetchOffset: Offset(0), partitionMaxBytes: 100)
        }
        guard case .sessionless = sessions.plan(request, version: 12, nowMs: 10 * FetchSessions.evictableAfterMs) else {
            Issue.record("an oversized session")
            return
        }
    }
}
