import BrookProtocol
import NIOCore

/// Every generated message decoder: requests (what a client sends the broker) and responses
/// (what a broker sends `BrookClient`).
enum RequestFuzzing {
    static let requestTarget = bodyTarget(
        name: "request",
        input: "api key (1 byte), api version (1 byte), then a request body; Produce's records are not parsed here (see batch)",
        check: \.checkRequest)

    static let responseTarget = bodyTarget(
        name: "response", input: "api key (1 byte), api version (1 byte), then a response body", check: \.checkResponse)

    /// A target picking the API and version by its first two bytes, then decoding the rest.
    static func bodyTarget(name: String, input: String,
                           check: KeyPath<Codec, @Sendable (ByteBuffer, Int16) -> Void> & Sendable) -> FuzzTarget {
        FuzzTarget(name: name, input: input) { bytes in
            var input = FuzzInput(bytes)
            let key = Int16(input.byte()), version = Int16(input.byte())
            guard let codec = codecs[key], codec.versions.contains(version) else { return }
            codec[keyPath: check](ByteBuffer(bytes: input.rest()), version)
        }
    }

    /// A request frame as the broker handles it (after the length): the header, then the body
    /// of the API and version the header names, if the catalog has them (Broker.handle).
    static func checkFrame(_ frame: ByteBuffer) {
        var reader = WireReader(frame)
        guard let header = try? RequestHeader(from: &reader) else { return }
        var again = WireWriter()
        header.encode(to: &again)
        var readBack = WireReader(again.buffer)
        precondition((try? RequestHeader(from: &readBack)) == header, "request header \(header) does not round-trip")
        guard let codec = codecs[header.apiKey], codec.versions.contains(header.apiVersion) else { return }
        codec.checkRequest(reader.buffer, header.apiVersion)
    }

    struct Codec: Sendable {
        let versions: ClosedRange<Int16>
        let checkRequest: @Sendable (ByteBuffer, Int16) -> Void
        let checkResponse: @Sendable (ByteBuffer, Int16) -> Void

        init<R: KafkaRequest>(_: R.Type) {
            versions = R.versions
            // The broker allows bytes after a request body (Handler.swift); a client does not
            // after a response.
            checkRequest = { body, version in roundTrip(R.self, body, version: version, trailingBytesAllowed: true) }
            checkResponse = { body, version in roundTrip(R.Response.self, body, version: version, trailingBytesAllowed: false) }
        }
    }

    /// The decoders by API key; `BrookFuzzTests` checks that it covers `ApiCatalog`.
    static let codecs: [Int16: Codec] = Dictionary(uniqueKeysWithValues: requestTypes.map { ($0.apiKey, Codec($0)) })

    static let requestTypes: [any KafkaRequest.Type] = [
        ProduceRequest.self, FetchRequest.self, ListOffsetsRequest.self, MetadataRequest.self,
        OffsetCommitRequest.self, OffsetFetchRequest.self, FindCoordinatorRequest.self, JoinGroupRequest.self,
        HeartbeatRequest.self, LeaveGroupRequest.self, SyncGroupRequest.self, DescribeGroupsRequest.self,
        ListGroupsRequest.self, ApiVersionsRequest.self, CreateTopicsRequest.self, DeleteTopicsRequest.self,
        DeleteRecordsRequest.self, InitProducerIdRequest.self, OffsetForLeaderEpochRequest.self,
        AddPartitionsToTxnRequest.self, AddOffsetsToTxnRequest.self, EndTxnRequest.self, WriteTxnMarkersRequest.self, TxnOffsetCommitRequest.self, ElectLeadersRequest.self, AlterPartitionReassignmentsRequest.self, ListPartitionReassignmentsRequest.self,
        DescribeConfigsRequest.self, AlterConfigsRequest.self, DescribeLogDirsRequest.self,
        CreatePartitionsRequest.self, DeleteGroupsRequest.self, IncrementalAlterConfigsRequest.self,
        OffsetDeleteRequest.self, DescribeClusterRequest.self, DescribeQuorumRequest.self, DescribeProducersRequest.self,
        DescribeTransactionsRequest.self, ListTransactionsRequest.self, ConsumerGroupHeartbeatRequest.self,
        SaslHandshakeRequest.self, SaslAuthenticateRequest.self, DescribeUserScramCredentialsRequest.self,
        AlterUserScramCredentialsRequest.self, CreateAclsRequest.self, DescribeAclsRequest.self, DeleteAclsRequest.self,
        DescribeClientQuotasRequest.self, AlterClientQuotasRequest.self,
        ConsumerGroupDescribeRequest.self, UnregisterBrokerRequest.self, AlterReplicaLogDirsRequest.self,
        DescribeTopicPartitionsRequest.self, UpdateFeaturesRequest.self, ListConfigResourcesRequest.self,
    ]

    /// Decodes `body`; a message that decodes must encode to bytes that decode to the same value.
    static func roundTrip<M: KafkaMessage>(_: M.Type, _ body: ByteBuffer, version: Int16, trailingBytesAllowed: Bool) {
        guard let message = try? M(decoding: body, version: version, trailingBytesAllowed: trailingBytesAllowed) else { return }
        let encoded = message.encoded(version: version)
        let again: M
        do {
            again = try M(decoding: encoded, version: version)
        } catch {
            preconditionFailure("\(M.self) v\(version): what it encodes does not decode: \(error)")
        }
        // A float64 NaN (the quota APIs) is not equal to itself: the same bytes are the same value.
        precondition(again == message || again.encoded(version: version) == encoded,
                     "\(M.self) v\(version): decoding its encoding changes the value")
    }
}

extension FuzzTargets {
    /// The API keys the request and response targets decode.
    public static var requestApiKeys: Set<Int16> { Set(RequestFuzzing.codecs.keys) }
}
