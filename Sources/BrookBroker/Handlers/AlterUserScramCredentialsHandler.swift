import BrookCluster
import BrookProtocol
import BrookSecurity
import NIOCore

/// AlterUserScramCredentials: removes and sets users' SCRAM credentials. The broker checks each
/// change (a known mechanism: UNSUPPORTED_SASL_MECHANISM; a name, 4096...16384 iterations, a
/// salt and a salted password of the hash's size: UNACCEPTABLE_CREDENTIAL; a user and mechanism
/// named once: DUPLICATE_RESOURCE), derives the stored and server keys from the salted password
/// (which goes no further), and forwards the users whose changes all passed to the controller,
/// which refuses removals of credentials that do not exist (RESOURCE_NOT_FOUND) and writes each
/// user's changes as one entry. One result per user.
struct AlterUserScramCredentialsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 0...0
    typealias Result = AlterUserScramCredentialsResponse.AlterUserScramCredentialsResult

    /// Changes one request may carry.
    static let changesMax = 10_000

    func handle(_ request: AlterUserScramCredentialsRequest, version: Int16, context: RequestContext) -> Reply<AlterUserScramCredentialsResponse> {
        var users: [String] = []
        for name in request.deletions.map(\.name) + request.upsertions.map(\.name) where !users.contains(name) { users.append(name) }
        func everyone(_ code: ErrorCode, _ message: String) -> Reply<AlterUserScramCredentialsResponse> {
            .now(AlterUserScramCredentialsResponse(results: users.map { Result(user: $0, errorCode: code.rawValue, errorMessage: message) }))
        }
        let broker = context.broker
        guard broker.cluster.isCluster, broker.cluster.current != nil else {
            return everyone(.unsupportedVersion, "This node runs without a metadata quorum: it keeps no SCRAM credentials.")
        }
        guard request.deletions.count + request.upsertions.count <= Self.changesMax else {
            return everyone(.invalidRequest, "At most \(Self.changesMax) credential changes in one request.")
        }
        var refused: [String: (ErrorCode, String)] = [:]
        var seen: Set<String> = []
        func refuse(_ user: String, _ code: ErrorCode, _ message: String) { if refused[user] == nil { refused[user] = (code, message) } }
        func check(_ name: String, _ code: Int8) -> ScramMechanism? {
            if name.isEmpty { refuse(name, .unacceptableCredential, "Username must not be empty.") }
            if name.utf8.count > ControllerAdminRequest.stringBytesMax {
                refuse(name, .unacceptableCredential, "A user name is at most \(ControllerAdminRequest.stringBytesMax) bytes.")
            }
            guard let mechanism = ScramMechanism(rawValue: code) else {
                refuse(name, .unsupportedSaslMechanism, "Unknown SCRAM mechanism \(code).")
                return nil
            }
            if !seen.insert("\(code):\(name)").inserted {
                refuse(name, .duplicateResource, "A user credential cannot be altered twice in the same request.")
            }
            return mechanism
        }
        var removals: [RemoveUserScramCredentialRecord] = []
        for deletion in request.deletions {
            guard check(deletion.name, deletion.mechanism) != nil else { continue }
            removals.append(RemoveUserScramCredentialRecord(name: deletion.name, mechanism: deletion.mechanism))
        }
        var upsertions: [UserScramCredentialRecord] = []
        for upsertion in request.upsertions {
            guard let mechanism = check(upsertion.name, upsertion.mechanism) else { continue }
            let salt = Array(upsertion.salt.readableBytesView)
            let salted = Array(upsertion.saltedPassword.readableBytesView)
            if upsertion.iterations < ScramMechanism.iterationsMin {
                refuse(upsertion.name, .unacceptableCredential, "Too few iterations.")
            } else if upsertion.iterations > ScramMechanism.iterationsMax {
                refuse(upsertion.name, .unacceptableCredential, "Too many iterations.")
            } else if salt.isEmpty || salt.count > 1024 {
                refuse(upsertion.name, .unacceptableCredential, "The salt must hold 1 to 1024 bytes.")
            } else if salted.count != mechanism.hashBytes {
                refuse(upsertion.name, .unacceptableCredential, "The salted password must hold \(mechanism.hashBytes) bytes for \(mechanism.name).")
            }
            guard refused[upsertion.name] == nil else { continue }
            guard let digests = context.broker.scramDigests else {
                refuse(upsertion.name, .unsupportedSaslMechanism, "This broker has no SCRAM digests.")
                continue
            }
            let credential = Scram(mechanism, digests: digests).credential(saltedPassword: salted, salt: salt, iterations: upsertion.iterations)
            upsertions.append(UserScramCredentialRecord(name: upsertion.name, mechanism: mechanism.rawValue, salt: ByteBuffer(bytes: credential.salt),
                                                        storedKey: ByteBuffer(bytes: credential.storedKey),
                                                        serverKey: ByteBuffer(bytes: credential.serverKey), iterations: credential.iterations))
        }
        removals.removeAll { refused[$0.name] != nil }
        upsertions.removeAll { refused[$0.name] != nil }
        let refusedHere = refused
        let named = users
        @Sendable func answer(_ answers: [String: (ErrorCode, String?)]) -> AlterUserScramCredentialsResponse {
            AlterUserScramCredentialsResponse(results: named.map { user in
                if let (code, message) = refusedHere[user] { return Result(user: user, errorCode: code.rawValue, errorMessage: message) }
                let (code, message) = answers[user] ?? (.unknownServerError, "The controller gave no answer.")
                return Result(user: user, errorCode: code.rawValue, errorMessage: code == .none ? nil : message)
            })
        }
        guard !removals.isEmpty || !upsertions.isEmpty else { return .now(answer([:])) }
        let forwarded = Set(removals.map(\.name) + upsertions.map(\.name))
        return .later(broker.cluster.forward(.alterScramCredentials(removals: removals, upsertions: upsertions), on: context.eventLoop).map { result in
            switch result {
            case .success(let answers):
                return answer(Dictionary(answers.map { ($0.name, ($0.error, $0.message)) }, uniquingKeysWith: { first, _ in first }))
            case .failure(let error):
                return answer(Dictionary(forwarded.map { ($0, (ErrorCode.requestTimedOut, "The controller did not answer: \(error)")) }, uniquingKeysWith: { first, _ in first }))
            }
        })
    }

    func refused(_ request: AlterUserScramCredentialsRequest, version: Int16, code: ErrorCode, message: String) -> AlterUserScramCredentialsResponse? {
        var users: [String] = []
        for name in request.deletions.map(\.name) + request.upsertions.map(\.name) where !users.contains(name) { users.append(name) }
        return AlterUserScramCredentialsResponse(results: users.map { Result(user: $0, errorCode: code.rawValue, errorMessage: message) })
    }
}
