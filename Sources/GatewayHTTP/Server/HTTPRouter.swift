import GatewayConfig
import GatewayCore
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
    let mcpChain: MiddlewareChain
    let probeChain: MiddlewareChain
    let logger: Logger

    init(gateway: Gateway, configuration: GatewayConfiguration, logger: Logger) {
        self.gateway = gateway
        self.endpointPath = configuration.server.endpoint
        self.mcp = StreamableHTTPEndpoint(gateway: gateway, configuration: configuration, logger: logger)
        let origin = OriginGuard(
            allowedOrigins: configuration.server.allowedOrigins,
            listenIsLoopback: configuration.server.listen.isLoopback,
            publicURL: configuration.server.publicURL
        )
        // The order of concerns, in one place: origin/CORS, then authentication (then, in later issues, rate
        // limits); the session lookup bound to the principal happens in the endpoint.
        self.mcpChain = MiddlewareChain([origin, AnonymousAuthentication()])
        self.probeChain = MiddlewareChain([origin])
        self.logger = logger
    }

    func route(head: HTTPRequestHead, body: ByteBuffer?, responder: HTTPResponder) {
        let request = HTTPRequestContext(head: head)
        let eventLoop = responder.eventLoop
        if request.path == endpointPath {
            mcpChain.run(request, eventLoop: eventLoop) { outcome in
                switch outcome {
                case .success(let context): mcp.handle(context, body: body, responder: responder)
                case .failure(let box): responder.respond(box.response)
                }
            }
            return
        }
        probeChain.run(request, eventLoop: eventLoop) { outcome in
            switch outcome {
            case .success(let context): probe(context, responder: responder)
            case .failure(let box): responder.respond(box.response)
            }
        }
    }

    private func probe(_ request: HTTPRequestContext, responder: HTTPResponder) {
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
            var backends = JSONObject()
            for status in gateway.backendStatus { backends[status.name] = .string(status.ready ? "ready" : "not ready") }
            let ready = gateway.isReady
            let body: JSONValue = [
                "status": .string(ready ? "ready" : (gateway.isDraining ? "draining" : "no backend is ready")),
                "backends": .object(backends),
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
