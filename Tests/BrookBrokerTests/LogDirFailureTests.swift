@testable import BrookBroker
import BrookCore
import BrookProtocol
import BrookRecords
import BrookStorage
import Foundation
import NIOCore
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing

/// A failed log directory takes its replicas offline and leaves the others serving; the
/// first directory, or the last healthy one, is fatal.
@Suite struct LogDirFailureTests {
    /// A broker with log dirs `ROOT/a` and `ROOT/b`, and topic "t" of 4 partitions over both:
    /// the harness, ROOT, and the partitions in `b`.
    func brokerOnTwoDirs() throws -> (BrokerHarness, String, [Int32]) {
        let root = makeTemporaryDirectory()
        let h = try BrokerHarness([("log.dirs", "\(root)/a,\(root)/b")], directory: root)
        try h.createTopic("t", partitions: 4)
        let inB = h.broker.topics.topic("t")!.hosted.filter { $0.logDirectory.hasPrefix("\(root)/b/") }.map(\.index).sorted()
        return (h, root, inB)
    }

    @Test func aFailedDirectoryTakesItsReplicasOfflineAndLeavesTheOthers() throws {
        let (h, root, inB) = try brokerOnTwoDirs()
        defer { h.close() }
        let topics = h.broker.topics
        let inA = topics.topic("t")!.hosted.filter { $0.logDirectory.hasPrefix("\(root)/a/") }.map(\.index).sorted()
        #expect(inA.count == 2 && inB.count == 2, "the partitions spread over both directories")
        let told = Mutex<[LogDirFailure]>([])
        topics.health.onFailure { failure in told.withLock { $0.append(failure) } }

        // An I/O error of a partition's log fails its directory (a full disk does not).
        let failing = try #require(topics.partition("t", inB[0]))
        _ = failing.noted(.diskFull(path: failing.logDirectory))
        topics.health.drain()
        #expect(topics.health.failedDirectories.isEmpty)
        _ = failing.noted(.io(operation: "write", path: failing.logDirectory + "/x.log", errno: 5))
        topics.health.drain()
        #expect(topics.health.failedDirectories == ["\(root)/b"])

        let failure = try #require(told.withLock { $0.first })
        #expect(failure.directory == "\(root)/b" && !failure.fatal)
        #expect(failure.replicas.map(\.index).sorted() == inB)
        #expect(topics.offlineReplicas(limit: 10)?.map(\.index) == inB)
        #expect(topics.offlineReplicas(limit: 1) == nil)
        for index in inB {
            #expect(topics.partition("t", index) == nil)
            #expect(try h.produce("t", partition: index, batch(["x"], timestamps: [1])).errorCode == ErrorCode.notLeaderOrFollower.rawValue)
            #expect(throws: TopicError.self) { try topics.host(name: "t", index: index) }
        }
        for index in inA {
            #expect(try h.produce("t", partition: index, batch(["x"], timestamps: [1])).errorCode == 0)
        }
        // New partitions go to the healthy directory only.
        try h.createTopic("u", partitions: 2)
        #expect(topics.topic("u")!.hosted.allSatisfy { $0.logDirectory.hasPrefix("\(root)/a/") })
        // Losing the last healthy (and first) directory is fatal.
        topics.failDirectory("\(root)/a", cause: "test")
        #expect(told.withLock { $0.count } == 2 && told.withLock { $0[1].fatal })
    }

