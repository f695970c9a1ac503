/// The principal of a client certificate on an SSL listener, as Kafka gives it: the certificate
/// subject's distinguished name in RFC 2253's form (Java's `X500Principal.getName()`:
/// `CN=alice,OU=eng,O=Example,C=US`, the last RDN first), then `ssl.principal.mapping.rules`.
public enum CertificateSubject {
    /// The subject of a DER-encoded X.509 certificate in RFC 2253's form; nil when the bytes are
    /// not a certificate this reader understands (the TLS library has checked the certificate
    /// already: this only reads it, within the bytes given).
    public static func distinguishedName(certificateDER bytes: [UInt8]) -> String? {
        var reader = DERReader(bytes[...])
        guard var certificate = reader.read(tag: 0x30)?.contents, var tbs = certificate.read(tag: 0x30)?.contents else { return nil }
        if tbs.peekTag == 0xA0 { _ = tbs.read() }               // version
        guard tbs.read(tag: 0x02) != nil,                        // serial number
              tbs.read(tag: 0x30) != nil,                        // signature algorithm
              tbs.read(tag: 0x30) != nil,                        // issuer
              tbs.read(tag: 0x30) != nil,                        // validity
              let subject = tbs.read(tag: 0x30) else { return nil }
        return rfc2253(name: subject.contents)
    }

    /// A Name (a sequence of relative distinguished names) in RFC 2253's form.
    static func rfc2253(name: DERReader) -> String? {
        var name = name
        var rdns: [String] = []
        while !name.isEmpty {
            guard var set = name.read(tag: 0x31)?.contents else { return nil }
            var attributes: [String] = []
            while !set.isEmpty {
                guard var pair = set.read(tag: 0x30)?.contents, let oid = pair.read(tag: 0x06), let value = pair.read() else { return nil }
                guard let type = objectIdentifier(oid.contents.bytes) else { return nil }
                let keyword = keywords[type]
                if let keyword, let text = string(value) {
                    attributes.append(keyword + "=" + escaped(text))
                } else {
                    attributes.append(type + "=#" + value.encoded.map { byte in
                        let hex = String(byte, radix: 16)
                        return hex.count == 1 ? "0" + hex : hex
                    }.joined())
                }
            }
            rdns.append(attributes.joined(separator: "+"))
        }
        return rdns.reversed().joined(separator: ",")
    }

    /// The attribute types RFC 2253 names by keyword (as Java does); the rest by dotted number.
    static let keywords: [String: String] = [
        "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
        "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
    ]

    static func objectIdentifier(_ bytes: ArraySlice<UInt8>) -> String? {
        guard let first = bytes.first, bytes.count <= 64 else { return nil }
        var arcs = [String(first < 80 ? first / 40 : 2), String(first < 80 ? first % 40 : first - 80)]
        var value: UInt64 = 0
        for byte in bytes.dropFirst() {
            guard value < (1 << 56) else { return nil }
            value = value << 7 | UInt64(byte & 0x7F)
            if byte & 0x80 == 0 { arcs.append(String(value)); value = 0 }
        }
        return bytes.last! & 0x80 == 0 ? arcs.joined(separator: ".") : nil
    }

    /// A directory string's text; nil for any other type (then written as hex).
    static func string(_ element: DERReader.Element) -> String? {
        let bytes = element.contents.bytes
        switch element.tag {
        case 0x0C, 0x13, 0x16: return String(validating: bytes, as: UTF8.self)      // UTF8, Printable, IA5
        case 0x14: return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))  // Teletex, read as Latin-1
        case 0x1E:                                                                   // BMP: UTF-16BE
            guard bytes.count % 2 == 0 else { return nil }
            let units = stride(from: bytes.startIndex, to: bytes.endIndex, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
            return String(validating: units, as: UTF16.self)
        default: return nil
        }
    }

    /// RFC 2253's escapes: `,+"\<>;` anywhere, `#` or a space first, a space last.
    static func escaped(_ text: String) -> String {
        var out = ""
        let characters = Array(text)
        for (i, c) in characters.enumerated() {
            if ",+\"\\<>;".contains(c) || (i == 0 && (c == "#" || c == " ")) || (i == characters.count - 1 && c == " ") {
                out.append("\\")
            }
            out.append(c)
        }
        return out
    }
}

/// A bounded reader of DER's tag-length-value elements (single-byte tags, definite lengths).
struct DERReader {
    struct Element {
        var tag: UInt8
        var contents: DERReader
        /// The whole element: tag, length and contents.
        var encoded: ArraySlice<UInt8>
    }

    private(set) var bytes: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    var isEmpty: Bool { bytes.isEmpty }
    var peekTag: UInt8? { bytes.first }

    /// The next element, if it has this tag.
    mutating func read(tag: UInt8) -> Element? {
        guard peekTag == tag else { return nil }
        return read()
    }

