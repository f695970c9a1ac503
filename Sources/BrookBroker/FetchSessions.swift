import BrookCore
import BrookProtocol
import Synchronization

/// Incremental fetch sessions (KIP-227). A client that opens one (session id 0, epoch 0) is
/// given an id; its later fetches name the session and the next epoch, carry only the
/// partitions added or changed (and those to forget), and are answered with only the
/// partitions that have something new: records, an error, or a moved high watermark, last
/// stable offset or log start. Every partition of the session is read on each fetch, as if the
/// client had listed them all. A client that sends epoch -1 (or no session) fetches as before.
///
/// Bounded: at most `slotsMax` sessions (Kafka's `max.incremental.fetch.session.cache.slots`),
/// `partitionsPerSessionMax` partitions in one and `partitionsMax` in all. A new session past a
/// bound takes the slot of the least recently used one idle for `evictableAfterMs`, or is not
/// made (the answer says session 0, and the client goes on without). Shared by every event loop.
public final class FetchSessions: Sendable {
    public static let slotsMax = 1000
    public static let partitionsPerSessionMax = 50_000
    public static let partitionsMax = 1_000_000
    /// Kafka's MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS.
    public static let evictableAfterMs: Int64 = 120_000

    /// A partition as the session's requests name it: by topic id (v13 and later) or by name.
    struct Key: Hashable {
        let topicID: KafkaUUID
        let topic: String
        let partition: Int32
    }

    /// A partition of a session: what the client last asked for it, and what it was last told.
    struct Cached {
        var fetch: FetchRequest.FetchTopic.FetchPartition
        var highWatermark = Offset(-1)
        var lastStable = Offset(-1)
        var logStart = Offset(-1)
        var told = false
    }

    struct Session {
        /// The epoch the next incremental fetch must name.
        var epoch: Int32
        /// Topic ids (Fetch v13 and later) or names: one session keeps to one.
        let usesTopicIDs: Bool
        var order: [Key] = []
        var partitions: [Key: Cached] = [:]
        var lastUsedMs: Int64
    }

    struct State {
        var sessions: [Int32: Session] = [:]
        var partitionsCached = 0
        var random: SeededRandom
    }

    let state: Mutex<State>

    public init(seed: UInt64) {
        state = Mutex(State(random: SeededRandom(seed: seed)))
    }

    public var count: Int { state.withLock { $0.sessions.count } }

    /// How one fetch goes, decided before anything is read.
    public enum Plan: Sendable {
        /// No session: read the request as it is, answer in full with session id 0.
        case sessionless
        /// Answer at once with this top-level error (and session id 0).
        case refuse(ErrorCode)
        /// Read `request` (every partition of the session), then answer through `answer`.
        case session(id: Int32, full: Bool, request: FetchRequest)
    }

    public func plan(_ request: FetchRequest, version: Int16, nowMs: @autoclosure () -> Int64) -> Plan {
        // Most fetches (librdkafka's, kcat's, and every one before v7) name no session: decided
        // without the lock every event loop shares.
        guard version >= 7, request.sessionId != 0 || request.sessionEpoch != -1 else { return .sessionless }
        let nowMs = nowMs()
        let usesTopicIDs = version >= 13
        return state.withLock { s -> Plan in
            let id = request.sessionId, epoch = request.sessionEpoch
            if epoch == -1 {
                // Closes the session named (if any); this fetch is sessionless.
                if id != 0 { Self.remove(id, &s) }
                return .sessionless
            }
            if epoch == 0 {
                if id != 0 { Self.remove(id, &s) }
                return Self.open(request, usesTopicIDs: usesTopicIDs, nowMs: nowMs, &s)
            }
            guard id != 0, var session = s.sessions[id] else { return .refuse(.fetchSessionIDNotFound) }
            guard epoch == session.epoch else { return .refuse(.invalidFetchSessionEpoch) }
            guard session.usesTopicIDs == usesTopicIDs else { return .refuse(.fetchSessionTopicIDError) }
            let before = session.partitions.count
            Self.update(&session, with: request)
            s.partitionsCached += session.partitions.count - before
            guard session.partitions.count <= Self.partitionsPerSessionMax, s.partitionsCached <= Self.partitionsMax else {
                s.partitionsCached -= session.partitions.count
                s.sessions[id] = nil
                return .refuse(.fetchSessionIDNotFound)
            }
            session.epoch = Self.next(epoch)
            session.lastUsedMs = nowMs
            s.sessions[id] = session
            return .session(id: id, full: false, request: Self.request(request, reading: session))
        }
    }

