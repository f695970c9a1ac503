import ArgumentParser
import BrookClient
import BrookProtocol

/// `brook quota`: client quotas (AlterClientQuotas / DescribeClientQuotas), what
/// `kafka-configs.sh --entity-type users|clients --alter --add-config producer_byte_rate=...`
/// and `--describe` do.
struct QuotaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quota",
        abstract: "Set, remove and list client quotas (producer_byte_rate, consumer_byte_rate, request_percentage, controller_mutation_rate).",
        subcommands: [Alter.self, Describe.self])

    /// The entity named on the command line: `--user NAME`, `--client-id NAME`, each also as
    /// `--user-default` / `--client-id-default` (Kafka's `--entity-default`: the default entity).
    struct Entity: ParsableArguments {
        @Option(help: "The user (principal name) the quota is for.") var user: String?
        @Flag(name: .customLong("user-default"), help: "The default user (every user without a quota of its own).") var userDefault = false
        @Option(name: .customLong("client-id"), help: "The client id the quota is for.") var clientID: String?
        @Flag(name: .customLong("client-id-default"), help: "The default client id.") var clientIDDefault = false

        func validate() throws {
            if user != nil && userDefault { throw ValidationError("give --user or --user-default, not both") }
            if clientID != nil && clientIDDefault { throw ValidationError("give --client-id or --client-id-default, not both") }
        }

        /// (entity type, name or nil for the default), in Kafka's order.
        var components: [(String, String?)] {
            var out: [(String, String?)] = []
            if user != nil || userDefault { out.append(("user", user)) }
            if clientID != nil || clientIDDefault { out.append(("client-id", clientID)) }
            return out
        }
    }

    static func describe(_ entity: [(type: String, name: String?)]) -> String {
        entity.map { "\($0.type)=\($0.name ?? "<default>")" }.joined(separator: ",")
    }

    struct Alter: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set or remove quota values of a user, a client id, or both.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var entity: Entity
        @Option(help: ArgumentHelp("Values to set, as kafka-configs.sh's --add-config (comma-separated or repeated).", valueName: "key=value"))
        var add: [String] = []
        @Option(help: ArgumentHelp("Keys to remove (comma-separated or repeated).", valueName: "key"))
        var delete: [String] = []

        func validate() throws {
            guard !entity.components.isEmpty else { throw ValidationError("name a --user and/or a --client-id (or their -default)") }
            guard !add.isEmpty || !delete.isEmpty else { throw ValidationError("give --add key=value or --delete key") }
        }

        func run() async throws {
            var ops: [AlterClientQuotasRequest.EntryData.OpData] = []
            for (key, text) in try parsePairs(add, option: "--add").sorted(by: { $0.key < $1.key }) {
                guard let value = Double(text), value.isFinite, value > 0 else { throw ValidationError("--add \(key)=\(text): a positive number") }
                ops.append(.init(key: key, value: value, remove: false))
            }
            for key in delete.flatMap({ $0.split(separator: ",").map(String.init) }) where !key.isEmpty {
                ops.append(.init(key: key, value: 0, remove: true))
            }
            let components = entity.components
            let request = AlterClientQuotasRequest(
                entries: [.init(entity: components.map { .init(entityType: $0.0, entityName: $0.1) }, ops: ops)], validateOnly: false)
            let connection = try await client.connect()
            let answer = try await connection.send(request)
            for entry in answer.entries {
                let name = QuotaCommand.describe(entry.entity.map { ($0.entityType, $0.entityName) })
                try check(entry.errorCode, entry.errorMessage, "alter \(name)")
                print("\(name)\taltered")
            }
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List quotas: every entity's, or those matching --user / --client-id (one line each: entity, then key=value).")
        @OptionGroup var client: ClientOptions
        @OptionGroup var entity: Entity

        func run() async throws {
            // A named component matches exactly (0), a default one the default entity (1).
            let components = entity.components.map { type, name in
                DescribeClientQuotasRequest.ComponentData(entityType: type, matchType: name == nil ? 1 : 0, match: name)
            }
            let connection = try await client.connect()
            let answer = try await connection.send(DescribeClientQuotasRequest(components: components, strict: false))
            try check(answer.errorCode, answer.errorMessage, "describe")
            let lines = (answer.entries ?? []).map { entry in
                QuotaCommand.describe(entry.entity.map { ($0.entityType, $0.entityName) }) + "\t"
                    + entry.values.sorted { $0.key < $1.key }.map { "\($0.key)=\(Self.number($0.value))" }.joined(separator: ",")
            }
            for line in lines.sorted() { print(line) }
        }

        /// 1024 as 1024, 0.5 as 0.5.
        static func number(_ value: Double) -> String {
            value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        }
    }
}
