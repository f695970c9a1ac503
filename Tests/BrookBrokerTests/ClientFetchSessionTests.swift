@testable import BrookBroker
@testable import BrookClient
import BrookCore
import BrookProtocol
import Testing

/// BrookClient's fetch session core (`FetchSession`) against the broker's session cache
/// (`FetchSessions`), each request through the wire at the version given: whatever the client
/// adds, moves, drops, and whatever goes wrong (answers lost, sessions evicted, a broker that
/// makes none), every fetch reads exactly the partitions the client wants, each at the offset
/// it wants.
@Suite struct ClientFetchSessionTests {
    static let topics: [String: KafkaUUID] = ["a": KafkaUUID(high: 1, low: 1), "b": KafkaUUID(high: 2, low: 2)]

    @Test(arguments: [(UInt64(1), Int16(13)), (2, 13), (3, 12), (4, 11), (5, 7), (6, 6), (7, 13), (8, 12)])
    func theBrokerReadsExactlyWhatTheClientWants(seed: UInt64, version: Int16) throws {
        var random = SeededRandom(seed: seed)
        var sessions = FetchSessions(seed: seed)
        var client = FetchSession()
        let all = Self.topics.keys.sorted().flatMap { topic in (0..<6 as Range<Int32>).map { TopicPartition(topic, $0) } }
        var offsets: [TopicPartition: Int64] = [:]
        for partition in all { offsets[partition] = Int64.random(in: 0...100, using: &random) }
        var wanted = Set(all.prefix(4))
        var ids = Self.topics
        var names = Dictionary(uniqueKeysWithValues: Self.topics.map { ($0.value, $0.key) })
        var now: Int64 = 0
        var incremental = 0
        var namedPartitions = 0
        for step in 0..<1500 {
            now += 10
            // The application's partitions change now and then; fetched ones move on.
            switch Int.random(in: 0..<20, using: &random) {
            case 0: wanted.insert(all.randomElement(using: &random)!)
            case 1: if let gone = wanted.randomElement(using: &random) { wanted.remove(gone) }
            case 2: if let sought = wanted.randomElement(using: &random) { offsets[sought] = Int64.random(in: 0...100, using: &random) }
            case 3 where Int.random(in: 0..<5, using: &random) == 0:
                // A topic deleted and made again: a new id.
                let made = KafkaUUID(high: UInt64(step) + 10, low: seed)
                ids["b"] = made
                names[made] = "b"
            default: break
            }
            for partition in wanted where Int.random(in: 0..<4, using: &random) == 0 { offsets[partition]! += Int64.random(in: 1...50, using: &random) }
            // The broker lost every session (a restart, an eviction).
            if Int.random(in: 0..<150, using: &random) == 0 { sessions = FetchSessions(seed: seed &+ UInt64(step)) }
            // In a different order each time: the session does not depend on it.
            let want = wanted.shuffled(using: &random).map {
                (partition: $0, wanted: FetchSession.Wanted(offset: Offset(offsets[$0]!), topicID: ids[$0.topic]!))
            }
            let built = client.build(want)
            namedPartitions += built.send.count
            let request = KafkaConsumer.fetchRequest(built, config: ConsumerConfig(bootstrapServers: ["127.0.0.1:1"]))
            // Through the wire, as the broker reads it.
            var writer = WireWriter()
            request.encode(to: &writer, version: version)
            let decoded = try FetchRequest(decoding: writer.buffer, version: version)
            let read: FetchRequest
            var answerSession: Int32 = 0
            switch sessions.plan(decoded, version: version, nowMs: now) {
            case .sessionless:
                #expect(built.full, "seed \(seed) step \(step): an incremental fetch read as sessionless")
                read = decoded
            case .refuse(let code):
                #expect(!built.full && [.fetchSessionIDNotFound, .invalidFetchSessionEpoch].contains(code), "seed \(seed) step \(step): \(code)")
                client.failed()
                continue
            case .session(let id, let full, let request):
                #expect(full == built.full)
                if !full { incremental += 1 }
                read = request
                answerSession = id
            }
            // What the broker reads, each partition with its topic id (v13 and later) and offset.
            var reads: [String] = []
            for topic in read.topics {
                let name = topic.topic.isEmpty ? names[topic.topicId]! : topic.topic
                for p in topic.partitions {
                    reads.append("\(name)-\(p.partition)@\(p.fetchOffset.value)" + (version >= 13 ? " \(topic.topicId)" : ""))
                }
            }
            let wants = want.map { "\($0.partition.topic)-\($0.partition.partition)@\($0.wanted.offset.value)" + (version >= 13 ? " \($0.wanted.topicID)" : "") }
            #expect(reads.sorted() == wants.sorted(), "seed \(seed) step \(step): the broker reads \(reads.sorted()), the client wants \(wants.sorted())")
            // The answer lost now and then (the broker went on; the client cannot know).
            if Int.random(in: 0..<40, using: &random) == 0 { client.failed() } else { client.answered(sessionID: answerSession) }
        }
        if version >= 7 {
            #expect(incremental > 1000, "seed \(seed): most fetches incremental")
            #expect(namedPartitions < 1500 * 4, "seed \(seed): idle partitions not named each time")
        } else {
            #expect(incremental == 0)
        }
    }
}
