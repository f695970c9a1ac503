import ArgumentParser
import BrookClient
import BrookCore
import BrookCrypto
import BrookProtocol
import BrookSecurity
import NIOCore

/// `brook user`: SCRAM credentials (AlterUserScramCredentials / DescribeUserScramCredentials),
/// what `kafka-configs.sh --entity-type users --alter --add-config 'SCRAM-SHA-256=[...]'` does.
struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Add, remove and list users' SCRAM credentials (kept salted in the metadata log).",
        subcommands: [Add.self, Delete.self, List.self])

    enum Mechanism: String, ExpressibleByArgument, CaseIterable {
        case sha256 = "SCRAM-SHA-256", sha512 = "SCRAM-SHA-512"
        var scram: ScramMechanism { self == .sha256 ? .sha256 : .sha512 }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a user's password for SCRAM mechanisms (the password is salted here; the broker never sees it).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The user name.") var user: String
        @Option(help: "The password (or --password-file).") var password: String?
        @Option(name: .customLong("password-file"), help: "A file whose first line is the password.") var passwordFile: String?
        @Option(help: "SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable; default both).") var mechanism: [Mechanism] = []
        @Option(help: "PBKDF2 iterations (4096...16384).") var iterations: Int32 = ScramMechanism.iterationsMin

        func validate() throws {
            guard (password == nil) != (passwordFile == nil) else { throw ValidationError("give --password or --password-file") }
            guard (ScramMechanism.iterationsMin...ScramMechanism.iterationsMax).contains(iterations) else {
                throw ValidationError("--iterations must be within \(ScramMechanism.iterationsMin)...\(ScramMechanism.iterationsMax)")
            }
        }

        func run() async throws {
            let secret: String
            if let password { secret = password } else {
                guard let text = try? String(contentsOfFile: passwordFile!, encoding: .utf8),
                      let line = text.split(whereSeparator: \.isNewline).first, !line.isEmpty else {
                    throw ValidationError("cannot read a password from \(passwordFile!)")
                }
                secret = String(line)
            }
            let admin = try client.admin()
            for m in mechanism.isEmpty ? Mechanism.allCases : mechanism {
                try await admin.upsertUserScramCredential(user, mechanism: m.scram, password: secret, iterations: iterations)
                print("\(user)\tadded")
            }
            await admin.close()
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a user's SCRAM credentials.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The user name.") var user: String
        @Option(help: "SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable; default: every one the user has).") var mechanism: [Mechanism] = []

        func run() async throws {
            let admin = try client.admin()
            var mechanisms = mechanism.map(\.scram)
            if mechanisms.isEmpty { mechanisms = try await admin.describeUserScramCredentials([user])[user]?.map(\.mechanism) ?? [] }
            for m in mechanisms {
                try await admin.deleteUserScramCredential(user, mechanism: m)
                print("\(user)\tdeleted")
            }
            await admin.close()
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users with SCRAM credentials: mechanisms and iterations, never secrets.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Users to show (default: all).") var users: [String] = []

        func run() async throws {
            let admin = try client.admin()
            let described = try await admin.describeUserScramCredentials(users.isEmpty ? nil : users)
            await admin.close()
            for (user, infos) in described.sorted(by: { $0.key < $1.key }) {
                let shown = infos.sorted { $0.mechanism.rawValue < $1.mechanism.rawValue }.map { "\($0.mechanism.name)(iterations=\($0.iterations))" }
                print("\(user)\t\(shown.joined(separator: ", "))")
            }
        }
    }
}
