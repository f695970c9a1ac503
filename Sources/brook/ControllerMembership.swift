import ArgumentParser
import BrookCore
import BrookQuorum
import Foundation

/// `brook cluster add-controller` / `remove-controller`: one voter more or less in the Raft
/// metadata quorum while it runs (Kafka's AddRaftVoter / RemoveRaftVoter, as
/// kafka-metadata-quorum offers them). Any controller may be asked: the request follows the
/// leader it names.
extension ClusterCommand {
    struct AddController: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-controller",
            abstract: "Make a running controller a voter of the metadata quorum.",
            discussion: """
                Start the new controller first (process.roles with controller, its node.id, a CONTROLLER \
                listener, and controller.quorum.voters naming the current voters): it waits outside the \
                voters. This asks the leader to add it, which then sends it the log; the answer comes once \
                the new voter set is committed. One change at a time.
                """)
        @OptionGroup var target: QuorumCommand.Target
        @Option(help: "The new controller's node.id.") var id: Int32
        @Option(help: ArgumentHelp("Where the new controller's CONTROLLER listener is reached.", valueName: "host:port")) var address: String

        func run() throws {
            guard id >= 0 else { throw ValidationError("--id must not be negative") }
            guard let voter = VoterAddress(id: NodeID(id), endpoint: address) else { throw ValidationError("--address takes host:port") }
            try target.printChange(target.askLeader(.addVoter(voter)), done: { $0.contains(NodeID(id)) })
        }
    }

    struct RemoveController: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove-controller",
            abstract: "Take a controller out of the voters of the metadata quorum.",
            discussion: """
                The answer comes once the smaller voter set is committed; a leader that removes itself \
                steps down then. The removed controller keeps running as an observer until stopped.
                """)
        @OptionGroup var target: QuorumCommand.Target
        @Option(help: "The controller's node.id.") var id: Int32

        func run() throws { try target.printChange(target.askLeader(.removeVoter(NodeID(id))), done: { !$0.contains(NodeID(id)) }) }
    }
}

extension QuorumCommand.Target {
    /// Asks the controller given, then the leader its answer names (`leader_address`), again
    /// while the answer says to retry, for `timeoutMs` in all. A controller that knows no leader
    /// (one just removed from the voters, or cut off) is left for the one given. `retried`: an
    /// earlier attempt may have been carried out (its leader lost leadership before answering).
    func askLeader(_ request: QuorumRequest) throws -> (answer: QuorumClient.Answer, retried: Bool) {
        let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
        var asked = self
        var retried = false
        while true {
            let answer = try asked.ask(request)
            let fields = answer.fields
            if answer.ok || Date() > deadline { return (answer, retried) }
            if let address = fields["leader_address"], address != asked.controller {
                asked.controller = address
                continue
            }
            let retry = fields["error"]?.contains("retry") == true
            retried = retried || retry
            guard retry || fields["leader"] == "-1" else { return (answer, retried) }
            if fields["leader"] == "-1" { asked = self }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }

    /// Prints the answer to a change of the voters. When an attempt was retried and the last
    /// answer refuses the change as made already (`done` holds for the voters the controller
    /// given now has), the change is taken as made and those voters printed.
    func printChange(_ asked: (answer: QuorumClient.Answer, retried: Bool), done: ([NodeID]) -> Bool) throws {
        if !asked.answer.ok, asked.retried, let status = try? ask(.status), status.ok, let listed = status.fields["voters"] {
            let voters = listed.split(separator: ",").compactMap { Int32($0) }.map(NodeID.init)
            if done(voters) {
                Swift.print("voters=\(listed)")
                return
            }
        }
        try print(asked.answer)
    }
}
