import Crypto
import Foundation
import GatewayConfig
import GatewayCore
import Logging
import NIOConcurrencyHelpers

/// The result of authenticating one HTTP request.
public enum AuthOutcome: Sendable {
    case authenticated(Principal)
    /// No credential was sent: 401 with the challenge (no `error=`).
    case missing
    /// A credential was sent and refused: 401 `invalid_token`.
    case rejected(String)
    /// The gateway cannot verify tokens right now (keys not loaded): 503.
    case unavailable(String)
}

/// `auth.mode` (issue "security" §1): bearer JWTs, API keys, or either. Tokens are read from the
/// `Authorization` header only (never the query string, 2025-11-25/basic/authorization#token-requirements);
/// API keys from `Authorization: Bearer` or `X-API-Key`. A verified credential is cached by its SHA-256
/// until it expires (bounded), so a client's later requests are answered without a task or an await.
public final class Authenticator: Sendable {
    public let mode: AuthMode
    private let apiKeys: APIKeyVerifier
    private let jwt: JWTVerifier?
    private let introspector: TokenIntrospector?
    private let cache = NIOLockedValueBox(CredentialCache())
    private let logger: Logger

    public init(config: AuthConfig, logger: Logger, jwksRefreshFloor: Duration = .seconds(10)) {
        self.mode = config.mode
        self.apiKeys = APIKeyVerifier(keys: config.apiKeys)
        self.jwt = config.oauth.flatMap { $0.jwksURL != nil || $0.jwksFile != nil ? JWTVerifier(config: $0, refreshFloor: jwksRefreshFloor, logger: logger) : nil }
        self.introspector = config.oauth.flatMap { oauth in oauth.introspection.map { TokenIntrospector(config: $0, oauth: oauth) } }
        self.logger = logger
    }

    /// Loads the issuer's keys (at start; a failure is logged and retried on demand, the gateway still starts).
    public func start() async {
        if let jwt { await jwt.refresh() }
    }

    /// The credential in the request's headers: (`Authorization` value, `X-API-Key` value).
    public struct Credentials: Sendable {
        public var authorization: String?
        public var apiKey: String?
        public init(authorization: String?, apiKey: String?) {
            self.authorization = authorization
            self.apiKey = apiKey
        }

        var bearer: String? {
            guard let authorization else { return nil }
            let parts = authorization.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
            let token = parts[1].trimmingCharacters(in: .whitespaces)
            return token.isEmpty ? nil : token
        }
    }

    /// Answers from the cache (or for API keys, directly) without suspending; nil when the slow path is needed.
    public func authenticateImmediately(_ credentials: Credentials) -> AuthOutcome? {
        guard mode != .none else { return .authenticated(.anonymous) }
        if let key = credentials.apiKey {
            guard mode == .apiKey || mode == .oauthOrAPIKey else { return .rejected("API keys are not accepted here (auth.mode is \(mode.rawValue))") }
            return apiKeys.principal(for: key).map(AuthOutcome.authenticated) ?? .rejected("unknown API key")
        }
        guard let token = credentials.bearer else {
            return credentials.authorization == nil ? .missing : .rejected("the Authorization header must be \"Bearer <token>\"")
        }
        if mode == .apiKey {
            return apiKeys.principal(for: token).map(AuthOutcome.authenticated) ?? .rejected("unknown API key")
        }
        if mode == .oauthOrAPIKey, let principal = apiKeys.principal(for: token) { return .authenticated(principal) }
        let digest = Self.digest(token)
        let now = Date().timeIntervalSince1970
        if let principal = cache.withLockedValue({ $0.lookup(digest, now: now) }) { return .authenticated(principal) }
        return nil
    }

    /// The slow path: verifies a bearer token (signature, claims) and caches the principal.
    public func authenticate(_ credentials: Credentials) async -> AuthOutcome {
        if let immediate = authenticateImmediately(credentials) { return immediate }
        guard let token = credentials.bearer, jwt != nil || introspector != nil else { return .rejected("bearer tokens are not accepted here") }
        do {
            let principal = try await verify(token)
            let digest = Self.digest(token)
            cache.withLockedValue { $0.insert(digest, principal) }
            return .authenticated(principal)
        } catch {
            switch error {
            case .invalid(let reason):
                logger.info("bearer token refused", metadata: ["error": "\(reason)"])
                return .rejected(reason)
            case .keysUnavailable(let reason):
                return .unavailable(reason)
            }
        }
    }

    /// A JWT (three dot-separated parts) is verified locally when keys are configured; anything else, or any
    /// token when only introspection is configured, goes to the introspection endpoint.
    private func verify(_ token: String) async throws(TokenRejection) -> Principal {
        let looksLikeJWT = token.split(separator: ".", omittingEmptySubsequences: false).count == 3
        if let jwt, looksLikeJWT || introspector == nil { return try await jwt.verify(token) }
        guard let introspector else { throw .invalid("the token is not a JWT") }
        return try await introspector.introspect(token)
    }

    static func digest(_ token: String) -> [UInt8] { Array(SHA256.hash(data: Array(token.utf8))) }
}

/// Verified tokens by digest, until their `exp`; bounded, oldest entries dropped first.
struct CredentialCache {
    private var entries: [[UInt8]: Principal] = [:]
    private var order: [[UInt8]] = []
    let capacity = 10_000

    mutating func lookup(_ digest: [UInt8], now: Double) -> Principal? {
        guard let principal = entries[digest] else { return nil }
        if let expiry = principal.expiresAt, now > expiry {
            entries[digest] = nil
            return nil
        }
        return principal
    }

    mutating func insert(_ digest: [UInt8], _ principal: Principal) {
        if entries[digest] == nil { order.append(digest) }
        entries[digest] = principal
        if order.count > capacity {
            let drop = order.count - capacity
            for old in order.prefix(drop) { entries[old] = nil }
            order.removeFirst(drop)
        }
    }
}
