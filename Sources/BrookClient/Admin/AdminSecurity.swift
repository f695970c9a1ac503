import BrookCore
import BrookCrypto
import BrookProtocol
import BrookSecurity
import NIOCore

/// ACLs and SCRAM users (brokers with an authorizer, and with SCRAM credentials).
extension KafkaAdmin {
    public func describeAcls(_ filter: AclFilter = .all) async throws -> [AclBinding] {
        let request = DescribeAclsRequest(resourceTypeFilter: filter.resourceType.rawValue, resourceNameFilter: filter.resourceName,
                                          patternTypeFilter: filter.patternType.rawValue, principalFilter: filter.principal,
                                          hostFilter: filter.host, operation: filter.operation.rawValue, permissionType: filter.permission.rawValue)
        let answer = try await retrying("describe ACLs") { try await self.cluster.sendToAny(request, timeoutMs: self.config.requestTimeoutMs) }
        try Self.check(answer.errorCode, answer.errorMessage, "describe ACLs")
        return answer.resources.flatMap { resource in
            resource.acls.compactMap { acl in
                Self.binding(resource.resourceType, resource.resourceName, resource.patternType, acl.principal, acl.host, acl.operation, acl.permissionType)
            }
        }
    }

    public func createAcls(_ bindings: [AclBinding]) async throws {
        guard !bindings.isEmpty else { return }
        let request = CreateAclsRequest(creations: bindings.map {
            .init(resourceType: $0.resourceType.rawValue, resourceName: $0.resourceName, resourcePatternType: $0.patternType.rawValue,
                  principal: $0.principal, host: $0.host, operation: $0.operation.rawValue, permissionType: $0.permission.rawValue)
        })
        let answer = try await retrying("create ACLs") { try await self.cluster.sendToAny(request, timeoutMs: self.config.requestTimeoutMs) }
        guard answer.results.count == bindings.count else { throw KafkaError(nil, "create ACLs: \(answer.results.count) answers for \(bindings.count)") }
        for (binding, result) in zip(bindings, answer.results) {
            try Self.check(result.errorCode, result.errorMessage, "create ACL \(binding.operation) for \(binding.principal) on \(binding.resourceName)")
        }
    }

    /// Deletes the entries each filter matches; returns them.
    public func deleteAcls(_ filters: [AclFilter]) async throws -> [AclBinding] {
        guard !filters.isEmpty else { return [] }
        let request = DeleteAclsRequest(filters: filters.map {
            .init(resourceTypeFilter: $0.resourceType.rawValue, resourceNameFilter: $0.resourceName, patternTypeFilter: $0.patternType.rawValue,
                  principalFilter: $0.principal, hostFilter: $0.host, operation: $0.operation.rawValue, permissionType: $0.permission.rawValue)
        })
        let answer = try await retrying("delete ACLs") { try await self.cluster.sendToAny(request, timeoutMs: self.config.requestTimeoutMs) }
        var removed: [AclBinding] = []
        for result in answer.filterResults {
            try Self.check(result.errorCode, result.errorMessage, "delete ACLs")
            for acl in result.matchingAcls {
                try Self.check(acl.errorCode, acl.errorMessage, "delete ACL of \(acl.principal) on \(acl.resourceName)")
                if let binding = Self.binding(acl.resourceType, acl.resourceName, acl.patternType, acl.principal, acl.host, acl.operation, acl.permissionType) {
                    removed.append(binding)
                }
            }
        }
        return removed
    }

    /// An entry as a broker gave it (nil when it names a type this client does not know).
    static func binding(_ type: Int8, _ name: String, _ pattern: Int8, _ principal: String, _ host: String,
                        _ operation: Int8, _ permission: Int8) -> AclBinding? {
        guard let type = AclResourceType(rawValue: type), let pattern = AclPatternType(rawValue: pattern),
              let operation = AclOperation(rawValue: operation), let permission = AclPermission(rawValue: permission) else { return nil }
        return AclBinding(type, name, patternType: pattern, principal: principal, host: host, operation: operation, permission: permission)
    }

    /// Users' SCRAM mechanisms and iterations (`users` nil: every user that has one); secrets
    /// never leave the broker.
    public func describeUserScramCredentials(_ users: [String]? = nil) async throws -> [String: [ScramCredentialInfo]] {
        let request = DescribeUserScramCredentialsRequest(users: users?.map { .init(name: $0) })
        let answer = try await retrying("describe users") { try await self.cluster.sendToAny(request, timeoutMs: self.config.requestTimeoutMs) }
        try Self.check(answer.errorCode, answer.errorMessage, "describe users")
        var out: [String: [ScramCredentialInfo]] = [:]
        for result in answer.results {
            try Self.check(result.errorCode, result.errorMessage, "describe user \(result.user)")
            out[result.user] = result.credentialInfos.compactMap { info in
                ScramMechanism(rawValue: info.mechanism).map { ScramCredentialInfo(mechanism: $0, iterations: info.iterations) }
            }
        }
        return out
    }

    /// Sets `user`'s password for `mechanism`: salted here (PBKDF2, `iterations`), so the broker
    /// never sees it.
    public func upsertUserScramCredential(_ user: String, mechanism: ScramMechanism, password: String,
                                          iterations: Int32 = ScramMechanism.iterationsMin) async throws {
        guard (ScramMechanism.iterationsMin...ScramMechanism.iterationsMax).contains(iterations) else {
            throw KafkaError(.invalidRequest, "iterations \(iterations): SCRAM takes \(ScramMechanism.iterationsMin)...\(ScramMechanism.iterationsMax)")
        }
        let salt = randomBytes(32)
        let upsertion = AlterUserScramCredentialsRequest.ScramCredentialUpsertion(
            name: user, mechanism: mechanism.rawValue, iterations: iterations, salt: ByteBuffer(bytes: salt),
            saltedPassword: ByteBuffer(bytes: Scram(mechanism).saltedPassword(password, salt: salt, iterations: iterations)))
        try await alterUsers(AlterUserScramCredentialsRequest(upsertions: [upsertion]), "set the \(mechanism) credential of \(user)")
    }

    public func deleteUserScramCredential(_ user: String, mechanism: ScramMechanism) async throws {
        try await alterUsers(AlterUserScramCredentialsRequest(deletions: [.init(name: user, mechanism: mechanism.rawValue)]),
                             "delete the \(mechanism) credential of \(user)")
    }

    func alterUsers(_ request: AlterUserScramCredentialsRequest, _ what: String) async throws {
        let answer = try await retrying(what) { try await self.cluster.sendToAny(request, timeoutMs: self.config.requestTimeoutMs) }
        for result in answer.results { try Self.check(result.errorCode, result.errorMessage, what) }
    }
}