    /// The answer to a fetch of session `id`: in full for the fetch that opened it, else only
    /// the partitions with something new; what each partition was told is kept.
    public func answer(_ response: FetchResponse, session id: Int32, full: Bool) -> FetchResponse {
        state.withLock { s in
            var out = response
            out.sessionId = id
            guard var session = s.sessions[id] else { return out }
            out.responses = response.responses.compactMap { topic in
                var kept = topic
                kept.partitions = topic.partitions.filter { data in
                    let key = Key(topicID: topic.topicId, topic: topic.topic, partition: data.partitionIndex)
                    guard var cached = session.partitions[key] else { return true }
                    let changed = !cached.told || cached.highWatermark != data.highWatermark || cached.lastStable != data.lastStableOffset
                        || cached.logStart != data.logStartOffset
                    let tell = full || changed || data.errorCode != 0 || Self.hasRecords(data) || data.divergingEpoch.epoch.value >= 0
                        || data.preferredReadReplica.value >= 0 || data.currentLeader.leaderId.value >= 0
                    if tell {
                        cached.told = true
                        cached.highWatermark = data.highWatermark
                        cached.lastStable = data.lastStableOffset
                        cached.logStart = data.logStartOffset
                        session.partitions[key] = cached
                    }
                    return tell
                }
                return kept.partitions.isEmpty ? nil : kept
            }
            s.sessions[id] = session
            return out
        }
    }

    static func hasRecords(_ data: FetchResponse.FetchableTopicResponse.PartitionData) -> Bool {
        (data.records?.byteCount ?? 0) > 0
    }

    /// Epochs run 1...Int32.max, then 1 again (0 opens a session, -1 closes one).
    static func next(_ epoch: Int32) -> Int32 { epoch == Int32.max ? 1 : epoch + 1 }

    static func remove(_ id: Int32, _ s: inout State) {
        guard let gone = s.sessions.removeValue(forKey: id) else { return }
        s.partitionsCached -= gone.partitions.count
    }

    static func open(_ request: FetchRequest, usesTopicIDs: Bool, nowMs: Int64, _ s: inout State) -> Plan {
        var session = Session(epoch: 1, usesTopicIDs: usesTopicIDs, lastUsedMs: nowMs)
        update(&session, with: request)
        let size = session.partitions.count
        guard size <= partitionsPerSessionMax else { return .sessionless }
        // Room: a free slot and partitions to spare, or the least recently used session long idle.
        while s.sessions.count >= slotsMax || s.partitionsCached + size > partitionsMax {
            guard let (oldest, idle) = s.sessions.min(by: { $0.value.lastUsedMs < $1.value.lastUsedMs }),
                  nowMs - idle.lastUsedMs >= evictableAfterMs else { return .sessionless }
            remove(oldest, &s)
        }
        var id: Int32 = 0
        while id <= 0 || s.sessions[id] != nil { id = Int32(truncatingIfNeeded: s.random.next() & 0x7fff_ffff) }
        s.sessions[id] = session
        s.partitionsCached += size
        return .session(id: id, full: true, request: Self.request(request, reading: session))
    }

    /// Adds or updates the partitions the request names, then forgets those it says to.
    static func update(_ session: inout Session, with request: FetchRequest) {
        for topic in request.topics {
            for p in topic.partitions {
                let key = Key(topicID: topic.topicId, topic: topic.topic, partition: p.partition)
                if var cached = session.partitions[key] {
                    cached.fetch = p
                    session.partitions[key] = cached
                } else {
                    session.partitions[key] = Cached(fetch: p)
                    session.order.append(key)
                }
            }
        }
        var forgotten = Set<Key>()
        for topic in request.forgottenTopicsData {
            for partition in topic.partitions {
                let key = Key(topicID: topic.topicId, topic: topic.topic, partition: partition)
                if session.partitions.removeValue(forKey: key) != nil { forgotten.insert(key) }
            }
        }
        if !forgotten.isEmpty { session.order.removeAll { forgotten.contains($0) } }
    }

    /// The request with every partition of the session in it, grouped by topic in session order.
    static func request(_ request: FetchRequest, reading session: Session) -> FetchRequest {
        var out = request
        out.forgottenTopicsData = []
        var topics: [FetchRequest.FetchTopic] = []
        var at: [KafkaUUID: [String: Int]] = [:]
        for key in session.order {
            guard let cached = session.partitions[key] else { continue }
            if let index = at[key.topicID]?[key.topic] {
                topics[index].partitions.append(cached.fetch)
            } else {
                at[key.topicID, default: [:]][key.topic] = topics.count
                topics.append(FetchRequest.FetchTopic(topic: key.topic, topicId: key.topicID, partitions: [cached.fetch]))
            }
        }
        out.topics = topics
        return out
    }
}
