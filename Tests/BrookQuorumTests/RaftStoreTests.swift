import BrookCore
@testable import BrookQuorum
import BrookRaft
import BrookStorage
import Foundation
import Logging
import NIOCore
import Testing

func scratchDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "brook-quorum-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try? FileManager.default.removeItem(atPath: path)
    return path
}

func entry(_ index: Int64, _ term: Int64, _ text: String = "", kind: Entry.Kind = .data) -> Entry {
    Entry(term: Term(term), index: LogIndex(index), kind: kind, data: Array(text.utf8))
}

func ready(hardState: HardState? = nil, snapshot: Snapshot? = nil, entries: [Entry] = []) -> Ready {
    Ready(hardState: hardState, snapshot: snapshot, entries: entries, messages: [], committedEntries: [])
}

/// The durable Raft log: what a restarted controller finds is what it fsynced.
@Suite struct RaftStoreTests {
    let logger = Logger(label: "test")

    @Test func entriesHardStateAndVoteSurviveAReopen() throws {
        let dir = scratchDirectory("reopen")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try RaftStore(directory: dir, logger: logger)
        let written = [entry(1, 1, kind: .noop), entry(2, 1, "a"), entry(3, 2, "b")]
        try store.save(ready(hardState: HardState(term: Term(2), votedFor: NodeID(3), commit: LogIndex(2)), entries: written))
        try store.close()
        let loaded = try RaftStore(directory: dir, logger: logger).load()
        #expect(loaded.entries == written)
        #expect(loaded.hardState == HardState(term: Term(2), votedFor: NodeID(3), commit: LogIndex(2)))
        #expect(loaded.snapshot == nil)
    }

    @Test func aConflictingTailIsReplaced() throws {
        let dir = scratchDirectory("conflict")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try RaftStore(directory: dir, logger: logger)
        try store.save(ready(hardState: HardState(term: Term(1)), entries: [entry(1, 1), entry(2, 1, "x"), entry(3, 1, "y")]))
        try store.save(ready(hardState: HardState(term: Term(2)), entries: [entry(2, 2, "z")]))
        #expect(try store.load().entries == [entry(1, 1), entry(2, 2, "z")])
    }

    @Test func aSnapshotDropsThePrefixAndAReceivedOneReplacesTheLog() throws {
        let dir = scratchDirectory("snapshot")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try RaftStore(directory: dir, logger: logger)
        try store.save(ready(hardState: HardState(term: Term(1), commit: LogIndex(3)), entries: (1...4).map { entry($0, 1, "e\($0)") }))
        let own = Snapshot(index: LogIndex(3), term: Term(1), configuration: Configuration(voters: [NodeID(1), NodeID(2), NodeID(3)]), data: [1, 2, 3])
        try store.install(own)
        var loaded = try RaftStore(directory: dir, logger: logger).load()
        #expect(loaded.snapshot == own)
        #expect(loaded.entries == [entry(4, 1, "e4")])

        let received = Snapshot(index: LogIndex(10), term: Term(3), configuration: Configuration(voters: [NodeID(1), NodeID(2)]), data: [9])
        let reopened = try RaftStore(directory: dir, logger: logger)
        _ = try reopened.load()
        try reopened.save(ready(hardState: HardState(term: Term(3), commit: LogIndex(10)), snapshot: received, entries: [entry(11, 3, "after")]))
        loaded = try reopened.load()
        #expect(loaded.snapshot == received)
        #expect(loaded.entries == [entry(11, 3, "after")])
    }

    @Test func aCommitIndexPastTheLogsEndIsLoweredAtLoad() throws {
        let dir = scratchDirectory("commit")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try RaftStore(directory: dir, logger: logger)
        // The hard state is written first: a crash before the entries leaves it ahead.
        try store.save(ready(hardState: HardState(term: Term(1), commit: LogIndex(9)), entries: [entry(1, 1)]))
        #expect(try store.load().hardState.commit == LogIndex(1))
    }

