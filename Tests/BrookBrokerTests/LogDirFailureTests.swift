@testable import BrookBroker
import BrookCore
import BrookProtocol
import BrookStorage
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
}
