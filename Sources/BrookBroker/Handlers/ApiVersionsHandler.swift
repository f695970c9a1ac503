import BrookProtocol

/// ApiVersions: the APIs this broker serves and their versions, read off the handler table.
struct ApiVersionsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...4

    func handle(_ request: ApiVersionsRequest, version: Int16, context: RequestContext) -> Reply<ApiVersionsResponse> {
        .now(Self.answer(context.broker.handlers, error: .none))
    }

    static func answer(_ table: HandlerTable, error: ErrorCode) -> ApiVersionsResponse {
        ApiVersionsResponse(errorCode: error.rawValue, apiKeys: table.sorted.map {
            ApiVersionsResponse.ApiVersion(apiKey: $0.apiKey, minVersion: $0.advertised.lowerBound, maxVersion: $0.advertised.upperBound)
        }, throttleTimeMs: 0)
    }
}
