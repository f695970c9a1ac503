import NIOCore
import Synchronization

/// A leader's produce requests in the order they were written, and their answers as they come
/// (each answer is noted on the event loop that read it). The reader takes every answered request
/// at the head at once: answers that arrived together cost one wake-up of the reader, not one
/// each, and are handled in one turn of the producer (whose sender then writes the batches they
/// made room for together).
final class AnswerInbox<Item: Sendable>: Sendable {
    /// A request written (or that could not be), with its answer once known.
    struct Entry: Sendable {
        let item: Item
        /// nil: the answer is still to come.
        var answer: Result<ByteBuffer?, any Error>?
    }

    struct State: ~Copyable {
        var entries = CircularBuffer<Entry>()
        /// The sequence of `entries`' first.
        var headSequence: UInt64 = 0
        var waiter: CheckedContinuation<[Entry]?, Never>?
        var finished = false

        /// Takes the answered entries at the head, in order (nil: none).
        mutating func takeAnswered() -> [Entry]? {
            var taken: [Entry] = []
            while let first = entries.first, first.answer != nil {
                taken.append(entries.removeFirst())
                headSequence += 1
            }
            return taken.isEmpty ? nil : taken
        }

        /// What the reader gets now.
        mutating func look() -> Look {
            if let ready = takeAnswered() { return .ready(ready) }
            return finished && entries.isEmpty ? .done : .wait
        }
    }

    enum Look { case ready([Entry]), done, wait }

    let state = Mutex(State())

    /// Adds a request after those before it; its answer is noted when `answer` completes (at
    /// once if the request could not be written: a failure).
    func push(_ item: Item, _ answer: Result<EventLoopFuture<ByteBuffer?>, any Error>) {
        let sequence: UInt64 = state.withLock { state in
            precondition(!state.finished, "a request written after its leader's queue was closed")
            state.entries.append(Entry(item: item, answer: nil))
            return state.headSequence + UInt64(state.entries.count - 1)
        }
        switch answer {
        case .failure(let error): answered(sequence, .failure(error))
        case .success(let future): future.whenComplete { result in self.answered(sequence, result) }
        }
    }

    /// Notes the answer of the request `sequence` and wakes the reader when the head is answered.
    func answered(_ sequence: UInt64, _ answer: Result<ByteBuffer?, any Error>) {
        let (waiter, ready): (CheckedContinuation<[Entry]?, Never>?, [Entry]?) = state.withLock { state in
            precondition(sequence >= state.headSequence && sequence - state.headSequence < UInt64(state.entries.count),
                         "an answer to a request not waiting for one")
            let index = state.entries.index(state.entries.startIndex, offsetBy: Int(sequence - state.headSequence))
            precondition(state.entries[index].answer == nil, "a request answered twice")
            state.entries[index].answer = answer
            guard state.waiter != nil, let ready = state.takeAnswered() else { return (nil, nil) }
            defer { state.waiter = nil }
            return (state.waiter, ready)
        }
        waiter?.resume(returning: ready)
    }

    /// No more requests: the reader ends once those written are answered.
    func finish() {
        let waiter: CheckedContinuation<[Entry]?, Never>? = state.withLock { state in
            state.finished = true
            guard state.entries.isEmpty else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// The answered requests at the head, in the order they were written, waiting for the first
    /// if none is answered yet; nil once finished and every request was taken. Runs on the
    /// caller's actor (no hop off it to wait).
    func next(isolation: isolated (any Actor)? = #isolation) async -> [Entry]? {
        switch state.withLock({ $0.look() }) {
        case .ready(let ready): return ready
        case .done: return nil
        case .wait: break
        }
        return await withCheckedContinuation(isolation: isolation) { continuation in
            let now: Look = state.withLock { state in
                let now = state.look()
                if case .wait = now {
                    precondition(state.waiter == nil, "two readers of one leader's answers")
                    state.waiter = continuation
                }
                return now
            }
            switch now {
            case .ready(let ready): continuation.resume(returning: ready)
            case .done: continuation.resume(returning: nil)
            case .wait: break
            }
        }
    }
}

extension AnswerInbox where Item == KafkaProducer.Written {
    /// Adds a produce request, its answer awaited from its own pending answer.
    func push(_ written: Item) {
        push(written, written.pending.map(\.future))
    }
}
