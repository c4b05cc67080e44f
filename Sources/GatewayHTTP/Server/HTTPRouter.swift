import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayObservability
import GatewayRuntime
import Logging
import NIOCore
import NIOHTTP1

/// The fixed set of endpoints (CONTRACT.md, "HTTP endpoints"). MCP requests pass the middleware chain first;
/// health probes only the origin check, so a load balancer never needs credentials.
struct HTTPRouter: Sendable {
    let gateway: Gateway
    let endpointPath: String
    let mcp: StreamableHTTPEndpoint
    /// `GET /sse` + `POST /messages` (2024-11-05 HTTP+SSE), nil unless `server.legacy_sse` is on.
    let legacySSE: LegacySSEEndpoint?
    let mcpChain: MiddlewareChain
    let probeChain: MiddlewareChain
    let metadata: ProtectedResourceMetadata?
    /// `observability.metrics.path`, nil when metrics are disabled.
    let metricsPath: String?
    let logger: Logger

    init(gateway: Gateway, configuration: GatewayConfiguration, logger: Logger) {
        self.gateway = gateway
        self.endpointPath = configuration.server.endpoint
        self.metricsPath = configuration.observability.metricsEnabled ? configuration.observability.metricsPath : nil
        let challenges = AuthChallenges(config: configuration.auth, endpoint: configuration.server.endpoint)
        self.mcp = StreamableHTTPEndpoint(gateway: gateway, configuration: configuration, challenges: challenges, logger: logger)
        self.legacySSE = LegacySSEEndpoint(gateway: gateway, configuration: configuration, logger: logger)
        self.metadata = ProtectedResourceMetadata(config: configuration.auth, endpoint: configuration.server.endpoint)
        let authentication: any HTTPMiddleware
        if configuration.auth.mode == .none {
            authentication = AnonymousAuthentication()
        } else {
            var authLogger = logger
            authLogger[metadataKey: "component"] = "auth"
            let authenticator = Authenticator(config: configuration.auth, logger: authLogger)
            // Load the issuer's keys now; if the issuer is down the gateway still starts and refuses requests
            // (503) until they load, retrying on demand.
            Task { await authenticator.start() }
            authentication = BearerAuthentication(authenticator: authenticator, challenges: challenges)
        }
        let origin = OriginGuard(
            allowedOrigins: configuration.server.allowedOrigins,
            listenIsLoopback: configuration.server.listen.isLoopback,
            publicURL: configuration.server.publicURL
        )
        let preflight = CORSPreflight(policy: CORSPolicy(allowedOrigins: configuration.server.allowedOrigins))
        let clientAddress = ClientAddressPolicy(allowedIPs: configuration.server.allowedIPs, trustedProxies: configuration.server.trustedProxies)
        // The order of concerns, in one place: origin/CORS, then the client IP allowlist, then authentication
        // then the per-principal and per-tenant rate limits; the session lookup bound to the principal happens in the endpoint.
        // CORS headers on actual responses are added per connection (`RequestBoundaryHandler`, `StreamCORSHandler`).
        let rateLimit: [any HTTPMiddleware] = gateway.resilience.requestLimits.map { [RateLimitMiddleware(limits: $0)] } ?? []
        self.mcpChain = MiddlewareChain([origin, preflight, clientAddress, authentication] + rateLimit)
        self.probeChain = MiddlewareChain([origin, clientAddress])
        self.logger = logger
    }

