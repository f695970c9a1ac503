@testable import BrookBroker
import BrookCore
import BrookProtocol
import BrookStorage
import Foundation
#if canImport(Glibc)
import Glibc
#endif
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
