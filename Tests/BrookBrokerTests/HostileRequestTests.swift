@testable import BrookBroker
import BrookCore
import BrookProtocol
import BrookRecords
import BrookStorage
import Foundation
import NIOCore
import NIOEmbedded
import Testing

/// Issue 14's findings, each as the request that found it: the broker answers with an error
/// code (or closes the connection) and keeps serving.
@Suite struct HostileRequestTests {
    static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            out.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return out
    }

    /// A batch from `batch(_:timestamps:)` with its attributes changed (and its CRC made right).
    static func withAttributes(_ batch: [UInt8], adding bits: UInt16) -> [UInt8] {
        var bytes = batch
        let at = RecordBatchHeader.Field.attributes
        let attributes = (UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1])) | bits
        bytes[at] = UInt8(attributes >> 8)
        bytes[at + 1] = UInt8(attributes & 0xFF)
        bytes.withUnsafeMutableBytes { RecordBatchPatch.updateChecksum($0) }
        return bytes
    }

    /// The frame that crashed the broker: CreatePartitions v3, count Int32.min with one
    /// assignment, for a one-partition topic (`topic.count - current` trapped).
    @Test func createPartitionsWithACountBelowInt32MinIsRefused() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("fuzz-topic")
        let frame = Self.bytes(hex: "0025000300001d94000570726f626500020b66757a7a2d746f706963800000000202000000000000000003e80000")
        let outcome = try h.broker.handle(frame: ByteBuffer(bytes: frame), eventLoop: h.loop)
        let encoded = try #require(try h.answer(outcome, what: "CreatePartitions"))
        let response = try h.decodeResponse(encoded, CreatePartitionsResponse.self, apiKey: 37, version: 3, correlation: 0x1d94)
        #expect(response.results.map(\.errorCode) != [0])
        // Every extreme count, with and without assignments, gets an error code.
        for count in [Int32.min, Int32.min + 1, -1, 0, 1, Int32.max] {
            for assignments in [nil, [CreatePartitionsRequest.CreatePartitionsTopic.CreatePartitionsAssignment(brokerIds: [NodeID(1)])]] {
                let request = CreatePartitionsRequest(topics: [.init(name: "fuzz-topic", count: count, assignments: assignments)])
                #expect(try h.send(request, version: 3).results[0].errorCode != 0, "count \(count)")
            }
        }
        #expect(h.broker.topics.topic("fuzz-topic")?.partitions.count == 1)
    }

    /// Kafka's LogValidator: clients may not write control batches, with or without a producer id.
    @Test func clientControlBatchIsRefused() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let now = h.clock.now().ms
        let control = Self.withAttributes(batch(["x"], timestamps: [now]), adding: 0x20)
        #expect(try h.produce("t", control).errorCode == ErrorCode.invalidRecord.rawValue)
        // Behind a good batch in the same request: the whole append is refused.
        let request = h.produceRequest("t", batches: [batch(["good"], timestamps: [now]), control])
        #expect(try h.send(request, version: 9).responses[0].partitionResponses[0].errorCode == ErrorCode.invalidRecord.rawValue)
        let transactionalControl = Self.withAttributes(batch(["y"], timestamps: [now]), adding: 0x30)
        #expect(try h.produce("t", transactionalControl).errorCode != 0)
        #expect(h.broker.topics.partition("t", 0)?.offsets.highWatermark == Offset(0))
    }

    /// message.timestamp.after.max.ms (1 hour by default) and message.timestamp.before.max.ms.
    @Test func timestampsOutsideTheTopicsBoundsAreRefused() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        try h.createTopic("recent", configs: ["message.timestamp.before.max.ms": "60000"])
        try h.createTopic("appended", configs: ["message.timestamp.type": "LogAppendTime"])
        let now = h.clock.now().ms
        let invalid = ErrorCode.invalidTimestamp.rawValue
        #expect(try h.produce("t", batch(["ahead"], timestamps: [now + 2 * 3_600_000])).errorCode == invalid)
        #expect(try h.produce("t", batch(["max"], timestamps: [Int64.max])).errorCode == invalid)
        #expect(try h.produce("t", batch(["ok", "late"], timestamps: [now, now + 3_600_001])).errorCode == invalid)
        #expect(try h.produce("t", batch(["edge"], timestamps: [now + 3_600_000])).errorCode == 0)
        // A record beyond the bounds behind a header that claims otherwise: every record is checked.
        var forged = batch(["a", "b"], timestamps: [now, now + 2 * 3_600_000])
        let at = RecordBatchHeader.Field.maxTimestamp
        withUnsafeBytes(of: now.bigEndian) { for (i, byte) in $0.enumerated() { forged[at + i] = byte } }
        forged.withUnsafeMutableBytes { RecordBatchPatch.updateChecksum($0) }
        #expect(try h.produce("t", forged).errorCode == invalid)
        #expect(try h.produce("t", batch(["old"], timestamps: [0])).errorCode == 0)
        #expect(try h.produce("t", batch(["min"], timestamps: [Int64.min])).errorCode == invalid)  // beyond any bound
        #expect(try h.produce("t", batch(["none"], timestamps: [-1])).errorCode == 0)
        #expect(try h.produce("recent", batch(["old"], timestamps: [now - 60_001])).errorCode == invalid)
        #expect(try h.produce("recent", batch(["fine"], timestamps: [now - 60_000])).errorCode == 0)
        // LogAppendTime overwrites the producer's timestamps, so they are not checked.
        #expect(try h.produce("appended", batch(["any"], timestamps: [Int64.max])).errorCode == 0)
        // The bounds are validated as configs.
        for (key, value) in [("message.timestamp.after.max.ms", "-1"), ("message.timestamp.before.max.ms", "-1")] {
            let request = CreateTopicsRequest(topics: [.init(name: "bad", numPartitions: 1, replicationFactor: 1,
                                                             configs: [.init(name: key, value: value)])])
            #expect(try h.send(request, version: 7).topics[0].errorCode == ErrorCode.invalidConfig.rawValue, "\(key)=\(value)")
        }
    }

    /// A parked fetch ends with its connection: unparked everywhere, its timeout cancelled.
    @Test func parkedFetchEndsWithItsConnection() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t", partitions: 3)
        let scope = ConnectionScope(eventLoop: h.loop)
        var request = h.fetchRequest("t", offset: 0, minBytes: Int32.max, maxWaitMs: Int32.max)
        request.topics[0].partitions = (0..<3).map { .init(partition: $0, fetchOffset: .zero, partitionMaxBytes: 1 << 20) }
        guard case .later(let future) = try h.broker.handle(frame: h.frame(request, version: 12), eventLoop: h.loop, connection: scope) else {
            Issue.record("not parked")
            return
        }
        var failure: (any Error)?
        future.assumeIsolated().whenFailure { failure = $0 }
        h.loop.run()
        let partitions = (0..<3).map { h.broker.topics.partition("t", $0)! }
        #expect(partitions.map(\.parkedCount) == [1, 1, 1])
        #expect(scope.waitingCount == 1)
        scope.close()
        #expect(failure is ConnectionClosed)
        #expect(partitions.map(\.parkedCount) == [0, 0, 0])
        #expect(scope.waitingCount == 0)
        // A fetch arriving on a closed connection does not park at all.
        guard case .later(let late) = try h.broker.handle(frame: h.frame(request, version: 12), eventLoop: h.loop, connection: scope) else {
            Issue.record("not parked")
            return
        }
        var lateFailure: (any Error)?
        late.assumeIsolated().whenFailure { lateFailure = $0 }
        h.loop.run()
        #expect(lateFailure is ConnectionClosed)
        #expect(partitions.map(\.parkedCount) == [0, 0, 0])
    }

    /// min_bytes counts what arrives on every partition of the fetch; appends smaller than what
    /// is missing leave it parked.
    @Test func parkedFetchCompletesWhenItsPartitionsTogetherHaveMinBytes() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t", partitions: 2)
        let now = h.clock.now().ms
        let one = batch(["0123456789"], timestamps: [now])
        var request = h.fetchRequest("t", offset: 0, minBytes: Int32(one.count * 3), maxWaitMs: 10_000)
        request.topics[0].partitions = (0..<2).map { .init(partition: $0, fetchOffset: .zero, partitionMaxBytes: 1 << 20) }
        guard case .later(let future) = try h.outcome(request, version: 12) else {
            Issue.record("not parked")
            return
        }
        var answered = false
        future.assumeIsolated().whenSuccess { _ in answered = true }
        try h.produce("t", partition: 0, one)
        try h.produce("t", partition: 1, one)
        h.loop.run()
        #expect(!answered)
        try h.produce("t", partition: 1, one)
        h.loop.run()
        #expect(answered)
        #expect((0..<2).map { h.broker.topics.partition("t", $0)!.parkedCount } == [0, 0])
    }

    /// A failed acks=0 produce closes the connection (Kafka's only signal to such a client); a
    /// successful one is not answered.
    @Test func failedAcksZeroProduceClosesTheConnection() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let now = h.clock.now().ms
        let good = h.produceRequest("t", batches: [batch(["a"], timestamps: [now])], acks: 0)
        guard case .none = try h.outcome(good, version: 9) else { Issue.record("acks=0 answered"); return }
        let bad = h.produceRequest("missing-topic", batches: [batch(["a"], timestamps: [now])], acks: 0)
        guard case .close = try h.outcome(bad, version: 9) else { Issue.record("a failed acks=0 produce left the connection open"); return }
    }

    /// Fetch's and ListOffsets' isolation_level is 0 or 1.
    @Test func fetchWithAnUnknownIsolationLevelIsRefused() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        var request = h.fetchRequest("t", offset: 0)
        for level: Int8 in [7, -1, 2, .min, .max] {
            request.isolationLevel = level
            let answer = try h.send(request, version: 12)
            #expect(answer.errorCode == ErrorCode.invalidRequest.rawValue)
            // Before v7 there is no top-level error: every partition carries it.
            let old = try h.send(request, version: 4)
            #expect(old.responses.flatMap(\.partitions).map(\.errorCode) == [ErrorCode.invalidRequest.rawValue])
            // ListOffsets too.
            let list = ListOffsetsRequest(replicaId: NodeID(-1), isolationLevel: level, topics: [
                .init(name: "t", partitions: [.init(partitionIndex: 0, timestamp: -1)]),
            ])
            #expect(try h.send(list, version: 7).topics[0].partitions[0].errorCode == ErrorCode.invalidRequest.rawValue)
        }
    }

    /// The coordinators' topics cannot be deleted by a client: committed offsets and
    /// transactions would be lost.
    @Test func internalTopicsCannotBeDeleted() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        for name in ["__consumer_offsets", "__transaction_state"] {
            _ = try h.broker.topics.create(name: name, partitions: 1, configs: [:])
            let request = DeleteTopicsRequest(topicNames: [name], timeoutMs: 1000)
            let result = try h.send(request, version: 4).responses[0]
            #expect(result.errorCode == ErrorCode.invalidRequest.rawValue, "\(name)")
            #expect(h.broker.topics.topic(name) != nil)
        }
    }
}

