import ArgumentParser
import BrookClient
import BrookCore
import BrookProtocol

/// `brook acl`: CreateAcls / DescribeAcls / DeleteAcls, as kafka-acls.sh.
struct AclCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acl",
        abstract: "Add, list and remove access control entries (as kafka-acls.sh); needs authorizer.class.name on the broker.",
        subcommands: [Add.self, List.self, Remove.self])

    /// Kafka's resource type and operation codes, by the names kafka-acls.sh takes.
    static let operations: [String: AclOperation] = [
        "all": .all, "read": .read, "write": .write, "create": .create, "delete": .delete, "alter": .alter, "describe": .describe,
        "clusteraction": .clusterAction, "describeconfigs": .describeConfigs, "alterconfigs": .alterConfigs, "idempotentwrite": .idempotentWrite,
    ]
    static func operationName(_ operation: AclOperation) -> String {
        operations.first { $0.value == operation }.map { $0.key.uppercased() } ?? "\(operation)".uppercased()
    }
    static let resourceNames: [AclResourceType: String] = [.topic: "Topic", .group: "Group", .cluster: "Cluster", .transactionalID: "TransactionalId",
                                                          .delegationToken: "DelegationToken", .user: "User"]

    /// An entry as kafka-acls.sh's listing shows it, one tab-separated line.
    static func line(_ b: AclBinding) -> String {
        [b.permission == .deny ? "DENY" : "ALLOW", b.principal, operationName(b.operation), resourceNames[b.resourceType] ?? "\(b.resourceType)",
         b.patternType == .prefixed ? "PREFIXED" : "LITERAL", b.resourceName, b.host].joined(separator: "\t")
    }

    struct Resource: ParsableArguments {
        @Option(help: "A topic (or * for every topic).") var topic: String?
        @Option(help: "A consumer group.") var group: String?
        @Option(name: .customLong("transactional-id"), help: "A transactional id.") var transactionalID: String?
        @Flag(help: "The cluster.") var cluster = false
        @Flag(help: "The name is a prefix (default: the literal name).") var prefixed = false

        /// (resource type, name); nil when none is given.
        func resource() throws -> (AclResourceType, String)? {
            var given: [(AclResourceType, String)] = []
            if let topic { given.append((.topic, topic)) }
            if let group { given.append((.group, group)) }
            if let transactionalID { given.append((.transactionalID, transactionalID)) }
            if cluster { given.append((.cluster, "kafka-cluster")) }
            guard given.count <= 1 else { throw ValidationError("name one resource: --topic, --group, --transactional-id or --cluster") }
            return given.first
        }
    }

    static func operationCodes(_ names: [String]) throws -> [AclOperation] {
        try names.map { name in
            guard let code = operations[name.lowercased().replacingOccurrences(of: "_", with: "")] else {
                throw ValidationError("unknown operation \(name): \(operations.keys.sorted().joined(separator: ", "))")
            }
            return code
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Allow (or --deny) a principal operations on a resource.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var resource: Resource
        @Option(help: "The principal, as User:NAME.") var principal: String
        @Option(help: "READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, ALL, ... (repeatable).") var operation: [String]
        @Option(help: "The host it applies from (default every host).") var host = "*"
        @Flag(help: "A DENY entry (default ALLOW).") var deny = false

        func run() async throws {
            guard let (type, name) = try resource.resource() else { throw ValidationError("name a resource: --topic, --group, --transactional-id or --cluster") }
            let codes = try AclCommand.operationCodes(operation)
            guard !codes.isEmpty else { throw ValidationError("give at least one --operation") }
            let bindings = codes.map {
                AclBinding(type, name, patternType: resource.prefixed ? .prefixed : .literal, principal: principal, host: host,
                           operation: $0, permission: deny ? .deny : .allow)
            }
            let admin = try client.admin()
            try await admin.createAcls(bindings)
            await admin.close()
            for binding in bindings { print(AclCommand.line(binding)) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List entries (all, or those of a resource and / or a principal).")
        @OptionGroup var client: ClientOptions
        @OptionGroup var resource: Resource
        @Option(help: "Only this principal's entries.") var principal: String?

        func run() async throws {
            let named = try resource.resource()
            let filter = AclFilter(resourceType: named?.0 ?? .any, resourceName: named?.1,
                                   patternType: named == nil ? .any : (resource.prefixed ? .prefixed : .literal), principal: principal)
            let admin = try client.admin()
            let bindings = try await admin.describeAcls(filter)
            await admin.close()
            for binding in bindings { print(AclCommand.line(binding)) }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove the entries of a resource (those of --principal and --operation only, when given).")
        @OptionGroup var client: ClientOptions
        @OptionGroup var resource: Resource
        @Option(help: "Only this principal's entries.") var principal: String?
        @Option(help: "Only these operations (repeatable).") var operation: [String] = []

        func run() async throws {
            guard let (type, name) = try resource.resource() else { throw ValidationError("name a resource: --topic, --group, --transactional-id or --cluster") }
            let operations = operation.isEmpty ? [.any] : try AclCommand.operationCodes(operation)
            let filters = operations.map {
                AclFilter(resourceType: type, resourceName: name, patternType: resource.prefixed ? .prefixed : .literal, principal: principal, operation: $0)
            }
            let admin = try client.admin()
            let removed = try await admin.deleteAcls(filters)
            await admin.close()
            print("removed \(removed.count) entries")
        }
    }
}
