import BrookRecords

/// Loop prevention for mirrors that copy topics under their own names (Confluent Replicator's
/// provenance header, in our own form): each record copied carries the id of the cluster it was
/// first written to in a `brook.mirror.origin` header (kept as it is when the record already
/// has one, so the origin survives a chain of mirrors), and a record whose origin is the target
/// cluster is not copied there. Two mirrors copying the same topics both ways (active-active)
/// then copy each record once in each direction, and a ring of mirrors stops where it began.
/// Pure.
struct MirrorOrigin {
    static let header: [UInt8] = Array("brook.mirror.origin".utf8)

    /// The source cluster's id (records without an origin header began there); nil or empty:
    /// unknown, so no header is added.
    let source: String?
    /// The target cluster's id; nil or empty: unknown, so nothing is skipped.
    let target: String?

    enum Decision: Equatable {
        /// The record began on the target: not copied back.
        case skip
        /// Copied with these headers.
        case copy([SimpleRecord.Header])
    }

    func decide(_ headers: [SimpleRecord.Header]) -> Decision {
        // An origin header without a value names nothing: it is replaced as if absent.
        if let given = headers.last(where: { $0.key == Self.header }), let value = given.value, !value.isEmpty {
            if let target, !target.isEmpty, value.elementsEqual(target.utf8) { return .skip }
            return .copy(headers)
        }
        let own = headers.filter { $0.key != Self.header }
        guard let source, !source.isEmpty else { return .copy(own) }
        return .copy(own + [SimpleRecord.Header(key: Self.header, value: Array(source.utf8))])
    }
}