extension HostileRequestTests {
    /// Kafka's validators for the topic configs the storage engine does not read itself.
    @Test func configsOutsideKafkasRangesAreRefused() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        let bad = [("min.insync.replicas", "0"), ("min.insync.replicas", "-1"), ("file.delete.delay.ms", "-1"),
                   ("segment.jitter.ms", "-5"), ("max.compaction.lag.ms", "0"), ("min.cleanable.dirty.ratio", "1.5"),
                   ("min.cleanable.dirty.ratio", "-0.1"), ("local.retention.ms", "-3")]
        for (key, value) in bad {
            let request = CreateTopicsRequest(topics: [.init(name: "bad", numPartitions: 1, replicationFactor: 1,
                                                             configs: [.init(name: key, value: value)])])
            #expect(try h.send(request, version: 7).topics[0].errorCode == ErrorCode.invalidConfig.rawValue, "\(key)=\(value)")
        }
        try h.createTopic("good", configs: ["min.insync.replicas": "2", "file.delete.delay.ms": "0", "min.cleanable.dirty.ratio": "1"])
    }
}

extension HostileRequestTests {
    /// Partitions per request (Kafka 4's 10,000) and per broker (`Limits.partitionsPerBrokerMax`); a
    /// create that cannot open its partitions leaves no directory behind.
    @Test func partitionLimitsAndAtomicCreation() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        let tooMany = CreateTopicsRequest(topics: [
            .init(name: "a", numPartitions: 6000, replicationFactor: 1),
            .init(name: "b", numPartitions: 6000, replicationFactor: 1),
        ])
        #expect(try h.send(tooMany, version: 7).topics.map(\.errorCode) == [ErrorCode.policyViolation.rawValue, ErrorCode.policyViolation.rawValue])
        #expect(h.broker.topics.topic("a") == nil && h.broker.topics.topic("b") == nil)
        try h.createTopic("t")
        let grow = CreatePartitionsRequest(topics: [.init(name: "t", count: 20_000)])
        #expect(try h.send(grow, version: 3).results[0].errorCode == ErrorCode.policyViolation.rawValue)
        #expect(h.broker.topics.partitionCount == 1)