    func route(head: HTTPRequestHead, body: ByteBuffer?, responder: HTTPResponder) {
        let request = HTTPRequestContext(head: head, peerAddress: responder.remoteAddress)
        let eventLoop = responder.eventLoop
        if request.path == endpointPath {
            guard admitWithinMaxInflight(request, responder: responder) else { return }
            let trace = traceHTTPExchange(head, responder: responder)
            mcpChain.run(request, eventLoop: eventLoop) { outcome in
                switch outcome {
                case .success(let context): mcp.handle(context, body: body, responder: responder, trace: trace)
                case .failure(let box): responder.respond(box.response)
                }
            }
            return
        }
        // The legacy transport passes the same chain as the MCP endpoint: origin, IP policy, auth, rate limits.
        if let legacySSE, LegacySSEEndpoint.paths.contains(request.path) {
            guard admitWithinMaxInflight(request, responder: responder) else { return }
            mcpChain.run(request, eventLoop: eventLoop) { outcome in
                switch outcome {
                case .success(let context): legacySSE.handle(context, body: body, responder: responder)
                case .failure(let box): responder.respond(box.response)
                }
            }
            return
        }
        // RFC 9728 metadata is public and read by browser clients from any origin: no credential, no Origin check.
        if let metadata, request.head.method == .GET, metadata.paths.contains(request.path) {
            metadata.respond(responder)
            return
        }
        probeChain.run(request, eventLoop: eventLoop) { outcome in
            switch outcome {
            case .success(let context): probe(context, responder: responder)
            case .failure(let box): responder.respond(box.response)
            }
        }
    }

    /// The client's W3C trace context (`traceparent`, `tracestate`), continued by an HTTP server span when spans
    /// are recorded. Only MCP requests are traced: probes and scrapes would drown the traces that matter.
    private func traceHTTPExchange(_ head: HTTPRequestHead, responder: HTTPResponder) -> TraceLink {
        let tracing = gateway.telemetry.tracing
        let incoming = tracing.incoming(traceparent: head.headers.first(name: "traceparent"), tracestate: head.headers.first(name: "tracestate"))
        guard let span = tracing.startSpan("\(head.method.rawValue) \(endpointPath)", kind: .server, parent: incoming) else { return incoming.unsampled }
        span.set("http.request.method", head.method.rawValue)
        span.set("url.path", endpointPath)
        responder.exchange?.span = span
        return span.link
    }

    private func probe(_ request: HTTPRequestContext, responder: HTTPResponder) {
        if metricsPath == request.path {
            guard request.head.method == .GET else {
                responder.respondJSON(status: .methodNotAllowed, Array(#"{"error":"method not allowed"}"#.utf8), headers: ["allow": "GET"])
                return
            }
            responder.respond(status: .ok, body: gateway.telemetry.metrics.render(), contentType: GatewayMetrics.contentType)
            return
        }
        guard ["/healthz", "/readyz", "/version"].contains(request.path) else {
            responder.respondJSON(status: .notFound, Array(#"{"error":"not found"}"#.utf8))
            return
        }
        guard request.head.method == .GET else {
            responder.respondJSON(status: .methodNotAllowed, Array(#"{"error":"method not allowed"}"#.utf8), headers: ["allow": "GET"])
            return
        }
        switch request.path {
        case "/healthz":
            responder.respondJSON(Array(#"{"status":"ok"}"#.utf8))
        case "/readyz":
            // Each backend's state (ready, starting, restarting, crash_loop, unhealthy) and the quorum judged.
            var backends = JSONObject()
            let states = gateway.backendStates
            for status in states { backends[status.name] = .string(status.state.rawValue) }
            let ready = gateway.isReady
            let quorum = gateway.configuration.server.readinessQuorum
            let body: JSONValue = [
                "status": .string(ready ? "ready" : (gateway.isDraining ? "draining" : "too few backends are ready (server.readiness.quorum: \(quorum))")),
                "backends": .object(backends),
                "ready_backends": .number(JSONNumber(states.count { $0.state.isReady })),
                "quorum": .string(quorum.description),
                "sessions": .number(JSONNumber(gateway.sessionCount)),
            ]
            responder.respondJSON(status: ready ? .ok : .serviceUnavailable, body.serialized())
        case "/version":
            let body: JSONValue = [
                "name": .string(GatewayVersionInfo.name),
                "version": .string(GatewayVersionInfo.version),
                "revision": .string(GatewayVersionInfo.revision),
                "protocol_versions": .array(ProtocolVersion.supported.map { .string($0) }),
            ]
            responder.respondJSON(body.serialized())
        default:
            responder.respondJSON(status: .notFound, Array(#"{"error":"not found"}"#.utf8))
        }
    }
}
