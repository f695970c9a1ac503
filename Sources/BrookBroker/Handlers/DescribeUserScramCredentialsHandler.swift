import BrookProtocol

/// DescribeUserScramCredentials: the mechanisms and iteration counts of users' SCRAM
/// credentials, from the metadata image (never a salt or a key). No users named (null or
/// empty): every user that has one. A user named twice is DUPLICATE_RESOURCE, a user without
/// credentials RESOURCE_NOT_FOUND. Without a metadata quorum there are no credentials.
struct DescribeUserScramCredentialsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...0
    typealias Result = DescribeUserScramCredentialsResponse.DescribeUserScramCredentialsResult

    func handle(_ request: DescribeUserScramCredentialsRequest, version: Int16, context: RequestContext) -> Reply<DescribeUserScramCredentialsResponse> {
        let broker = context.broker
        guard broker.cluster.isCluster, let image = broker.cluster.current?.image else {
            return .now(DescribeUserScramCredentialsResponse(errorCode: ErrorCode.unsupportedVersion.rawValue,
                                                             errorMessage: "This node runs without a metadata quorum: it keeps no SCRAM credentials."))
        }
        func describe(_ user: String) -> Result {
            guard let credentials = image.scramCredentials[user] else {
                return Result(user: user, errorCode: ErrorCode.resourceNotFound.rawValue,
                              errorMessage: "Attempt to describe a user credential that does not exist: \(user)")
            }
            return Result(user: user, credentialInfos: credentials.sorted { $0.key < $1.key }.map { .init(mechanism: $0.key, iterations: $0.value.iterations) })
        }
        let named = request.users?.map(\.name) ?? []
        guard !named.isEmpty else {
            return .now(DescribeUserScramCredentialsResponse(results: image.scramCredentials.keys.sorted().map(describe)))
        }
        var counts: [String: Int] = [:]
        for name in named { counts[name, default: 0] += 1 }
        var results: [Result] = []
        var answered: Set<String> = []
        for name in named where answered.insert(name).inserted {
            if counts[name, default: 0] > 1 {
                results.append(Result(user: name, errorCode: ErrorCode.duplicateResource.rawValue,
                                      errorMessage: "Cannot describe SCRAM credentials for the same user twice in a single request: \(name)"))
            } else {
                results.append(describe(name))
            }
        }
        return .now(DescribeUserScramCredentialsResponse(results: results))
    }

    func refused(_ request: DescribeUserScramCredentialsRequest, version: Int16, code: ErrorCode, message: String) -> DescribeUserScramCredentialsResponse? {
        DescribeUserScramCredentialsResponse(errorCode: code.rawValue)
    }
}
