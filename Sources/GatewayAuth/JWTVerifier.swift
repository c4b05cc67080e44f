import AsyncHTTPClient
import Crypto
import Foundation
import GatewayConfig
import GatewayCore
import JWTKit
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Why a bearer token was not accepted; the message goes into `WWW-Authenticate: error_description` and the
/// log, and never contains the token.
public enum TokenRejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// Malformed, bad signature, wrong issuer or audience, expired, not yet valid: 401 `invalid_token`.
    case invalid(String)
    /// The verification keys are not available (the issuer was down at start): 503, retry later.
    case keysUnavailable(String)

    public var description: String {
        switch self {
        case .invalid(let reason): return reason
        case .keysUnavailable(let reason): return reason
        }
    }
}

/// Verifies JWT access tokens as an OAuth 2.1 resource server (2025-11-25/basic/authorization#token-handling;
/// RFC 9068 profile; digest §4.4): the signature with jwt-kit against the issuer's JWKS, the algorithm against
/// an allowlist (never `none`, never an HMAC algorithm: a public JWKS key must not become a shared secret),
/// `iss`, `aud` (must contain the gateway's canonical URI, RFC 8707, MUST item 29), `exp` and `nbf` with
/// leeway; scopes from `scope` or `scp`; the tenant from `tenant_claim`.
///
/// Keys come from `jwks_file` or from `jwks_url` (async-http-client, cached). An unknown `kid` triggers a
/// refresh, at most once per `refreshFloor`, so a key rotation at the issuer is picked up without restarts
/// and a flood of forged kids cannot hammer the issuer.
public actor JWTVerifier {
    private let config: OAuthConfig
    private let refreshFloor: Duration
    private let logger: Logger
    private var keys = JWTKeyCollection()
    private var knownKids: Set<String> = []
    private var loaded = false
    private var lastRefresh: ContinuousClock.Instant?
    private var lastError: String?
    private let clock = ContinuousClock()

    public init(config: OAuthConfig, refreshFloor: Duration = .seconds(10), logger: Logger) {
        self.config = config
        self.refreshFloor = refreshFloor
        self.logger = logger
    }

    public var hasKeys: Bool { loaded }

    /// Loads the key set; on failure the previous keys (if any) stay in use.
    @discardableResult
    public func refresh() async -> Bool {
        lastRefresh = clock.now
        do {
            let json = try await fetchJWKS()
            let collection = JWTKeyCollection()
            try await collection.add(jwksJSON: json)
            keys = collection
            knownKids = Self.kids(in: json)
            loaded = true
            lastError = nil
            logger.info("JWKS loaded", metadata: ["keys": "\(knownKids.count)", "source": "\(config.jwksURL ?? config.jwksFile ?? "")"])
            return true
        } catch {
            lastError = "\(error)"
            logger.error("JWKS could not be loaded", metadata: ["error": "\(error)", "source": "\(config.jwksURL ?? config.jwksFile ?? "")"])
            return false
        }
    }

    private func fetchJWKS() async throws -> String {
        if let file = config.jwksFile {
            return try String(contentsOfFile: file, encoding: .utf8)
        }
        guard let url = config.jwksURL else { throw TokenRejection.keysUnavailable("no jwks_url or jwks_file configured") }
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "accept", value: "application/json")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
        guard response.status == .ok else { throw TokenRejection.keysUnavailable("JWKS endpoint answered HTTP \(response.status.code)") }
        let body = try await response.body.collect(upTo: 1024 * 1024)
        return String(buffer: body)
    }

    static func kids(in json: String) -> Set<String> {
        guard let value = try? JSONParser.parse(json), let list = value["keys"]?.arrayValue else { return [] }
        return Set(list.compactMap { $0["kid"]?.stringValue })
    }

    /// Verifies a token and returns its principal.
    public func verify(_ token: String) async throws(TokenRejection) -> Principal {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Self.base64URLDecode(parts[0]), let header = try? JSONParser.parse(headerBytes) else {
            throw .invalid("the token is not a JWT (three base64url parts)")
        }
        guard let algorithm = header["alg"]?.stringValue else { throw .invalid("the token has no alg") }
        guard config.algorithms.contains(algorithm) else {
            throw .invalid("the token's algorithm \(algorithm) is not accepted (accepted: \(config.algorithms.joined(separator: ", ")))")
        }
        if !loaded {
            if lastRefresh == nil || clock.now - lastRefresh! >= refreshFloor { await refresh() }
            guard loaded else { throw .keysUnavailable("the issuer's keys are not loaded yet (\(lastError ?? "loading")); retry shortly") }
        }
        let kid = header["kid"]?.stringValue
        if let kid, !knownKids.contains(kid) {
            if lastRefresh == nil || clock.now - lastRefresh! >= refreshFloor { await refresh() }
            guard knownKids.contains(kid) else { throw .invalid("the token's key id is not in the issuer's key set") }
        }
        do {
            _ = try await keys.verify(token, as: SignatureOnly.self)
        } catch {
            throw .invalid("the token's signature does not verify")
        }
        guard let payloadBytes = Self.base64URLDecode(parts[1]), let claims = try? JSONParser.parse(payloadBytes), case .object(let object) = claims else {
            throw .invalid("the token's claims are not a JSON object")
        }
        return try checkClaims(object, now: Date().timeIntervalSince1970)
    }

    /// The registered-claim checks (RFC 7519 §4.1), with `leeway` for clock skew.
    func checkClaims(_ claims: JSONObject, now: Double) throws(TokenRejection) -> Principal {
        let leeway = Double(config.leeway.components.seconds)
        guard claims["iss"]?.stringValue == config.issuer else { throw .invalid("the token was issued by another issuer") }
        let audiences: [String]
        switch claims["aud"] {
        case .string(let single)?: audiences = [single]
        case .array(let list)?: audiences = list.compactMap(\.stringValue)
        default: audiences = []
        }
        guard audiences.contains(where: { Self.sameResource($0, config.audience) }) else {
            throw .invalid("the token was not issued for this resource (aud must include \(config.audience))")
        }
        guard let exp = claims["exp"]?.doubleValue else { throw .invalid("the token has no exp") }
        guard now <= exp + leeway else { throw .invalid("the token has expired") }
        if let nbf = claims["nbf"]?.doubleValue, now + leeway < nbf { throw .invalid("the token is not valid yet (nbf)") }
        guard let subject = claims["sub"]?.stringValue, !subject.isEmpty else { throw .invalid("the token has no sub") }
        var scopes = Set<String>()
        if let scope = claims["scope"]?.stringValue { scopes.formUnion(scope.split(separator: " ").map(String.init)) }
        switch claims["scp"] {
        case .string(let text)?: scopes.formUnion(text.split(separator: " ").map(String.init))
        case .array(let list)?: scopes.formUnion(list.compactMap(\.stringValue))
        default: break
        }
        let tenant = config.tenantClaim.flatMap { claims[$0]?.stringValue }
        return Principal(id: "\(config.issuer)#\(subject)", subject: subject, issuer: config.issuer, tenant: tenant, scopes: scopes, expiresAt: exp)
    }

    /// Canonical URIs compare with case-insensitive scheme and host and without a trailing slash (digest §4.4).
    static func sameResource(_ a: String, _ b: String) -> Bool {
        func canonical(_ text: String) -> String {
            var value = text
            while value.hasSuffix("/") { value.removeLast() }
            guard let schemeEnd = value.range(of: "://") else { return value }
            let rest = value[schemeEnd.upperBound...]
            let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
            return value[..<schemeEnd.upperBound].lowercased() + rest[..<authorityEnd].lowercased() + rest[authorityEnd...]
        }
        return canonical(a) == canonical(b)
    }

    static func base64URLDecode(_ text: Substring) -> [UInt8]? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64).map(Array.init)
    }

    /// jwt-kit checks the signature; the claims are checked above, with the configured leeway.
    struct SignatureOnly: JWTPayload {
        init(from decoder: any Decoder) throws {}
        func encode(to encoder: any Encoder) throws {}
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }
}
