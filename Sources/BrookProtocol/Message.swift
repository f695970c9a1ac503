import BrookCore
import NIOCore

/// A message with a generated codec (see protocol/README.md): what API messages and data
/// messages share.
public protocol WireMessage: Sendable, Equatable {
    static var apiKey: Int16 { get }
    static var versions: ClosedRange<Int16> { get }
    static var flexibleFrom: Int16? { get }
    init()
    init(from reader: inout WireReader, version: Int16) throws(ProtocolError)
    func encode(to writer: inout WireWriter, version: Int16)
}

/// A request or a response of an API (protocol/messages/*.def).
public protocol KafkaMessage: WireMessage {
    static var apiName: String { get }
    /// Calls `visit` with every `ErrorCode` field the message holds, at any depth (generated for
    /// each response that has one; none elsewhere): the broker counts its answers' errors by code.
    func visitErrorCodes(_ visit: (Int16) -> Void)
}

extension KafkaMessage {
    public func visitErrorCodes(_ visit: (Int16) -> Void) {}
}

/// A response with Kafka's top-level `ThrottleTimeMs` (generated for each that has it): how long
/// the client should wait before its next request, for its quotas.
public protocol ThrottledResponse {
    var throttleTimeMs: Int32 { get set }
}

/// A data message that is neither a request nor a response: a KRaft metadata record
/// (protocol/metadata/*.def, framed by `MetadataRecord`). Its `apiKey` is its record type, a
/// number space of its own: 3 is PartitionRecord here, never the Metadata API.
public protocol KafkaDataMessage: WireMessage {
    static var messageName: String { get }
}

public protocol KafkaRequest: KafkaMessage {
    associatedtype Response: KafkaMessage
}

extension KafkaMessage {
    public static func isFlexible(_ version: Int16) -> Bool {
        flexibleFrom.map { version >= $0 } ?? false
    }

    /// Decodes a whole message body; bytes left over mean the two sides disagree on the layout,
    /// unless `trailingBytesAllowed` (a broker reading requests: Kafka ignores what follows a
    /// request body, and librdkafka 2.16 sends Metadata requests with bytes to spare).
    public init(decoding buffer: ByteBuffer, version: Int16, trailingBytesAllowed: Bool = false) throws(ProtocolError) {
        var reader = WireReader(buffer)
        try self.init(from: &reader, version: version)
        guard trailingBytesAllowed || reader.remaining == 0 else {
            throw ProtocolError("\(Self.apiName) v\(version): \(reader.remaining) bytes left after the message")
        }
    }

    public func encoded(version: Int16) -> ByteBuffer {
        var writer = WireWriter()
        encode(to: &writer, version: version)
        precondition(writer.fileRecords.isEmpty, "encoded(version:) is for messages without file records")
        return writer.buffer
    }
}

/// A topic id: 128 bits, shown as Kafka shows it (URL-safe base64, no padding).
public struct KafkaUUID: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64
    public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }
    public static let zero = KafkaUUID(high: 0, low: 0)

    /// A random version-4 id (never zero, never Kafka's reserved METADATA id 0...01).
    /// Redrawn while its text starts with '-', which command-line tools would take for an option.
    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> KafkaUUID {
        while true {
            var id = KafkaUUID(high: generator.next(), low: generator.next())
            id.high = (id.high & ~0xF000) | 0x4000
            id.low = (id.low & ~(0xC << 60)) | (0x8 << 60)
            if !id.description.hasPrefix("-") { return id }
        }
    }

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public var description: String {
        var bytes: [UInt8] = []
        for word in [high, low] { for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) } }
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var value: UInt32 = 0
            for (i, byte) in chunk.enumerated() { value |= UInt32(byte) << UInt32(16 - 8 * i) }
            for i in 0..<(chunk.count + 1) { out.append(Self.alphabet[Int((value >> UInt32(18 - 6 * i)) & 63)]) }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    public init?(_ text: String) {
        let digits = Array(text.utf8)
        guard digits.count == 22 else { return nil }
        var bytes: [UInt8] = []
        var accumulator: UInt32 = 0
        var bits = 0
        for digit in digits {
            guard let value = Self.alphabet.firstIndex(of: digit) else { return nil }
            accumulator = (accumulator << 6) | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                bytes.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        guard bytes.count == 16 else { return nil }
        high = bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        low = bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// Record data in a message: bytes in memory (a produce request's slice) or a file region
/// (a fetch response served from the log).
public enum Records: Sendable, Equatable {
    case bytes(ByteBuffer)
    case file(any FileRecords)

    public var byteCount: Int {
        switch self {
        case .bytes(let bytes): bytes.readableBytes
        case .file(let records): records.byteCount
        }
    }

    public static func == (a: Records, b: Records) -> Bool {
        switch (a, b) {
        case (.bytes(let x), .bytes(let y)): x == y
        case (.file(let x), .file(let y)): x === y
        default: false
        }
    }
}

/// Record data that stays in a file until the server sends it.
public protocol FileRecords: AnyObject, Sendable {
    var byteCount: Int { get }
}
