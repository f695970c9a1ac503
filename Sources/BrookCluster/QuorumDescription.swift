import BrookCore

/// The metadata quorum as its leader sees it (what Kafka's DescribeQuorum answers): the leader
/// and its term, the committed end of the log, each voter's and each broker's progress.
///
/// Offsets are the metadata log's: an entry's Raft index, so a log end is the index of the last
/// entry held (the count of entries ever written) and the high watermark the last committed.
/// Times are the leader's wall clock in milliseconds since the epoch, -1 when unknown.
public struct QuorumDescription: Equatable, Sendable {
    public struct Replica: Equatable, Sendable {
        public var id: NodeID
        /// The last log entry the leader knows this replica holds (a broker: has applied), or -1.
        public var logEnd: Int64
        /// When the leader last heard from it (a voter's append answer, a broker's heartbeat).
        public var lastFetchMs: Int64
        /// When it last held everything the leader had.
        public var lastCaughtUpMs: Int64
        public init(id: NodeID, logEnd: Int64, lastFetchMs: Int64 = -1, lastCaughtUpMs: Int64 = -1) {
            self.id = id
            self.logEnd = logEnd
            self.lastFetchMs = lastFetchMs
            self.lastCaughtUpMs = lastCaughtUpMs
        }
    }

    public var leader: NodeID
    public var term: Int64
    public var highWatermark: Int64
    public var voters: [Replica]
    /// Brokers (and controllers outside the voters that the leader hears from).
    public var observers: [Replica]
    /// Where each voter listens (`host:port`), where the leader knows it.
    public var endpoints: [NodeID: String]

    public init(leader: NodeID, term: Int64, highWatermark: Int64, voters: [Replica], observers: [Replica], endpoints: [NodeID: String] = [:]) {
        self.leader = leader
        self.term = term
        self.highWatermark = highWatermark
        self.voters = voters
        self.observers = observers
        self.endpoints = endpoints
    }

    /// The most replicas of either kind an answer carries (a broker's request is refused past it).
    public static let replicasMax = 10_000
}

/// A QuorumDescription as a controller's text answer, one `key=value ...` line each:
///
///     leader=1 term=4 high_watermark=120
///     voter=1 log_end=120 last_fetch_ms=-1 last_caught_up_ms=1765000000000
///     observer=4 log_end=118 last_fetch_ms=1765000000000 last_caught_up_ms=-1
///     endpoint=1 address=127.0.0.1:9093
public enum QuorumDescriptionText {
    public static func text(_ d: QuorumDescription) -> String {
        var out = "leader=\(d.leader.value) term=\(d.term) high_watermark=\(d.highWatermark)\n"
        func line(_ kind: String, _ r: QuorumDescription.Replica) {
            out += "\(kind)=\(r.id.value) log_end=\(r.logEnd) last_fetch_ms=\(r.lastFetchMs) last_caught_up_ms=\(r.lastCaughtUpMs)\n"
        }
        for voter in d.voters { line("voter", voter) }
        for observer in d.observers { line("observer", observer) }
        for (id, address) in d.endpoints.sorted(by: { $0.key < $1.key }) { out += "endpoint=\(id.value) address=\(address)\n" }
        return out
    }

    /// nil when `text` is not such an answer (a line unknown, a number missing, too many replicas).
    public static func parse(_ text: String) -> QuorumDescription? {
        var description: QuorumDescription?
        var replicas = 0
        for line in text.split(separator: "\n") {
            var fields: [Substring: Substring] = [:]
            var first: Substring?
            for pair in line.split(separator: " ") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, fields[parts[0]] == nil else { return nil }
                fields[parts[0]] = parts[1]
                if first == nil { first = parts[0] }
            }
            func number(_ key: Substring) -> Int64? { fields[key].flatMap { Int64($0) } }
            switch first {
            case "leader":
                guard description == nil, let leader = fields["leader"].flatMap({ Int32($0) }), let term = number("term"),
                      let hw = number("high_watermark") else { return nil }
                description = QuorumDescription(leader: NodeID(leader), term: term, highWatermark: hw, voters: [], observers: [])
            case "voter", "observer":
                guard description != nil, let kind = first, let id = fields[kind].flatMap({ Int32($0) }), let end = number("log_end"),
                      let fetched = number("last_fetch_ms"), let caught = number("last_caught_up_ms") else { return nil }
                replicas += 1
                guard replicas <= 2 * QuorumDescription.replicasMax else { return nil }
                let replica = QuorumDescription.Replica(id: NodeID(id), logEnd: end, lastFetchMs: fetched, lastCaughtUpMs: caught)
                if kind == "voter" { description!.voters.append(replica) } else { description!.observers.append(replica) }
            case "endpoint":
                guard description != nil, let id = fields["endpoint"].flatMap({ Int32($0) }), let address = fields["address"],
                      description!.endpoints.count < QuorumDescription.replicasMax else { return nil }
                description!.endpoints[NodeID(id)] = String(address)
            default:
                return nil
            }
        }
        return description
    }
}
