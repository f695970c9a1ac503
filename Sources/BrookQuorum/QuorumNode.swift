import BrookCluster
import BrookCore
import BrookRaft
import BrookStorage
import Logging
import NIOCore
import NIOPosix

/// A voter's address, as Kafka's `controller.quorum.voters` lists them: `id@host:port`.
public struct VoterAddress: Equatable, Sendable {
    public var id: NodeID
    public var host: String
    public var port: Int

    public init(id: NodeID, host: String, port: Int) {
        self.id = id
        self.host = host
        self.port = port
    }

    /// `host:port` (`[host]:port` for an IPv6 address): what a configuration entry and a
    /// controller's answers carry.
    public var endpoint: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Voter `id` at `endpoint` (`host:port`); nil when it is not one.
    public init?(id: NodeID, endpoint: String) {
        guard let parsed = try? Self.parseList("\(id.value)@\(endpoint)").first else { return nil }
        self = parsed
    }

    /// Parses `1@127.0.0.1:9093,2@127.0.0.1:9094,...`.
    public static func parseList(_ text: String) throws(QuorumError) -> [VoterAddress] {
        var voters: [VoterAddress] = []
        for item in text.split(separator: ",") {
            let idAndAddress = item.split(separator: "@", maxSplits: 1)
            guard idAndAddress.count == 2, let id = Int32(idAndAddress[0]), id >= 0,
                  let colon = idAndAddress[1].lastIndex(of: ":"), let port = Int(idAndAddress[1][idAndAddress[1].index(after: colon)...]),
                  (1...65535).contains(port) else { throw .invalidVoters("'\(item)' is not id@host:port") }
            let host = String(idAndAddress[1][..<colon]).trimmingCharacters(in: "[]")
            voters.append(VoterAddress(id: NodeID(id), host: host, port: port))
        }
        guard !voters.isEmpty, voters.count <= Configuration.votersMax else { throw .invalidVoters("1 to \(Configuration.votersMax) voters are needed") }
        guard Set(voters.map(\.id)).count == voters.count else { throw .invalidVoters("a voter id appears twice") }
        return voters
    }
}

public enum QuorumError: Error, CustomStringConvertible {
    case invalidVoters(String)
    case notAVoter(NodeID)
    case unreachable(String)
    case timedOut
    public var description: String {
        switch self {
        case .invalidVoters(let why): return "controller.quorum.voters: \(why)"
        case .notAVoter(let id): return "node \(id) is not in controller.quorum.voters"
        case .unreachable(let why): return "cannot reach the controller: \(why)"
        case .timedOut: return "the controller did not answer in time"
        }
    }
}

public struct QuorumOptions: Sendable {
    public var nodeID: NodeID
    public var voters: [VoterAddress]
    public var dataDirectory: String
    /// Kafka's `controller.quorum.election.timeout.ms`: a follower campaigns after between one
    /// and two of these without a leader. A tick is a tenth of it; heartbeats go every tick.
    public var electionTimeoutMs: Int64 = 1000
    /// Snapshot the state machine and drop the log's prefix every this many applied entries.
    public var snapshotEveryEntries: Int64 = 10_000
    /// The active controller's settings (broker.session.timeout.ms, default.replication.factor, ...).
    public var controller = ControllerConfig()
    /// Where to listen (the CONTROLLER listener); the voter's own address when nil.
    public var listenHost: String?
    public var listenPort: Int?
    /// TLS on the controllers' connections, accepted and opened (PLAINTEXT by default).
    public var transport = QuorumTransport.plaintext
    /// Told how long each save of the Raft log took, in nanoseconds (its fsync included).
    public var observeSave: (@Sendable (UInt64) -> Void)?
    public init(nodeID: NodeID, voters: [VoterAddress], dataDirectory: String) {
        self.nodeID = nodeID
        self.voters = voters
        self.dataDirectory = dataDirectory
    }
}

private extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let first = s.first, set.contains(first) { s = s.dropFirst() }
        while let last = s.last, set.contains(last) { s = s.dropLast() }
        return String(s)
    }
}
