import ArgumentParser
import BrookBroker
import BrookClient
import BrookCore
import BrookQuorum
import BrookRaft
import BrookServer
import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix

/// `brook controller`: one voter of the Raft metadata quorum (Kafka's process.roles=controller).
struct ControllerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Run one controller of the Raft metadata quorum.",
        discussion: """
            Three (or five) of these, each with its own --node-id and data directory and the same \
            --controller-quorum-voters, elect a leader and replicate the metadata log. SIGTERM or \
            Ctrl-C stops it; `brook quorum status` shows who leads.
            """)

    @Option(name: .customLong("node-id"), help: "This controller's id (node.id): one of the voters, or a new one with --listen.")
    var nodeID: Int32

    @Option(name: .customLong("controller-quorum-voters"), help: ArgumentHelp("Every voter, as Kafka's controller.quorum.voters.", valueName: "id@host:port,..."))
    var voters: String

    @Option(name: .customLong("data-dir"), help: "Where the Raft log, quorum-state and snapshot live (metadata.log.dir).")
    var dataDirectory: String

    @Option(name: .customLong("election-timeout-ms"), help: "controller.quorum.election.timeout.ms: a follower campaigns after 1 to 2 of these without a leader.")
    var electionTimeoutMs: Int64 = 1000

    @Option(name: .customLong("snapshot-every"), help: "Take a snapshot every this many applied entries.")
    var snapshotEvery: Int64 = 10_000

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    @Option(help: ArgumentHelp("Where to listen, for a controller outside the voters given: it waits until `brook cluster add-controller` makes it a voter.", valueName: "host:port"))
    var listen: String?

    @Option(name: .customLong("http-listeners"), help: ArgumentHelp("Where /metrics (the quorum's), /health and /ready are served, as http.listeners; none by default.", valueName: "http://host:port,..."))
    var httpListeners: String = ""

    func validate() throws {
        guard electionTimeoutMs >= 10, electionTimeoutMs <= 600_000 else { throw ValidationError("--election-timeout-ms must be 10 to 600000") }
        guard snapshotEvery >= 1 else { throw ValidationError("--snapshot-every must be positive") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown log level \(logLevel)") }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "brook.quorum")
        var options: QuorumOptions
        do {
            options = QuorumOptions(nodeID: NodeID(nodeID), voters: try VoterAddress.parseList(voters), dataDirectory: dataDirectory)
        } catch { throw ValidationError("\(error)") }
        options.electionTimeoutMs = electionTimeoutMs
        options.snapshotEveryEntries = snapshotEvery
        if let listen {
            guard let address = VoterAddress(id: NodeID(nodeID), endpoint: listen) else { throw ValidationError("--listen takes host:port") }
            options.listenHost = address.host
            options.listenPort = address.port
        }
        let http: BrokerConfig
        do { http = try BrokerConfig([("http.listeners", httpListeners)]) } catch { throw ValidationError("--http-listeners: \(error)") }
        let observed = try Observability.start(http, shutdownTimeoutMs: 60_000, logger: logger)
        options.observeSave = observed.metrics?.observeSave
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let driver: QuorumDriver
        do { driver = try QuorumDriver.start(options, group: group, logger: logger) } catch {
            throw ValidationError("cannot start controller \(nodeID): \(error)")
        }
        observed.metrics?.attach(quorum: driver.stats)
        observed.health.markReady()
        runNode([observed.part, NodePart(description: "controller") { driver.shutdown() }], watchdog: observed.watchdog, logger: logger)
    }
}

/// `brook quorum ...`: ask a controller about the quorum, or append test entries.
struct QuorumCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quorum", abstract: "Inspect and exercise the Raft metadata quorum.",
        subcommands: [Status.self, Append.self, Read.self, Transfer.self])

    struct Target: ParsableArguments {
        @Option(help: ArgumentHelp("The controller to ask.", valueName: "host:port"))
        var controller: String = "127.0.0.1:9093"
        @Option(name: .customLong("timeout-ms"), help: "How long to wait for the answer.")
        var timeoutMs: Int64 = 5000
        @Option(name: .customLong("command-config"),
                help: "Client properties for a controller listener that is SSL: security.protocol=SSL, ssl.truststore.location, ssl.keystore.location (PEM; mTLS), ssl.endpoint.identification.algorithm.")
        var commandConfig: String?

        func ask(_ request: QuorumRequest) throws -> QuorumClient.Answer {
            guard let colon = controller.lastIndex(of: ":"), let port = Int(controller[controller.index(after: colon)...]) else {
                throw ValidationError("--controller takes host:port")
            }
            let settings = try ClientProperties.read(commandConfig)
            if try ClientProperties.securityProtocol(settings).usesSASL {
                throw ValidationError("controllers take PLAINTEXT or SSL (mTLS), not SASL")
            }
            var transport = QuorumTransport.plaintext
            if let tls = try ClientProperties.tls(settings) {
                transport = QuorumTransport(client: { channel, host in try channel.pipeline.syncOperations.addHandler(tls.handler(host: host)) })
            }
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            defer { try? group.syncShutdownGracefully() }
            do {
                return try QuorumClient.ask(host: String(controller[..<colon]), port: port, request, timeoutMs: timeoutMs, transport: transport, group: group)
            } catch {
                throw CommandFailure("\(controller): \(error)")
            }
        }

        func print(_ answer: QuorumClient.Answer) throws {
            Swift.print(answer.text, terminator: "")
            if !answer.ok { throw ExitCode(1) }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A controller's role, term (controller epoch), leader, commit index and voters.")
        @OptionGroup var target: Target
        func run() throws { try target.print(try target.ask(.status)) }
    }

    struct Append: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Append entries through the leader; each is printed once committed.")
        @OptionGroup var target: Target
        @Option(help: "How many entries.") var count: Int = 1
        @Option(help: "Entry text; N is replaced by the entry's number.") var value: String = "entry-N"
        func validate() throws { guard (1...1_000_000).contains(count) else { throw ValidationError("--count must be 1 to 1000000") } }
        func run() throws {
            for n in 0..<count {
                let answer = try target.ask(.propose(Array(value.replacingOccurrences(of: "N", with: String(n)).utf8)))
                guard answer.ok else { return try target.print(answer) }
                Swift.print(answer.text.split(separator: "\n").joined(separator: " "))
            }
        }
    }

    struct Read: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The committed entry at an index, from this controller's log.")
        @OptionGroup var target: Target
        @Option(help: "The entry's index.") var index: Int64
        func run() throws { try target.print(try target.ask(.read(LogIndex(index)))) }
    }

    struct Transfer: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Ask the leader to hand leadership to another voter.")
        @OptionGroup var target: Target
        @Option(name: .customLong("to"), help: "The voter to lead next.") var to: Int32
        func run() throws { try target.print(try target.ask(.transfer(NodeID(to)))) }
    }
}

/// `brook cluster ...`: the cluster as the controllers' metadata image holds it.
struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster", abstract: "Inspect a cluster (process.roles): brokers, fencing, the active controller; drain and unregister brokers; add and remove controllers.",
        subcommands: [Describe.self, Decommission.self, Unregister.self, AddController.self, RemoveController.self])

    struct Describe: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every registered broker (epoch, fenced, controlled shutdown, rack, endpoints) and the active controller.",
            discussion: "Asks one controller (any of controller.quorum.voters); its committed image answers.")
        @OptionGroup var target: QuorumCommand.Target
        func run() throws { try target.print(try target.ask(.describeCluster)) }
    }
}
