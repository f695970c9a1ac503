import BrookClient
import BrookCore
import BrookProtocol
import Foundation

/// One API call as the HTTP listener hands it over.
struct ConsoleRequest: Sendable {
    var method: String
    /// The path's parts after `/api`, percent-decoded.
    var path: [String]
    var query: [String: String]
    var body: [UInt8]
    /// The session cookie's token, if any.
    var token: String?
}

/// The answer: a status, a JSON body (or none), and headers to add (a cookie).
struct ConsoleResponse: Sendable {
    var status: Int
    var body: [UInt8]
    var headers: [(String, String)] = []
}

extension Console {
    /// Routes one call. Every answer is JSON; an error is `{"error": "..."}` with its status.
    func handle(_ request: ConsoleRequest) async -> ConsoleResponse {
        do {
            return try await route(request)
        } catch let error as ConsoleError {
            return Self.json(["error": error.description], status: error.status)
        } catch let error as KafkaError where error.code != nil {
            return Self.json(["error": error.description], status: Self.status(of: error.code!))
        } catch {
            return Self.json(["error": "\(error)"], status: 502)
        }
    }

    func route(_ request: ConsoleRequest) async throws -> ConsoleResponse {
        let path = request.path
        let method = request.method
        switch (method, path.first) {
        case ("GET", "session"?):
            let user = session(request.token)?.user
            return Self.json(SessionView(authRequired: mechanism != nil, loginWith: mechanism.map { $0 == .oauthBearer ? "token" : "password" },
                                         user: user, readOnly: readOnlyReason != nil,
                                         readOnlyReason: readOnlyReason, node: node, clusterId: clusterID, version: Version.brook))
        case ("POST", "login"?):
            let (user, token) = try await login(try Self.decode(Login.self, request.body))
            return Self.json(["user": user], headers: [("Set-Cookie", "\(Self.cookie)=\(token); Path=/; HttpOnly; SameSite=Strict")])
        case ("POST", "logout"?):
            await logout(request.token)
            return ConsoleResponse(status: 204, body: [], headers: [("Set-Cookie", "\(Self.cookie)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")])
        default:
            break
        }
        let client = try self.client(for: request)
        let writes = method != "GET"
        if writes, let readOnlyReason { throw ConsoleError(403, "the console is read-only: \(readOnlyReason)") }
        switch (method, path.count, path.first) {
        case ("GET", 1, "cluster"?): return Self.json(try await clusterView(client))
        case ("GET", 1, "quorum"?): return Self.json(try await quorumView(client))
        case ("GET", 1, "topics"?): return Self.json(try await topicList(client))
        case ("POST", 1, "topics"?): return Self.json(try await createTopic(client, try Self.decode(NewTopic.self, request.body)), status: 201)
        case ("GET", 2, "topics"?): return Self.json(try await topicView(client, path[1]))
        case ("DELETE", 2, "topics"?):
            try await deleteTopic(client, path[1])
            return ConsoleResponse(status: 204, body: [])
        case ("POST", 3, "topics"?) where path[2] == "partitions":
            try await addPartitions(client, path[1], try Self.decode(PartitionCount.self, request.body).count)
            return ConsoleResponse(status: 204, body: [])
        case ("PUT", 3, "topics"?) where path[2] == "configs":
            try await alterConfigs(client, .topic(path[1]), try Self.decode(ConfigChange.self, request.body))
            return ConsoleResponse(status: 204, body: [])
        case ("GET", 3, "topics"?) where path[2] == "records":
            return Self.json(try await records(client, topic: path[1], query: request.query))
        case ("GET", 1, "groups"?): return Self.json(try await groupList(client))
        case ("GET", 2, "groups"?): return Self.json(try await groupView(client, path[1]))
        case ("DELETE", 2, "groups"?):
            try await deleteGroup(client, path[1])
            return ConsoleResponse(status: 204, body: [])
        case ("POST", 3, "groups"?) where path[2] == "reset":
            return Self.json(try await resetOffsets(client, group: path[1], try Self.decode(Reset.self, request.body)))
        case ("GET", 3, "brokers"?) where path[2] == "configs":
            guard let id = Int32(path[1]) else { throw ConsoleError(400, "a broker id is a number") }
            return Self.json(ConfigsView(configs: try await configs(client, .broker(NodeID(id)))))
        case ("PUT", 3, "brokers"?) where path[2] == "configs":
            guard let id = Int32(path[1]) else { throw ConsoleError(400, "a broker id is a number") }
            try await alterConfigs(client, .broker(NodeID(id)), try Self.decode(ConfigChange.self, request.body))
            return ConsoleResponse(status: 204, body: [])
        case ("GET", 1, "acls"?): return Self.json(try await aclList(client))
        case ("POST", 1, "acls"?):
            try await createAcl(client, try Self.decode(AclView.self, request.body))
            return ConsoleResponse(status: 201, body: Array("{}".utf8))
        case ("DELETE", 1, "acls"?):
            try await deleteAcl(client, try Self.decode(AclView.self, request.body))
            return ConsoleResponse(status: 204, body: [])
        case ("GET", 1, "quotas"?): return Self.json(try await quotaList(client))
        case ("PUT", 1, "quotas"?):
            try await alterQuota(client, try Self.decode(QuotaChange.self, request.body))
            return ConsoleResponse(status: 204, body: [])
        default:
            throw ConsoleError(404, "no such API: \(method) /api/\(path.joined(separator: "/"))")
        }
    }

