import ArgumentParser
import BrookCluster
import BrookRaft
import BrookStorage

#if canImport(Glibc)
import Glibc
#endif

struct LogDump: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Print a segment's batches and check index files against their log (as Kafka's DumpLogSegments).",
        discussion: "Exits with status 1 when a file holds an invalid batch or an index entry that disagrees with its log.")

    @Argument(help: "Segment files: NNNNNNNNNNNNNNNNNNNN.log, .index or .timeindex.")
    var files: [String]

    @Flag(name: .customLong("print-data-log"), help: "Also print every record's key, value and headers.")
    var printDataLog = false

    @Flag(name: .customLong("cluster-metadata-decoder"),
          help: "The files are the metadata log's (__cluster_metadata-0/log): print each entry's metadata records.")
    var clusterMetadata = false

    func run() throws {
        var problems = 0
        var decoder: (([UInt8]?, [UInt8]?) -> String)?
        if clusterMetadata { decoder = { key, value in Self.metadataEntry(key: key, value: value) } }
        let dump = SegmentDump(printRecords: printDataLog, decoder: decoder) { print($0) }
        for file in files {
            do {
                problems += try dump.dump(path: file).problems.count
            } catch {
                printError("brook log dump: \(error)")
                problems += 1
            }
        }
        if problems > 0 { throw ExitCode(1) }
    }
}

extension LogDump {
    /// A metadata log record: its key is the Raft entry's kind, its value the entry.
    static func metadataEntry(key: [UInt8]?, value: [UInt8]?) -> String {
        guard let kind = key?.first.flatMap(Entry.Kind.init(rawValue:)) else { return "not a metadata log entry (key \(key ?? []))" }
        switch kind {
        case .noop: return "noop (a new leader's first entry)"
        case .configuration: return "voters: \(Configuration(encoded: value ?? []).map { "\($0)" } ?? "unreadable")"
        case .data:
            do {
                switch try MetadataEntry(decoding: value ?? []) {
                case .records(let records): return "\(records.count) records: " + records.map { "\($0)" }.joined(separator: " | ")
                case .opaque(let bytes): return "\(bytes.count) bytes, not metadata records"
                }
            } catch {
                return "unreadable entry: \(error)"
            }
        }
    }
}

/// Writes a line to standard error.
func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress!, $0.count) }
}
