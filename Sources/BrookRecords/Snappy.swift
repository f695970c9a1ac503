/// Snappy, in Swift (no snappy library is present on the machines we target): the raw block
/// format, and the xerial framing Kafka's Java client writes around it.
///
/// Raw block: a varint of the uncompressed length, then elements, each a tag byte whose low two
/// bits say literal (00), copy with 1-byte offset (01), 2-byte (10) or 4-byte (11).
public enum Snappy {
    /// xerial's stream header: magic, then version and minimum compatible version (Int32 BE).
    static let xerialMagic: [UInt8] = [0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]
    static let xerialHeaderBytes = 16
    /// Uncompressed bytes per xerial chunk (what xerial's SnappyOutputStream uses by default).
    static let xerialChunkBytes = 32 * 1024
    /// The compressor works on independent 64 KiB blocks, so every copy offset fits 16 bits.
    static let blockBytes = 1 << 16

    // MARK: decoding

    /// Decodes xerial-framed or raw snappy, refusing to produce more than `limit` bytes.
    public static func decompress(_ input: UnsafeRawBufferPointer, limit: Int) throws(CodecError) -> [UInt8] {
        var out: [UInt8] = []
        if input.count >= xerialHeaderBytes, input.starts(with: xerialMagic) {
            var position = xerialHeaderBytes
            while position < input.count {
                guard position + 4 <= input.count else { throw .corrupt("snappy: truncated chunk length") }
                let length = Int(input.loadUnaligned(fromByteOffset: position, as: UInt32.self).bigEndian)
                position += 4
                guard length <= input.count - position else { throw .corrupt("snappy: chunk of \(length) bytes is truncated") }
                let chunk = UnsafeRawBufferPointer(rebasing: input[position..<(position + length)])
                do throws(CodecError) { out += try decodeBlock(chunk, limit: limit - out.count) } catch {
                    if case .tooLarge = error { throw .tooLarge(limit: limit) }  // the whole stream's limit
                    throw error
                }
                position += length
            }
            return out
        }
        return try decodeBlock(input, limit: limit)
    }

    /// One raw snappy block's bytes (at most `limit`): the preamble's length is allocated at
    /// once (after the limit check) and filled in place.
    static func decodeBlock(_ input: UnsafeRawBufferPointer, limit: Int) throws(CodecError) -> [UInt8] {
        var i = 0
        var length = 0
        var shift = 0
        while true {
            guard i < input.count, shift <= 28 else { throw .corrupt("snappy: bad length preamble") }
            let byte = input[i]
            i += 1
            length |= Int(byte & 0x7f) << shift
            if byte & 0x80 == 0 { break }
            shift += 7
        }
        guard length <= limit else { throw .tooLarge(limit: limit) }
        let body = UnsafeRawBufferPointer(rebasing: input[i...])
        var failure: CodecError?
        let block = [UInt8](unsafeUninitializedCapacity: length) { buffer, count in
            do throws(CodecError) {
                try decodeElements(body, into: UnsafeMutableRawBufferPointer(buffer))
                count = length
            } catch {
                failure = error
                count = 0
            }
        }
        if let failure { throw failure }
        return block
    }

    /// Decodes elements until the input ends; they must fill `dst` exactly.
    private static func decodeElements(_ input: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) throws(CodecError) {
        var i = 0
        var o = 0
        let end = dst.count
        while i < input.count {
            let tag = input[i]
            i += 1
            if tag & 3 == 0 {
                var literal = Int(tag >> 2) + 1
                if literal > 60 {
                    let extra = literal - 60
                    guard i + extra <= input.count else { throw .corrupt("snappy: truncated literal length") }
                    literal = 0
                    for k in 0..<extra { literal |= Int(input[i + k]) << (8 * k) }
                    literal += 1
                    i += extra
                }
                guard literal <= input.count - i else { throw .corrupt("snappy: literal runs past the input") }
                guard literal <= end - o else { throw .corrupt("snappy: more bytes than the preamble says") }
                dst.baseAddress!.advanced(by: o).copyMemory(from: input.baseAddress!.advanced(by: i), byteCount: literal)
                i += literal
                o += literal
                continue
            }
            let copyLength: Int
            let offset: Int
            switch tag & 3 {
            case 1:
                guard i < input.count else { throw .corrupt("snappy: truncated copy") }
                copyLength = Int((tag >> 2) & 7) + 4
                offset = Int(tag >> 5) << 8 | Int(input[i])
                i += 1
            case 2:
                guard i + 2 <= input.count else { throw .corrupt("snappy: truncated copy") }
                copyLength = Int(tag >> 2) + 1
                offset = Int(input[i]) | Int(input[i + 1]) << 8
                i += 2
            default:
                guard i + 4 <= input.count else { throw .corrupt("snappy: truncated copy") }
                copyLength = Int(tag >> 2) + 1
                offset = Int(input.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian)
                i += 4
            }
            guard offset > 0, offset <= o else { throw .corrupt("snappy: copy offset \(offset) out of range") }
            guard copyLength <= end - o else { throw .corrupt("snappy: more bytes than the preamble says") }
            let base = dst.baseAddress!.assumingMemoryBound(to: UInt8.self)
            if offset >= copyLength {
                (base + o).update(from: base + o - offset, count: copyLength)
            } else {
                for k in 0..<copyLength { base[o + k] = base[o - offset + k] }  // overlapping: a run
            }
            o += copyLength
        }
        guard o == end else { throw .corrupt("snappy: \(o) bytes decoded, the preamble says \(end)") }
    }

