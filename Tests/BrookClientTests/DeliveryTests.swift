@testable import BrookClient
import BrookCore
import Testing

@Suite struct DeliveryTests {
    func written(_ offset: Int64) -> Result<RecordMetadata, ProduceError> {
        .success(RecordMetadata(topic: "t", partition: 0, offset: Offset(offset), timestamp: Timestamp(ms: 1)))
    }

    @Test func aDeliveryAnswersThoseWhoWaitedAndThoseWhoAskLater() async throws {
        let delivery = Delivery()
        async let early = delivery.metadata
        try await Task.sleep(for: .milliseconds(10))
        #expect(delivery.result == nil)
        delivery.complete(written(7))
        #expect(try await early.offset == Offset(7))
        #expect(try await delivery.metadata.offset == Offset(7))
        let refused = Delivery()
        refused.complete(.failure(ProduceError(.messageTooLarge, "too big")))
        await #expect(throws: ProduceError.self) { try await refused.metadata }
    }

    @Test func aTallyCountsTheReportsAtTheFrontAndKeepsTheRest() {
        let deliveries = (0..<4).map { _ in Delivery() }
        var tally = DeliveryTally()
        tally.add(contentsOf: deliveries)
        deliveries[0].complete(written(0))
        deliveries[2].complete(.failure(ProduceError(.notEnoughReplicas, "no")))
        tally.settle()
        #expect(tally.written == 1 && tally.failed == 0 && tally.pending.count == 3)
        deliveries[1].complete(written(1))
        deliveries[3].complete(written(3))
        tally.settle()
        #expect(tally.written == 3 && tally.failed == 1 && tally.pending.isEmpty)
        #expect(tally.firstFailure?.code == .notEnoughReplicas)
    }
}
