import BrookCore

/// A Raft term. It is also the controller epoch: every metadata change carries the term it was
/// proposed in, and a request made under an older term is refused.
public struct Term: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Int64
    @inlinable public init(_ value: Int64) { self.value = value }
    public static let zero = Term(0)
    @inlinable public static func < (a: Term, b: Term) -> Bool { a.value < b.value }
    @inlinable public var next: Term { Term(value + 1) }
    public var description: String { String(value) }
}

/// The position of an entry in the Raft log. Index 0 is the empty log's sentinel; the first
/// entry has index 1.
public struct LogIndex: Hashable, Comparable, Sendable, CustomStringConvertible, Strideable {
    public var value: Int64
    @inlinable public init(_ value: Int64) { self.value = value }
    public static let zero = LogIndex(0)
    @inlinable public static func < (a: LogIndex, b: LogIndex) -> Bool { a.value < b.value }
    @inlinable public static func + (a: LogIndex, b: Int64) -> LogIndex { LogIndex(a.value + b) }
    @inlinable public static func - (a: LogIndex, b: Int64) -> LogIndex { LogIndex(a.value - b) }
    /// The number of entries from `b` up to `a`.
    @inlinable public static func - (a: LogIndex, b: LogIndex) -> Int64 { a.value - b.value }
    @inlinable public func distance(to other: LogIndex) -> Int64 { other.value - value }
    @inlinable public func advanced(by n: Int64) -> LogIndex { LogIndex(value + n) }
    public var description: String { String(value) }
}

/// One entry of the replicated log.
public struct Entry: Equatable, Sendable {
    public enum Kind: UInt8, Sendable {
        /// An application command (a metadata record).
        case data = 0
        /// Appended by every new leader so that it commits an entry of its own term at once.
        case noop = 1
        /// A new voter set (`Configuration.encoded`), in effect as soon as it is appended.
        case configuration = 2
    }
    public var term: Term
    public var index: LogIndex
    public var kind: Kind
    public var data: [UInt8]
    public init(term: Term, index: LogIndex, kind: Kind = .data, data: [UInt8] = []) {
        self.term = term
        self.index = index
        self.kind = kind
        self.data = data
    }
    /// Bytes counted against the append and uncommitted limits.
    var sizeBytes: Int { data.count + 24 }
}

/// The voters of the quorum. Changed one voter at a time (Ongaro's single-server changes).
public struct Configuration: Equatable, Sendable, CustomStringConvertible {
    public private(set) var voters: [NodeID]
    /// Where voters added while running listen ("host:port"; Kafka's VotersRecord keeps
    /// endpoints in the log for the same reason): opaque to the core, read by the driver. The
    /// founding voters' addresses come from each node's configuration instead.
    public private(set) var endpoints: [NodeID: String]
    public init(voters: [NodeID], endpoints: [NodeID: String] = [:]) {
        precondition(Set(voters).count == voters.count, "a voter appears once in a configuration")
        precondition(endpoints.keys.allSatisfy(voters.contains), "an endpoint belongs to a voter")
        precondition(endpoints.values.allSatisfy { !$0.isEmpty && $0.utf8.count <= Self.endpointBytesMax }, "an endpoint is 1 to \(Self.endpointBytesMax) bytes")
        self.voters = voters.sorted()
        self.endpoints = endpoints
    }
    public static let empty = Configuration(voters: [])
    public func contains(_ node: NodeID) -> Bool { voters.contains(node) }
    public var quorum: Int { voters.count / 2 + 1 }
    public func adding(_ node: NodeID, endpoint: String? = nil) -> Configuration {
        var endpoints = self.endpoints
        endpoints[node] = endpoint
        return Configuration(voters: voters + [node], endpoints: endpoints)
    }
    public func removing(_ node: NodeID) -> Configuration {
        Configuration(voters: voters.filter { $0 != node }, endpoints: endpoints.filter { $0.key != node })
    }

