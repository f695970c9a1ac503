import BrookCore
import BrookRecords
@testable import BrookStorage
import Foundation
import Synchronization
import Testing

/// Segment files opened and index files mapped on demand (`OnDemandPool`): a log works the same
/// whatever the pools closed or unmapped meanwhile, and the pools hold no more than their capacity.
@Suite struct OnDemandPoolTests {
    /// `path` as the kernel names it (the temporary folder's path may hold a `//`).
    func canonical(_ path: String) -> String { URL(fileURLWithPath: path).resolvingSymlinksInPath().path }

    /// Descriptors of this process open on files under `directory`.
    func openFiles(under directory: String) -> Int {
        let directory = canonical(directory)
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.filter { fd in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + fd))?.hasPrefix(directory) ?? false
        }.count
    }

    /// Mappings of this process of files under `directory`.
    func mappedFiles(under directory: String) -> Int {
        let directory = canonical(directory)
        // /proc's files say they are empty: read to the end rather than by their size.
        let data = FileHandle(forReadingAtPath: "/proc/self/maps")?.readDataToEndOfFile() ?? Data()
        let maps = String(decoding: data, as: UTF8.self)
        return maps.split(separator: "\n").filter { $0.contains(directory) }.count
    }

    @Test func aPoolReleasesTheColdestPastItsCapacity() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let pool = OnDemandPool(capacity: 3)
        var logs: [SegmentLog] = []
        for i in 0..<10 {
            let log = try SegmentLog(path: dir.path + "/\(i).log", create: true, pool: pool)
            try Array("segment \(i)".utf8).withUnsafeBytes { try log.file().write($0, at: 0) }
            logs.append(log)
            #expect(pool.held <= 3)
        }
        #expect(pool.held == 3 && pool.released == 7)
        #expect(logs.filter(\.isOpen).count == 3)
        #expect(openFiles(under: dir.path) == 3)
        // Each reads back, opened again by its path when it had been closed.
        for (i, log) in logs.enumerated().reversed() {
            #expect(try log.file().read(count: 20, at: 0) == Array("segment \(i)".utf8))
            #expect(pool.held <= 3)
        }
        // A file taken from the pool stays open while held, whatever the pool does.
        let held = try logs[0].file()
        for log in logs[1...] { _ = try log.file() }
        #expect(!logs[0].isOpen)
        #expect(try held.read(count: 9, at: 0) == Array("segment 0".utf8))
        // Closed or gone members are no longer counted.
        let before = pool.held
        let counted = logs[9].membership.counted.load(ordering: .relaxed)
        logs[9].close()
        #expect(!logs[9].isOpen && pool.held == before - (counted ? 1 : 0))
        #expect(throws: StorageError.self) { try logs[9].file() }  // closed for good: not reopened
        // Short of descriptors, a pool lets its coldest go on demand.
        let heldBefore = pool.held
        pool.shed(2)
        #expect(pool.held == max(0, heldBefore - 2))
        logs.removeAll()
        #expect(pool.held == 0)
    }

    /// Many small segments through pools of two files and two mappings: appends, reads by offset
    /// and by time, a reopen and a recovery all see the same records, with at most two of the
    /// log's files open (and a few indexes mapped) at any time.
    @Test(arguments: [UInt64(1), 2, 3])
    func aLogWorksThroughTinyPools(seed: UInt64) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let pools = SegmentPools(files: OnDemandPool(capacity: 2), maps: OnDemandPool(capacity: 2))
        var random = SeededRandom(seed: seed)
        let config = smallConfig(segmentBytes: 4 * 1024, indexInterval: 256)
        var log: PartitionLog? = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger, pools: pools)
        var expected: [ModelRecord] = []
        while log!.segmentCount < 12 {
            let batch = randomRecords(5, startMs: 1_700_000_000_000 + Int64(expected.count), using: &random)
            var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: batch))
            expected += model(batch, from: try log!.append(&bytes).firstOffset)
            #expect(pools.files.held <= 2 && pools.maps.held <= 2)
        }
        #expect(pools.files.released > 0)  // (a roll unmaps the sealed indexes itself)
        let open = openFiles(under: dir.path)
        #expect(open >= 1 && open <= 2 + log!.unsyncedCount)
        #expect(mappedFiles(under: dir.path) <= 2)
        #expect(try readAll(log!) == expected)
        // The reads looked offsets up in the sealed segments' indexes: the last ones stay mapped.
        #expect((1...2).contains(mappedFiles(under: dir.path)))
        #expect(pools.maps.released > 0)
        // Reads from the middle, and by timestamp, go through segments the pools let go.
        for _ in 0..<20 {
            let pick = expected[Int.random(in: 0..<expected.count, using: &random)]
            #expect(try readAll(log!, from: pick.offset).first == pick)
            let found = try #require(try log!.offset(forTimestamp: pick.timestamp))
            #expect(found.offset <= pick.offset)
            #expect(expected.first { $0.offset == found.offset }!.timestamp >= pick.timestamp)
        }
        if let rolled = log!.takeUnsynced() {
            for segment in rolled.segments { try segment.sync() }
            try log!.synced(upTo: rolled.upTo, rewrites: rolled.rewrites)
        }
        try log!.close()
        log = nil
        #expect(pools.files.held == 0 && pools.maps.held == 0)
        let reopened = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger, pools: pools)
        #expect(try readAll(reopened) == expected)
        // A truncation into an older segment and more appends, then a recovery from scratch.
        let cut = expected[expected.count / 2].offset
        try reopened.truncate(to: cut)
        expected = expected.filter { $0.offset < reopened.logEndOffset }
        for _ in 0..<30 {
            let batch = randomRecords(5, startMs: 1_800_000_000_000 + Int64(expected.count), using: &random)
            var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: batch))
            expected += model(batch, from: try reopened.append(&bytes).firstOffset)
        }
        #expect(try readAll(reopened) == expected)
        let recovered = try PartitionLog.open(directory: dir.partition, config: config, logger: quietLogger, pools: pools)
        #expect(recovered.segmentsRecoveredAtOpen > 0)
        #expect(try readAll(recovered) == expected)
        #expect(pools.files.held <= 2 && pools.maps.held <= 2)
        try recovered.close()
    }

    /// Logs on several threads sharing pools of one file and one mapping: each thread's reads
    /// and appends take what another thread's pool release just closed or unmapped.
    @Test func logsOnSeveralThreadsShareTinyPools() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let pools = SegmentPools(files: OnDemandPool(capacity: 1), maps: OnDemandPool(capacity: 1))
        let config = smallConfig(segmentBytes: 4 * 1024, indexInterval: 256)
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            do {
                var random = SeededRandom(seed: UInt64(100 + t))
                let log = try PartitionLog.open(directory: dir.path + "/t-\(t)", config: config, logger: quietLogger, pools: pools)
                var expected: [ModelRecord] = []
                for round in 0..<150 {
                    let batch = randomRecords(3, startMs: 1_700_000_000_000 + Int64(round * 10), using: &random)
                    var bytes = buffer(RecordBatchBuilder.build(baseOffset: .zero, records: batch))
                    expected += model(batch, from: try log.append(&bytes).firstOffset)
                    let pick = expected[Int.random(in: 0..<expected.count, using: &random)]
                    guard try readAll(log, from: pick.offset, maxBytes: 600).first == pick else {
                        failures.withLock { $0.append("thread \(t) round \(round): read of \(pick.offset) differs") }
                        return
                    }
                    _ = try log.offset(forTimestamp: pick.timestamp)
                }
                if try readAll(log) != expected { failures.withLock { $0.append("thread \(t): the log differs") } }
                try log.close()
            } catch {
                failures.withLock { $0.append("thread \(t): \(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
        #expect(pools.files.held == 0 && pools.maps.held == 0)
    }
}
