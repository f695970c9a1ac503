import BrookCore
import BrookTxn

/// The transaction coordinator's and producer state's formats: `__transaction_state` records,
/// producer-state snapshots (`.snapshot`) and aborted-transaction indexes (`.txnindex`).
enum TxnFuzzing {
    static let target = FuzzTarget(
        name: "txn-record",
        input: "kind (1 byte, modulo 3: 0 a __transaction_state record as group-record frames it, 1 a .snapshot file, 2 a .txnindex file), then its bytes"
    ) { bytes in
        var input = FuzzInput(bytes)
        switch input.byte() % 3 {
        case 0: transactionState(&input)
        case 1: snapshot(Array(input.rest()))
        default: _ = TxnIndex.decode(Array(input.rest()))
        }
    }

    static func transactionState(_ input: inout FuzzInput) {
        let (key, value) = input.keyAndValue()
        guard let id = try? TxnRecords.decodeKey(key) else { return }
        precondition((try? TxnRecords.decodeKey(TxnRecords.key(id))) == id, "a transaction key does not round-trip")
        guard let value, let metadata = try? TxnRecords.decodeValue(value, transactionalID: id) else { return }
        let again = try? TxnRecords.decodeValue(TxnRecords.value(metadata), transactionalID: id)
        precondition(again == metadata, "a transaction state record does not round-trip")
    }

    static func snapshot(_ bytes: [UInt8]) {
        guard let state = try? ProducerSnapshot.decode(bytes) else { return }
        let encoded = ProducerSnapshot.encode(state)
        precondition((try? ProducerSnapshot.decode(encoded)).map(ProducerSnapshot.encode) == encoded,
                     "a producer snapshot does not round-trip")
    }
}
