@testable import BrookTxn
import BrookCore
import BrookProtocol
import Testing

/// What the coordinator cannot write to `__transaction_state` it refuses up front.
@Suite struct TransactionalIDLengthTests {
    /// InitProducerId v2+ carries the id as a compact string, so a client could send 40,000
    /// bytes; the record key's int16 length trapped (ByteWriter.string) and the broker died.
    @Test func aTransactionalIDLongerThanTheKeyHoldsIsRefused() throws {
        var h = CoordinatorHarness()
        let longest = String(repeating: "t", count: TxnRecords.transactionalIDBytesMax)
        let written = try #require(h.initProducer(longest).written)
        #expect(TxnRecords.key(written.transactionalID).count == 2 + 2 + longest.utf8.count)
        #expect(h.initProducer(longest + "t") == .refused(.invalidRequest))
        // Counted in UTF-8 bytes, not characters.
        #expect(h.initProducer(String(repeating: "é", count: 20_000)) == .refused(.invalidRequest))
    }
}
