import BrookCore

/// What a mirror has copied: per partition, the records sent to the target in source order
/// with their deliveries; `settle` takes the prefix whose deliveries came and says how far each
/// partition is copied (the checkpoint: the next source offset to copy) and where each record
/// landed. Pure but for reading the deliveries' outcomes.
struct MirrorProgress {
    struct Settled {
        /// Per partition, the next source offset to copy, where it moved.
        var checkpoints: [TopicPartition: Offset] = [:]
        /// (partition, source offset, target offset) of each record written, in order.
        var written: [(TopicPartition, Offset, Offset)] = []
        var failure: ProduceError?
    }

    /// Per partition, each record in source order and its delivery (nil: not copied, as a
    /// record that began on the target: settled at once).
    private var pending: [TopicPartition: [(source: Offset, delivery: Delivery?)]] = [:]
    private var heads: [TopicPartition: Int] = [:]
    private(set) var pendingCount = 0

    /// Records of a partition come in source order (offsets going back, as after the source
    /// topic was made again, only make its checkpoint go back with them).
    mutating func add(_ partition: TopicPartition, source: Offset, _ delivery: Delivery) {
        pending[partition, default: []].append((source, delivery))
        pendingCount += 1
    }

    /// A record of `partition` not copied (in its place in source order): the checkpoint moves
    /// past it once the records before it are settled.
    mutating func skip(_ partition: TopicPartition, source: Offset) {
        pending[partition, default: []].append((source, nil))
        pendingCount += 1
    }

    /// The records whose deliveries came, each partition's from the front; stops at the first
    /// failure (the mirror stops: what failed is copied again from the checkpoint).
    mutating func settle() -> Settled {
        var out = Settled()
        for (partition, entries) in pending {
            var head = heads[partition] ?? 0
            while head < entries.count {
                guard let delivery = entries[head].delivery else {
                    out.checkpoints[partition] = entries[head].source + 1
                    head += 1
                    continue
                }
                guard let result = delivery.result else { break }
                switch result {
                case .success(let metadata):
                    if metadata.offset.value >= 0 { out.written.append((partition, entries[head].source, metadata.offset)) }
                    out.checkpoints[partition] = entries[head].source + 1
                case .failure(let error):
                    if out.failure == nil { out.failure = error }
                }
                if out.failure != nil { break }
                head += 1
            }
            pendingCount -= head - (heads[partition] ?? 0)
            if head == entries.count {
                pending[partition] = nil
                heads[partition] = nil
            } else if head > 1024 {
                pending[partition] = Array(entries[head...])
                heads[partition] = 0
            } else {
                heads[partition] = head
            }
        }
        out.written.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        return out
    }
}
