@testable import BrookBroker
import BrookCore
import BrookProtocol
import BrookStorage
import Foundation
import Synchronization
import Testing

/// A failed log directory takes its replicas offline and leaves the others serving; the
/// first directory, or the last healthy one, is fatal.
@Suite struct LogDirFailureTests {
    @Test func aFailedDirectoryTakesItsReplicasOfflineAndLeavesTheOthers() throws {
        let root = makeTemporaryDirectory()
        let h = try BrokerHarness([("log.dirs", "\(root)/a,\(root)/b")], directory: root)
        defer { h.close() }
        try h.createTopic("t", partitions: 4)
        let topics = h.broker.topics
        let inB = topics.topic("t")!.hosted.filter { $0.logDirectory.hasPrefix("\(root)/b/") }.map(\.index).sorted()
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

/// AlterReplicaLogDirs on a single node: a replica moves to another log dir with its records,
/// and serves again from there; a start finishes or gives up a move a crash interrupted.
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
        h.broker.topics.moves.sync {}
        let moved = try #require(h.broker.topics.partition("t", 0))
        #expect(moved.logDirectory == "\(to)/t-0")
        #expect(!FileManager.default.fileExists(atPath: from) && !FileManager.default.fileExists(atPath: from + ".delete"))
        #expect(try fetchedRecords(h.fetch("t", offset: 0).records).map(\.value) == ["v0", "v1", "v2"])
        #expect(try h.produce("t", batch(["v3"], timestamps: [1])).baseOffset == Offset(3))
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
            try h.createTopic("t", partitions: 2)
            for p in Int32(0)...1 { #expect(try h.produce("t", partition: p, batch(["p\(p)"], timestamps: [1])).errorCode == 0) }
            h.broker.shutdown()
        }
        defer { try? FileManager.default.removeItem(atPath: root) }
        func home(_ p: Int) -> (String, String) {
            let inA = FileManager.default.fileExists(atPath: "\(root)/a/t-\(p)")
            return inA ? ("\(root)/a", "\(root)/b") : ("\(root)/b", "\(root)/a")
        }
        // Partition 0: copied whole, the old dir renamed .delete, the stop came before the last rename.
        let (from0, to0) = home(0)
        try FileManager.default.copyItem(atPath: "\(from0)/t-0", toPath: "\(to0)/t-0.move")
        try FileManager.default.moveItem(atPath: "\(from0)/t-0", toPath: "\(from0)/t-0.delete")
        // Partition 1: a copy under way (no .delete yet).
        let (from1, to1) = home(1)
        try FileManager.default.copyItem(atPath: "\(from1)/t-1", toPath: "\(to1)/t-1.move")
        let h = try BrokerHarness([("log.dirs", "\(root)/a,\(root)/b")], directory: "\(root)/h")
        defer { h.broker.shutdown() }
        #expect(try #require(h.broker.topics.partition("t", 0)).logDirectory == "\(to0)/t-0")
        #expect(try #require(h.broker.topics.partition("t", 1)).logDirectory == "\(from1)/t-1")
        for path in ["\(from0)/t-0.delete", "\(to1)/t-1.move", "\(to0)/t-0.move"] { #expect(!FileManager.default.fileExists(atPath: path), "\(path)") }
        #expect(try fetchedRecords(h.fetch("t", partition: 0, offset: 0).records).map(\.value) == ["p0"])
        #expect(try fetchedRecords(h.fetch("t", partition: 1, offset: 0).records).map(\.value) == ["p1"])
    }
}
