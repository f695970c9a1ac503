import BrookBroker
import BrookCore
import BrookGroups
import BrookProtocol
import NIOCore
import Testing

/// The group APIs through `Broker.handle`: a member's whole life, and what survives a restart.
@Suite struct GroupHandlerTests {
    /// A request the broker may hold (JoinGroup, SyncGroup), answered by the time the loop ran.
    func sendHeld<R: KafkaRequest>(_ h: BrokerHarness, _ request: R, version: Int16) throws -> R.Response {
        let outcome = try h.outcome(request, version: version)
        let correlation = h.correlation
        switch outcome {
        case .respond(let encoded):
            return try h.decodeResponse(encoded, R.Response.self, apiKey: R.apiKey, version: version, correlation: correlation)
        case .later(let future), .offloaded(let future, _), .laterThenClose(let future, _):
            var answer: EncodedResponse?
            future.assumeIsolated().whenSuccess { answer = $0 }
            h.loop.run()
            let encoded = try #require(answer, "\(R.apiName) is still held")
            return try h.decodeResponse(encoded, R.Response.self, apiKey: R.apiKey, version: version, correlation: correlation)
        case .none, .close:
            throw UnexpectedOutcome(description: "no answer")
        }
    }

    func joinRequest(_ member: String) -> JoinGroupRequest {
        JoinGroupRequest(groupId: "g", sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000, memberId: member,
                         protocolType: "consumer",
                         protocols: [.init(name: "range", metadata: ByteBuffer(bytes: ConsumerProtocol.encodeSubscription(["t"])))])
    }

    @Test func memberLifeAndOffsetsSurviveRestart() throws {
        let h = try BrokerHarness([("group.initial.rebalance.delay.ms", "0"), ("offsets.topic.num.partitions", "3")])
        defer { h.close() }
        _ = try h.createTopic("t", partitions: 2)
        let found = try h.send(FindCoordinatorRequest(keyType: 0, coordinatorKeys: ["g"]), version: 4)
        #expect(found.coordinators.first?.nodeId == NodeID(1) && found.coordinators.first?.errorCode == 0)

        let first = try sendHeld(h, joinRequest(""), version: 9)
        #expect(first.errorCode == ErrorCode.memberIDRequired.rawValue && !first.memberId.isEmpty)
        let joined = try sendHeld(h, joinRequest(first.memberId), version: 9)
        #expect(joined.errorCode == 0 && joined.generationId == 1 && joined.leader == first.memberId)
        #expect(joined.members.map(\.memberId) == [first.memberId] && joined.protocolName == "range")

        let assignment = ConsumerProtocol.encodeAssignment(["t": [0, 1]])
        let synced = try sendHeld(h, SyncGroupRequest(groupId: "g", generationId: 1, memberId: first.memberId,
                                                      assignments: [.init(memberId: first.memberId, assignment: ByteBuffer(bytes: assignment))]),
                                  version: 5)
        #expect(synced.errorCode == 0 && Array(buffer: synced.assignment) == assignment)
        #expect(try h.send(HeartbeatRequest(groupId: "g", generationId: 1, memberId: first.memberId), version: 4).errorCode == 0)
        #expect(try h.send(HeartbeatRequest(groupId: "g", generationId: 7, memberId: first.memberId), version: 4).errorCode
                == ErrorCode.illegalGeneration.rawValue)

