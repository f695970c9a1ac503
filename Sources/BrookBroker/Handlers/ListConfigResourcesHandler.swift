import BrookCluster
import BrookCore
import BrookProtocol

/// ListConfigResources (KIP-1142; kafka-python's `list_config_resources`, Java's
/// `Admin.listConfigResources`): the config resources of the types asked for, or of every type
/// Brook serves configs for when none is named: topics (every topic), brokers (every registered
/// broker's id), groups (those with configs of their own) and client metrics subscriptions
/// (Brook has none). A type Brook has no configs for (BROKER_LOGGER, or an unknown one) makes
/// the whole request UNSUPPORTED_VERSION, as Kafka answers a type it does not list. Version 0
/// (KIP-714's ListClientMetricsResources) lists client metrics subscriptions only: none. Needs
/// DESCRIBE_CONFIGS on the cluster.
struct ListConfigResourcesHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...1

    typealias Response = ListConfigResourcesResponse

    /// The types an empty list means, in the order they are answered.
    static let served: [Int8] = [ConfigResource.topic, ConfigResource.broker, ConfigResource.group, ConfigResource.clientMetrics]

    func handle(_ request: ListConfigResourcesRequest, version: Int16, context: RequestContext) -> Reply<Response> {
        let broker = context.broker
        // On a quorum, from the image (empty until it has loaded); without one, this node.
        let image = broker.cluster.isCluster ? broker.cluster.current?.image ?? MetadataImage() : nil
        return .now(Self.answer(version == 0 ? [ConfigResource.clientMetrics] : request.resourceTypes, names: { type in
            switch type {
            case ConfigResource.topic:
                return image.map { $0.topics.values.map(\.name) } ?? broker.topics.allTopics().map(\.name)
            case ConfigResource.broker:
                return (image.map { Array($0.brokers.keys) } ?? [broker.config.nodeID]).map { "\($0.value)" }
            case ConfigResource.group:
                return image.map { $0.configs.filter { $0.key.kind == .group && !$0.value.isEmpty }.map(\.key.name) } ?? []
            default:
                return []
            }
        }))
    }

    func refused(_ request: ListConfigResourcesRequest, version: Int16, code: ErrorCode, message: String) -> Response? {
        Response(throttleTimeMs: 0, errorCode: code.rawValue)
    }

    /// The answer for `types` (empty: every served type), each type's names sorted.
    static func answer(_ types: [Int8], names: (Int8) -> [String]) -> Response {
        guard types.allSatisfy(served.contains) else { return Response(throttleTimeMs: 0, errorCode: ErrorCode.unsupportedVersion.rawValue) }
        let wanted = types.isEmpty ? served : served.filter(types.contains)
        return Response(throttleTimeMs: 0, errorCode: 0, configResources: wanted.flatMap { type in
            names(type).sorted().map { Response.ConfigResource(resourceName: $0, resourceType: type) }
        })
    }
}
