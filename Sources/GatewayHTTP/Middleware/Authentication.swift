import GatewayAuth
import GatewayConfig
import GatewayCore
import NIOCore
import NIOHTTP1

/// The `WWW-Authenticate` challenges of an OAuth 2.1 resource server (RFC 6750 §3; RFC 9728 §5.1;
/// 2025-11-25/basic/authorization, MUST items 28 and 30): every 401 and 403 names the Protected Resource
/// Metadata, and says which scopes are needed.
public struct AuthChallenges: Sendable {
    public let mode: AuthMode
    /// Where RFC 9728 metadata is served, absolute; nil when OAuth is off.
    public let resourceMetadataURL: String?
    public let requiredScopes: [String]

    public init(config: AuthConfig, endpoint: String) {
        self.mode = config.mode
        self.requiredScopes = config.oauth?.requiredScopes ?? []
        if config.mode == .oauth || config.mode == .oauthOrAPIKey, let resource = config.resourceMetadata?.resource {
            resourceMetadataURL = ProtectedResourceMetadata.metadataURL(forResource: resource)
        } else {
            resourceMetadataURL = nil
        }
    }

    /// `Bearer realm="mcp-gateway", resource_metadata="…", scope="…"[, error="invalid_token", error_description="…"]`.
    func bearer(error: String? = nil, description: String? = nil, scopes: [String]? = nil) -> String {
        var parameters = [#"realm="mcp-gateway""#]
        if let resourceMetadataURL { parameters.append("resource_metadata=\"\(Self.quoted(resourceMetadataURL))\"") }
        let scopeList = scopes ?? requiredScopes
        if !scopeList.isEmpty { parameters.append("scope=\"\(Self.quoted(scopeList.joined(separator: " ")))\"") }
        if let error { parameters.append("error=\"\(error)\"") }
        if let description { parameters.append("error_description=\"\(Self.quoted(description))\"") }
        return "Bearer " + parameters.joined(separator: ", ")
    }

    /// 401: no credential (no `error`), or a refused one (`invalid_token` with the reason).
    func unauthorized(reason: String?) -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add(name: "www-authenticate", value: bearer(error: reason == nil ? nil : "invalid_token", description: reason))
        let message = reason.map { "Unauthorized: \($0)" } ?? "Unauthorized: this gateway needs a credential (Authorization: Bearer <token>\(mode == .apiKey || mode == .oauthOrAPIKey ? " or X-API-Key" : ""))"
        return .json(.unauthorized, JSONRPCEncoder.error(id: nil, JSONRPCError(code: JSONRPCErrorCode.invalidRequest, message: message)), headers: headers)
    }

    func insufficientScopeHeaders(_ scopes: [String]) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "www-authenticate", value: bearer(error: "insufficient_scope", description: "this request needs the scope(s) \(scopes.joined(separator: " "))", scopes: scopes))
        return headers
    }

    func insufficientScope(_ scopes: [String]) -> HTTPResponse {
        let error = JSONRPCError(code: JSONRPCErrorCode.forbidden, message: "Forbidden: this gateway needs the scope(s) \(scopes.joined(separator: " ")); ask the authorization server for a token that includes them", data: ["scopes": .array(scopes.map { .string($0) })])
        return .json(.forbidden, JSONRPCEncoder.error(id: nil, error), headers: insufficientScopeHeaders(scopes))
    }

    /// RFC 7230 quoted-string: backslash-escape quotes and backslashes.
    static func quoted(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }
}

/// Authenticates every request to the MCP endpoint (sessions are not authentication: MUST item 33), then
/// checks `auth.oauth.required_scopes`. A credential seen before is answered from a cache without suspending;
/// a new token is verified off the event loop and the chain resumes when it is done.
public struct BearerAuthentication: HTTPMiddleware {
    let authenticator: Authenticator
    let challenges: AuthChallenges

    public init(authenticator: Authenticator, challenges: AuthChallenges) {
        self.authenticator = authenticator
        self.challenges = challenges
    }

    public func handle(_ request: HTTPRequestContext, eventLoop: any EventLoop) -> MiddlewareOutcome {
        let credentials = Authenticator.Credentials(
            authorization: request.headers.first(name: "authorization"),
            apiKey: request.headers.first(name: "x-api-key")
        )
        if let outcome = authenticator.authenticateImmediately(credentials) {
            return decide(outcome, request)
        }
        let authenticator = self.authenticator
        let future = eventLoop.makeFutureWithTask { await authenticator.authenticate(credentials) }
        return .suspend(future.map { self.decide($0, request) })
    }

    func decide(_ outcome: AuthOutcome, _ request: HTTPRequestContext) -> MiddlewareOutcome {
        switch outcome {
        case .authenticated(let principal):
            let missing = challenges.requiredScopes.filter { !principal.scopes.contains($0) }
            if !missing.isEmpty, principal.issuer != nil { return .respond(challenges.insufficientScope(missing)) }
            var refined = request
            refined.principal = principal
            return .next(refined)
        case .missing:
            return .respond(challenges.unauthorized(reason: nil))
        case .rejected(let reason):
            return .respond(challenges.unauthorized(reason: reason))
        case .unavailable(let reason):
            var headers = HTTPHeaders()
            headers.add(name: "retry-after", value: "5")
            let error = JSONRPCError(code: JSONRPCErrorCode.internalError, message: "Service unavailable: \(reason)")
            return .respond(.json(.serviceUnavailable, JSONRPCEncoder.error(id: nil, error), headers: headers))
        }
    }
}
