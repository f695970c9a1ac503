@testable import BrookBroker
import BrookCore
import BrookProtocol
import BrookStorage
import NIOCore
import NIOEmbedded
import Testing

/// A parked fetch reads again after parking only when something changed since its first read
/// (`Partition.changes`): these pin down both sides of that.
@Suite struct ParkedFetchTests {
    func context(_ h: BrokerHarness) -> RequestContext {
        RequestContext(header: RequestHeader(apiKey: 1, apiVersion: 12, correlationID: 1, clientID: "test"), eventLoop: h.loop,
                       broker: h.broker, clientHost: "/127.0.0.1", connection: nil)
    }

    /// The values of an answer's records, read from the log file they are sent from.
    func values(_ records: Records?) throws -> [String] {
        guard case .file(let file as LogRecords)? = records, let segment = file.slice.file else { return try fetchedRecords(records).map(\.value) }
        let bytes = try segment.read(count: file.slice.length, at: Int(file.slice.position.value))
        return try fetchedRecords(.bytes(ByteBuffer(bytes: bytes))).map(\.value)
    }

    /// An append between a fetch's first read and its parking wakes nobody (nothing is parked
    /// yet), but it moves the count of changes: the fetch reads once more and is answered.
    @Test func anAppendBetweenTheReadAndTheParkingIsNotMissed() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let request = h.fetchRequest("t", offset: 0, minBytes: 1, maxWaitMs: 500)
        let context = context(h)
        let stamp = Partition.changes.load(ordering: .sequentiallyConsistent)
        let (first, bytes) = FetchHandler().read(request, version: 12, context: context)
        #expect(bytes == 0)
        #expect(try h.produce("t", batch(["between"], timestamps: [h.clock.now().ms])).errorCode == 0)
        let parked = ParkedFetch(request: request, version: 12, context: context, handler: FetchHandler(), first: (first, bytes, stamp))
        var answer: FetchResponse?
        parked.start(waitMs: 500).assumeIsolated().whenSuccess { answer = $0 }
        h.loop.run()
        let data = try #require(answer, "the append before the parking was missed").responses[0].partitions[0]
        #expect(try values(data.records) == ["between"])
    }

    /// Nothing changed since the first read: the fetch waits on it, an append after the parking
    /// answers it, and one that never comes leaves the first read as the answer at the timeout.
    @Test func anUnchangedFirstReadStandsUntilAWakeOrTheTimeout() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        try h.createTopic("u")
        let context = context(h)
        for topic in ["t", "u"] {
            let request = h.fetchRequest(topic, offset: 0, minBytes: 1, maxWaitMs: 500)
            let stamp = Partition.changes.load(ordering: .sequentiallyConsistent)
            let (first, bytes) = FetchHandler().read(request, version: 12, context: context)
            let parked = ParkedFetch(request: request, version: 12, context: context, handler: FetchHandler(), first: (first, bytes, stamp))
            var answer: FetchResponse?
            parked.start(waitMs: 500).assumeIsolated().whenSuccess { answer = $0 }
            h.loop.run()
            #expect(answer == nil)
            if topic == "t" {
                #expect(try h.produce("t", batch(["after"], timestamps: [h.clock.now().ms])).errorCode == 0)
                h.loop.run()
                let data = try #require(answer, "the append after the parking did not wake the fetch").responses[0].partitions[0]
                #expect(try values(data.records) == ["after"])
            } else {
                h.loop.advanceTime(by: .milliseconds(500))
                let data = try #require(answer, "the fetch did not time out").responses[0].partitions[0]
                #expect(data.errorCode == 0 && data.highWatermark == Offset(0) && (data.records?.byteCount ?? 0) == 0)
            }
            #expect(h.broker.topics.partition(topic, 0)?.parkedCount == 0)
        }
    }
}
