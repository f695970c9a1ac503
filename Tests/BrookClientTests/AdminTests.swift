@testable import BrookClient
import Testing

@Suite struct AdminTests {
    @Test func settingsTakeTheJavaClientsNames() throws {
        let defaults = try AdminConfig(properties: ["bootstrap.servers": "a:1,b:2"])
        #expect(defaults.bootstrapServers == ["a:1", "b:2"])
        #expect(defaults.apiTimeoutMs == 60_000 && defaults.requestTimeoutMs == 30_000 && defaults.retryBackoffMs == 100)
        let set = try AdminConfig(properties: [
            "bootstrap.servers": "a:1", "client.id": "ops", "default.api.timeout.ms": "5000", "request.timeout.ms": "2000",
            "retry.backoff.ms": "50", "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        ])
        #expect(set.clientID == "ops" && set.apiTimeoutMs == 5000 && set.requestTimeoutMs == 2000 && set.retryBackoffMs == 50)
        for bad in [["default.api.timeout.ms": "0"], ["request.timeout.ms": "soon"], ["linger.ms": "5"], ["retry.backoff.ms": "-1"]] {
            #expect(throws: ClientError.self) { try AdminConfig(properties: bad.merging(["bootstrap.servers": "a:1"]) { a, _ in a }) }
        }
        #expect(throws: ClientError.self) { try AdminConfig(properties: ["bootstrap.servers": " , "]) }
    }

    @Test func aGroupsOwnersAreItsMembersAssignments() {
        let a = GroupMemberDescription(memberID: "a", instanceID: nil, clientID: "c1", host: "/h", assignment: [TopicPartition("t", 0), TopicPartition("t", 2)])
        let b = GroupMemberDescription(memberID: "b", instanceID: "i", clientID: "c2", host: "/h", assignment: [TopicPartition("t", 1)])
        let group = GroupDescription(id: "g", type: "consumer", state: "Stable", protocolType: "consumer", assignor: "uniform", members: [a, b])
        #expect(group.owners.mapValues(\.memberID) == [TopicPartition("t", 0): "a", TopicPartition("t", 1): "b", TopicPartition("t", 2): "a"])
    }
}
