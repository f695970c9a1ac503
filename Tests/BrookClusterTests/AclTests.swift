import BrookCluster
import BrookCore
import BrookProtocol
import Testing

@Suite struct AclTests {
    static func entry(_ type: AclResourceType, _ name: String, pattern: AclPatternType = .literal, principal: String = "User:alice",
                      host: String = "*", _ operation: AclOperation, _ permission: AclPermission = .allow) -> AclBinding {
        AclBinding(resourceType: type, name: name, patternType: pattern, principal: principal, host: host, operation: operation, permission: permission)
    }

    static func table(_ entries: [AclBinding]) -> AclTable {
        var image = MetadataImage()
        let records = entries.enumerated().map { i, b in MetadataRecord.accessControlEntry(b.record(id: KafkaUUID(high: 1, low: UInt64(i + 1)))) }
        try! image.apply(records, at: MetadataOffset(1))
        return image.acls
    }

    let authorizer = Authorizer(superUsers: ["User:admin"], allowEveryoneIfNoAclFound: false)

    @Test func literalPrefixedAndWildcardEntriesApply() {
        let acls = Self.table([
            Self.entry(.topic, "orders", .read),
            Self.entry(.topic, "pay-", pattern: .prefixed, .write),
            Self.entry(.topic, "*", principal: "User:bob", .describe),
            Self.entry(.group, "g1", .read),
        ])
        #expect(authorizer.authorize("User:alice", host: "10.0.0.1", .read, .topic, "orders", acls: acls))
        #expect(!authorizer.authorize("User:alice", host: "10.0.0.1", .write, .topic, "orders", acls: acls))
        #expect(authorizer.authorize("User:alice", host: "10.0.0.1", .write, .topic, "pay-eu", acls: acls))
        #expect(!authorizer.authorize("User:alice", host: "10.0.0.1", .write, .topic, "pa", acls: acls))
        // READ and WRITE imply DESCRIBE; the wildcard applies to every topic.
        #expect(authorizer.authorize("User:alice", host: "h", .describe, .topic, "orders", acls: acls))
        #expect(authorizer.authorize("User:bob", host: "h", .describe, .topic, "anything", acls: acls))
        #expect(!authorizer.authorize("User:bob", host: "h", .read, .topic, "orders", acls: acls))
        // A resource no entry applies to: denied (allow.everyone.if.no.acl.found=false) or allowed.
        #expect(!authorizer.authorize("User:alice", host: "h", .read, .group, "g2", acls: acls))
        #expect(Authorizer(superUsers: [], allowEveryoneIfNoAclFound: true).authorize("User:x", host: "h", .read, .group, "g2", acls: acls))
        // A super user may do everything.
        #expect(authorizer.authorize("User:admin", host: "h", .alter, .cluster, AclBinding.clusterName, acls: acls))
    }

    @Test func denyWinsAndHostsMatter() {
        let acls = Self.table([
            Self.entry(.topic, "orders", .all),
            Self.entry(.topic, "orders", .write, .deny),
            Self.entry(.topic, "audit", host: "10.0.0.9", .read),
            Self.entry(.topic, "cfg", .alterConfigs),
        ])
        #expect(authorizer.authorize("User:alice", host: "h", .read, .topic, "orders", acls: acls))
        #expect(!authorizer.authorize("User:alice", host: "h", .write, .topic, "orders", acls: acls))
        #expect(authorizer.authorize("User:alice", host: "10.0.0.9", .read, .topic, "audit", acls: acls))
        #expect(!authorizer.authorize("User:alice", host: "10.0.0.8", .read, .topic, "audit", acls: acls))
        #expect(authorizer.authorize("User:alice", host: "h", .describeConfigs, .topic, "cfg", acls: acls))
        #expect(!authorizer.authorize("User:alice", host: "h", .describe, .topic, "cfg", acls: acls))
    }

    @Test func filtersMatchAsDescribeAndDeleteAclsMean() {
        let entries = [Self.entry(.topic, "orders", .read), Self.entry(.topic, "ord", pattern: .prefixed, .write),
                       Self.entry(.topic, "*", principal: "User:bob", .describe), Self.entry(.group, "g1", .read)]
        let acls = Self.table(entries)
        func names(_ filter: AclFilter) -> [String] { acls.matching(filter).map { "\($0.1.resourceType):\($0.1.name)" }.sorted() }
        #expect(names(AclFilter(resourceType: .any, name: nil, patternType: .any, principal: nil, host: nil, operation: .any, permission: .any)).count == 4)
        #expect(names(AclFilter(resourceType: .topic, name: "orders", patternType: .match, principal: nil, host: nil, operation: .any, permission: .any))
                == ["topic:*", "topic:ord", "topic:orders"])
        #expect(names(AclFilter(resourceType: .topic, name: nil, patternType: .prefixed, principal: nil, host: nil, operation: .any, permission: .any))
                == ["topic:ord"])
        #expect(names(AclFilter(resourceType: .any, name: nil, patternType: .any, principal: "User:bob", host: nil, operation: .any, permission: .any))
                == ["topic:*"])
        #expect(AclFilter(resourceType: 0, name: nil, patternType: 1, principal: nil, host: nil, operation: 1, permission: 1) == nil)
    }

    @Test func entriesThatCannotBeCreatedSayWhy() {
        #expect(Self.entry(.any, "x", .read).problem != nil)
        #expect(Self.entry(.topic, "x", pattern: .match, .read).problem != nil)
        #expect(Self.entry(.topic, "x", .any).problem != nil)
        #expect(Self.entry(.topic, "x", .read, .any).problem != nil)
        #expect(Self.entry(.cluster, "other", .alter).problem != nil)
        #expect(Self.entry(.topic, "x", principal: "alice", .read).problem != nil)
        #expect(Self.entry(.topic, "", .read).problem != nil)
        #expect(Self.entry(.topic, "x", host: "", .read).problem != nil)
        #expect(Self.entry(.cluster, AclBinding.clusterName, .alter).problem == nil)
    }

    @Test func theControllerAddsOnceRemovesAndTheSnapshotKeepsThem() throws {
        var controller = ClusterController(committed: MetadataImage(), nowMs: 0, randomSeed: 7)
        let read = Self.entry(.topic, "orders", .read)
        let (entries, answers) = controller.admin(.createAcls([read, read, Self.entry(.topic, "x", pattern: .match, .read)]))
        #expect(answers.map(\.error) == [.none, .none, .invalidRequest])
        #expect(entries.count == 1 && entries[0].count == 1)
        var image = MetadataImage()
        try image.apply(entries[0], at: MetadataOffset(1))
        let restored = try MetadataImage(snapshot: image.snapshotRecords(), at: MetadataOffset(1))
        #expect(restored.acls == image.acls)
        let id = try #require(image.acls.id(of: read))
        try image.apply([.removeAccessControlEntry(RemoveAccessControlEntryRecord(id: id))], at: MetadataOffset(2))
        #expect(image.acls.count == 0)
        #expect(throws: MetadataError.self) { try image.apply([.removeAccessControlEntry(RemoveAccessControlEntryRecord(id: id))], at: MetadataOffset(3)) }
    }
}
