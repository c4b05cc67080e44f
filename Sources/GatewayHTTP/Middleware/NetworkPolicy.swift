import GatewayConfig
import GatewayCore
import NIOCore
import NIOHTTP1

/// CORS for browser clients (WHATWG Fetch, "CORS protocol"): which origins may read responses, and the
/// headers of a preflight answer. Origins are allowed exactly as `OriginGuard` allows them (the list in
/// `server.allowed_origins`; loopback origins when it is empty), so a browser app that passes the
/// DNS-rebinding check can also read what it gets back.
public struct CORSPolicy: Sendable {
    let origins: OriginGuard

    /// Request headers an MCP client sends (2025-11-25/basic/transports): the preflight must name each one
    /// or the browser refuses to send the actual request.
    static let allowedRequestHeaders = "content-type, accept, authorization, mcp-session-id, mcp-protocol-version, last-event-id"
    /// Response headers a script may read; without `Mcp-Session-Id` here a browser client could not continue
    /// its session (Fetch, "CORS-safelisted response-header name" covers none of these).
    static let exposedResponseHeaders = "Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate"
    /// How long a browser may cache a preflight answer (Fetch caps it, Chromium at 2 hours).
    static let preflightMaxAgeSeconds = 7200

    public init(allowedOrigins: [String]) {
        self.origins = OriginGuard(allowedOrigins: allowedOrigins, listenIsLoopback: false, publicURL: nil)
    }

    public func isAllowed(origin: String) -> Bool { origins.isAllowed(origin: origin) }

    /// Headers for an actual response to `origin`; empty when the origin is absent or not allowed (then the
    /// browser withholds the response from the script, which is the point).
    public func responseHeaders(origin: String?) -> [(String, String)] {
        guard let origin, isAllowed(origin: origin) else { return [] }
        return [
            ("access-control-allow-origin", origin),
            ("vary", "Origin"),
            ("access-control-expose-headers", Self.exposedResponseHeaders),
        ]
    }

    /// Adds `responseHeaders(origin:)` unless the responder set its own policy (`publicReadHeaders`).
    func decorate(_ headers: inout HTTPHeaders, origin: String?) {
        guard !headers.contains(name: "access-control-allow-origin") else { return }
        for (name, value) in responseHeaders(origin: origin) { headers.add(name: name, value: value) }
    }

    /// The 204 answer to a preflight from an allowed origin for the MCP endpoint.
    func preflightResponse(origin: String) -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add(name: "access-control-allow-origin", value: origin)
        headers.add(name: "vary", value: "Origin")
        headers.add(name: "access-control-allow-methods", value: "GET, POST, DELETE")
        headers.add(name: "access-control-allow-headers", value: Self.allowedRequestHeaders)
        headers.add(name: "access-control-max-age", value: String(Self.preflightMaxAgeSeconds))
        return HTTPResponse(status: .noContent, headers: headers)
    }

    /// For public documents any origin may read, like the OAuth metadata under `/.well-known/` (RFC 9728 §3
    /// and RFC 8414 §3 expect browser-based clients to fetch them): `Access-Control-Allow-Origin: *`, which
    /// the per-connection CORS handler leaves alone. Such endpoints must not run `OriginGuard` either.
    public static let publicReadHeaders: HTTPHeaders = ["access-control-allow-origin": "*"]

    /// The preflight answer for such a public document: any origin, `GET` only, no credentials.
    public static func publicPreflightResponse() -> HTTPResponse {
        HTTPResponse(status: .noContent, headers: [
            "access-control-allow-origin": "*",
            "access-control-allow-methods": "GET",
            "access-control-allow-headers": "mcp-protocol-version",
            "access-control-max-age": String(preflightMaxAgeSeconds),
        ])
    }

    /// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method` (Fetch, "CORS-preflight request").
    static func isPreflight(_ request: HTTPRequestContext) -> Bool {
        request.head.method == .OPTIONS && request.headers.contains(name: "origin") && request.headers.contains(name: "access-control-request-method")
    }
}

/// Answers CORS preflights for the MCP endpoint. Runs after `OriginGuard`, so a disallowed origin has already
/// been refused with 403; preflights carry no credentials, so this comes before authentication.
public struct CORSPreflight: HTTPMiddleware {
    let policy: CORSPolicy

    public init(policy: CORSPolicy) { self.policy = policy }

    public func handle(_ request: HTTPRequestContext, eventLoop: any EventLoop) -> MiddlewareOutcome {
        guard CORSPolicy.isPreflight(request), let origin = request.headers.first(name: "origin"), policy.isAllowed(origin: origin) else {
            return .next(request)
        }
        return .respond(policy.preflightResponse(origin: origin))
    }
}

/// Resolves the client address (`server.trusted_proxies` decides whether `X-Forwarded-For` counts) into the
/// request context, and refuses clients outside `server.allowed_ips` with 403. The answer names the client
/// address it saw, never the list.
public struct ClientAddressPolicy: HTTPMiddleware {
    let allowedIPs: [IPNetwork]
    let trustedProxies: [IPNetwork]

    public init(allowedIPs: [IPNetwork], trustedProxies: [IPNetwork]) {
        self.allowedIPs = allowedIPs
        self.trustedProxies = trustedProxies
    }

    public func handle(_ request: HTTPRequestContext, eventLoop: any EventLoop) -> MiddlewareOutcome {
        // Nothing to decide without an allowlist or proxies: skip formatting and parsing the peer's address on
        // the hot path (a profile showed it at 3.5% of the CPU of a call).
        if allowedIPs.isEmpty, trustedProxies.isEmpty { return .next(request) }
        var request = request
        guard let peerText = request.peerAddress?.ipAddress, let peer = IPAddress(peerText) else {
            // A Unix-domain peer has no IP address; an allowlist cannot vouch for it.
            if allowedIPs.isEmpty { return .next(request) }
            return .respond(OriginGuard.forbidden("the client has no IP address, and server.allowed_ips is set"))
        }
        switch ClientAddressResolution.resolve(peer: peer, forwardedFor: request.headers["x-forwarded-for"], trustedProxies: trustedProxies) {
        case .address(let client):
            request.clientAddress = client
            if allowedIPs.isEmpty || allowedIPs.containsAddress(client) { return .next(request) }
            return .respond(OriginGuard.forbidden("client address \(client) is not allowed by server.allowed_ips"))
        case .unparseable:
            if allowedIPs.isEmpty { return .next(request) }
            return .respond(OriginGuard.forbidden("the X-Forwarded-For entry naming the client is not an IP address, so server.allowed_ips cannot admit it"))
        }
    }
}