        let commit = try h.send(OffsetCommitRequest(groupId: "g", generationIdOrMemberEpoch: 1, memberId: first.memberId, topics: [
            .init(name: "t", partitions: [.init(partitionIndex: 1, committedOffset: Offset(5), committedLeaderEpoch: LeaderEpoch(0),
                                                committedMetadata: "five")]),
        ]), version: 9)
        #expect(commit.topics[0].partitions[0].errorCode == 0)
        let stale = try h.send(OffsetCommitRequest(groupId: "g", generationIdOrMemberEpoch: 0, memberId: first.memberId, topics: [
            .init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: Offset(1))]),
        ]), version: 9)
        #expect(stale.topics[0].partitions[0].errorCode == ErrorCode.illegalGeneration.rawValue)
        #expect(try h.send(DeleteGroupsRequest(groupsNames: ["g"]), version: 2).results[0].errorCode == ErrorCode.nonEmptyGroup.rawValue)

        // Another broker on the same directory reloads __consumer_offsets.
        h.broker.shutdown()
        let again = try BrokerHarness.reopen(h)
        defer { again.close() }
        let fetched = try again.send(OffsetFetchRequest(groups: [.init(groupId: "g", topics: [.init(name: "t", partitionIndexes: [0, 1])])]),
                                     version: 9)
        let partitions = fetched.groups[0].topics[0].partitions
        #expect(partitions.map(\.committedOffset) == [Offset(-1), Offset(5)])
        #expect(partitions[1].metadata == "five" && partitions[1].committedLeaderEpoch == LeaderEpoch(0))
        let old = try again.send(OffsetFetchRequest(groupId: "g", topics: nil), version: 7)
        #expect(old.topics.map(\.name) == ["t"] && old.topics[0].partitions.map(\.committedOffset) == [Offset(5)])
        let described = try again.send(DescribeGroupsRequest(groups: ["g", "none"]), version: 5).groups
        #expect(described[0].groupState == "Stable" && described[0].members.map(\.memberId) == [first.memberId])
        #expect(Array(buffer: described[0].members[0].memberAssignment) == assignment)
        #expect(described[1].groupState == "Dead")
        let listed = try again.send(ListGroupsRequest(), version: 5).groups
        #expect(listed.map(\.groupId) == ["g"] && listed[0].groupType == "classic")
        // The reloaded member carries on, then leaves; the group is empty and can go.
        #expect(try again.send(HeartbeatRequest(groupId: "g", generationId: 1, memberId: first.memberId), version: 4).errorCode == 0)
        let left = try again.send(LeaveGroupRequest(groupId: "g", members: [.init(memberId: first.memberId)]), version: 5)
        #expect(left.errorCode == 0 && left.members[0].errorCode == 0)
        #expect(try again.send(DeleteGroupsRequest(groupsNames: ["g"]), version: 2).results[0].errorCode == 0)
        #expect(try again.send(ListGroupsRequest(), version: 5).groups.isEmpty)
    }

    /// A step of the wall clock (NTP, or the end of a backward one) does not end a member's
    /// session: the coordinator measures sessions on the monotonic clock.
    @Test func aWallClockStepDoesNotEndASession() throws {
        let h = try BrokerHarness([("group.initial.rebalance.delay.ms", "0"), ("offsets.topic.num.partitions", "1")])
        defer { h.close() }
        _ = try h.createTopic("t", partitions: 1)
        let first = try sendHeld(h, joinRequest(""), version: 9)
        let joined = try sendHeld(h, joinRequest(first.memberId), version: 9)
        #expect(joined.errorCode == 0)
        let synced = try sendHeld(h, SyncGroupRequest(groupId: "g", generationId: 1, memberId: first.memberId,
                                                      assignments: [.init(memberId: first.memberId, assignment: ByteBuffer(bytes: ConsumerProtocol.encodeAssignment(["t": [0]])))]),
                                  version: 5)
        #expect(synced.errorCode == 0)
        h.clock.step(wallMs: 600_000)
        h.clock.advance(ms: 1000)
        h.broker.groups.tick()
        #expect(try h.send(HeartbeatRequest(groupId: "g", generationId: 1, memberId: first.memberId), version: 4).errorCode == 0)
        // Its session does end 10 s (monotonic) after its last heartbeat.
        h.clock.advance(ms: 10_001)
        h.broker.groups.tick()
        #expect(try h.send(HeartbeatRequest(groupId: "g", generationId: 1, memberId: first.memberId), version: 4).errorCode
                == ErrorCode.unknownMemberID.rawValue)
    }

    @Test func kip848MemberGetsEveryPartitionAndTransactionsFindThisNode() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        let topic = try h.createTopic("t", partitions: 3)
        let beat = try h.send(ConsumerGroupHeartbeatRequest(groupId: "k", memberId: "m-1", memberEpoch: 0, rebalanceTimeoutMs: 30_000,
                                                            subscribedTopicNames: ["t"], topicPartitions: []), version: 1)
        #expect(beat.errorCode == 0 && beat.memberEpoch == 1 && beat.memberId == "m-1")
        #expect(beat.assignment?.topicPartitions.map(\.topicId) == [topic.topicId])
        #expect(beat.assignment?.topicPartitions.first?.partitions == [0, 1, 2])
        let described = try h.send(ConsumerGroupDescribeRequest(groupIds: ["k"]), version: 1).groups[0]
        #expect(described.errorCode == 0 && described.groupState == "stable" && described.members.first?.assignment.topicPartitions.first?.topicName == "t")
        let empty = try h.send(ConsumerGroupHeartbeatRequest(groupId: "k", memberId: "", memberEpoch: 0), version: 1)
        #expect(empty.errorCode == ErrorCode.invalidRequest.rawValue)
        let txn = try h.send(FindCoordinatorRequest(keyType: 1, coordinatorKeys: ["tx", ""]), version: 4)
        #expect(txn.coordinators[0].errorCode == 0 && txn.coordinators[0].nodeId == NodeID(1))
        #expect(txn.coordinators[1].errorCode == ErrorCode.invalidRequest.rawValue)
    }
}

