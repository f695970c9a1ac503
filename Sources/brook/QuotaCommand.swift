import ArgumentParser
import BrookClient

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

        /// The entity's parts (a name, or nil for the default), in Kafka's order.
        var components: [QuotaEntityPart] {
            var out: [QuotaEntityPart] = []
            if user != nil || userDefault { out.append(QuotaEntityPart("user", user)) }
            if clientID != nil || clientIDDefault { out.append(QuotaEntityPart("client-id", clientID)) }
            return out
        }
    }

    static func describe(_ entity: [QuotaEntityPart]) -> String {
        entity.map(\.description).joined(separator: ",")
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
            var set: [String: Double] = [:]
            for (key, text) in try parsePairs(add, option: "--add") {
                guard let value = Double(text), value.isFinite, value > 0 else { throw ValidationError("--add \(key)=\(text): a positive number") }
                set[key] = value
            }
            let remove = delete.flatMap { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
            let admin = try client.admin()
            try await admin.alterClientQuotas(entity.components, set: set, remove: remove)
            await admin.close()
            print("\(QuotaCommand.describe(entity.components))\taltered")
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List quotas: every entity's, or those matching --user / --client-id (one line each: entity, then key=value).")
        @OptionGroup var client: ClientOptions
        @OptionGroup var entity: Entity

        func run() async throws {
            // A named part matches exactly, a default one the default entity.
            let filter = entity.components.map { QuotaFilterPart($0.type, $0.name.map { .exactly($0) } ?? .defaultEntity) }
            let admin = try client.admin()
            let quotas = try await admin.describeClientQuotas(filter)
            await admin.close()
            let lines = quotas.map { entity, values in
                QuotaCommand.describe(entity) + "\t" + values.sorted { $0.key < $1.key }.map { "\($0.key)=\(Self.number($0.value))" }.joined(separator: ",")
            }
            for line in lines.sorted() { print(line) }
        }

        /// 1024 as 1024, 0.5 as 0.5.
        static func number(_ value: Double) -> String {
            value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        }
    }
}
