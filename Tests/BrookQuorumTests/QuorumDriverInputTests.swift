import BrookCore
@testable import BrookQuorum
import BrookRaft
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// Input that reaches the driver while it works on other input (a write it makes can make NIO
/// read a socket at once) waits for that work to end. A controller died without it: a
/// proposal came while a Ready was being handled (scripts/cluster-scale-check.py, 3,000
/// partitions on three nodes).
@Suite struct QuorumDriverInputTests {
    /// A single voter's driver in `dir`, started on `group`, once it leads (nil: it did not
    /// within 10 s, recorded as a failure; the driver is shut down then).
    static func leadingDriver(in dir: String, on group: EventLoopGroup) throws -> QuorumDriver? {
        var options = QuorumOptions(nodeID: NodeID(1), voters: [VoterAddress(id: NodeID(1), host: "127.0.0.1", port: 0)], dataDirectory: dir)
        options.electionTimeoutMs = 200
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let driver = try QuorumDriver.start(options, group: group, logger: logger)
        let deadline = Date().addingTimeInterval(10)
        while try driver.loop.submit({ driver.raft.role }).wait() != .leader {
            #expect(Date() < deadline, "a single voter did not lead")
            guard Date() < deadline else {
                driver.shutdown()
                return nil
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return driver
    }

    @Test func aRequestThatComesWhileAnAnswerIsWrittenWaitsForTheReadyLoop() throws {
        let dir = scratchDirectory("input")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        guard let driver = try Self.leadingDriver(in: dir, on: group) else { return }
        defer { driver.shutdown() }
        let deadline = Date().addingTimeInterval(10)
        let answers = NIOLockedValueBox<[String]>([])
        try driver.loop.submit {
            driver.input {
                driver.handle(.propose(Array("first".utf8))) { reply in
                    // Answered while its entry is applied, inside the Ready loop: the next
                    // request arrives as a read during this answer's write would bring it.
                    driver.input {
                        driver.handle(.propose(Array("second".utf8))) { reply in
                            if case .text(_, let text) = reply { answers.withLockedValue { $0.append(text) } }
                        }
                    }
                    if case .text(_, let text) = reply { answers.withLockedValue { $0.append(text) } }
                }
            }
        }.wait()
        while answers.withLockedValue({ $0.count }) < 2 {
            #expect(Date() < deadline, "answers so far: \(answers.withLockedValue { $0 })")
            guard Date() < deadline else { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let got = answers.withLockedValue { $0 }
        #expect(got.count == 2 && got.allSatisfy { $0.hasPrefix("index=") }, "\(got)")
        #expect(try driver.loop.submit { driver.queuedInput.isEmpty && !driver.working }.wait())
    }

    /// Input after `shutdown` (a broker's request on a connection that is still open, a drive
    /// queued before) is dropped: it once reached a save to the closed Raft log and stopped
    /// the process with a precondition on SIGTERM (test_sigterm_is_a_controlled_shutdown...).
    @Test func inputAfterShutdownIsDroppedNotSavedToTheClosedLog() throws {
        let dir = scratchDirectory("stopped")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        guard let driver = try Self.leadingDriver(in: dir, on: group) else { return }
        driver.shutdown()
        let ran = NIOLockedValueBox(false)
        try driver.loop.submit { driver.input { ran.withLockedValue { $0 = true } } }.wait()
        #expect(!ran.withLockedValue { $0 }, "input after shutdown ran")
        let answered = NIOLockedValueBox(false)
        try driver.loop.submit {
            driver.input {
                driver.handle(.propose(Array("late".utf8))) { _ in answered.withLockedValue { $0 = true } }
            }
            driver.driveSoon()
            driver.raft.tick()
            driver.drive()
        }.wait()
        // Let a queued drive run, had one been queued.
        try driver.loop.submit {}.wait()
        #expect(!answered.withLockedValue { $0 })
        #expect(try driver.loop.submit { driver.stopped && driver.queuedInput.isEmpty }.wait())
    }

    /// A single voter that leads alone takes its 20 ms ticks five at a time (a wake every
    /// 100 ms: fewer wakeups of an idle single node); a voter added puts it back to a tick a
    /// wake at once.
    @Test func aVoterLeadingAloneTakesItsTicksAFewAtATime() throws {
        let dir = scratchDirectory("alone")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        guard let driver = try Self.leadingDriver(in: dir, on: group) else { return }
        defer { driver.shutdown() }
        let deadline = Date().addingTimeInterval(10)
        while try driver.loop.submit({ driver.ticksPerWake }).wait() == 1 {
            #expect(Date() < deadline, "a lone leader kept waking at every tick")
            guard Date() < deadline else { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(try driver.loop.submit { (driver.tickMs, driver.ticksPerWake, driver.leadsAlone) }.wait() == (20, 5, true))
        // A second voter (at a port nobody listens on): not alone from its proposal on.
        let after = try driver.loop.submit { () -> (Bool, Int) in
            driver.changeVoters(adding: VoterAddress(id: NodeID(2), host: "127.0.0.1", port: 1), removing: nil) { _ in }
            return (driver.leadsAlone, driver.ticksPerWake)
        }.wait()
        #expect(after == (false, 1))
    }

    /// At most half an election timeout a wake, so that no wake holds two check-quorum rounds.
    @Test func aWakeTakesAtMostHalfAnElectionTimeout() {
        #expect(QuorumDriver.wakeTicks(alone: true, tickMs: 20) == 5)
        #expect(QuorumDriver.wakeTicks(alone: true, tickMs: 1) == QuorumDriver.electionTicks / 2)
        #expect(QuorumDriver.wakeTicks(alone: true, tickMs: 100) == 1)
        #expect(QuorumDriver.wakeTicks(alone: true, tickMs: 60) == 1)
        #expect(QuorumDriver.wakeTicks(alone: false, tickMs: 20) == 1)
    }
}
