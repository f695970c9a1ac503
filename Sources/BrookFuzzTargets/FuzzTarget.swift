/// One fuzz target: a decoder family fed arbitrary bytes. Thrown errors and refusals are the
/// decoders doing their job; only a trap, a hang or a huge allocation is a finding. Where a
/// decoded value can be encoded again, the target also checks that it round-trips (a
/// `precondition`, so an asymmetric codec is a finding too).
public struct FuzzTarget: Sendable {
    /// The name scripts/fuzz.sh, `brook-fuzz` and the corpus folder (Tests/Fuzz/corpus/NAME) use.
    public let name: String
    /// What the input bytes are, for `brook-fuzz list` and docs/reliability.md.
    public let input: String
    /// Inputs longer than this are not generated (libFuzzer's -max_len); longer corpus files
    /// are still replayed whole.
    public let inputBytesMax: Int
    public let run: @Sendable (UnsafeRawBufferPointer) -> Void

    public init(name: String, input: String, inputBytesMax: Int = 16 * 1024,
                run: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) {
        self.name = name
        self.input = input
        self.inputBytesMax = inputBytesMax
        self.run = run
    }

    public func replay(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { run($0) }
    }
}

public enum FuzzTargets {
    /// Every target, one per decoder family. A new wire or storage format gets its own.
    public static let all: [FuzzTarget] = [
        FrameFuzzing.target,
        RequestFuzzing.requestTarget,
        RequestFuzzing.responseTarget,
        RecordFuzzing.batchTarget,
        RecordFuzzing.codecTarget,
        GroupFuzzing.consumerProtocolTarget,
        GroupFuzzing.groupRecordsTarget,
        TxnFuzzing.target,
        QuorumFuzzing.target,
        MetadataFuzzing.target,
        ClusterFuzzing.target,
        SaslFuzzing.target,
        MQTTFuzzing.target,
        ClientFuzzing.target,
    ]

    public static func named(_ name: String) -> FuzzTarget? {
        all.first { $0.name == name }
    }
}

/// Reads a fuzz input front to back: a few selector bytes, then the rest. Past the end every
/// read gives zeros, so any input is usable.
struct FuzzInput {
    private(set) var bytes: UnsafeRawBufferPointer

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func byte() -> UInt8 {
        guard let first = bytes.first else { return 0 }
        bytes = UnsafeRawBufferPointer(rebasing: bytes.dropFirst())
        return first
    }

    mutating func uint16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    mutating func take(_ count: Int) -> UnsafeRawBufferPointer {
        let taken = UnsafeRawBufferPointer(rebasing: bytes.prefix(count))
        bytes = UnsafeRawBufferPointer(rebasing: bytes.dropFirst(taken.count))
        return taken
    }

    mutating func rest() -> UnsafeRawBufferPointer { take(bytes.count) }

    /// A key and a nullable value, as a record holds them: a 16-bit word whose top bit says the
    /// value is null and whose other bits are the key's length, the key, then the value (the rest).
    mutating func keyAndValue() -> (key: [UInt8], value: [UInt8]?) {
        let word = uint16()
        let key = Array(take(Int(word & 0x7FFF)))
        let value = Array(rest())
        return (key, word & 0x8000 != 0 ? nil : value)
    }
}
