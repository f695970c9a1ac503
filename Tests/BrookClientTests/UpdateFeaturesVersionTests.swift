@testable import BrookClient
import BrookCore
import BrookProtocol
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// A broker with UpdateFeatures version 0 only (Kafka 2.7-3.2): it answers ApiVersions, Metadata
/// (no controller: the admin client asks it) and UpdateFeatures (granted), and counts the
/// UpdateFeatures requests it got.
final class FeaturesV0Broker: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let updates = Mutex(0)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        guard let apiKey = frame.readInteger(as: Int16.self), let version = frame.readInteger(as: Int16.self),
              let correlation = frame.readInteger(as: Int32.self) else { return }
        let body: ByteBuffer
        switch apiKey {
        case ApiVersionsRequest.apiKey:
            body = ApiVersionsResponse(apiKeys: [
                .init(apiKey: ApiVersionsRequest.apiKey, minVersion: 0, maxVersion: 3),
                .init(apiKey: MetadataRequest.apiKey, minVersion: 0, maxVersion: 1),
                .init(apiKey: UpdateFeaturesRequest.apiKey, minVersion: 0, maxVersion: 0),
            ]).encoded(version: version)
        case MetadataRequest.apiKey:
            body = MetadataResponse(brokers: [], controllerId: NodeID(-1)).encoded(version: version)
        case UpdateFeaturesRequest.apiKey:
            updates.withLock { $0 += 1 }
            body = UpdateFeaturesResponse(results: [.init(feature: "group.version")]).encoded(version: version)
        default:
            return
        }
        // UpdateFeatures is flexible from version 0: its answer's header has tagged fields.
        ScriptedBroker.answer(context, correlation: correlation, flexibleHeader: apiKey == UpdateFeaturesRequest.apiKey, body: body)
    }

    /// Listens on a free loopback port (every connection served by this broker); the channel
    /// is closed by the caller.
    func start() async throws -> any Channel { try await ScriptedBroker.listen { self } }
}

@Suite struct UpdateFeaturesVersionTests {
    /// UpdateFeatures version 0 has neither validate-only nor the upgrade types: a dry run or
    /// an unsafe downgrade is refused before it is sent (sent, the first would be made and the
    /// second made safe); a plain update goes at version 0.
    @Test func aDryRunOrAnUnsafeDowngradeIsNotSentAtVersionZero() async throws {
        let broker = FeaturesV0Broker()
        let server = try await broker.start()
        let port = try #require(server.localAddress?.port)
        let admin = KafkaAdmin(try AdminConfig(properties: ["bootstrap.servers": "127.0.0.1:\(port)", "default.api.timeout.ms": "10000"]))
        for (updates, dryRun) in [([FeatureUpdate(feature: "group.version", level: 1)], true),
                                  ([FeatureUpdate(feature: "group.version", level: 0, type: .unsafeDowngrade)], false)] {
            do {
                try await admin.updateFeatures(updates, validateOnly: dryRun)
                Issue.record("sent at version 0: \(updates), dry run \(dryRun)")
            } catch let error as KafkaError {
                #expect(error.code == .unsupportedVersion, "\(error)")
            }
        }
        #expect(broker.updates.withLock { $0 } == 0)
        try await admin.updateFeatures([FeatureUpdate(feature: "group.version", level: 1)])
        try await admin.updateFeatures([FeatureUpdate(feature: "group.version", level: 0, type: .safeDowngrade)])
        #expect(broker.updates.withLock { $0 } == 2)
        await admin.close()
        try await server.close()
    }
}