        #expect(h.broker.topics.partitionsMax == Limits.partitionsPerBrokerMax)
        // What segments keep open or mapped at once: the limits less a share for the rest.
        #expect(OnDemandPool.filesCapacity(openFileLimit: 1024) == 768)
        #expect(OnDemandPool.filesCapacity(openFileLimit: 20_000) == 15_904)
        #expect(OnDemandPool.filesCapacity(openFileLimit: 100) == 64)
        #expect(OnDemandPool.mapsCapacity(mapCountLimit: 65_530) == 49_148)
        #expect(OnDemandPool.mapsCapacity(mapCountLimit: 1_000_000) == 983_616)
    }

    @Test func aBrokerAtItsPartitionLimitRefusesMore() throws {
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let registry = TopicRegistry(logDirs: [directory], brokerDefaults: [:], clock: ManualClock(), logger: quietLogger, partitionsMax: 5)
        try registry.load()
        defer { registry.closeAllLogs() }
        _ = try registry.create(name: "four", partitions: 4, configs: [:])
        #expect(throws: TopicError.self) { _ = try registry.create(name: "two", partitions: 2, configs: [:]) }
        #expect(throws: TopicError.self) { try registry.addPartitions(name: "four", totalCount: 6, validateOnly: true) }
        try registry.addPartitions(name: "four", totalCount: 5, validateOnly: false)
        #expect(registry.partitionCount == 5)
        _ = try registry.delete(name: "four")
        #expect(registry.partitionCount == 0)
        _ = try registry.create(name: "two", partitions: 2, configs: [:])
        #expect(!FileManager.default.fileExists(atPath: directory + "/four-0"))
    }

    /// A partition that cannot be opened fails the whole create, and the directories it made go.
    @Test func aFailedCreateLeavesNoDirectories() throws {
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let registry = TopicRegistry(logDirs: [directory], brokerDefaults: [:], clock: ManualClock(), logger: quietLogger)
        try registry.load()
        defer { registry.closeAllLogs() }
        // partition 3's path is taken by a file, so opening it fails
        FileManager.default.createFile(atPath: directory + "/t-3", contents: Data("not a directory".utf8))
        #expect(throws: TopicError.self) { _ = try registry.create(name: "t", partitions: 6, configs: [:]) }
        let left = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("t-") }
        #expect(left == ["t-3"])
        #expect(registry.partitionCount == 0)
        #expect(registry.topic("t") == nil)
    }
}

