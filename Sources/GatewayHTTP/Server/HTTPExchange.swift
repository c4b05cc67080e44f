import GatewayObservability
import NIOCore
import NIOHTTP1

/// The observability of one HTTP exchange: `mcp_http_requests_total{method,status}`,
/// `mcp_http_request_duration_seconds`, and the HTTP server span when spans are recorded. Reported once, when
/// the response ends. A GET event stream is counted but not timed: its length is the client's choice, not
/// latency.
struct HTTPExchange {
    let metrics: GatewayMetrics
    let method: HTTPMethod
    let started: NIODeadline
    var span: TracedSpan?

    init(metrics: GatewayMetrics, method: HTTPMethod) {
        self.metrics = metrics
        self.method = method
        self.started = .now()
    }

    func finish(status: HTTPResponseStatus, streamed: Bool) {
        let timed = !(streamed && method == .GET)
        let elapsed = NIODeadline.now() - started
        metrics.httpRequest(method: method.rawValue, status: Int(status.code), duration: timed ? .nanoseconds(elapsed.nanoseconds) : nil)
        if let span {
            span.set("http.response.status_code", Int(status.code))
            if status.code >= 500 { span.fail("HTTP \(status.code)") }
            span.end()
        }
    }
}