    /// 4 bytes of count, then 4 bytes per voter, big-endian; when some voter has an endpoint,
    /// then per voter 2 bytes of length and that many bytes of UTF-8 (0: none). A configuration
    /// without endpoints is encoded as before they existed.
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4 + voters.count * 4)
        for value in [Int32(voters.count)] + voters.map(\.value) {
            withUnsafeBytes(of: value.bigEndian) { out.append(contentsOf: $0) }
        }
        guard !endpoints.isEmpty else { return out }
        for voter in voters {
            let bytes = Array((endpoints[voter] ?? "").utf8)
            withUnsafeBytes(of: UInt16(bytes.count).bigEndian) { out.append(contentsOf: $0) }
            out.append(contentsOf: bytes)
        }
        return out
    }
    public init?(encoded bytes: [UInt8]) {
        func int32(at i: Int) -> Int32 { bytes[i..<(i + 4)].reduce(0) { ($0 << 8) | Int32($1) } }
        guard bytes.count >= 4 else { return nil }
        let count = Int(int32(at: 0))
        guard count >= 0, count <= Configuration.votersMax, bytes.count >= 4 + count * 4 else { return nil }
        let voters = (0..<count).map { NodeID(int32(at: 4 + $0 * 4)) }
        guard Set(voters).count == voters.count else { return nil }
        var endpoints: [NodeID: String] = [:]
        var at = 4 + count * 4
        if at < bytes.count {
            for voter in voters {
                guard at + 2 <= bytes.count else { return nil }
                let length = Int(bytes[at]) << 8 | Int(bytes[at + 1])
                at += 2
                guard length <= Self.endpointBytesMax, at + length <= bytes.count else { return nil }
                if length > 0 {
                    guard let text = String(validating: bytes[at..<(at + length)], as: UTF8.self) else { return nil }
                    endpoints[voter] = text
                }
                at += length
            }
            guard at == bytes.count, !endpoints.isEmpty else { return nil }
        }
        self.init(voters: voters, endpoints: endpoints)
    }
    /// A quorum of more than this many voters is refused (Kafka's KRaft runs 3 or 5).
    public static let votersMax = 64
    /// The longest endpoint a configuration keeps ("host:port").
    public static let endpointBytesMax = 300
    public var description: String {
        "[" + voters.map { v in endpoints[v].map { "\(v)@\($0)" } ?? v.description }.joined(separator: ",") + "]"
    }
}

/// What must survive a crash besides the log: the current term, the vote cast in it, and the
/// commit index (an optimisation: it saves re-learning commitment after a restart).
public struct HardState: Equatable, Sendable {
    public var term: Term
    public var votedFor: NodeID?
    public var commit: LogIndex
    public init(term: Term = .zero, votedFor: NodeID? = nil, commit: LogIndex = .zero) {
        self.term = term
        self.votedFor = votedFor
        self.commit = commit
    }
}

/// The applied state up to `index`, replacing the log's prefix.
public struct Snapshot: Equatable, Sendable {
    public var index: LogIndex
    public var term: Term
    public var configuration: Configuration
    public var data: [UInt8]
    public init(index: LogIndex, term: Term, configuration: Configuration, data: [UInt8]) {
        self.index = index
        self.term = term
        self.configuration = configuration
        self.data = data
    }
}

/// A message between two Raft nodes. `term` is the sender's term, except in pre-votes, where it
/// is the term the pre-candidate would campaign in.
public struct Message: Equatable, Sendable {
    public enum Body: Equatable, Sendable {
        case preVote(lastIndex: LogIndex, lastTerm: Term)
        case preVoteResponse(granted: Bool)
        /// `transfer`: the campaign follows a leader's TimeoutNow, so voters skip their lease.
        case vote(lastIndex: LogIndex, lastTerm: Term, transfer: Bool)
        case voteResponse(granted: Bool)
        case append(prevIndex: LogIndex, prevTerm: Term, entries: [Entry], commit: LogIndex)
        /// On success `index` is the follower's match; on rejection it is the rejected
        /// `prevIndex` and `hint` is where the leader should try next.
        case appendResponse(success: Bool, index: LogIndex, hint: LogIndex)
        case installSnapshot(Snapshot)
        /// The leader asks its chosen successor to campaign now (leader transfer).
        case timeoutNow
    }
    public var from: NodeID
    public var to: NodeID
    public var term: Term
    public var body: Body
    public init(from: NodeID, to: NodeID, term: Term, body: Body) {
        self.from = from
        self.to = to
        self.term = term
        self.body = body
    }
}

/// The role a node plays in its current term.
public enum Role: String, Sendable {
    case follower, preCandidate, candidate, leader
}

/// A digest chained over applied entries (FNV-1a over the previous digest, index, term, kind
/// and data): the stand-in state machine of the simulator and of the controllers until the
/// metadata image exists. Two nodes that applied the same entries hold the same digest.
public enum EntryDigest {
    public static func chain(_ digest: UInt64, _ entry: Entry) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ digest
        func mix(_ byte: UInt8) { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        withUnsafeBytes(of: entry.index.value.bigEndian) { $0.forEach(mix) }
        withUnsafeBytes(of: entry.term.value.bigEndian) { $0.forEach(mix) }
        mix(entry.kind.rawValue)
        entry.data.forEach(mix)
        return hash
    }

    /// The digest as a snapshot's data, and back.
    public static func snapshotData(_ digest: UInt64) -> [UInt8] { withUnsafeBytes(of: digest.bigEndian) { Array($0) } }
    public static func digest(fromSnapshot data: [UInt8]) -> UInt64 {
        precondition(data.count == 8 || data.isEmpty, "a digest snapshot holds 8 bytes, not \(data.count)")
        return data.reduce(0) { ($0 << 8) | UInt64($1) }
    }
}
