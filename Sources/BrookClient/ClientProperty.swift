/// One setting given as the Java clients take them (`name=value` text), read as what it must be;
/// a value out of its range or of the wrong kind is an error that names the setting.
struct ClientProperty {
    let name: String
    let value: String

    func number(_ range: ClosedRange<Int64>) throws -> Int64 {
        guard let n = Int64(value.trimmed), range.contains(n) else {
            throw ClientError("\(name)=\(value): expected a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }

    func flag() throws -> Bool {
        guard let flag = Bool(value.trimmed.lowercased()) else { throw ClientError("\(name)=\(value): expected true or false") }
        return flag
    }

    /// Settings left to whoever opens the connections (TLS, SASL).
    static func isSecurity(_ name: String) -> Bool {
        name == "security.protocol" || name.hasPrefix("sasl.") || name.hasPrefix("ssl.")
    }

    /// Hands each setting but `bootstrap.servers` and the security ones to `take`, in name
    /// order; one `take` does not know (returns false) is an error naming it.
    static func each(_ properties: [String: String], of kind: String, _ take: (ClientProperty) throws -> Bool) throws {
        for (name, value) in properties.sorted(by: { $0.key < $1.key }) where name != "bootstrap.servers" && !isSecurity(name) {
            guard try take(ClientProperty(name: name, value: value)) else { throw ClientError("unknown \(kind) setting \(name)") }
        }
    }

    /// `bootstrap.servers`, required by every client.
    static func bootstrapServers(_ properties: [String: String]) throws -> [String] {
        guard let servers = properties["bootstrap.servers"]?.split(separator: ",").map({ String($0).trimmed }).filter({ !$0.isEmpty }),
              !servers.isEmpty
        else { throw ClientError("bootstrap.servers is required") }
        return servers
    }
}
