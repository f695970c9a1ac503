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
    /// The fetch built and not answered yet: what the session holds once it is.
    private var pending: (wanted: [TopicPartition: Wanted], full: Bool)?

    /// The next fetch, for exactly the partitions `wanted` (each at its fetch offset).
    mutating func build(_ wanted: [TopicPartition: Wanted]) -> Request {
        precondition(pending == nil, "one fetch at a time in a session")
        // A partition whose topic id changed (the topic made again) starts a new session: the
        // old id would stay in this one.
        let full = id == 0 || epoch <= 0 || wanted.contains { partition, want in partitions[partition].map { $0.topicID != want.topicID } ?? false }
        pending = (wanted, full)
        let order = wanted.keys.sorted()
        guard !full else {
            return Request(sessionID: id, epoch: 0, send: order.map { ($0, wanted[$0]!) }, forget: [], full: true)
        }
        let send = order.filter { partitions[$0] != wanted[$0] }.map { ($0, wanted[$0]!) }
        let forget = partitions.keys.filter { wanted[$0] == nil }.sorted().map { ($0, partitions[$0]!.topicID) }
        return Request(sessionID: id, epoch: epoch, send: send, forget: forget, full: false)
    }

    /// The fetch was answered without a top-level error; `sessionID` is the answer's.
    mutating func answered(sessionID: Int32) {
        guard let (wanted, full) = pending else { preconditionFailure("an answer to a fetch built") }
        pending = nil
        if full {
            // Session 0: none was made; the next fetch asks again.
            id = sessionID
            epoch = sessionID == 0 ? 0 : 1
            partitions = sessionID == 0 ? [:] : wanted
        } else if sessionID == id {
            epoch = epoch == Int32.max ? 1 : epoch + 1
            partitions = wanted
        } else {
            // The broker closed the session (id 0) or answered another: the next fetch starts anew.
            id = 0
            epoch = 0
            partitions = [:]
        }
    }

    /// The fetch failed (a top-level error such as a session not found or an epoch out of
    /// step, a lost connection, a timeout): what the broker holds is not known, so the next
    /// fetch starts a new session in full (closing this one).
    mutating func failed() {
        precondition(pending != nil, "a failure of a fetch built")
        pending = nil
        epoch = 0
        partitions = [:]
    }
}
