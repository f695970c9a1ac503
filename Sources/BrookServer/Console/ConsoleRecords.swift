import BrookClient
import BrookCore
import BrookProtocol
import Foundation

struct HeaderView: Encodable {
    var key: String
    var value: String?
}

struct RecordView: Encodable {
    var partition: Int32
    var offset: Int64
    var timestamp: Int64
    var key: String?
    var value: String?
    var keyEncoding: String
    var valueEncoding: String
    var headers: [HeaderView]
}

struct RecordsView: Encodable {
    var records: [RecordView]
}

extension Console {
    static let recordsMax = 500
    /// Fetches per partition for one browse, at most (each up to `fetchBytes`).
    static let fetchesPerPartitionMax = 8
    static let fetchBytes: Int32 = 1 << 20

    /// Text as it is when it is UTF-8, else base64.
    static func shown(_ bytes: [UInt8]?) -> (String?, String) {
        guard let bytes else { return (nil, "utf8") }
        if let text = String(validating: bytes, as: UTF8.self) { return (text, "utf8") }
        return (Data(bytes).base64EncodedString(), "base64")
    }

    /// The record browser: `mode` latest (the last `limit`), offset (from `value`, one
    /// partition) or timestamp (from the first record at or after `value` ms); `partition`
    /// one partition or every one.
    func records(_ client: ClusterClient, topic name: String, query: [String: String]) async throws -> RecordsView {
        let topic = try await topicMetadata(client, name)
        let leaders = Self.leaders(topic)
        let limit = min(Self.recordsMax, max(1, Int(query["limit"] ?? "") ?? 50))
        let mode = query["mode"] ?? "latest"
        var partitions = topic.partitions.map(\.partitionIndex).sorted()
        if let given = query["partition"], given != "all", !given.isEmpty {
            guard let index = Int32(given), partitions.contains(index) else { throw ConsoleError(400, "\(name) has no partition \(given)") }
            partitions = [index]
        }
        let ends = try await client.listOffsets(topic: name, leaders: leaders, timestamp: -1)
        var from: [Int32: Offset] = [:]
        switch mode {
        case "latest":
            let starts = try await client.listOffsets(topic: name, leaders: leaders, timestamp: -2)
            for p in partitions {
                guard let end = ends[p], let start = starts[p] else { continue }
                from[p] = Offset(max(start.value, end.value - Int64(limit)))
            }
        case "offset":
            guard partitions.count == 1 else { throw ConsoleError(400, "reading from an offset needs one partition") }
            guard let value = query["value"].flatMap({ Int64($0) }), value >= 0 else { throw ConsoleError(400, "an offset is a number, 0 or more") }
            let starts = try await client.listOffsets(topic: name, leaders: leaders, timestamp: -2)
            from[partitions[0]] = Offset(max(value, starts[partitions[0]]?.value ?? 0))
        case "timestamp":
            guard let value = query["value"].flatMap({ Int64($0) }), value >= 0 else { throw ConsoleError(400, "a timestamp is a number of ms since 1970") }
            let found = try await client.listOffsets(topic: name, leaders: leaders.filter { partitions.contains($0.key) }, timestamp: value)
            for (p, offset) in found where offset.value >= 0 { from[p] = offset }
        default:
            throw ConsoleError(400, "mode is latest, offset or timestamp")
        }
        var out: [RecordView] = []
        for p in partitions {
            guard var next = from[p], let leader = leaders[p], let end = ends[p] else { continue }
            var taken = 0
            for _ in 0..<Self.fetchesPerPartitionMax where next < end && taken < limit {
                let fetched = try await client.fetch(topic: name, partition: p, leader: leader, from: next, maxBytes: Self.fetchBytes)
                guard let last = fetched.last, last.offset >= next else { break }
                for record in fetched where record.offset >= next && record.offset < end && taken < limit {
                    out.append(Self.view(record))
                    taken += 1
                }
                next = last.offset + 1
            }
        }
        if mode == "latest" {
            out.sort { ($0.timestamp, $0.partition, $0.offset) > ($1.timestamp, $1.partition, $1.offset) }
        } else {
            out.sort { ($0.partition, $0.offset) < ($1.partition, $1.offset) }
        }
        return RecordsView(records: Array(out.prefix(limit)))
    }

    static func view(_ record: ConsumedRecord) -> RecordView {
        let (key, keyEncoding) = shown(record.key)
        let (value, valueEncoding) = shown(record.value)
        return RecordView(partition: record.partition, offset: record.offset.value, timestamp: record.timestamp.ms,
                          key: key, value: value, keyEncoding: keyEncoding, valueEncoding: valueEncoding,
                          headers: record.headers.map { HeaderView(key: String(decoding: $0.key, as: UTF8.self), value: shown($0.value).0) })
    }
}
