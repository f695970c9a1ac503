import BrookProtocol
import NIOCore
import Testing

/// Bytes from a hex string ("00ff1a"); the fixtures are written by a script, so bad input traps.
func bytes(hex: String) -> [UInt8] {
    let digits = Array(hex.utf8)
    precondition(digits.count % 2 == 0, "odd hex length")
    func value(_ c: UInt8) -> UInt8 {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: preconditionFailure("not a hex digit: \(c)")
        }
    }
    return stride(from: 0, to: digits.count, by: 2).map { value(digits[$0]) << 4 | value(digits[$0 + 1]) }
}

func hex(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

extension ByteBuffer {
    var bytes: [UInt8] { Array(readableBytesView) }
}

/// Where two byte strings first differ, for failure messages.
func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> String {
    let index = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
    return "lengths \(a.count) and \(b.count), first difference at byte \(index)"
}

/// Encodes a message the way a test wants it, as plain bytes.
func encode<M: KafkaMessage>(_ message: M, version: Int16) -> [UInt8] {
    message.encoded(version: version).bytes
}

func decode<M: KafkaMessage>(_ type: M.Type, _ bytes: [UInt8], version: Int16) throws(ProtocolError) -> M {
    try M(decoding: ByteBuffer(bytes: bytes), version: version)
}
