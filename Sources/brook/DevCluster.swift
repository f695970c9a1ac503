import ArgumentParser
import Dispatch
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

struct DevCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev", abstract: "Local setups for trying Brook out.", subcommands: [DevCluster.self])
}

/// `brook dev cluster`: a replicated cluster on loopback for trying it out. Each node is a
/// `brook serve` child process with both roles, a properties file, a log and a pid file in the
/// data folder; Ctrl-C (or SIGTERM) stops them all (each its own controlled shutdown), then
/// exits. A SIGKILLed `brook dev cluster` leaves its nodes running: their pids are in the folder.
struct DevCluster: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Start a local cluster on loopback (both roles on every node); Ctrl-C stops it.",
        discussion: """
            Node N listens for clients on BASE+2(N-1) and for its controller on BASE+2(N-1)+1, so the
            default three nodes take 9092-9097; node N serves its metrics, health and readiness over
            HTTP on HTTP_BASE+N-1 (9644-9646). Data, properties and logs go in --data (kept between
            runs: the same command starts the same cluster again).
            """)

    @Option(help: "Nodes (1 to 9).") var nodes: Int = 3
    @Option(help: "The data folder.") var data: String = "brook-dev-cluster"
    @Option(name: .customLong("base-port"), help: "Node 1's client port; every node takes the next two.") var basePort: Int = 9092
    @Option(name: .customLong("http-base-port"), help: "Node 1's HTTP port (/metrics, /health, /ready); every node takes the next one.")
    var httpBasePort: Int = 9644
    @Option(help: "Extra setting for every node, KEY=VALUE (repeatable).") var set: [String] = []

    func validate() throws {
        guard (1...9).contains(nodes) else { throw ValidationError("--nodes must be 1 to 9") }
        guard basePort > 0, basePort + 2 * nodes <= 65535 else { throw ValidationError("--base-port leaves no room for \(nodes) nodes") }
        guard httpBasePort > 0, httpBasePort + nodes <= 65535 else { throw ValidationError("--http-base-port leaves no room for \(nodes) nodes") }
        for s in set where !s.contains("=") { throw ValidationError("--set takes KEY=VALUE, not \(s)") }
    }

    func run() throws {
        let root = absolutePath(data)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let ports = (1...nodes).map { (client: basePort + 2 * ($0 - 1), controller: basePort + 2 * ($0 - 1) + 1) }
        let voters = ports.enumerated().map { "\($0.offset + 1)@127.0.0.1:\($0.element.controller)" }.joined(separator: ",")
        let binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var children: [Process] = []
        for (index, port) in ports.enumerated() {
            let node = index + 1
            let props = root + "/node\(node).properties"
            let lines = [
                "process.roles=broker,controller",
                "node.id=\(node)",
                "controller.quorum.voters=\(voters)",
                "listeners=PLAINTEXT://127.0.0.1:\(port.client),CONTROLLER://127.0.0.1:\(port.controller)",
                "controller.listener.names=CONTROLLER",
                "log.dirs=\(root)/node\(node)",
                "http.listeners=http://127.0.0.1:\(httpBasePort + index)",
            ] + set
            try (lines.joined(separator: "\n") + "\n").write(toFile: props, atomically: true, encoding: .utf8)
            let log = root + "/node\(node).log"
            if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
            let out = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            out.seekToEndOfFile()
            let child = Process()
            child.executableURL = URL(fileURLWithPath: binary)
            child.arguments = ["serve", props]
            child.standardOutput = out
            child.standardError = out
            do { try child.run() } catch {
                stop(children)
                throw ValidationError("cannot start node \(node): \(error)")
            }
            children.append(child)
            try "\(child.processIdentifier)\n".write(toFile: root + "/node\(node).pid", atomically: true, encoding: .utf8)
        }
        let bootstrap = ports.map { "127.0.0.1:\($0.client)" }.joined(separator: ",")
        print("Brook dev cluster: \(nodes) nodes, data and logs in \(root)")
        print("bootstrap.servers=\(bootstrap)")
        print("controllers: \(voters)   (brook cluster describe --controller 127.0.0.1:\(ports[0].controller))")
        print("metrics: " + (0..<nodes).map { "http://127.0.0.1:\(httpBasePort + $0)/metrics" }.joined(separator: " "))
        print("Ctrl-C stops every node.")
        let running = children
        var logger = Logger(label: "brook.dev")
        logger.logLevel = .notice
        runUntilSignalled(logger: logger) { stop(running) }
    }

    /// SIGTERM to every node (a controlled shutdown each), then waits up to 60 s for them;
    /// any still running after that is killed.
    func stop(_ children: [Process]) {
        for child in children where child.isRunning { kill(child.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(60)
        for child in children {
            while child.isRunning && Date() < deadline { usleep(50_000) }
            if child.isRunning {
                kill(child.processIdentifier, SIGKILL)
                child.waitUntilExit()
            }
        }
        print("stopped \(children.count) nodes")
    }
}
