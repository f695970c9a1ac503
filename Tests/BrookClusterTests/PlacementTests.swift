import BrookCluster
import BrookCore
import Testing

@Suite struct PlacementTests {
    func brokers(_ count: Int, racks: [String]? = nil) -> [Placement.Broker] {
        (1...count).map { Placement.Broker(id: NodeID(Int32($0)), rack: racks?[($0 - 1) % racks!.count]) }
    }

    @Test func replicasAreDistinctAndLeadersSpreadEvenly() {
        let lists = Placement.assign(partitions: 0, count: 60, replicationFactor: 3, brokers: brokers(5), start: 2)
        #expect(lists.count == 60)
        var leaders: [NodeID: Int] = [:]
        var replicas: [NodeID: Int] = [:]
        for list in lists {
            #expect(list.count == 3 && Set(list).count == 3)
            leaders[list[0], default: 0] += 1
            for r in list { replicas[r, default: 0] += 1 }
        }
        #expect(leaders.values.allSatisfy { $0 == 12 })
        #expect(replicas.values.allSatisfy { $0 == 36 })
    }

    @Test func followersVaryBetweenLeaderships() {
        let lists = Placement.assign(partitions: 0, count: 12, replicationFactor: 2, brokers: brokers(4), start: 0)
        let followersOfOne = Set(lists.filter { $0[0] == NodeID(1) }.map { $0[1] })
        #expect(followersOfOne.count > 1)
    }

    @Test func neighboursSitInDifferentRacks() {
        let racks = ["a", "b", "c"]
        let list = brokers(6, racks: racks)
        #expect(Placement.interleaved(list).map(\.value) == [1, 2, 3, 4, 5, 6])
        let skewed = [Placement.Broker(id: NodeID(1), rack: "a"), Placement.Broker(id: NodeID(2), rack: "a"),
                      Placement.Broker(id: NodeID(3), rack: "b"), Placement.Broker(id: NodeID(4), rack: "b")]
        #expect(Placement.interleaved(skewed).map(\.value) == [1, 3, 2, 4])
        for replicas in Placement.assign(partitions: 0, count: 20, replicationFactor: 3, brokers: list, start: 1) {
            let used = replicas.map { racks[Int($0.value - 1) % 3] }
            #expect(Set(used).count == 3, "RF 3 over 3 racks puts one replica in each: \(replicas)")
        }
    }

    @Test func oneBrokerTakesEveryReplica() {
        #expect(Placement.assign(partitions: 3, count: 2, replicationFactor: 1, brokers: brokers(1), start: 9) == [[NodeID(1)], [NodeID(1)]])
    }
}
