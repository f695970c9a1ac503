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

    static func report(_ results: [AlterUserScramCredentialsResponse.AlterUserScramCredentialsResult], _ what: String) throws {
        for result in results {
            try check(result.errorCode, result.errorMessage, "\(what) \(result.user)")
            print("\(result.user)\t\(what == "add" ? "added" : "deleted")")
        }
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
            let mechanisms = mechanism.isEmpty ? Mechanism.allCases : mechanism
            let upsertions = mechanisms.map { m in
                let salt = randomBytes(32)
                return AlterUserScramCredentialsRequest.ScramCredentialUpsertion(
                    name: user, mechanism: m.scram.rawValue, iterations: iterations, salt: ByteBuffer(bytes: salt),
                    saltedPassword: ByteBuffer(bytes: Scram(m.scram).saltedPassword(secret, salt: salt, iterations: iterations)))
            }
            let connection = try await client.connect()
            let answer = try await connection.send(AlterUserScramCredentialsRequest(upsertions: upsertions))
            try UserCommand.report(answer.results, "add")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a user's SCRAM credentials.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The user name.") var user: String
        @Option(help: "SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable; default: every one the user has).") var mechanism: [Mechanism] = []

        func run() async throws {
            let connection = try await client.connect()
            var codes = mechanism.map(\.scram.rawValue)
            if codes.isEmpty {
                let described = try await connection.send(DescribeUserScramCredentialsRequest(users: [.init(name: user)]))
                try check(described.errorCode, described.errorMessage, "describe \(user)")
                for result in described.results { try check(result.errorCode, result.errorMessage, "delete \(user)") }
                codes = described.results.flatMap { $0.credentialInfos.map(\.mechanism) }
            }
            let answer = try await connection.send(AlterUserScramCredentialsRequest(deletions: codes.map { .init(name: user, mechanism: $0) }))
            try UserCommand.report(answer.results, "delete")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users with SCRAM credentials: mechanisms and iterations, never secrets.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Users to show (default: all).") var users: [String] = []

        func run() async throws {
            let connection = try await client.connect()
            let answer = try await connection.send(DescribeUserScramCredentialsRequest(users: users.isEmpty ? nil : users.map { .init(name: $0) }))
            try check(answer.errorCode, answer.errorMessage, "list users")
            for result in answer.results {
                try check(result.errorCode, result.errorMessage, "describe \(result.user)")
                let infos = result.credentialInfos.map { info in
                    "\(ScramMechanism(rawValue: info.mechanism)?.name ?? "mechanism \(info.mechanism)")(iterations=\(info.iterations))"
                }
                print("\(result.user)\t\(infos.joined(separator: ", "))")
            }
        }
    }
}
