/// Topic names and topic filters (MQTT section 4.7): levels split by `/`, `+` one whole level,
/// `#` the rest (last level only), and topics starting with `$` matched by no filter that
/// starts with a wildcard.
public enum MQTTTopic {
    /// A name a PUBLISH may carry: at least one character, no wildcard.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 65_535 && !name.utf8.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") })
    }

    /// A filter a SUBSCRIBE may carry.
    public static func isValidFilter(_ filter: String) -> Bool {
        guard !filter.isEmpty, filter.utf8.count <= 65_535 else { return false }
        // Levels of UTF-8 bytes, as `matches` reads them: "#" and a combining mark after it are one
        // Character, but not a level that is the wildcard alone.
        let levels = filter.utf8.split(separator: slash, omittingEmptySubsequences: false)
        for (index, level) in levels.enumerated() {
            if level.contains(hash) && (!level.elementsEqual([hash]) || index != levels.count - 1) { return false }
            if level.contains(plus) && !level.elementsEqual([plus]) { return false }
        }
        return true
    }

    public static func hasWildcard(_ filter: String) -> Bool {
        filter.utf8.contains(where: { $0 == plus || $0 == hash })
    }

    static let slash = UInt8(ascii: "/"), plus = UInt8(ascii: "+"), hash = UInt8(ascii: "#")

    /// Whether `name` matches `filter` (both valid).
    public static func matches(filter: String, name: String) -> Bool {
        var f = filter.utf8[...]
        var n = name.utf8[...]
        let slash = UInt8(ascii: "/")
        if n.first == UInt8(ascii: "$") && (f.first == UInt8(ascii: "+") || f.first == UInt8(ascii: "#")) { return false }
        while true {
            let fLevel = f.prefix(while: { $0 != slash })
            if fLevel.elementsEqual("#".utf8) { return true }  // the rest, the parent level included
            let nLevel = n.prefix(while: { $0 != slash })
            if !fLevel.elementsEqual("+".utf8) && !fLevel.elementsEqual(nLevel) { return false }
            let fMore = fLevel.endIndex < f.endIndex
            let nMore = nLevel.endIndex < n.endIndex
            if !fMore && !nMore { return true }
            if !nMore {
                // "sport/#" matches "sport": the filter's next level is a final "#".
                let rest = f[f.index(after: fLevel.endIndex)...]
                return rest.elementsEqual("#".utf8)
            }
            if !fMore { return false }
            f = f[f.index(after: fLevel.endIndex)...]
            n = n[n.index(after: nLevel.endIndex)...]
        }
    }

    /// A filter's levels, split at `/` (by UTF-8 bytes, as `matches` reads them).
    static func levels(_ filter: String) -> [Substring.UTF8View] {
        Substring(filter).utf8.split(separator: slash, omittingEmptySubsequences: false)
    }

    /// Whether some topic name matches both filters (both valid).
    public static func overlaps(_ a: String, _ b: String) -> Bool {
        let x = levels(a), y = levels(b)
        // A filter starting with a wildcard matches no `$` topic; one starting with `$` only those.
        if startsWithWildcard(x) && startsWithDollar(y) || startsWithWildcard(y) && startsWithDollar(x) { return false }
        var i = 0
        while true {
            let xDone = i == x.count, yDone = i == y.count
            if xDone && yDone { return true }
            // "a/#" matches "a": a final "#" also matches the parent level.
            if xDone { return y.count == i + 1 && y[i].elementsEqual([hash]) }
            if yDone { return x.count == i + 1 && x[i].elementsEqual([hash]) }
            if x[i].elementsEqual([hash]) || y[i].elementsEqual([hash]) { return true }
            guard x[i].elementsEqual([plus]) || y[i].elementsEqual([plus]) || x[i].elementsEqual(y[i]) else { return false }
            i += 1
        }
    }

    /// Whether every topic name `filter` matches, `cover` matches too (both valid).
    public static func covers(_ cover: String, _ filter: String) -> Bool {
        let c = levels(cover), f = levels(filter)
        if startsWithWildcard(c) && startsWithDollar(f) { return false }
        var i = 0
        while true {
            if i == c.count { return i == f.count }
            if c[i].elementsEqual([hash]) { return true }
            if i == f.count { return false }
            // A "#" in the filter matches any depth below (and its parent level, past the
            // first): only "#" covers it, or "+/#" at the first level (which has no parent).
            if f[i].elementsEqual([hash]) {
                return i == 0 && c.count == 2 && c[0].elementsEqual([plus]) && c[1].elementsEqual([hash])
            }
            if c[i].elementsEqual([plus]) {
                i += 1
                continue
            }
            guard !f[i].elementsEqual([plus]), c[i].elementsEqual(f[i]) else { return false }
            i += 1
        }
    }

    static func startsWithWildcard(_ levels: [Substring.UTF8View]) -> Bool {
        guard let first = levels.first else { return false }
        return first.elementsEqual([plus]) || first.elementsEqual([hash])
    }

    static func startsWithDollar(_ levels: [Substring.UTF8View]) -> Bool {
        levels.first?.first == UInt8(ascii: "$")
    }

    /// A shared subscription's group and filter (`$share/GROUP/FILTER`); nil for an ordinary filter.
    /// Throws when it starts `$share/` but is not a valid shared subscription.
    public static func shared(_ filter: String) throws(MQTTError) -> (group: String, filter: String)? {
        // By UTF-8 bytes, as filters are read: a "/" or "+" with a combining mark is still one.
        let prefix = "$share/".utf8
        guard filter.utf8.starts(with: prefix) else { return nil }
        let rest = filter.utf8.dropFirst(prefix.count)
        guard let groupEnd = rest.firstIndex(of: slash) else { throw MQTTError(.topicFilterInvalid, "shared subscription \"\(filter)\" without a filter") }
        let group = String(Substring(rest[..<groupEnd]))
        let inner = String(Substring(rest[rest.index(after: groupEnd)...]))
        guard !group.isEmpty, !hasWildcard(group), isValidFilter(inner) else {
            throw MQTTError(.topicFilterInvalid, "shared subscription \"\(filter)\"")
        }
        return (group, inner)
    }
}