extension HostileRequestTests {
    /// A held JoinGroup is let go when its connection closes; one answered first is not touched.
    @Test func heldGroupRequestsEndWithTheirConnection() throws {
        let h = try BrokerHarness([("group.initial.rebalance.delay.ms", "3000")])
        defer { h.close() }
        try h.createTopic("t")
        let scope = ConnectionScope(eventLoop: h.loop)
        func join(_ member: String) throws -> EventLoopFuture<EncodedResponse>? {
            let request = JoinGroupRequest(groupId: "g", sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000, memberId: member,
                                           protocolType: "consumer", protocols: [.init(name: "range", metadata: ByteBuffer(bytes: [0, 0]))])
            guard case .later(let future) = try h.broker.handle(frame: h.frame(request, version: 9), eventLoop: h.loop, connection: scope) else {
                return nil
            }
            return future
        }
        // v9 asks a new member to come back with its id (answered at once), then holds its join.
        var memberID = ""
        try #require(try join("")).assumeIsolated().whenSuccess { encoded in
            memberID = (try? h.decodeResponse(encoded, JoinGroupResponse.self, apiKey: 11, version: 9, correlation: h.correlation).memberId) ?? ""
        }
        h.loop.run()
        #expect(!memberID.isEmpty)
        #expect(scope.waitingCount == 0)
        let held = try #require(try join(memberID))
        var failure: (any Error)?
        held.assumeIsolated().whenFailure { failure = $0 }
        h.loop.run()
        #expect(h.broker.groups.heldCount == 1)
        #expect(scope.waitingCount == 1)
        scope.close()
        #expect(failure is ConnectionClosed)
        #expect(h.broker.groups.heldCount == 0)
        // The rebalance goes on without it and nothing answers twice.
        h.loop.advanceTime(by: .seconds(4))
        h.clock.advance(ms: 4000)
        h.broker.groups.tick()
        h.loop.run()
    }
}