    @Test func aCorruptSnapshotIsRefusedNotGuessed() throws {
        let dir = scratchDirectory("corrupt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try RaftStore(directory: dir, logger: logger)
        try store.save(ready(hardState: HardState(term: Term(1), commit: LogIndex(1)), entries: [entry(1, 1)]))
        try store.install(Snapshot(index: LogIndex(1), term: Term(1), configuration: Configuration(voters: [NodeID(1)]), data: [7, 7]))
        var bytes = try #require(FileManager.default.contents(atPath: dir + "/snapshot"))
        bytes[bytes.count - 6] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: dir + "/snapshot"))
        #expect(throws: StorageError.self) { try RaftStore(directory: dir, logger: logger).load() }
    }
}

/// The controllers' framing: every message round-trips, bad frames are refused.
@Suite struct WireTests {
    static let snapshot = Snapshot(index: LogIndex(5), term: Term(2), configuration: Configuration(voters: [NodeID(1), NodeID(4)]), data: [1, 2])
    static let bodies: [Message.Body] = [
        .preVote(lastIndex: LogIndex(3), lastTerm: Term(1)), .preVoteResponse(granted: true),
        .vote(lastIndex: LogIndex(3), lastTerm: Term(1), transfer: true), .voteResponse(granted: false),
        .append(prevIndex: LogIndex(2), prevTerm: Term(1), entries: [entry(3, 2, "x"), entry(4, 2, kind: .configuration)], commit: LogIndex(2)),
        .appendResponse(success: false, index: LogIndex(7), hint: LogIndex(4)), .installSnapshot(snapshot), .timeoutNow,
    ]

    @Test func everyMessageRoundTrips() {
        for body in Self.bodies {
            let frame = Frame.raft(Message(from: NodeID(1), to: NodeID(2), term: Term(9), body: body))
            var buffer = ByteBuffer()
            frame.encode(into: &buffer)
            #expect(buffer.readInteger(as: UInt32.self) == UInt32(buffer.readableBytes))
            #expect(Frame.decode(&buffer) == frame)
        }
        for request in [QuorumRequest.status, .propose([1, 2]), .read(LogIndex(4)), .transfer(NodeID(2))] {
            var buffer = ByteBuffer()
            Frame.request(id: 7, request).encode(into: &buffer)
            buffer.moveReaderIndex(forwardBy: 4)
            #expect(Frame.decode(&buffer) == .request(id: 7, request))
        }
    }

    @Test func truncatedOrUnknownFramesDoNotDecode() {
        var full = ByteBuffer()
        Frame.raft(Message(from: NodeID(1), to: NodeID(2), term: Term(1), body: Self.bodies[4])).encode(into: &full)
        full.moveReaderIndex(forwardBy: 4)
        for cut in 0..<full.readableBytes {
            var part = full.getSlice(at: full.readerIndex, length: cut)!
            #expect(Frame.decode(&part) == nil, "a frame cut at \(cut) bytes")
        }
        var unknown = ByteBuffer(bytes: [9, 0, 0])
        #expect(Frame.decode(&unknown) == nil)
        // Entries that are not contiguous after prevIndex are refused.
        var gap = ByteBuffer()
        Frame.raft(Message(from: NodeID(1), to: NodeID(2), term: Term(1), body: .append(prevIndex: LogIndex(2), prevTerm: Term(1), entries: [entry(5, 1)], commit: .zero))).encode(into: &gap)
        gap.moveReaderIndex(forwardBy: 4)
        #expect(Frame.decode(&gap) == nil)
    }

    @Test func votersParseAsKafkaWritesThem() throws {
        let voters = try VoterAddress.parseList("1@127.0.0.1:9093,2@[::1]:9094")
        #expect(voters == [VoterAddress(id: NodeID(1), host: "127.0.0.1", port: 9093), VoterAddress(id: NodeID(2), host: "::1", port: 9094)])
        for bad in ["", "1@host", "x@h:1", "1@h:1,1@h:2", "1@h:70000"] {
            #expect(throws: QuorumError.self) { try VoterAddress.parseList(bad) }
        }
    }
}
