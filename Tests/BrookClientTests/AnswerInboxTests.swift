@testable import BrookClient
import BrookCore
import NIOCore
import NIOPosix
import Testing

/// The producer's reader takes a leader's answers in the order their requests were written,
/// every answered one at the head at once, and ends after the last once closed.
@Suite struct AnswerInboxTests {
    struct Refused: Error {}

    let loop = MultiThreadedEventLoopGroup.singleton.next()

    /// The answer's first byte (nil: none, or a failure).
    static func byte(_ entry: AnswerInbox<Int>.Entry) -> UInt8? {
        guard case .success(let body?) = entry.answer else { return nil }
        return body.getInteger(at: body.readerIndex)
    }

    func body(_ byte: UInt8) -> ByteBuffer { ByteBuffer(bytes: [byte]) }

    @Test func answersComeOutInTheOrderWrittenWhateverOrderTheyArriveIn() async throws {
        let inbox = AnswerInbox<Int>()
        let promises = (0..<4).map { _ in loop.makePromise(of: ByteBuffer?.self) }
        for (index, promise) in promises.enumerated() { inbox.push(index, .success(promise.futureResult)) }
        // The last three answered first: nothing to take while the first waits.
        promises[3].succeed(body(3))
        promises[1].succeed(body(1))
        promises[2].fail(Refused())
        try await promises[3].futureResult.get()
        try await promises[1].futureResult.get()
        _ = try? await promises[2].futureResult.get()
        #expect(inbox.state.withLock { $0.takeAnswered() } == nil)
        async let taken = inbox.next()
        promises[0].succeed(body(0))
        // All four in one take, in order, the failure in its place.
        let entries = try #require(await taken)
        #expect(entries.map(\.item) == [0, 1, 2, 3])
        #expect(entries.map(Self.byte) == [0, 1, nil, 3])
        if case .failure(let error) = entries[2].answer { #expect(error is Refused) } else { Issue.record("request 2 did not fail") }
    }

    @Test func aRequestThatCouldNotBeWrittenIsAnsweredAtOnceInItsPlace() async throws {
        let inbox = AnswerInbox<Int>()
        let first = loop.makePromise(of: ByteBuffer?.self)
        inbox.push(0, .success(first.futureResult))
        inbox.push(1, .failure(Refused()))
        #expect(inbox.state.withLock { $0.takeAnswered() } == nil)
        first.succeed(nil)
        let entries = try #require(await inbox.next())
        #expect(entries.map(\.item) == [0, 1])
    }

    /// Requests pushed after others were taken take their places after them (the sequence
    /// goes on from the head's), answered in any order.
    @Test func requestsPushedAfterATakeKeepTheirPlaces() async throws {
        let inbox = AnswerInbox<Int>()
        for round in 0..<3 {
            let promises = (0..<3).map { _ in loop.makePromise(of: ByteBuffer?.self) }
            for (index, promise) in promises.enumerated() { inbox.push(round * 10 + index, .success(promise.futureResult)) }
            for index in [2, 0, 1] {
                promises[index].succeed(body(UInt8(round * 10 + index)))
                try await promises[index].futureResult.get()
            }
            var taken: [AnswerInbox<Int>.Entry] = []
            while taken.count < 3, let more = await inbox.next() { taken += more }
            #expect(taken.map(\.item) == [round * 10, round * 10 + 1, round * 10 + 2])
            #expect(taken.map(Self.byte) == taken.map { UInt8($0.item) })
        }
    }

    @Test func closedTheReaderEndsAfterTheLastAnswer() async throws {
        let inbox = AnswerInbox<Int>()
        let promise = loop.makePromise(of: ByteBuffer?.self)
        inbox.push(7, .success(promise.futureResult))
        inbox.finish()
        async let taken = inbox.next()
        promise.succeed(body(7))
        #expect(try #require(await taken).map(\.item) == [7])
        #expect(await inbox.next() == nil)
        // Closed while the reader waits with nothing written: it ends at once.
        let empty = AnswerInbox<Int>()
        async let none = empty.next()
        try await Task.sleep(for: .milliseconds(10))
        empty.finish()
        #expect(await none == nil)
    }

    /// Seeded: answers arrive in any order from another thread while the reader takes them;
    /// each request comes out once, in the order written.
    @Test(arguments: 0..<10) func everyRequestComesOutOnceInOrder(seed: UInt64) async throws {
        var random = SeededRandom(seed: seed)
        let inbox = AnswerInbox<Int>()
        let count = 200
        let promises = (0..<count).map { _ in loop.makePromise(of: ByteBuffer?.self) }
        for (index, promise) in promises.enumerated() { inbox.push(index, .success(promise.futureResult)) }
        inbox.finish()
        let order = Array(0..<count).shuffled(using: &random)
        let answering = Task {
            for index in order {
                promises[index].succeed(ByteBuffer(bytes: [UInt8(index % 256)]))
                if index % 7 == 0 { await Task.yield() }
            }
        }
        var seen: [Int] = []
        while let entries = await inbox.next() { seen += entries.map(\.item) }
        await answering.value
        #expect(seen == Array(0..<count))
    }
}
