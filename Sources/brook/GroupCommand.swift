import ArgumentParser
import BrookClient
import BrookCore
import BrookGroups
import BrookProtocol

struct GroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group", abstract: "List, describe, delete consumer groups and reset their offsets (as kafka-consumer-groups.sh).",
        subcommands: [List.self, Describe.self, Delete.self, ResetOffsets.self])

    /// A connection to the group's coordinator (FindCoordinator through the bootstrap broker).
    static func coordinator(_ client: ClientOptions, group: String) async throws -> BrokerConnection {
        let bootstrap = try await client.connect()
        let answer = try await bootstrap.send(FindCoordinatorRequest(key: group, keyType: 0, coordinatorKeys: [group]))
        let (code, message, host, port) = answer.coordinators.first.map { ($0.errorCode, $0.errorMessage, $0.host, $0.port) }
            ?? (answer.errorCode, answer.errorMessage, answer.host, answer.port)
        try check(code, message, "find the coordinator of \(group)")
        if "\(host):\(port)" == client.bootstrapServer { return bootstrap }
        await bootstrap.close()
        return try await client.connect(to: "\(host):\(port)")
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List groups, with their type and state.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Only groups in this state (Stable, Empty, PreparingRebalance, ...; repeatable).") var state: [String] = []
        @Option(help: "Only groups of this type: classic or consumer (repeatable).") var type: [String] = []

        func run() async throws {
            let connection = try await client.connect()
            let answer = try await connection.send(ListGroupsRequest(statesFilter: state, typesFilter: type))
            try check(answer.errorCode, nil, "list groups")
            let rows = answer.groups.sorted { $0.groupId < $1.groupId }.map { [$0.groupId, $0.groupType, $0.groupState, $0.protocolType] }
            printTable(["GROUP", "TYPE", "STATE", "PROTOCOL-TYPE"], rows)
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Describe groups: state, members and their partitions, committed offset, log end offset and lag.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The groups.") var groups: [String]

        func run() async throws {
            for group in groups {
                let connection = try await GroupCommand.coordinator(client, group: group)
                let view = try await GroupView.load(connection, group: group)
                print("Group \(group): \(view.type) group, state \(view.state)\(view.protocolName.map { ", assignor \($0)" } ?? ""), \(view.members.count) member(s)")
                var rows: [[String]] = []
                let owners = view.owners
                var partitions = Set(view.committed.keys)
                partitions.formUnion(owners.keys)
                let ends = try await logEndOffsets(connection, Array(partitions))
                for tp in partitions.sorted() {
                    let current = view.committed[tp]
                    let end = ends[tp]
                    let lag = current.flatMap { c in end.map { String(max(0, $0.value - c.value)) } } ?? "-"
                    let owner = owners[tp]
                    rows.append([group, tp.topic, String(tp.partition), current.map(\.description) ?? "-",
                                 end.map(\.description) ?? "-", lag, owner?.memberID ?? "-", owner?.host ?? "-",
                                 owner?.clientID ?? "-"])
                }
                printTable(["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"], rows)
                for m in view.members where !owners.values.contains(where: { $0.memberID == m.memberID }) {
                    print("member \(m.memberID) (\(m.clientID), \(m.host)) has no partitions")
                }
                await connection.close()
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete empty groups and their committed offsets.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The groups.") var groups: [String]

        func run() async throws {
            for group in groups {
                let connection = try await GroupCommand.coordinator(client, group: group)
                let answer = try await connection.send(DeleteGroupsRequest(groupsNames: [group]))
                for r in answer.results { try check(r.errorCode, nil, "delete group \(r.groupId)") }
                print("Deleted group \(group).")
                await connection.close()
            }
        }
    }

    struct ResetOffsets: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-offsets",
            abstract: "Reset an inactive group's committed offsets. Shows the plan unless --execute is given.")
        @OptionGroup var client: ClientOptions
        @Option(help: "The group.") var group: String
        @Option(help: "A topic, or topic:0,1,2 for some partitions (repeatable).") var topic: [String] = []
        @Flag(name: .customLong("all-topics"), help: "Every topic the group has offsets for.") var allTopics = false
        @Flag(name: .customLong("to-earliest")) var toEarliest = false
        @Flag(name: .customLong("to-latest")) var toLatest = false
        @Option(name: .customLong("to-offset")) var toOffset: Int64?
        @Option(name: .customLong("to-datetime"), help: "UTC, YYYY-MM-DDTHH:mm:SS[.sss]") var toDatetime: String?
        @Option(name: .customLong("to-timestamp"), help: "Milliseconds since the epoch.") var toTimestamp: Int64?
        @Option(name: .customLong("shift-by"), parsing: .unconditional, help: "Move each committed offset by this many (may be negative).") var shiftBy: Int64?
        @Flag(name: .customLong("dry-run"), help: "Only show the new offsets (the default).") var dryRun = false
        @Flag(help: "Commit the new offsets.") var execute = false

        func validate() throws {
            let chosen = [toEarliest, toLatest, toOffset != nil, toDatetime != nil, toTimestamp != nil, shiftBy != nil].filter { $0 }.count
            guard chosen == 1 else {
                throw ValidationError("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, --to-timestamp, --shift-by")
            }
            guard allTopics != !topic.isEmpty else { throw ValidationError("give --topic or --all-topics") }
            guard !(execute && dryRun) else { throw ValidationError("--execute and --dry-run exclude each other") }
            if let text = toDatetime, parseUTC(text) == nil {
                throw ValidationError("--to-datetime takes YYYY-MM-DDTHH:mm:SS[.sss] (UTC), not '\(text)'")
            }
        }

        func run() async throws {
            let connection = try await GroupCommand.coordinator(client, group: group)
            let view = try await GroupView.load(connection, group: group)
            if execute && !(view.state == "Empty" || view.state == "Dead") {
                throw CommandFailure("group \(group) is \(view.state): offsets can only be reset while it has no members")
            }
            let partitions = try await targetPartitions(connection, committed: view.committed)
            let earliest = try await listOffsets(connection, partitions, timestamp: -2)
            let latest = try await listOffsets(connection, partitions, timestamp: -1)
            var plan: [TopicPartition: Offset] = [:]
            for tp in partitions {
                guard let low = earliest[tp], let high = latest[tp] else { continue }
                var target: Offset
                if toEarliest { target = low }
                else if toLatest { target = high }
                else if let n = toOffset { target = Offset(n) }
                else if let n = shiftBy { target = (view.committed[tp] ?? low) + n }
                else { target = high }
                plan[tp] = max(low, min(high, target))
            }
            if let time = toTimestamp ?? toDatetime.flatMap(parseUTC) {
                for (tp, offset) in try await listOffsets(connection, partitions, timestamp: time) {
                    // No record at or after the time: the end of the log.
                    plan[tp] = offset.value < 0 ? latest[tp] : offset
                }
            }
            printTable(["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
                       plan.keys.sorted().map { [group, $0.topic, String($0.partition), plan[$0]!.description] })
            guard execute else {
                print("(dry run: nothing committed; add --execute to commit these offsets)")
                return
            }
            var byTopic: [String: [OffsetCommitRequest.OffsetCommitRequestTopic.OffsetCommitRequestPartition]] = [:]
            for (tp, offset) in plan {
                byTopic[tp.topic, default: []].append(.init(partitionIndex: tp.partition, committedOffset: offset,
                                                            committedLeaderEpoch: LeaderEpoch(-1), committedMetadata: ""))
            }
            let answer = try await connection.send(OffsetCommitRequest(
                groupId: group, generationIdOrMemberEpoch: -1, memberId: "",
                topics: byTopic.sorted { $0.key < $1.key }.map { .init(name: $0.key, partitions: $0.value) }))
            for t in answer.topics {
                for p in t.partitions { try check(p.errorCode, nil, "commit \(t.name)-\(p.partitionIndex)") }
            }
            print("Committed \(plan.count) offset(s) for group \(group).")
        }

        func targetPartitions(_ connection: BrokerConnection, committed: [TopicPartition: Offset]) async throws -> [TopicPartition] {
            if allTopics { return committed.keys.sorted() }
            var out: [TopicPartition] = []
            for spec in topic {
                let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
                let name = parts[0]
                if parts.count == 2 {
                    for p in parts[1].split(separator: ",") {
                        guard let index = Int32(p) else { throw ValidationError("bad partition '\(p)' in --topic \(spec)") }
                        out.append(TopicPartition(name, index))
                    }
                } else {
                    guard let count = try await connection.partitionCounts([name])[name] else {
                        throw CommandFailure("no topic \(name)")
                    }
                    out += (0..<count).map { TopicPartition(name, $0) }
                }
            }
            return out
        }
    }
}

/// What the describe and reset commands need to know of a group, from either protocol.
struct GroupView {
    struct Member { var memberID: String; var clientID: String; var host: String; var partitions: [TopicPartition] }
    var type = "classic"
    var state = "Dead"
    var protocolName: String?
    var members: [Member] = []
    var committed: [TopicPartition: Offset] = [:]

    var owners: [TopicPartition: (memberID: String, clientID: String, host: String)] {
        var out: [TopicPartition: (memberID: String, clientID: String, host: String)] = [:]
        for m in members { for tp in m.partitions { out[tp] = (m.memberID, m.clientID, m.host) } }
        return out
    }

    static func load(_ connection: BrokerConnection, group: String) async throws -> GroupView {
        var view = GroupView()
        let classic = try await connection.send(DescribeGroupsRequest(groups: [group]))
        if let g = classic.groups.first, g.errorCode == 0 {
            view.state = g.groupState
            view.protocolName = g.protocolData.isEmpty ? nil : g.protocolData
            view.members = g.members.map { m in
                let assigned = ConsumerProtocol.assignedPartitions(Array(buffer: m.memberAssignment)) ?? [:]
                return Member(memberID: m.memberId, clientID: m.clientId, host: m.clientHost,
                              partitions: assigned.flatMap { t, ps in ps.map { TopicPartition(t, $0) } })
            }
        } else if (try? connection.version(for: ConsumerGroupDescribeRequest.self)) != nil {
            let answer = try await connection.send(ConsumerGroupDescribeRequest(groupIds: [group]))
            if let g = answer.groups.first, g.errorCode == 0 {
                view.type = "consumer"
                view.state = g.groupState.prefix(1).uppercased() + g.groupState.dropFirst()
                view.protocolName = g.assignorName
                view.members = g.members.map { m in
                    Member(memberID: m.memberId, clientID: m.clientId, host: m.clientHost,
                           partitions: m.assignment.topicPartitions.flatMap { t in t.partitions.map { TopicPartition(t.topicName, $0) } })
                }
            }
        }
        let offsets = try await connection.send(OffsetFetchRequest(groupId: group, topics: nil,
                                                                   groups: [.init(groupId: group, topics: nil)]))
        for g in offsets.groups {
            try check(g.errorCode, nil, "fetch the offsets of \(group)")
            for t in g.topics { for p in t.partitions where p.committedOffset.value >= 0 { view.committed[TopicPartition(t.name, p.partitionIndex)] = p.committedOffset } }
        }
        for t in offsets.topics {
            for p in t.partitions where p.committedOffset.value >= 0 { view.committed[TopicPartition(t.name, p.partitionIndex)] = p.committedOffset }
        }
        return view
    }
}

/// ListOffsets over several topics (a missing topic is left out).
func listOffsets(_ connection: BrokerConnection, _ partitions: [TopicPartition], timestamp: Int64) async throws -> [TopicPartition: Offset] {
    var out: [TopicPartition: Offset] = [:]
    for (topic, list) in Dictionary(grouping: partitions, by: \.topic) {
        let found = (try? await connection.listOffsets(topic: topic, partitions: list.map(\.partition), timestamp: timestamp)) ?? [:]
        for (p, offset) in found { out[TopicPartition(topic, p)] = offset }
    }
    return out
}

func logEndOffsets(_ connection: BrokerConnection, _ partitions: [TopicPartition]) async throws -> [TopicPartition: Offset] {
    try await listOffsets(connection, partitions, timestamp: -1)
}

/// `YYYY-MM-DDTHH:mm:SS[.sss]` in UTC, to milliseconds since the epoch.
func parseUTC(_ text: String) -> Int64? {
    var main = Substring(text.hasSuffix("Z") ? String(text.dropLast()) : text)
    var millis: Int64 = 0
    if let dot = main.firstIndex(of: ".") {
        let fraction = main[main.index(after: dot)...]
        guard !fraction.isEmpty, fraction.count <= 3, let n = Int64(fraction) else { return nil }
        millis = n * [100, 10, 1][fraction.count - 1]
        main = main[..<dot]
    }
    let parts = main.split(whereSeparator: { "-T:".contains($0) }).map { Int64($0) }
    guard parts.count == 6, parts.allSatisfy({ $0 != nil }) else { return nil }
    let v = parts.map { $0! }
    let (y, m, d) = (v[0], v[1], v[2])
    guard (1...12).contains(m), (1...31).contains(d), (0...23).contains(v[3]), (0...59).contains(v[4]), (0...60).contains(v[5]) else { return nil }
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let yy = m <= 2 ? y - 1 : y
    let era = (yy >= 0 ? yy : yy - 399) / 400
    let yoe = yy - era * 400
    let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    let days = era * 146_097 + doe - 719_468
    return ((days * 24 + v[3]) * 60 + v[4]) * 60_000 + v[5] * 1000 + millis
}

/// Columns padded to their widest cell.
func printTable(_ header: [String], _ rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
    for row in all {
        print(row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count) }
            .joined(separator: "  "))
    }
}
