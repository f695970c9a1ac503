import BrookCore
import BrookProtocol
import Synchronization

/// Where a record was written.
public struct RecordMetadata: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    /// -1 when unknown: acks=0, or a batch the partition already had (sent again after a lost
    /// answer).
    public var offset: Offset
    /// The record's timestamp, or the broker's when the topic uses LogAppendTime.
    public var timestamp: Timestamp
}

public typealias ProduceError = KafkaError
public typealias ConsumeError = KafkaError

/// Why a record was not written (`ProduceError`) or a consumer call failed (`ConsumeError`):
/// Kafka's error code when a broker gave one, and what happened.
public struct KafkaError: Error, CustomStringConvertible, Equatable {
    /// Kafka's error code, when the broker gave one.
    public var code: ErrorCode?
    public var message: String
    public var description: String { code.map { "\($0): \(message)" } ?? message }

    public init(_ code: ErrorCode?, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// A record's delivery report: `metadata` waits for it.
public final class Delivery: Sendable {
    enum State {
        case waiting([CheckedContinuation<RecordMetadata, any Error>])
        case done(Result<RecordMetadata, ProduceError>)
    }

    let state = Mutex(State.waiting([]))

    init() {}

    /// Where the record was written, once it is; or why it was not.
    public var metadata: RecordMetadata {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                let done: Result<RecordMetadata, ProduceError>? = state.withLock { state in
                    switch state {
                    case .waiting(var waiting):
                        waiting.append(continuation)
                        state = .waiting(waiting)
                        return nil
                    case .done(let result):
                        return result
                    }
                }
                if let done { continuation.resume(with: done) }
            }
        }
    }

    /// The outcome, if there is one yet.
    public var result: Result<RecordMetadata, ProduceError>? {
        state.withLock { if case .done(let result) = $0 { result } else { nil } }
    }

    func complete(_ result: Result<RecordMetadata, ProduceError>) {
        let waiting: [CheckedContinuation<RecordMetadata, any Error>] = state.withLock { state in
            guard case .waiting(let waiting) = state else { preconditionFailure("a record delivered twice") }
            state = .done(result)
            return waiting
        }
        for continuation in waiting { continuation.resume(with: result.mapError { $0 }) }
    }
}

/// The deliveries of records sent and not yet looked at, for a sender that does not await each
/// one: `settle` counts the reports that came, oldest first (they come about in the order the
/// records were sent, partition by partition), and keeps the rest.
public struct DeliveryTally: Sendable {
    /// The deliveries from `head` on are pending: those settled are dropped from the front in
    /// bulk, not moved at every `settle` (a sender far ahead of its reports settles often).
    private var held: [Delivery] = []
    private var head = 0
    public private(set) var written = 0
    public private(set) var failed = 0
    public private(set) var firstFailure: ProduceError?

    public init() {}

    /// The deliveries not settled yet, oldest first.
    public var pending: ArraySlice<Delivery> { held[head...] }

    public mutating func add(_ delivery: Delivery) { held.append(delivery) }
    public mutating func add(contentsOf deliveries: [Delivery]) { held += deliveries }

    /// Counts the reports at the front that came.
    public mutating func settle() {
        while head < held.count, let result = held[head].result {
            switch result {
            case .success: written += 1
            case .failure(let error):
                failed += 1
                if firstFailure == nil { firstFailure = error }
            }
            head += 1
        }
        dropTaken(&held, head: &head, atLeast: 1024)
    }
}

/// Drops the elements before `head` of a queue taken from its front (`items[head...]` are the
/// ones left): all of them once the queue is empty, else only once at least `atLeast` were
/// taken and they are half of it (so each element moves once at most, on average).
func dropTaken<Element>(_ items: inout [Element], head: inout Int, atLeast: Int) {
    if head == items.count {
        items.removeAll(keepingCapacity: true)
        head = 0
    } else if head >= atLeast && head * 2 >= items.count {
        items.removeFirst(head)
        head = 0
    }
}