    /// A node without a quorum still lists a partition whose log dir failed in Metadata, by its
    /// number: no leader (LEADER_NOT_AVAILABLE), this node its offline replica and its ISR, as
    /// a node on its quorum answers from the image. Left out, librdkafka
    /// would count fewer partitions than the topic has.
    @Test func metadataListsAnOfflineReplicasPartitionWithoutALeader() throws {
        let (h, root, inB) = try brokerOnTwoDirs()
        defer { h.close() }
        try #require(inB.count == 2, "the partitions spread over both directories")
        h.broker.topics.failDirectory("\(root)/b", cause: "test")
        let node = h.broker.config.nodeID
        for request in [MetadataRequest(topics: nil), MetadataRequest(topics: [.init(name: "t")])] {
            let response = try h.send(request, version: 12)
            let topic = try #require(response.topics.first { $0.name == "t" })
            #expect(topic.errorCode == 0 && !topic.isInternal)
            #expect(topic.partitions.map(\.partitionIndex) == [0, 1, 2, 3])
            for p in topic.partitions {
                if inB.contains(p.partitionIndex) {
                    #expect(p.errorCode == ErrorCode.leaderNotAvailable.rawValue && p.leaderId == NodeID(-1))
                    #expect(p.replicaNodes == [node] && p.isrNodes == [node] && p.offlineReplicas == [node])
                } else {
                    #expect(p.errorCode == 0 && p.leaderId == node && p.isrNodes == [node] && p.offlineReplicas.isEmpty)
                }
            }
        }
        // DescribeTopicPartitions the same.
        let described = try h.send(DescribeTopicPartitionsRequest(topics: [.init(name: "t")], responsePartitionLimit: 100), version: 0)
        let partitions = try #require(described.topics.first).partitions
        #expect(partitions.map(\.partitionIndex) == [0, 1, 2, 3])
        #expect(partitions.filter { $0.leaderId == NodeID(-1) }.map(\.partitionIndex) == inB)
        #expect(partitions.allSatisfy { $0.isrNodes == [node] && $0.offlineReplicas == (inB.contains($0.partitionIndex) ? [node] : []) })
    }

