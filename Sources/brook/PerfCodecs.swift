import ArgumentParser
import BrookCore
import BrookRecords
import Foundation

/// `brook perf codecs`: compression and decompression speed of each codec, in this process, on
/// one buffer (a file, or record batches of the perf produce payload), to set beside the C
/// tools' own benchmarks on the same bytes (scripts/bench-codecs.sh).
struct PerfCodecs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codecs", abstract: "Measure each codec's compress / decompress MB/s on the same data.")
    @Option(help: "Data to compress (default: uncompressed record batches of the perf produce text payload).") var file: String?
    @Option(help: "MiB of generated data when no --file is given.") var mib = 32
    @Option(name: .customLong("write-sample"), help: "Write the generated data here (for the C tools).") var writeSample: String?
    @Option(help: "Codecs to measure, comma-separated.") var codecs = "gzip,snappy,lz4,zstd"
    @Option(help: "Seconds to repeat each measurement for (at least one run).") var seconds = 2.0
    @Option(name: .customLong("chunk-kb"), help: "Compress the data in independent chunks of this many KiB, as batches are (0: whole).")
    var chunkKB = 0

    func run() throws {
        let data: [UInt8]
        if let file {
            guard let bytes = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
            data = Array(bytes)
        } else {
            data = Self.sample(bytes: mib << 20)
            if let writeSample { try Data(data).write(to: URL(fileURLWithPath: writeSample)) }
        }
        guard data.count <= Codecs.decompressedBytesMax else { throw ValidationError("at most \(Codecs.decompressedBytesMax >> 20) MiB") }
        let chunk = chunkKB > 0 ? chunkKB << 10 : max(1, data.count)
        let chunks = stride(from: 0, to: data.count, by: chunk).map { Array(data[$0..<min($0 + chunk, data.count)]) }
        print("data: \(data.count) bytes in \(chunks.count) chunk(s)")
        for name in codecs.split(separator: ",").map(String.init) {
            let codec = try parseCodec(name)
            let compressed = try chunks.map { c in try c.withUnsafeBytes { try Codecs.compress(codec, $0) } }
            let compressSeconds = try Self.time(seconds) {
                for c in chunks { _ = try c.withUnsafeBytes { try Codecs.compress(codec, $0) } }
            }
            let decompressSeconds = try Self.time(seconds) {
                for c in compressed { _ = try c.withUnsafeBytes { try Codecs.decompress(codec, $0) } }
            }
            let back = try compressed.map { c in try c.withUnsafeBytes { try Codecs.decompress(codec, $0) } }
            precondition(back == chunks, "\(codec) round trip")
            let size = compressed.reduce(0) { $0 + $1.count }
            let mb = Double(data.count) / 1_000_000
            print("\(name): \(data.count) -> \(size) (ratio \(fixed(Double(data.count) / Double(max(1, size)), 2))), "
                + "compress \(fixed(mb / compressSeconds, 1)) MB/s, decompress \(fixed(mb / decompressSeconds, 1)) MB/s")
        }
    }

    /// Seconds per run of `body`, the best of the runs made in `budget` seconds.
    static func time(_ budget: Double, _ body: () throws -> Void) throws -> Double {
        var best = Double.infinity
        let start = now()
        repeat {
            let t = now()
            try body()
            best = min(best, now() - t)
        } while now() - start < budget
        return best
    }

    /// Uncompressed record batches (as a producer would send them) of 100-byte `perfValues`,
    /// all distinct, about `bytes` long.
    static func sample(bytes: Int) -> [UInt8] {
        let values = perfValues(count: bytes / 100 + 1, size: 100)
        var out: [UInt8] = []
        out.reserveCapacity(bytes + 64 * 1024)
        var next = 0
        var timestamp: Int64 = 1_763_000_000_000
        while out.count < bytes {
            let records = (0..<150).map { i -> SimpleRecord in
                defer { next = (next + 1) % values.count }
                return SimpleRecord(key: nil, value: values[next], timestamp: Timestamp(ms: timestamp + Int64(i)))
            }
            timestamp += 150
            out += RecordBatchBuilder.build(baseOffset: .zero, records: records)
        }
        return Array(out.prefix(bytes))
    }
}
