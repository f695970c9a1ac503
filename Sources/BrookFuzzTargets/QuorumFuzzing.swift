import BrookQuorum
import NIOCore

/// The controllers' own wire frames (Raft messages, `brook quorum` requests and answers).
enum QuorumFuzzing {
    static let target = FuzzTarget(
        name: "quorum-wire",
        input: "a byte stream of frames: 4-byte length, 1-byte kind, payload (BrookQuorum/Wire.swift)"
    ) { bytes in
        QuorumWireFuzzing.decodeStream(ByteBuffer(bytes: bytes))
    }
}
