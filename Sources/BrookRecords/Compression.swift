import BrookCore
import CBrookCodecs
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a compressed payload cannot be used.
public enum CodecError: Error, Hashable, Sendable, CustomStringConvertible {
    case corrupt(String)
    /// It would decompress to more than the limit (a zip bomb, or a batch larger than we take).
    case tooLarge(limit: Int)
    /// The codec's library is not on this machine.
    case unavailable(CompressionCodec)

    public var description: String {
        switch self {
        case .corrupt(let why): why
        case .tooLarge(let limit): "decompresses to more than \(limit) bytes"
        case .unavailable(let codec): "\(codec) is not available: its library (\(codec == .zstd ? "libzstd.so.1" : "liblz4.so.1")) could not be loaded"
        }
    }
}

/// gzip, snappy, lz4 and zstd, as Kafka frames them inside a record batch: gzip streams, xerial
/// snappy (raw snappy on read too), LZ4 frames and zstd frames.
public enum Codecs {
    /// The largest size a batch's records may decompress to. A window larger than this is of
    /// no use, so zstd's window is bounded by it too.
    public static let decompressedBytesMax = 64 * 1024 * 1024
    static let zstdWindowLogMax: Int32 = 26

    /// Whether `codec` can be used here (zstd and lz4 need their runtime libraries).
    public static func isAvailable(_ codec: CompressionCodec) -> Bool {
        guard let kind = kind(codec) else { return true }
        return brook_codec_available(kind) == 1
    }

    static func kind(_ codec: CompressionCodec) -> Int32? {
        switch codec {
        case .gzip: Int32(BROOK_GZIP.rawValue)
        case .lz4: Int32(BROOK_LZ4.rawValue)
        case .zstd: Int32(BROOK_ZSTD.rawValue)
        case .none, .snappy: nil
        }
    }

    /// Decompresses `input`, refusing more than `limit` output bytes.
    public static func decompress(_ codec: CompressionCodec, _ input: UnsafeRawBufferPointer,
                                  limit: Int = decompressedBytesMax) throws(CodecError) -> [UInt8] {
        precondition(limit >= 0, "a decompression limit is a size")
        switch codec {
        case .none:
            guard input.count <= limit else { throw .tooLarge(limit: limit) }
            return Array(input)
        case .snappy:
            return try Snappy.decompress(input, limit: limit)
        case .gzip, .lz4, .zstd:
            return try inflate(kind(codec)!, codec, input, limit: limit)
        }
    }

    private static func inflate(_ kind: Int32, _ codec: CompressionCodec, _ input: UnsafeRawBufferPointer,
                                limit: Int) throws(CodecError) -> [UInt8] {
        // When the stream announces its size, decode straight into an array of that size (one
        // more byte, to notice a stream that does not keep its word); else, or if it lied, grow.
        let announced = brook_content_size(kind, input.baseAddress, input.count)
        if announced >= 0, announced < limit, let exact = try inflateExact(kind, codec, input, size: Int(announced)) {
            return exact
        }
        return try inflateGrowing(kind, codec, input, limit: limit)
    }

    private static func newInflater(_ kind: Int32, _ codec: CompressionCodec) throws(CodecError) -> OpaquePointer {
        guard let inflater = brook_inflater_new(kind, zstdWindowLogMax) else {
            throw isAvailable(codec) ? .corrupt("\(codec): out of memory") : .unavailable(codec)
        }
        return inflater
    }

    /// The output when it is exactly `size` bytes; nil when there is more.
    private static func inflateExact(_ kind: Int32, _ codec: CompressionCodec, _ input: UnsafeRawBufferPointer,
                                     size: Int) throws(CodecError) -> [UInt8]? {
        let inflater = try newInflater(kind, codec)
        defer { brook_inflater_free(inflater) }
        var status: Int32 = 0
        var produced = 0
        var consumed = 0
        let exact = [UInt8](unsafeUninitializedCapacity: size + 1) { buffer, count in
            status = brook_inflate(inflater, input.baseAddress, input.count, &consumed, buffer.baseAddress, buffer.count, &produced)
            count = status == Int32(BROOK_CODEC_DONE.rawValue) ? produced : 0
        }
        switch status {
        case Int32(BROOK_CODEC_DONE.rawValue): return exact
        case Int32(BROOK_CODEC_MORE.rawValue): return nil
        default: throw .corrupt("\(codec): corrupt or truncated data")
        }
    }

    /// Decodes into a buffer grown with realloc (no zero filling), copied out once.
    private static func inflateGrowing(_ kind: Int32, _ codec: CompressionCodec, _ input: UnsafeRawBufferPointer,
                                       limit: Int) throws(CodecError) -> [UInt8] {
        let inflater = try newInflater(kind, codec)
        defer { brook_inflater_free(inflater) }
        var capacity = min(limit, max(4096, input.count * 4))
        var buffer = malloc(max(capacity, 1))
        defer { free(buffer) }
        var produced = 0
        var consumed = 0
        while true {
            guard let out = buffer else { throw .corrupt("\(codec): out of memory") }
            let status = brook_inflate(inflater, input.baseAddress, input.count, &consumed, out, capacity, &produced)
            switch status {
            case Int32(BROOK_CODEC_DONE.rawValue):
                return Array(UnsafeRawBufferPointer(start: out, count: produced))
            case Int32(BROOK_CODEC_MORE.rawValue):
                guard capacity < limit else { throw .tooLarge(limit: limit) }
                capacity = capacity > limit / 2 ? limit : capacity * 2
                guard let grown = realloc(out, capacity) else { throw .corrupt("\(codec): out of memory") }
                buffer = grown
            case Int32(BROOK_CODEC_NOMEM.rawValue):
                throw .corrupt("\(codec): out of memory")
            default:
                throw .corrupt("\(codec): corrupt or truncated data")
            }
        }
    }

    /// Compresses `input`; `level` is the codec's own scale (nil: its default).
    public static func compress(_ codec: CompressionCodec, _ input: UnsafeRawBufferPointer,
                                level: Int? = nil) throws(CodecError) -> [UInt8] {
        switch codec {
        case .none:
            return Array(input)
        case .snappy:
            return Snappy.compressFramed(input)
        case .gzip, .lz4, .zstd:
            let kind = kind(codec)!
            let bound = brook_deflate_bound(kind, input.count)
            guard bound > 0 else { throw .unavailable(codec) }
            var out = [UInt8](repeating: 0, count: bound)
            let size = out.withUnsafeMutableBytes { dst in
                brook_deflate(kind, Int32(clamping: level ?? Int(Int32.min)), input.baseAddress, input.count, dst.baseAddress, dst.count)
            }
            guard size >= 0 else { throw size == Int(BROOK_CODEC_UNAVAILABLE.rawValue) ? .unavailable(codec) : .corrupt("\(codec): compression failed") }
            out.removeLast(out.count - size)
            return out
        }
    }
}
