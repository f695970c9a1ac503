import BrookCore
import BrookRecords
import Foundation
import Testing

/// Inputs the codecs see: empty, tiny, text-like (compressible), random (not), runs.
func compressionSamples(seed: UInt64 = 7) -> [(String, [UInt8])] {
    var random = SeededRandom(seed: seed)
    let words = ["kafka", "brook", "offset", "partition", "record", "batch", " ", "\n", "{\"id\":", "}"]
    var text: [UInt8] = []
    while text.count < 200_000 { text += Array(words[Int.random(in: 0..<words.count, using: &random)].utf8) }
    let noise = (0..<70_000).map { _ in UInt8.random(in: 0...255, using: &random) }
    return [
        ("empty", []),
        ("one byte", [42]),
        ("short", Array("hello hello hello hello".utf8)),
        ("text", text),
        ("random", noise),
        ("zeros", [UInt8](repeating: 0, count: 300_000)),
        ("mixed", Array(text[0..<50_000]) + noise[0..<20_000] + [UInt8](repeating: 7, count: 70_000)),
    ]
}

let allCodecs: [CompressionCodec] = [.gzip, .snappy, .lz4, .zstd]

@Suite struct CompressionTests {
    @Test(arguments: allCodecs)
    func roundTrip(codec: CompressionCodec) throws {
        for (name, sample) in compressionSamples() {
            let compressed = try sample.withUnsafeBytes { try Codecs.compress(codec, $0) }
            let back = try compressed.withUnsafeBytes { try Codecs.decompress(codec, $0) }
            #expect(back == sample, "\(codec) \(name)")
            if name == "text" { #expect(compressed.count < sample.count / 2, "\(codec) should compress text") }
        }
    }

    @Test(arguments: allCodecs)
    func levelsRoundTrip(codec: CompressionCodec) throws {
        let sample = compressionSamples()[3].1
        for level in [1, 5, 9] {
            let compressed = try sample.withUnsafeBytes { try Codecs.compress(codec, $0, level: level) }
            #expect(try compressed.withUnsafeBytes { try Codecs.decompress(codec, $0) } == sample)
        }
    }

    /// A small input expanding past the limit is refused before the output grows further.
    @Test(arguments: allCodecs)
    func bombsAreRefused(codec: CompressionCodec) throws {
        let zeros = [UInt8](repeating: 0, count: 4 << 20)
        let compressed = try zeros.withUnsafeBytes { try Codecs.compress(codec, $0) }
        #expect(compressed.count < 1 << 20)
        #expect(throws: CodecError.tooLarge(limit: 1 << 20)) {
            try compressed.withUnsafeBytes { try Codecs.decompress(codec, $0, limit: 1 << 20) }
        }
        // The exact size passes.
        #expect(try compressed.withUnsafeBytes { try Codecs.decompress(codec, $0, limit: 4 << 20) }.count == 4 << 20)
    }

