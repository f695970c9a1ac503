import BrookCore

/// A segment's aborted-transaction index, `<base>.txnindex`, in Kafka's layout: 34-byte entries
/// of version i16 (0), producer id i64, first offset i64, last offset i64 (the abort marker) and
/// last stable offset i64, appended as aborts are written.
public enum TxnIndex {
    public static let entryBytes = 34
    public static let suffix = ".txnindex"

    public static func encode(_ txn: AbortedTxn) -> [UInt8] {
        var w = ByteWriter()
        w.int16(0)
        w.int64(txn.producerID.value)
        w.int64(txn.firstOffset.value)
        w.int64(txn.lastOffset.value)
        w.int64(txn.lastStableOffset.value)
        precondition(w.bytes.count == entryBytes, "a .txnindex entry is \(entryBytes) bytes")
        return w.bytes
    }

    /// The whole entries in `bytes`; a torn last entry (a crash mid-append) is ignored.
    public static func decode(_ bytes: [UInt8]) -> [AbortedTxn] {
        var out: [AbortedTxn] = []
        var r = ByteReader(bytes: bytes)
        while bytes.count - r.index >= entryBytes {
            guard let version = try? r.int16(), version == 0,
                  let id = try? r.int64(), let first = try? r.int64(), let last = try? r.int64(), let stable = try? r.int64(),
                  first <= last
            else { break }
            out.append(AbortedTxn(producerID: ProducerID(id), firstOffset: Offset(first), lastOffset: Offset(last),
                                  lastStableOffset: Offset(stable)))
        }
        return out
    }
}
