import ArgumentParser
import BrookClient
import BrookCore
import BrookProtocol

struct GroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group", abstract: "List, describe, delete consumer groups and reset their offsets (as kafka-consumer-groups.sh).",
        subcommands: [List.self, Describe.self, Delete.self, ResetOffsets.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List groups, with their type and state.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Only groups in this state (Stable, Empty, PreparingRebalance, ...; repeatable).") var state: [String] = []
        @Option(help: "Only groups of this type: classic or consumer (repeatable).") var type: [String] = []

        func run() async throws {
            let admin = try client.admin()
            let groups = try await admin.listGroups(states: state, types: type)
            await admin.close()
            printTable(["GROUP", "TYPE", "STATE", "PROTOCOL-TYPE"], groups.map { [$0.id, $0.type, $0.state, $0.protocolType] })
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Describe groups: state, members and their partitions, committed offset, log end offset and lag.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The groups.") var groups: [String]

        func run() async throws {
            let admin = try client.admin()
            for group in groups {
                let view = try await admin.describeGroup(group)
                let committed = try await admin.listGroupOffsets(group)
                print("Group \(group): \(view.type) group, state \(view.state)\(view.assignor.map { ", assignor \($0)" } ?? ""), \(view.members.count) member(s)")
                let owners = view.owners
                let partitions = Set(committed.keys).union(owners.keys)
                // Per topic: a deleted topic's partitions show no end.
                var ends: [TopicPartition: Offset] = [:]
                for (_, list) in Dictionary(grouping: partitions, by: \.topic) {
                    for (tp, listed) in (try? await admin.listOffsets(list, .latest)) ?? [:] { ends[tp] = listed.offset }
                }
                let rows = partitions.sorted().map { tp in
                    let current = committed[tp], end = ends[tp], owner = owners[tp]
                    let lag = current.flatMap { c in end.map { String(max(0, $0.value - c.value)) } } ?? "-"
                    return [group, tp.topic, String(tp.partition), current.map(\.description) ?? "-", end.map(\.description) ?? "-", lag,
                            owner?.memberID ?? "-", owner?.host ?? "-", owner?.clientID ?? "-"]
                }
                printTable(["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"], rows)
                for m in view.members where m.assignment.isEmpty {
                    print("member \(m.memberID) (\(m.clientID), \(m.host)) has no partitions")
                }
            }
            await admin.close()
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete empty groups and their committed offsets.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The groups.") var groups: [String]

        func run() async throws {
            let admin = try client.admin()
            for group in groups {
                try await admin.deleteGroups([group])
                print("Deleted group \(group).")
            }
            await admin.close()
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

        var reset: OffsetReset {
            if toEarliest { return .earliest }
            if let n = toOffset { return .offset(Offset(n)) }
            if let n = shiftBy { return .shift(n) }
            if let time = toTimestamp ?? toDatetime.flatMap(parseUTC) { return .timestamp(time) }
            return .latest
        }

        func run() async throws {
            let admin = try client.admin()
            let plan = try await admin.resetGroupOffsets(group, partitions: allTopics ? nil : try await targetPartitions(admin),
                                                         to: reset, execute: execute)
            await admin.close()
            printTable(["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
                       plan.keys.sorted().map { [group, $0.topic, String($0.partition), plan[$0]!.description] })
            guard execute else {
                print("(dry run: nothing committed; add --execute to commit these offsets)")
                return
            }
            print("Committed \(plan.count) offset(s) for group \(group).")
        }

        func targetPartitions(_ admin: KafkaAdmin) async throws -> [TopicPartition] {
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
                    out += try await admin.describeTopics([name]).flatMap { t in t.partitions.map { TopicPartition(name, $0.partition) } }
                }
            }
            return out
        }
    }
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