extension GroupHandlerTests {
    /// Should `__consumer_offsets` go (clients may not delete it, but an operator can remove it),
    /// the next commit makes it again.
    @Test func commitsGoOnAfterTheOffsetsTopicIsDeleted() throws {
        let h = try BrokerHarness([("offsets.topic.num.partitions", "2")])
        defer { h.close() }
        _ = try h.createTopic("t")
        func commit(_ offset: Int64) throws -> Int16 {
            try h.send(OffsetCommitRequest(groupId: "solo", topics: [
                .init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: Offset(offset))]),
            ]), version: 9).topics[0].partitions[0].errorCode
        }
        #expect(try commit(1) == 0)
        _ = try h.broker.topics.delete(name: "__consumer_offsets")
        #expect(try commit(2) == 0)
        #expect(h.broker.topics.topic("__consumer_offsets")?.partitions.count == 2)
        let fetched = try h.send(OffsetFetchRequest(groupId: "solo", topics: nil), version: 7)
        #expect(fetched.topics.first?.partitions.first?.committedOffset == Offset(2))
    }
}

extension GroupHandlerTests {
    /// KIP-447: offsets a consumer sends to a transaction carry its member and generation, and a
    /// member a rebalance replaced is refused (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID), so its
    /// copies cannot commit beside the new owner's. Offsets without a member (v2, or a client
    /// outside group management) are taken, as Kafka takes them.
    @Test func transactionalOffsetsFromAReplacedMemberAreRefused() throws {
        let h = try BrokerHarness([("group.initial.rebalance.delay.ms", "0")])
        defer { h.close() }
        _ = try h.createTopic("t")
        let first = try sendHeld(h, joinRequest(""), version: 9)
        let joined = try sendHeld(h, joinRequest(first.memberId), version: 9)
        #expect(joined.errorCode == 0 && joined.generationId == 1)
        let ids = try h.send(InitProducerIdRequest(transactionalId: "copier", transactionTimeoutMs: 60_000), version: 4)
        #expect(try h.send(AddOffsetsToTxnRequest(transactionalId: "copier", producerId: ids.producerId, producerEpoch: ids.producerEpoch,
                                                  groupId: "g"), version: 3).errorCode == 0)
        func send(generation: Int32, member: String, version: Int16 = 3) throws -> Int16 {
            try h.send(TxnOffsetCommitRequest(transactionalId: "copier", groupId: "g", producerId: ids.producerId,
                                              producerEpoch: ids.producerEpoch, generationId: generation, memberId: member,
                                              topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: Offset(7))])]),
                       version: version).topics[0].partitions[0].errorCode
        }
        #expect(try send(generation: 0, member: first.memberId) == ErrorCode.illegalGeneration.rawValue)
        #expect(try send(generation: 1, member: "gone") == ErrorCode.unknownMemberID.rawValue)
        #expect(try send(generation: 1, member: first.memberId) == 0)
        #expect(try send(generation: -1, member: "", version: 2) == 0)
        // A group this coordinator has never seen: only a commit from outside group management.
        #expect(try h.send(AddOffsetsToTxnRequest(transactionalId: "copier", producerId: ids.producerId, producerEpoch: ids.producerEpoch,
                                                  groupId: "unseen"), version: 3).errorCode == 0)
        let other = try h.send(TxnOffsetCommitRequest(transactionalId: "copier", groupId: "unseen", producerId: ids.producerId,
                                                      producerEpoch: ids.producerEpoch, generationId: 3, memberId: "m",
                                                      topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: Offset(1))])]),
                               version: 3)
        #expect(other.topics[0].partitions[0].errorCode == ErrorCode.illegalGeneration.rawValue)
    }
}

extension BrokerHarness {
    /// A new harness over an existing harness's directory (the old broker shut down first).
    static func reopen(_ old: BrokerHarness) throws -> BrokerHarness {
        try BrokerHarness(clock: old.clock, directory: old.directory)
    }
}
