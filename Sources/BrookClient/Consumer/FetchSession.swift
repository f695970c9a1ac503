import BrookCore

/// A consumer's incremental fetch session with one broker (KIP-227), as a pure core: which
/// partitions the next fetch names, which it tells the broker to forget, and the session id and
/// epoch it carries.
///
/// The first fetch asks for a session (epoch 0) and names every partition; a broker that makes
/// one answers its id, and each later fetch names the next epoch and only the partitions added
/// or whose fetch offset moved, and lists the partitions no longer wanted as forgotten. The
/// broker reads every partition of the session and answers only those with something new, so
/// idle partitions cost nothing on the wire. A broker that makes no session (session id 0 in
/// the answer: Tansu, a full cache, a version before 7) is asked again at the next fetch, in
/// full; one that lost the session (FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH)
/// or a fetch that failed starts a new one, in full. One fetch at a time per broker.
struct FetchSession {
    /// A partition as a fetch names it.
    struct Wanted: Equatable, Sendable {
        var offset: Offset
        var topicID: KafkaUUID
    }

    /// What one fetch carries.
    struct Request: Sendable {
        var sessionID: Int32
        var epoch: Int32
        /// The partitions named (all of them in a full fetch), in a stable order.
        var send: [(partition: TopicPartition, wanted: Wanted)]
        /// The partitions the broker is to drop from the session.
        var forget: [(partition: TopicPartition, topicID: KafkaUUID)]
        var full: Bool
    }

    /// The session the broker gave (0: none).
    private(set) var id: Int32 = 0
    /// The epoch the next fetch names: 0 asks for a new session (and closes `id`, when set).
    private(set) var epoch: Int32 = 0
    /// The partitions the broker holds in the session, each as last named.
    private(set) var partitions: [TopicPartition: Wanted] = [:]
    /// The fetch built and not answered yet: what it changes in the session once it is (a
    /// full fetch: everything).
    private var pending: Pending?

    private enum Pending {
        case full([TopicPartition: Wanted])
        case changes(send: [(partition: TopicPartition, wanted: Wanted)], forget: [TopicPartition])
    }

    /// The next fetch, for exactly the partitions `wanted` (each once, at its fetch offset).
    /// One lookup per partition: an incremental fetch costs what it changes, plus that.
    mutating func build(_ wanted: [(partition: TopicPartition, wanted: Wanted)]) -> Request {
        precondition(pending == nil, "one fetch at a time in a session")
        if id != 0 && epoch > 0 {
            var send: [(partition: TopicPartition, wanted: Wanted)] = []
            var held = 0
            var renamed = false
            for want in wanted {
                guard let had = partitions[want.partition] else {
                    send.append(want)
                    continue
                }
                held += 1
                // A topic made again (a new topic id) starts a new session: the old id would
                // stay in this one.
                if had.topicID != want.wanted.topicID {
                    renamed = true
                    break
                }
                if had != want.wanted { send.append(want) }
            }
            if !renamed {
                var forget: [TopicPartition] = []
                if held < partitions.count {
                    let named = Set(wanted.map(\.partition))
                    forget = partitions.keys.filter { !named.contains($0) }.sorted()
                }
                send.sort { $0.partition < $1.partition }
                pending = .changes(send: send, forget: forget)
                return Request(sessionID: id, epoch: epoch, send: send, forget: forget.map { ($0, partitions[$0]!.topicID) }, full: false)
            }
        }
        let all = Dictionary(wanted.map { ($0.partition, $0.wanted) }) { _, _ in preconditionFailure("a partition named twice in one fetch") }
        pending = .full(all)
        return Request(sessionID: id, epoch: 0, send: wanted.sorted { $0.partition < $1.partition }, forget: [], full: true)
    }

    /// The fetch was answered without a top-level error; `sessionID` is the answer's.
    mutating func answered(sessionID: Int32) {
        guard let built = pending else {
            precondition(id == 0 && epoch == 0, "an answer to a fetch built, or to one sent before the session was closed")
            return
        }
        pending = nil
        switch built {
        case .full(let wanted):
            // Session 0: none was made; the next fetch asks again.
            id = sessionID
            epoch = sessionID == 0 ? 0 : 1
            partitions = sessionID == 0 ? [:] : wanted
        case .changes(let send, let forget) where sessionID == id:
            epoch = epoch == Int32.max ? 1 : epoch + 1
            for (partition, wanted) in send { partitions[partition] = wanted }
            for partition in forget { partitions[partition] = nil }
        case .changes:
            // The broker closed the session (id 0) or answered another: the next fetch starts anew.
            id = 0
            epoch = 0
            partitions = [:]
        }
    }

    /// The fetch that closes the session at the broker (epoch -1, naming nothing), when there
    /// is one; the session is forgotten here either way. A fetch still in flight may end after
    /// it: its answer changes nothing then.
    mutating func close() -> Request? {
        defer {
            id = 0
            epoch = 0
            partitions = [:]
            pending = nil
        }
        guard id != 0 else { return nil }
        return Request(sessionID: id, epoch: -1, send: [], forget: [], full: true)
    }

    /// The fetch failed (a top-level error such as a session not found or an epoch out of
    /// step, a lost connection, a timeout): what the broker holds is not known, so the next
    /// fetch starts a new session in full (closing this one).
    mutating func failed() {
        precondition(pending != nil || (id == 0 && epoch == 0), "a failure of a fetch built, or of one sent before the session was closed")
        pending = nil
        epoch = 0
        partitions = [:]
    }
}