    @Test(arguments: allCodecs)
    func truncatedInputIsCorrupt(codec: CompressionCodec) throws {
        let sample = compressionSamples()[3].1
        let compressed = try sample.withUnsafeBytes { try Codecs.compress(codec, $0) }
        for cut in [1, 7, compressed.count / 2, compressed.count - 1] {
            let truncated = Array(compressed[0..<cut])
            #expect(throws: CodecError.self, "\(codec) cut at \(cut)") {
                let out = try truncated.withUnsafeBytes { try Codecs.decompress(codec, $0) }
                // A codec may decode a prefix without noticing the cut only if it says so by size.
                if out != sample { throw CodecError.corrupt("short") }
            }
        }
    }

    /// Flipped bytes never crash a decoder: it either throws or returns something bounded.
    @Test(arguments: allCodecs)
    func corruptInputNeverCrashes(codec: CompressionCodec) throws {
        var random = SeededRandom(seed: 99)
        let sample = Array(compressionSamples()[3].1[0..<20_000])
        let compressed = try sample.withUnsafeBytes { try Codecs.compress(codec, $0) }
        for _ in 0..<300 {
            var bad = compressed
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                bad[Int.random(in: 0..<bad.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            }
            if let out = try? bad.withUnsafeBytes({ try Codecs.decompress(codec, $0, limit: 1 << 20) }) {
                #expect(out.count <= 1 << 20)
            }
        }
        // Garbage from the start.
        for n in [1, 2, 5, 16, 100] {
            let garbage = (0..<n).map { _ in UInt8.random(in: 0...255, using: &random) }
            _ = try? garbage.withUnsafeBytes { try Codecs.decompress(codec, $0, limit: 1 << 20) }
        }
    }

    @Test func snappyRawAndFramedBothDecode() throws {
        let sample = compressionSamples()[3].1
        let raw = sample.withUnsafeBytes { Snappy.compressRaw($0) }
        let framed = sample.withUnsafeBytes { Snappy.compressFramed($0) }
        #expect(Array(framed[0..<8]) == [0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00])
        #expect(try raw.withUnsafeBytes { try Codecs.decompress(.snappy, $0) } == sample)
        #expect(try framed.withUnsafeBytes { try Codecs.decompress(.snappy, $0) } == sample)
    }

    /// Hand-made raw snappy: every element kind, including an overlapping copy (a run).
    @Test func snappyKnownElements() throws {
        // "abcd" literal, then copy-1 (offset 4, length 4), then copy-2 (offset 1, length 6): a run of "d".
        let block: [UInt8] = [14, 3 << 2, 0x61, 0x62, 0x63, 0x64, 0x01, 0x04, UInt8(2 | (5 << 2)), 0x01, 0x00]
        let out = try block.withUnsafeBytes { try Codecs.decompress(.snappy, $0) }
        #expect(out == Array("abcdabcddddddd".utf8))
        // A copy reaching before the start is corrupt.
        let bad: [UInt8] = [8, 0x00, 0x61, 0x01, 0x05]
        #expect(throws: CodecError.self) { try bad.withUnsafeBytes { try Codecs.decompress(.snappy, $0) } }
        // A preamble promising more than the limit is refused at once.
        let huge: [UInt8] = [0xff, 0xff, 0xff, 0x7f, 0x00]
        #expect(throws: CodecError.tooLarge(limit: 1000)) { try huge.withUnsafeBytes { try Codecs.decompress(.snappy, $0, limit: 1000) } }
    }
}

/// Our codecs against the C reference tools on the same bytes, both ways.
@Suite struct CompressionInteropTests {
    static let tools: [(CompressionCodec, String, [String], [String])] = [
        (.gzip, "/usr/bin/gzip", ["-c"], ["-dc"]),
        (.lz4, "/usr/bin/lz4", ["-c"], ["-dc"]),
        (.zstd, "/usr/bin/zstd", ["-c", "-q"], ["-dc", "-q"]),
    ]

    static func run(_ tool: String, _ args: [String], input: [UInt8]) throws -> [UInt8] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("brook-codec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let inFile = dir.appendingPathComponent("in"), outFile = dir.appendingPathComponent("out")
        try Data(input).write(to: inFile)
        _ = FileManager.default.createFile(atPath: outFile.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        p.standardInput = try FileHandle(forReadingFrom: inFile)
        p.standardOutput = try FileHandle(forWritingTo: outFile)
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CodecError.corrupt("\(tool) \(args) exited \(p.terminationStatus)") }
        return Array(try Data(contentsOf: outFile))
    }

    @Test(arguments: tools.indices)
    func referenceToolsAgree(index: Int) throws {
        let (codec, tool, compressArgs, decompressArgs) = Self.tools[index]
        try #require(FileManager.default.isExecutableFile(atPath: tool), "\(tool) is part of the machine")
        for (name, sample) in compressionSamples() where !sample.isEmpty {
            let theirs = try Self.run(tool, compressArgs, input: sample)
            #expect(try theirs.withUnsafeBytes { try Codecs.decompress(codec, $0) } == sample, "\(tool) → ours, \(name)")
            let ours = try sample.withUnsafeBytes { try Codecs.compress(codec, $0) }
            #expect(try Self.run(tool, decompressArgs, input: ours) == sample, "ours → \(tool), \(name)")
        }
    }
}
