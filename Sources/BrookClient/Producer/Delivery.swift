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
///
/// Records queued in one call share one `DeliveryReports` (a `Delivery` is that and the
/// record's place in it), so a record costs no object and no lock of its own: its batch fills
/// in the reports of all its records at once.
public struct Delivery: Sendable {
    let reports: DeliveryReports
    let index: Int

    init(_ reports: DeliveryReports, _ index: Int) {
        precondition(index >= 0 && index < reports.count, "a delivery outside its reports")
        self.reports = reports
        self.index = index
    }

    /// A delivery of its own (one record).
    init() { self.init(DeliveryReports(count: 1), 0) }

    /// Where the record was written, once it is; or why it was not.
    public var metadata: RecordMetadata {
        get async throws { try await reports.metadata(at: index) }
    }

    /// The outcome, if there is one yet.
    public var result: Result<RecordMetadata, ProduceError>? { reports.result(at: index) }

    /// Completes this record's report alone.
    func complete(_ result: Result<RecordMetadata, ProduceError>) {
        reports.complete(index..<index + 1, result.map {
            DeliveryReports.Written(topic: $0.topic, partition: $0.partition, baseOffset: $0.offset, logAppendTime: -1,
                                    timestamps: [$0.timestamp], first: 0)
        })
    }
}

/// The delivery reports of `count` records queued together (one `send`, or one
/// `send(contentsOf:)`): filled in a run at a time (the records of one batch), each run once.
final class DeliveryReports: Sendable {
    /// Where a run of records was written: the run's first record is record `first` of a batch
    /// written at `baseOffset` (-1: unknown) whose records had `timestamps`.
    struct Written: Sendable {
        let topic: String
        let partition: Int32
        let baseOffset: Offset
        /// The broker's time when the topic uses LogAppendTime, else -1.
        let logAppendTime: Int64
        let timestamps: [Timestamp]
        let first: Int
    }

    struct Outcome {
        let range: Range<Int>
        let result: Result<Written, ProduceError>

        func report(_ index: Int) -> Result<RecordMetadata, ProduceError> {
            result.map { written in
                let inBatch = written.first + index - range.lowerBound
                let offset = written.baseOffset.value < 0 ? written.baseOffset : written.baseOffset + Int64(inBatch)
                let timestamp = written.logAppendTime >= 0 ? Timestamp(ms: written.logAppendTime) : written.timestamps[inBatch]
                return RecordMetadata(topic: written.topic, partition: written.partition, offset: offset, timestamp: timestamp)
            }
        }
    }

    typealias Waiter = CheckedContinuation<RecordMetadata, any Error>

    struct State {
        /// Usually one (the records of a call went into one batch); at most one per record.
        var outcomes: [Outcome] = []
        /// Per record, its outcome's place in `outcomes` (-1: none yet): made once the records
        /// went into more than a few batches (a call's keyed records spread over partitions), so
        /// finding a record's outcome, and checking a run is not reported twice, costs no scan.
        var byRecord: [Int32] = []
        var waiting: [Int: [Waiter]] = [:]

        /// Outcomes looked up by a scan, at most.
        static var scannedMax: Int { 4 }

        func outcome(_ index: Int) -> Outcome? {
            if byRecord.isEmpty { return outcomes.first { $0.range.contains(index) } }
            let at = byRecord[index]
            return at < 0 ? nil : outcomes[Int(at)]
        }

        mutating func add(_ outcome: Outcome, count: Int) {
            if byRecord.isEmpty && outcomes.count >= Self.scannedMax {
                byRecord = [Int32](repeating: -1, count: count)
                for (at, earlier) in outcomes.enumerated() {
                    for index in earlier.range { byRecord[index] = Int32(at) }
                }
            }
            if byRecord.isEmpty {
                precondition(!outcomes.contains { $0.range.overlaps(outcome.range) }, "a record delivered twice")
            } else {
                for index in outcome.range {
                    precondition(byRecord[index] < 0, "a record delivered twice")
                    byRecord[index] = Int32(outcomes.count)
                }
            }
            outcomes.append(outcome)
        }

        /// Takes out the waiters on the records of `range`.
        mutating func takeWaiters(_ range: Range<Int>) -> [(index: Int, waiter: Waiter)] {
            guard !waiting.isEmpty else { return [] }
            var taken: [(index: Int, waiter: Waiter)] = []
            if waiting.count < range.count {
                for index in waiting.keys where range.contains(index) {
                    for waiter in waiting.removeValue(forKey: index)! { taken.append((index, waiter)) }
                }
            } else {
                for index in range {
                    for waiter in waiting.removeValue(forKey: index) ?? [] { taken.append((index, waiter)) }
                }
            }
            return taken
        }
    }

    let count: Int
    let state = Mutex(State())

    init(count: Int) {
        precondition(count > 0, "reports of no record")
        self.count = count
    }

    func result(at index: Int) -> Result<RecordMetadata, ProduceError>? {
        state.withLock { $0.outcome(index)?.report(index) }
    }

    func metadata(at index: Int) async throws -> RecordMetadata {
        try await withCheckedThrowingContinuation { continuation in
            let done: Result<RecordMetadata, ProduceError>? = state.withLock { state in
                if let outcome = state.outcome(index) { return outcome.report(index) }
                state.waiting[index, default: []].append(continuation)
                return nil
            }
            if let done { continuation.resume(with: done) }
        }
    }

    /// The records in `range` are done.
    func complete(_ range: Range<Int>, _ result: Result<Written, ProduceError>) {
        precondition(!range.isEmpty && range.lowerBound >= 0 && range.upperBound <= count, "reports outside the records")
        let outcome = Outcome(range: range, result: result)
        let ready = state.withLock { state in
            state.add(outcome, count: count)
            return state.takeWaiters(range)
        }
        for (index, waiter) in ready { waiter.resume(with: outcome.report(index).mapError { $0 }) }
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
