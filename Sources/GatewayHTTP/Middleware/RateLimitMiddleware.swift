import GatewayCore
import GatewayRuntime
import NIOCore
import NIOHTTP1

/// `limits.per_principal` and `limits.per_tenant`, after authentication (the buckets are keyed by the
/// authenticated principal across its sessions, and by its tenant). A refused request is answered before any
/// JSON-RPC is read: HTTP 429 with `Retry-After` (RFC 9110 §10.2.3; RFC 6585 §4), the `RateLimit-Policy` and
/// `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers-10, and a JSON-RPC error -32003 whose
/// `data.retry_after_ms` says the same for clients that read only the body. Installed only when a limit is set.
struct RateLimitMiddleware: HTTPMiddleware {
    let limits: RequestRateLimits

    func handle(_ request: HTTPRequestContext, eventLoop: any EventLoop) -> MiddlewareOutcome {
        guard let refusal = limits.check(request.principal) else { return .next(request) }
        return .respond(Self.tooManyRequests(refusal))
    }

    static func tooManyRequests(_ refusal: RequestLimitRefusal) -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add(name: "retry-after", value: String(refusal.decision.retryAfterSeconds))
        headers.add(name: "ratelimit-policy", value: refusal.policyField)
        headers.add(name: "ratelimit", value: refusal.currentField)
        let milliseconds = refusal.decision.retryAfterMilliseconds
        let error = JSONRPCError(
            code: JSONRPCErrorCode.rateLimited,
            message: "Rate limited: this \(refusal.scope) is over its request rate (\(refusal.configKey)); retry in \(milliseconds) ms",
            data: ["retry_after_ms": .number(JSONNumber(Int(milliseconds))), "scope": .string(refusal.scope)]
        )
        return .json(.tooManyRequests, JSONRPCEncoder.error(id: nil, error), headers: headers)
    }
}

/// `limits.max_inflight`: the answer to a request beyond it (counted as shed), 503 with `Retry-After`. The
/// gauge itself is taken in `HTTPRouter` before the middleware chain, so shedding costs no authentication.
enum LoadShedding {
    static func overloaded(limit: Int) -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add(name: "retry-after", value: "1")
        let error = JSONRPCError(
            code: JSONRPCErrorCode.internalError,
            message: "Service unavailable: the gateway is serving limits.max_inflight (\(limit)) requests at once; retry in 1 s"
        )
        return .json(.serviceUnavailable, JSONRPCEncoder.error(id: nil, error), headers: headers)
    }
}

/// Told when a response has been written in full.
protocol ResponseFinishObserver: AnyObject {
    func responseFinished()
}

extension InflightGauge: ResponseFinishObserver {
    func responseFinished() { release() }
}

extension HTTPRouter {
    /// `limits.max_inflight`, checked before anything else runs for an MCP request: a place is taken here and
    /// freed when the response is written. A GET's event stream is a long-lived subscription, not a request in
    /// flight, and takes no place. False after answering 503.
    func admitWithinMaxInflight(_ request: HTTPRequestContext, responder: HTTPResponder) -> Bool {
        guard request.head.method != .GET else { return true }
        let gauge = gateway.resilience.inflight
        guard gauge.tryAcquire() else {
            responder.respond(LoadShedding.overloaded(limit: gauge.limit))
            return false
        }
        responder.finishObserver = gauge
        return true
    }
}
