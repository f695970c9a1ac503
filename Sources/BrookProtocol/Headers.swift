import NIOCore

/// The request header (v1, and v2 = v1 + tagged fields for flexible versions). The client id
/// is a classic nullable string in both: Kafka never made it compact.
public struct RequestHeader: Sendable, Equatable {
    public var apiKey: Int16
    public var apiVersion: Int16
    public var correlationID: Int32
    public var clientID: String?

    public init(apiKey: Int16, apiVersion: Int16, correlationID: Int32, clientID: String?) {
        self.apiKey = apiKey
        self.apiVersion = apiVersion
        self.correlationID = correlationID
        self.clientID = clientID
    }

    /// Whether a request of this API and version uses the v2 header (and its response v1),
    /// by the API's flexible versions. ApiVersions is flexible from v3, also for versions newer
    /// than we know, so that a newer client's request still gets its UNSUPPORTED_VERSION answer.
    public static func isFlexible(apiKey: Int16, apiVersion: Int16) -> Bool {
        guard let entry = ApiCatalog.entry(forKey: apiKey), let from = entry.flexibleFrom else { return false }
        return apiVersion >= from
    }

    /// Reads the header; the reader is left at the start of the body.
    public init(from reader: inout WireReader) throws(ProtocolError) {
        apiKey = try reader.readInt16()
        apiVersion = try reader.readInt16()
        correlationID = try reader.readInt32()
        clientID = try reader.readNullableString(compact: false)
        if Self.isFlexible(apiKey: apiKey, apiVersion: apiVersion) {
            for _ in 0..<(try reader.readTaggedFieldCount()) { _ = try reader.readTaggedField() }
        }
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeInt16(apiKey)
        writer.writeInt16(apiVersion)
        writer.writeInt32(correlationID)
        writer.writeNullableString(clientID, compact: false, nullable: true)
        if Self.isFlexible(apiKey: apiKey, apiVersion: apiVersion) { writer.writeTaggedFieldCount(0) }
    }
}

/// The response header: v0 is the correlation id, v1 adds (empty) tagged fields. ApiVersions
/// answers always use v0, so that a client can read the answer whatever version it asked for.
public enum ResponseHeader {
    public static func usesV1(apiKey: Int16, apiVersion: Int16) -> Bool {
        apiKey != ApiVersionsRequest.apiKey && RequestHeader.isFlexible(apiKey: apiKey, apiVersion: apiVersion)
    }

    public static func encode(correlationID: Int32, apiKey: Int16, apiVersion: Int16, to writer: inout WireWriter) {
        writer.writeInt32(correlationID)
        if usesV1(apiKey: apiKey, apiVersion: apiVersion) { writer.writeTaggedFieldCount(0) }
    }

    /// Reads a response header (for clients); returns the correlation id.
    public static func decode(apiKey: Int16, apiVersion: Int16, from reader: inout WireReader) throws(ProtocolError) -> Int32 {
        let correlationID = try reader.readInt32()
        if usesV1(apiKey: apiKey, apiVersion: apiVersion) {
            for _ in 0..<(try reader.readTaggedFieldCount()) { _ = try reader.readTaggedField() }
        }
        return correlationID
    }
}