    // MARK: encoding

    /// Compresses `input` in xerial framing (what Kafka's clients expect to read).
    public static func compressFramed(_ input: UnsafeRawBufferPointer) -> [UInt8] {
        var out = xerialMagic
        out.reserveCapacity(input.count / 2 + 64)
        appendInt32BE(1, to: &out)
        appendInt32BE(1, to: &out)
        var position = 0
        while position < input.count {
            let end = min(position + xerialChunkBytes, input.count)
            let lengthAt = out.count
            appendInt32BE(0, to: &out)
            compressBlock(UnsafeRawBufferPointer(rebasing: input[position..<end]), into: &out)
            let length = UInt32(out.count - lengthAt - 4)
            withUnsafeBytes(of: length.bigEndian) { b in for k in 0..<4 { out[lengthAt + k] = b[k] } }
            position = end
        }
        return out
    }

    /// Compresses `input` as one raw snappy block.
    public static func compressRaw(_ input: UnsafeRawBufferPointer) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 2 + 16)
        compressBlock(input, into: &out)
        return out
    }

    static func appendInt32BE(_ v: UInt32, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.bigEndian) { out.append(contentsOf: $0) }
    }

    /// One raw block (preamble and elements) for all of `input`.
    static func compressBlock(_ input: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        var n = UInt32(input.count)
        while n >= 0x80 {
            out.append(UInt8(n & 0x7f) | 0x80)
            n >>= 7
        }
        out.append(UInt8(n))
        var table = [UInt16](repeating: 0, count: 1 << 14)
        var blockStart = 0
        while blockStart < input.count {
            let blockEnd = min(blockStart + blockBytes, input.count)
            compressFragment(input, from: blockStart, to: blockEnd, table: &table, into: &out)
            blockStart = blockEnd
        }
    }

    @inline(__always)
    static func load32(_ p: UnsafeRawBufferPointer, _ i: Int) -> UInt32 {
        p.loadUnaligned(fromByteOffset: i, as: UInt32.self)
    }

    @inline(__always)
    static func hash(_ v: UInt32) -> Int { Int((v &* 0x1e35_a7bd) >> 18) }

    /// Greedy matching over input[start..<end] with a hash table of 4-byte sequences; offsets
    /// stay inside the fragment (at most 64 KiB).
    static func compressFragment(_ input: UnsafeRawBufferPointer, from start: Int, to end: Int,
                                 table: inout [UInt16], into out: inout [UInt8]) {
        var literalStart = start
        if end - start >= 15 {
            for k in table.indices { table[k] = 0 }
            let limit = end - 4  // last position where 4 bytes can be read
            var i = start + 1
            var skip = 32
            while i <= limit {
                let v = load32(input, i)
                let h = hash(v)
                let candidate = start + Int(table[h])
                table[h] = UInt16(i - start)
                if candidate < i, load32(input, candidate) == v {
                    emitLiteral(input, from: literalStart, to: i, into: &out)
                    var length = 4
                    while i + length < end, input[candidate + length] == input[i + length] { length += 1 }
                    emitCopy(offset: i - candidate, length: length, into: &out)
                    i += length
                    literalStart = i
                    skip = 32
                } else {
                    i += skip >> 5  // step further the longer nothing matches
                    skip += 1
                }
            }
        }
        emitLiteral(input, from: literalStart, to: end, into: &out)
    }

    static func emitLiteral(_ input: UnsafeRawBufferPointer, from: Int, to: Int, into out: inout [UInt8]) {
        let n = to - from
        guard n > 0 else { return }
        let m = n - 1
        if m < 60 {
            out.append(UInt8(m << 2))
        } else if m < 1 << 8 {
            out.append(60 << 2); out.append(UInt8(m))
        } else if m < 1 << 16 {
            out.append(61 << 2); out.append(UInt8(m & 0xff)); out.append(UInt8(m >> 8))
        } else if m < 1 << 24 {
            out.append(62 << 2); out.append(UInt8(m & 0xff)); out.append(UInt8((m >> 8) & 0xff)); out.append(UInt8(m >> 16))
        } else {
            out.append(63 << 2)
            for k in 0..<4 { out.append(UInt8((m >> (8 * k)) & 0xff)) }
        }
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[from..<to]))
    }

    static func emitCopy(offset: Int, length: Int, into out: inout [UInt8]) {
        precondition(offset > 0 && offset < 1 << 16, "snappy copies stay inside a 64 KiB fragment")
        var left = length
        // 64-byte pieces, keeping at least 4 for the last so it can use the short form.
        while left >= 68 {
            emitCopyPiece(offset: offset, length: 64, into: &out)
            left -= 64
        }
        if left > 64 {
            emitCopyPiece(offset: offset, length: 60, into: &out)
            left -= 60
        }
        emitCopyPiece(offset: offset, length: left, into: &out)
    }

    static func emitCopyPiece(offset: Int, length: Int, into out: inout [UInt8]) {
        if length >= 4, length <= 11, offset < 2048 {
            out.append(UInt8(1 | ((length - 4) << 2) | ((offset >> 8) << 5)))
            out.append(UInt8(offset & 0xff))
        } else {
            out.append(UInt8(2 | ((length - 1) << 2)))
            out.append(UInt8(offset & 0xff))
            out.append(UInt8(offset >> 8))
        }
    }
}
