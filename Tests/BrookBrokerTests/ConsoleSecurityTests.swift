import BrookClient
import Testing

@testable import BrookServer

/// The console's ACL and quota API: Kafka's enum names both ways, and what it refuses.
@Suite struct ConsoleSecurityTests {
    @Test func aclNamesRoundTripAsKafkasJavaAdminWritesThem() {
        for type in AclResourceType.allCases { #expect(AclResourceType(name: type.name) == type) }
        for pattern in AclPatternType.allCases { #expect(AclPatternType(name: pattern.name) == pattern) }
        for operation in AclOperation.allCases { #expect(AclOperation(name: operation.name) == operation) }
        for permission in AclPermission.allCases { #expect(AclPermission(name: permission.name) == permission) }
        #expect(AclOperation(name: "cluster-action") == .clusterAction && AclOperation(name: "describeconfigs") == .describeConfigs)
        #expect(AclResourceType(name: "TransactionalId") == .transactionalID && AclOperation(name: "fly") == nil)
    }

    @Test func anEntryIsCheckedBeforeItIsSent() throws {
        let entry = AclView(resourceType: "TOPIC", resourceName: "orders", patternType: "PREFIXED", principal: "User:alice", host: "",
                            operation: "WRITE", permission: "ALLOW")
        #expect(try Console.binding(entry) == AclBinding(.topic, "orders", patternType: .prefixed, principal: "User:alice", operation: .write))
        #expect(Console.view(try Console.binding(entry)) == AclView(resourceType: "TOPIC", resourceName: "orders", patternType: "PREFIXED",
                                                                   principal: "User:alice", host: "*", operation: "WRITE", permission: "ALLOW"))
        var cluster = entry
        cluster.resourceType = "CLUSTER"
        cluster.patternType = "LITERAL"
        #expect(try Console.binding(cluster).resourceName == "kafka-cluster")
        for bad in [\AclView.operation, \.permission, \.patternType, \.resourceType] {
            var refused = entry
            refused[keyPath: bad] = "ANY"
            #expect(throws: ConsoleError.self) { try Console.binding(refused) }
        }
        var nobody = entry
        nobody.principal = "alice"
        #expect(throws: ConsoleError.self) { try Console.binding(nobody) }
    }
}