    /// The client this call acts through: the logged-in user's, or the shared one.
    func client(for request: ConsoleRequest) throws -> ClusterClient {
        if mechanism == nil, let shared { return shared }
        guard let session = session(request.token) else { throw ConsoleError(401, "log in first") }
        return session.client
    }

    // MARK: JSON

    static func json<T: Encodable>(_ value: T, status: Int = 200, headers: [(String, String)] = []) -> ConsoleResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do { return ConsoleResponse(status: status, body: Array(try encoder.encode(value)), headers: headers) } catch {
            return ConsoleResponse(status: 500, body: Array("{\"error\":\"cannot encode the answer\"}".utf8))
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ body: [UInt8]) throws -> T {
        do { return try JSONDecoder().decode(type, from: Data(body)) } catch {
            throw ConsoleError(400, "the request body is not the JSON expected: \(error)")
        }
    }

    /// Kafka's error code as the page's message (nil for none).
    static func failure(_ code: Int16, _ message: String?, _ what: String) -> ConsoleError? {
        guard code != 0 else { return nil }
        let error = ErrorCode(rawValue: code)
        return ConsoleError(status(of: error), "\(what): \(error.name)\(message.map { ": \($0)" } ?? "")")
    }

    /// The HTTP status of a broker's refusal.
    static func status(of error: ErrorCode) -> Int {
        switch error {
        case .topicAuthorizationFailed, .groupAuthorizationFailed, .clusterAuthorizationFailed, .securityDisabled: 403
        case .unknownTopicOrPartition, .groupIDNotFound: 404
        case .topicAlreadyExists, .nonEmptyGroup: 409
        // The cluster did not answer in time (a controller or coordinator moving, a broker down).
        case .requestTimedOut, .notController, .coordinatorNotAvailable, .notCoordinator, .coordinatorLoadInProgress,
             .leaderNotAvailable, .notLeaderOrFollower: 502
        default: 400
        }
    }
}

// MARK: the API's shapes (the console's app.js reads them)

struct SessionView: Encodable {
    var authRequired: Bool
    /// What a login takes: `password` (PLAIN, SCRAM) or `token` (OAUTHBEARER); nil without login.
    var loginWith: String?
    var user: String?
    var readOnly: Bool
    var readOnlyReason: String?
    var node: Int32
    var clusterId: String
    var version: String
}

/// A login: user and password (PLAIN, SCRAM), or a bearer token (OAUTHBEARER).
struct Login: Decodable {
    var user: String?
    var password: String?
    var token: String?
}

struct NewTopic: Decodable {
    var name: String
    var partitions: Int32?
    var replicationFactor: Int16?
    var configs: [String: String]?
}

struct PartitionCount: Decodable {
    var count: Int32
}

struct ConfigChange: Decodable {
    var set: [String: String]?
    var delete: [String]?
}

struct Reset: Decodable {
    var topic: String?
    var to: String
    var value: Int64?
}

struct ConfigView: Encodable {
    var name: String
    var value: String?
    var source: String
    var readOnly: Bool
    var sensitive: Bool
    var isDefault: Bool
}

struct ConfigsView: Encodable {
    var configs: [ConfigView]
}

extension ConsoleRequest {
    /// The call an HTTP request to `/api/...` makes; nil for a path outside the API.
    init?(method: String, uri: String, cookie: String?, body: [UInt8]) {
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let segments = parts[0].split(separator: "/", omittingEmptySubsequences: true).map { String($0).removingPercentEncoding ?? String($0) }
        guard segments.first == "api" else { return nil }
        self.method = method
        path = Array(segments.dropFirst())
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = String(kv[0]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(kv[0])
                let value = kv.count == 2 ? (String(kv[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(kv[1])) : ""
                query[key] = value
            }
        }
        self.query = query
        self.body = body
        token = cookie.flatMap { header in
            header.split(separator: ";").lazy.map { $0.trimmingCharacters(in: .whitespaces) }
                .first { $0.hasPrefix(Console.cookie + "=") }
                .map { String($0.dropFirst(Console.cookie.count + 1)) }
        }
    }
}
