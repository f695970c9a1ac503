import ArgumentParser
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

    func run() throws {
        var problems = 0
        let dump = SegmentDump(printRecords: printDataLog) { print($0) }
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

/// Writes a line to standard error.
func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress!, $0.count) }
}