    /// A log dir whose disk fails while a start makes the dirs durable (syncfs) fails as it
    /// would at runtime: its replicas go offline and the broker starts on the others (a fault
    /// campaign's broker stopped instead). The first dir failing there stops the start.
    @Test func aLogDirFailingAtTheStartGoesOfflineAndTheBrokerStartsOnTheOthers() throws {
        let (h, root, inB) = try brokerOnTwoDirs()
        defer { h.close() }
        let topics = h.broker.topics
        #expect(inB.count == 2)
        let failing = { (bad: String) -> (String) throws(StorageError) -> Void in
            { dir throws(StorageError) in if dir == bad { throw .io(operation: "syncfs", path: dir, errno: EIO) } }
        }
        #expect(throws: TopicError.self) { try topics.makeLogDirsDurable(failing("\(root)/a")) }
        #expect(topics.health.failedDirectories.isEmpty)
        try topics.makeLogDirsDurable(failing("\(root)/b"))
        #expect(topics.health.failedDirectories == ["\(root)/b"])
        #expect(topics.offlineReplicas(limit: 10)?.map(\.index) == inB)
        for index in inB { #expect(topics.partition("t", index) == nil) }
        #expect(topics.topic("t")!.hosted.count == 2)
    }

    /// A replica that closed (moved away, or its topic deleted) touches none of its files and
    /// fails no directory: work that took it before meets `.closed`, and an ENOENT it met from
    /// its deleted files is no disk failure. Nor is a full disk.
    @Test func aClosedReplicaOrAFullDiskFailsNoDirectory() throws {
        let root = makeTemporaryDirectory()
        let h = try BrokerHarness([("log.dirs", "\(root)/a,\(root)/b")], directory: root)
        defer { h.close() }
        try h.createTopic("t", partitions: 2)
        let topics = h.broker.topics
        let open = try #require(topics.partition("t", 1))
        _ = open.noted(.io(operation: "mkdir", path: open.logDirectory, errno: ENOSPC))
        topics.health.drain()
        #expect(topics.health.failedDirectories.isEmpty, "a full disk is no failure")
        let partition = try #require(topics.partition("t", 0))
        let gone = try #require(topics.unhost(name: "t", index: 0))
        #expect(gone === partition)
        #expect(throws: StorageError.self) { try partition.maintainLog(retention: true, compaction: true) }
        _ = partition.noted(.io(operation: "open", path: partition.logDirectory + "/x.log", errno: ENOENT))
        topics.health.drain()
        #expect(topics.health.failedDirectories.isEmpty)
        #expect(topics.partition("t", 1) != nil)
    }

    /// A log dir that cannot be used stops the start (its replicas, made again elsewhere, would
    /// be empty where the controller counts on their data), and so does a partition with a
    /// directory in two log dirs.
    @Test func aBrokerDoesNotStartWithoutEveryLogDirOrWithAPartitionTwice() throws {
        let root = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        FileManager.default.createFile(atPath: "\(root)/b", contents: Data("not a directory".utf8))
        #expect(throws: (any Error).self) { _ = try BrokerHarness([("log.dirs", "\(root)/a,\(root)/b")], directory: "\(root)/h") }
        try FileManager.default.removeItem(atPath: "\(root)/b")
        do {
            let h = try BrokerHarness([("log.dirs", "\(root)/a,\(root)/b")], directory: "\(root)/h")
            try h.createTopic("t", partitions: 1)
            h.broker.shutdown()
        }
        let hosted = ["\(root)/a/t-0", "\(root)/b/t-0"].filter { FileManager.default.fileExists(atPath: $0) }
        #expect(hosted.count == 1)
        let other = hosted[0].hasPrefix("\(root)/a/") ? "\(root)/b/t-0" : "\(root)/a/t-0"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        #expect(throws: (any Error).self) { _ = try BrokerHarness([("log.dirs", "\(root)/a,\(root)/b")], directory: "\(root)/h") }
    }

    /// A shutdown closes every log in three steps over both log dirs (each made durable by a
    /// syncfs): the next start opens them all clean, with their records and producers.
    @Test func aShutdownLeavesEveryLogCleanInEveryLogDir() throws {
        let root = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dirs = [("log.dirs", "\(root)/a,\(root)/b")]
        let first = try BrokerHarness(dirs, directory: "\(root)/h")
        _ = try first.broker.topics.create(name: "t", partitions: 4, configs: [:])
        for index in Int32(0)..<4 {
            let answer = try first.send(first.produceRequest("t", partition: index, batches: [batch(["a", "b"], timestamps: [1, 2])], acks: 1), version: 9)
            #expect(answer.responses[0].partitionResponses[0].errorCode == 0)
        }
        first.broker.shutdown()
        let second = try BrokerHarness(dirs, directory: "\(root)/h")
        defer { second.broker.shutdown() }
        #expect(second.broker.previousShutdownWasClean)
        let partitions = try (Int32(0)..<4).map { try #require(second.broker.topics.partition("t", $0)) }
        #expect(Set(partitions.map { $0.logDirectory.hasPrefix("\(root)/a") }).count == 2, "both log dirs hold some")
        for partition in partitions {
            #expect(try partition.withLog { $0.segmentsRecoveredAtOpen } == 0)
            #expect(partition.offsets.highWatermark == Offset(2))
        }
    }

    /// A log dir without its meta.properties is a new disk: what the broker held there is gone,
    /// so it registers as after an unclean shutdown (and leaves every ELR).
    @Test func aReplacedDiskMakesTheNextStartUnclean() throws {
        let root = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dirs = [("log.dirs", "\(root)/a,\(root)/b")]
        try BrokerHarness(dirs, directory: "\(root)/h").broker.shutdown()
        let clean = try BrokerHarness(dirs, directory: "\(root)/h")
        #expect(clean.broker.previousShutdownWasClean)
        clean.broker.shutdown()
        try FileManager.default.removeItem(atPath: "\(root)/b")
        let replaced = try BrokerHarness(dirs, directory: "\(root)/h")
        #expect(!replaced.broker.previousShutdownWasClean)
        replaced.broker.shutdown()
    }
}

/// AlterReplicaLogDirs on a single node: a replica moves to another log dir with its records and
/// its producers' state, and serves again from there; naming its current dir cancels a move;
/// a start finishes or gives up a move a crash interrupted.
@Suite struct ReplicaDirMoveTests {
    func alter(_ h: BrokerHarness, _ path: String, _ topic: String, _ partitions: [Int32]) throws -> [Int16] {
        let request = AlterReplicaLogDirsRequest(dirs: [.init(path: path, topics: [.init(name: topic, partitions: partitions)])])
        return try h.send(request, version: 2).results.flatMap { $0.partitions.map(\.errorCode) }
    }

    @Test func aReplicaMovesToAnotherLogDirWithItsRecords() throws {
        let root = makeTemporaryDirectory()
        let h = try BrokerHarness([("log.dirs", "\(root)/a,\(root)/b")], directory: root)
        defer { h.close() }
        try h.createTopic("t", partitions: 1)
        for i in 0..<3 { #expect(try h.produce("t", batch(["v\(i)"], timestamps: [1])).errorCode == 0) }
        let from = try #require(h.broker.topics.partition("t", 0)).logDirectory
        let to = from.hasPrefix("\(root)/a/") ? "\(root)/b" : "\(root)/a"
        #expect(try alter(h, to, "t", [0]) == [0])
        h.broker.topics.moves.drain()
        let moved = try #require(h.broker.topics.partition("t", 0))
        #expect(moved.logDirectory == "\(to)/t-0")
        #expect(!FileManager.default.fileExists(atPath: from) && !FileManager.default.fileExists(atPath: from + ".delete"))
        #expect(try fetchedRecords(h.fetch("t", offset: 0).records).map(\.value) == ["v0", "v1", "v2"])
        #expect(try h.produce("t", batch(["v3"], timestamps: [1])).baseOffset == Offset(3))
        #expect(h.broker.topics.moves.underWay.isEmpty)
        // Already there: nothing to do; errors as Kafka answers them.
        #expect(try alter(h, to, "t", [0]) == [0])
        #expect(try alter(h, "\(root)/nowhere", "t", [0]) == [ErrorCode.logDirNotFound.rawValue])
        #expect(try alter(h, to, "nope", [0]) == [ErrorCode.unknownTopicOrPartition.rawValue])
        #expect(try alter(h, to, "t", [5]) == [ErrorCode.unknownTopicOrPartition.rawValue])
    }

    @Test func aStartFinishesAMoveWhoseCopyWasWholeAndGivesUpAnother() throws {
        let root = makeTemporaryDirectory()
        do {
            let h = try BrokerHarness([("log.dirs", "\(root)/a,\(root)/b")], directory: "\(root)/h")
            try h.createTopic("t", partitions: 3)
            for p in Int32(0)...2 { #expect(try h.produce("t", partition: p, batch(["p\(p)"], timestamps: [1])).errorCode == 0) }
            h.broker.shutdown()
        }
        defer { try? FileManager.default.removeItem(atPath: root) }
        func home(_ p: Int) -> (String, String) {
            let inA = FileManager.default.fileExists(atPath: "\(root)/a/t-\(p)")
            return inA ? ("\(root)/a", "\(root)/b") : ("\(root)/b", "\(root)/a")
        }
        // Partition 0: copied whole, the old dir renamed .delete, the stop came before the last rename.
        let (from0, to0) = home(0)
        try FileManager.default.copyItem(atPath: "\(from0)/t-0", toPath: "\(to0)/t-0.future")
        try FileManager.default.moveItem(atPath: "\(from0)/t-0", toPath: "\(from0)/t-0.delete")
        // Partition 1: a copy under way (no .delete yet), and a .delete left by a move whose copy
        // went with its disk: the old directory comes back.
        let (from1, to1) = home(1)
        try FileManager.default.copyItem(atPath: "\(from1)/t-1", toPath: "\(to1)/t-1.future")
        let (from2, _) = home(2)
        try FileManager.default.moveItem(atPath: "\(from2)/t-2", toPath: "\(from2)/t-2.delete")
        let h = try BrokerHarness([("log.dirs", "\(root)/a,\(root)/b")], directory: "\(root)/h")
        defer { h.broker.shutdown() }
        #expect(try #require(h.broker.topics.partition("t", 2)).logDirectory == "\(from2)/t-2")
        #expect(try fetchedRecords(h.fetch("t", partition: 2, offset: 0).records).map(\.value) == ["p2"])
        #expect(try #require(h.broker.topics.partition("t", 0)).logDirectory == "\(to0)/t-0")
        #expect(try #require(h.broker.topics.partition("t", 1)).logDirectory == "\(from1)/t-1")
        for path in ["\(from0)/t-0.delete", "\(to1)/t-1.future", "\(to0)/t-0.future"] { #expect(!FileManager.default.fileExists(atPath: path), "\(path)") }
        #expect(try fetchedRecords(h.fetch("t", partition: 0, offset: 0).records).map(\.value) == ["p0"])
        #expect(try fetchedRecords(h.fetch("t", partition: 1, offset: 0).records).map(\.value) == ["p1"])
    }

    @Test func anIdempotentProducerGoesOnAfterAMoveAndAMoveCanBeCancelled() throws {
        let root = makeTemporaryDirectory()
        let h = try BrokerHarness([("log.dirs", "\(root)/a,\(root)/b")], directory: root)
        defer { h.close() }
        try h.createTopic("t", partitions: 1)
        let producer = { (sequence: Int32, value: String) in
            RecordBatchBuilder.build(baseOffset: .zero, records: [SimpleRecord(key: nil, value: Array(value.utf8), timestamp: Timestamp(ms: 1))],
                                     producer: .init(id: ProducerID(4242), epoch: ProducerEpoch(0), baseSequence: sequence))
        }
        for i in 0..<5 { #expect(try h.produce("t", producer(Int32(i), "p\(i)")).errorCode == 0) }
        let from = try #require(h.broker.topics.partition("t", 0)).logDirectory
        let fromDir = String(from.dropLast("/t-0".count))
        let to = fromDir == "\(root)/a" ? "\(root)/b" : "\(root)/a"
        #expect(try alter(h, to, "t", [0]) == [0])
        h.broker.topics.moves.drain()
        #expect(try #require(h.broker.topics.partition("t", 0)).logDirectory == "\(to)/t-0")
        // A retry of the last batch is known as one; the next sequence goes on.
        let retry = try h.produce("t", producer(4, "p4"))
        #expect(retry.errorCode == 0 && retry.baseOffset == Offset(4))
        #expect(try h.produce("t", producer(5, "p5")).baseOffset == Offset(5))
        #expect(try h.produce("t", producer(7, "p7")).errorCode == ErrorCode.outOfOrderSequenceNumber.rawValue)
        // A move asked for and then cancelled (its current dir named) before it ran does not happen.
        h.broker.topics.moves.queue.suspend()
        #expect(try alter(h, fromDir, "t", [0]) == [0])
        #expect(h.broker.topics.moves.underWay == ["t-0": fromDir])
        // DescribeLogDirs shows a copy under way as the future replica, in the dir it goes to.
        try FileManager.default.createDirectory(atPath: "\(fromDir)/t-0.future", withIntermediateDirectories: false)
        try Data(count: 100).write(to: URL(fileURLWithPath: "\(fromDir)/t-0.future/00000000000000000000.log"))
        let described = try h.send(DescribeLogDirsRequest(topics: nil), version: 4).results
        let future = described.first { $0.logDir == fromDir }?.topics.first { $0.name == "t" }?.partitions
        #expect(future?.map(\.isFutureKey) == [true] && future?.first?.partitionSize == 100)
        #expect(described.first { $0.logDir == to }?.topics.first { $0.name == "t" }?.partitions.map(\.isFutureKey) == [false])
        try FileManager.default.removeItem(atPath: "\(fromDir)/t-0.future")
        #expect(try alter(h, to, "t", [0]) == [0])
        #expect(h.broker.topics.moves.underWay.isEmpty)
        h.broker.topics.moves.queue.resume()
        h.broker.topics.moves.drain()
        #expect(try #require(h.broker.topics.partition("t", 0)).logDirectory == "\(to)/t-0")
        #expect(!FileManager.default.fileExists(atPath: "\(fromDir)/t-0.future"))
        #expect(try fetchedRecords(h.fetch("t", offset: 0).records).map(\.value) == ["p0", "p1", "p2", "p3", "p4", "p5"])
    }

    /// A single node's commit marker that meets the replica closed for its swap waits for the
    /// copy that takes its place, instead of being dropped (which would leave the transaction
    /// open there for good).
    @Test func aCommitMarkerDuringTheSwapGoesToTheMovedReplica() throws {
        let root = makeTemporaryDirectory()
        let h = try BrokerHarness([("log.dirs", "\(root)/a,\(root)/b")], directory: root)
        defer { h.close() }
        try h.createTopic("tx", partitions: 1)
        let ids = try h.send(InitProducerIdRequest(transactionalId: "app", transactionTimeoutMs: 60_000), version: 4)
        let add = AddPartitionsToTxnRequest(v3AndBelowTransactionalId: "app", v3AndBelowProducerId: ids.producerId,
                                            v3AndBelowProducerEpoch: ids.producerEpoch, v3AndBelowTopics: [.init(name: "tx", partitions: [0])])
        #expect(try h.send(add, version: 3).resultsByTopicV3AndBelow[0].resultsByPartition[0].partitionErrorCode == 0)
        var request = h.produceRequest("tx", batches: [RecordBatchBuilder.build(
            baseOffset: .zero, records: [SimpleRecord(key: nil, value: Array("t1".utf8), timestamp: Timestamp(ms: 1))],
            attributes: BatchAttributes(transactional: true), producer: .init(id: ids.producerId, epoch: ids.producerEpoch, baseSequence: 0))])
        request.transactionalId = "app"
        #expect(try h.send(request, version: 9).responses[0].partitionResponses[0].errorCode == 0)
        // The replica closes as a move's last step does, and its copy comes 200 ms later.
        let old = try #require(h.broker.topics.partition("tx", 0))
        let topics = h.broker.topics
        let id = try #require(topics.topic("tx")).id
        topics.moves.swapping(old.name, true)
        _ = try old.closeForMove(ready: { _ in true }) { _ in 0 }
        let swapped = DispatchSemaphore(value: 0)
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(200)) {
            _ = topics.reopen(old, in: old.logDirectory, topicID: id)
            topics.moves.swapping(old.name, false)
            swapped.signal()
        }
        let end = try h.send(EndTxnRequest(transactionalId: "app", producerId: ids.producerId, producerEpoch: ids.producerEpoch, committed: true), version: 3)
        #expect(end.errorCode == 0)
        swapped.wait()
        var fetch = h.fetchRequest("tx", offset: 0)
        fetch.isolationLevel = 1
        let committed = try h.send(fetch, version: 12).responses[0].partitions[0]
        #expect(committed.lastStableOffset == Offset(2))
        #expect(try fetchedRecords(committed.records).first?.value == "t1")
    }

    /// A topic deleted while its replica was in its last step: the moved files go with it, and
    /// the closed replica takes appends no more.
    @Test func aReplicaWhoseTopicWentDuringItsSwapLeavesNoFiles() throws {
        let root = makeTemporaryDirectory()
        let h = try BrokerHarness([("log.dirs", "\(root)/a,\(root)/b")], directory: root)
        defer { h.close() }
        try h.createTopic("t", partitions: 1)
        #expect(try h.produce("t", batch(["v0"], timestamps: [1])).errorCode == 0)
        let topics = h.broker.topics
        let old = try #require(topics.partition("t", 0))
        let id = try #require(topics.topic("t")).id
        let to = old.logDirectory.hasPrefix("\(root)/a/") ? "\(root)/b/t-0" : "\(root)/a/t-0"
        // Closed and renamed into place as the last step does, then the topic goes.
        _ = try old.closeForMove(ready: { _ in true }) { _ in 0 }
        try FileManager.default.moveItem(atPath: old.logDirectory, toPath: to)
        var bytes = ByteBuffer(bytes: batch(["late"], timestamps: [1]))
        #expect(throws: Partition.AppendError.self) { try old.append(&bytes, now: 1) }
        _ = try topics.delete(name: "t")
        #expect(topics.reopen(old, in: to, topicID: id) == nil)
        #expect(!FileManager.default.fileExists(atPath: to))
    }
}