extension HostileRequestTests {
    /// A producer's base offset means nothing (the broker assigns offsets), and at Int64's ends
    /// it must not trap (found by the hostile-client test: `lastOffset` overflowed).
    @Test func producedBaseOffsetsAtTheEndsAreReassigned() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let now = h.clock.now().ms
        for base in [Int64.max, Int64.max - 1, Int64.min, -1] {
            var bytes = batch(["a", "b", "c"], timestamps: [now, now, now])
            withUnsafeBytes(of: base.bigEndian) { for (i, byte) in $0.enumerated() { bytes[i] = byte } }
            #expect(try h.produce("t", bytes).errorCode == 0, "base offset \(base)")
        }
        #expect(h.broker.topics.partition("t", 0)?.offsets.highWatermark == Offset(12))
        #expect(try fetchedRecords(h.fetch("t", offset: 0).records).map(\.offset) == Array(0..<12))
    }
}

extension HostileRequestTests {
    /// A topic's name is taken before its directories are opened: a second create of it while
    /// the first runs is refused (and auto-creation answers LEADER_NOT_AVAILABLE), so two never
    /// open or remove each other's directories (found in review).
    @Test func aNameBeingCreatedIsTaken() throws {
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let registry = TopicRegistry(logDirs: [directory], brokerDefaults: [:], clock: ManualClock(), logger: quietLogger)
        try registry.load()
        defer { registry.closeAllLogs() }
        _ = try registry.beginCreate(name: "x", partitions: 2)
        #expect(throws: TopicError.self) { _ = try registry.create(name: "x", partitions: 1, configs: [:]) }
        #expect(registry.partitionCount == 2)
        #expect(registry.topic("x") == nil)
    }
}

extension HostileRequestTests {
    /// One connection parks at most `waitingRequestsPerConnectionMax` fetches; more are answered
    /// at once, so a few connections cannot take a partition's parked slots from everyone else.
    @Test func aConnectionParksABoundedNumberOfFetches() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let scope = ConnectionScope(eventLoop: h.loop)
        let request = h.fetchRequest("t", offset: 0, minBytes: Int32.max, maxWaitMs: Int32.max)
        var answeredAtOnce = 0
        var futures: [EventLoopFuture<EncodedResponse>] = []
        for _ in 0..<(Limits.waitingRequestsPerConnectionMax + 4) {
            switch try h.broker.handle(frame: h.frame(request, version: 12), eventLoop: h.loop, connection: scope) {
            case .later(let future): futures.append(future)
            case .respond: answeredAtOnce += 1
            default: Issue.record("neither parked nor answered")
            }
        }
        h.loop.run()
        #expect(futures.count == Limits.waitingRequestsPerConnectionMax && answeredAtOnce == 4)
        #expect(h.broker.topics.partition("t", 0)?.parkedCount == Limits.waitingRequestsPerConnectionMax)
        for future in futures { future.assumeIsolated().whenComplete { _ in } }
        scope.close()
        #expect(h.broker.topics.partition("t", 0)?.parkedCount == 0)
    }
}
