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
    static let operations: [String: Int8] = [
        "all": 2, "read": 3, "write": 4, "create": 5, "delete": 6, "alter": 7, "describe": 8, "clusteraction": 9,
        "describeconfigs": 10, "alterconfigs": 11, "idempotentwrite": 12,
    ]
    static func operationName(_ code: Int8) -> String { operations.first { $0.value == code }.map { $0.key.uppercased() } ?? "\(code)" }
    static let resourceNames: [Int8: String] = [2: "Topic", 3: "Group", 4: "Cluster", 5: "TransactionalId", 6: "DelegationToken", 7: "User"]
    static let patternNames: [Int8: String] = [3: "LITERAL", 4: "PREFIXED"]

    struct Resource: ParsableArguments {
        @Option(help: "A topic (or * for every topic).") var topic: String?
        @Option(help: "A consumer group.") var group: String?
        @Option(name: .customLong("transactional-id"), help: "A transactional id.") var transactionalID: String?
        @Flag(help: "The cluster.") var cluster = false
        @Flag(help: "The name is a prefix (default: the literal name).") var prefixed = false

        /// (resource type, name); nil when none is given.
        func resource() throws -> (Int8, String)? {
            var given: [(Int8, String)] = []
            if let topic { given.append((2, topic)) }
            if let group { given.append((3, group)) }
            if let transactionalID { given.append((5, transactionalID)) }
            if cluster { given.append((4, "kafka-cluster")) }
            guard given.count <= 1 else { throw ValidationError("name one resource: --topic, --group, --transactional-id or --cluster") }
            return given.first
        }
    }

    static func operationCodes(_ names: [String]) throws -> [Int8] {
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
            let creations = codes.map {
                CreateAclsRequest.AclCreation(resourceType: type, resourceName: name, resourcePatternType: resource.prefixed ? 4 : 3,
                                              principal: principal, host: host, operation: $0, permissionType: deny ? 2 : 3)
            }
            let connection = try await client.connect()
            let answer = try await connection.send(CreateAclsRequest(creations: creations))
            for (creation, result) in zip(creations, answer.results) {
                try check(result.errorCode, result.errorMessage, "add \(AclCommand.operationName(creation.operation)) for \(principal)")
                print("\(deny ? "DENY" : "ALLOW")\t\(principal)\t\(AclCommand.operationName(creation.operation))\t\(AclCommand.resourceNames[type] ?? "")\t\(resource.prefixed ? "PREFIXED" : "LITERAL")\t\(name)\t\(host)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List entries (all, or those of a resource and / or a principal).")
        @OptionGroup var client: ClientOptions
        @OptionGroup var resource: Resource
        @Option(help: "Only this principal's entries.") var principal: String?

        func run() async throws {
            let named = try resource.resource()
            let request = DescribeAclsRequest(resourceTypeFilter: named?.0 ?? 1, resourceNameFilter: named?.1,
                                              patternTypeFilter: named == nil ? 1 : (resource.prefixed ? 4 : 3), principalFilter: principal,
                                              hostFilter: nil, operation: 1, permissionType: 1)
            let connection = try await client.connect()
            let answer = try await connection.send(request)
            try check(answer.errorCode, answer.errorMessage, "list ACLs")
            for r in answer.resources {
                for acl in r.acls {
                    print("\(acl.permissionType == 2 ? "DENY" : "ALLOW")\t\(acl.principal)\t\(AclCommand.operationName(acl.operation))\t\(AclCommand.resourceNames[r.resourceType] ?? "\(r.resourceType)")\t\(AclCommand.patternNames[r.patternType] ?? "\(r.patternType)")\t\(r.resourceName)\t\(acl.host)")
                }
            }
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
            let codes = operation.isEmpty ? [1] : try AclCommand.operationCodes(operation)
            let filters = codes.map {
                DeleteAclsRequest.DeleteAclsFilter(resourceTypeFilter: type, resourceNameFilter: name, patternTypeFilter: resource.prefixed ? 4 : 3,
                                                   principalFilter: principal, hostFilter: nil, operation: $0, permissionType: 1)
            }
            let connection = try await client.connect()
            let answer = try await connection.send(DeleteAclsRequest(filters: filters))
            var removed = 0
            for result in answer.filterResults {
                try check(result.errorCode, result.errorMessage, "remove ACLs")
                removed += result.matchingAcls.count
            }
            print("removed \(removed) entries")
        }
    }
}