    /// The next element; nil (and nothing consumed) when it does not fit in the bytes left.
    mutating func read() -> Element? {
        var at = bytes.startIndex
        guard at < bytes.endIndex else { return nil }
        let tag = bytes[at]
        guard tag & 0x1F != 0x1F else { return nil }     // multi-byte tags are not read
        at += 1
        guard at < bytes.endIndex else { return nil }
        var length = Int(bytes[at])
        at += 1
        if length & 0x80 != 0 {
            let count = length & 0x7F
            guard count >= 1, count <= 4, bytes.endIndex - at >= count else { return nil }
            length = 0
            for _ in 0..<count { length = length << 8 | Int(bytes[at]); at += 1 }
        }
        guard length <= bytes.endIndex - at else { return nil }
        let element = Element(tag: tag, contents: DERReader(bytes[at..<at + length]), encoded: bytes[bytes.startIndex..<at + length])
        bytes = bytes[(at + length)...]
        return element
    }
}

/// `ssl.principal.mapping.rules`, as Kafka reads them: a comma-separated list of
/// `RULE:pattern/replacement/` (optionally `L` or `U` after the last slash, to lower- or
/// upper-case the result) and `DEFAULT` (the name unchanged). The first rule whose pattern
/// matches the whole distinguished name gives the principal's name; when none does, the
/// connection is refused.
public struct SslPrincipalMapper: Sendable, Equatable {
    public struct Rule: Sendable, Equatable {
        public var pattern: String?          // nil: DEFAULT
        public var replacement: String
        public var caseChange: Character?    // "L" or "U"
    }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    public private(set) var rules: [Rule]

    public static let `default` = SslPrincipalMapper(rules: [Rule(pattern: nil, replacement: "", caseChange: nil)])

    init(rules: [Rule]) { self.rules = rules }

    public static func parse(_ text: String) throws(ParseError) -> SslPrincipalMapper {
        var rules: [Rule] = []
        var rest = Substring(text)
        func skipSpaces() { rest = rest.drop(while: { $0.isWhitespace }) }
        func upToSlash() -> String? {
            var out = ""
            while let c = rest.first {
                rest = rest.dropFirst()
                if c == "\\" {
                    guard let next = rest.first else { return nil }
                    out.append(c); out.append(next); rest = rest.dropFirst()
                } else if c == "/" {
                    return out
                } else {
                    out.append(c)
                }
            }
            return nil
        }
        skipSpaces()
        while !rest.isEmpty {
            if rest.hasPrefix("DEFAULT") {
                rest = rest.dropFirst("DEFAULT".count)
                rules.append(Rule(pattern: nil, replacement: "", caseChange: nil))
            } else if rest.hasPrefix("RULE:") {
                rest = rest.dropFirst("RULE:".count)
                guard let pattern = upToSlash(), let replacement = upToSlash() else {
                    throw ParseError(description: "Invalid rule in ssl.principal.mapping.rules: a RULE needs pattern/replacement/")
                }
                guard (try? Regex(pattern)) != nil else { throw ParseError(description: "Invalid pattern in ssl.principal.mapping.rules: \(pattern)") }
                var caseChange: Character?
                if let c = rest.first, c == "L" || c == "U" { caseChange = c; rest = rest.dropFirst() }
                rules.append(Rule(pattern: pattern, replacement: replacement, caseChange: caseChange))
            } else {
                throw ParseError(description: "Invalid rule in ssl.principal.mapping.rules: `\(rest.prefix(40))`")
            }
            skipSpaces()
            if rest.first == "," { rest = rest.dropFirst(); skipSpaces() } else if !rest.isEmpty {
                throw ParseError(description: "Invalid rule in ssl.principal.mapping.rules: unmatched `\(rest.prefix(40))`")
            }
        }
        guard !rules.isEmpty else { throw ParseError(description: "ssl.principal.mapping.rules lists no rule") }
        return SslPrincipalMapper(rules: rules)
    }

    /// The principal's name for a distinguished name; nil when no rule applies.
    public func name(for distinguishedName: String) -> String? {
        for rule in rules {
            guard let pattern = rule.pattern else { return distinguishedName }
            guard let regex = try? Regex(pattern), let match = try? regex.wholeMatch(in: distinguishedName) else { continue }
            var result = Self.substitute(rule.replacement, match.output)
            switch rule.caseChange {
            case "L": result = result.lowercased()
            case "U": result = result.uppercased()
            default: break
            }
            return result
        }
        return nil
    }

    /// The replacement with `$N` turned into the match's group N (`\` takes the next character
    /// as it is), as Java's `replaceAll` does.
    static func substitute(_ replacement: String, _ groups: AnyRegexOutput) -> String {
        var out = ""
        var characters = Substring(replacement)
        while let c = characters.first {
            characters = characters.dropFirst()
            if c == "\\", let next = characters.first {
                out.append(next); characters = characters.dropFirst()
            } else if c == "$", let digit = characters.first?.wholeNumberValue {
                characters = characters.dropFirst()
                if digit < groups.count, let text = groups[digit].substring { out += text }
            } else {
                out.append(c)
            }
        }
        return out
    }
}
