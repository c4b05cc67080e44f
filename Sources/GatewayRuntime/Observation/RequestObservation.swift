import GatewayCore
import GatewayObservability
import Logging
import NIOCore

/// Everything observed about one JSON-RPC request, reported once when it ends: the `mcp_tool_*` and
/// `mcp_jsonrpc_errors_total` metrics, the agent-layer counters, the request's span, and the access log line
/// (CONTRACT.md, "Logs": method, tool, backend, session, principal, outcome, duration_ms, trace_id, span_id).
///
/// Confined to the request's event loop; `finish` runs exactly once.
final class RequestObservation: @unchecked Sendable {
    private let telemetry: GatewayTelemetry
    private let logger: Logger
    private let started: NIODeadline
    let method: String
    private let requestID: RequestID
    private let session: SessionState?
    private let principal: Principal
    /// The JSON-RPC span, when spans are recorded.
    private var span: TracedSpan?
    /// Where children (the backend call) continue the trace.
    private(set) var link: TraceLink
    private(set) var tool: String?
    private(set) var backend: String?
    private var toolMetrics: ToolMetrics?
    private var finished = false

    init(telemetry: GatewayTelemetry, logger: Logger, request: JSONRPCRequest, session: SessionState?, principal: Principal, trace: TraceLink) {
        self.telemetry = telemetry
        self.logger = logger
        self.started = .now()
        self.method = request.method
        self.requestID = request.id
        self.session = session
        self.principal = principal
        self.link = trace
    }

    /// The call resolved to a catalog tool (or to none: `unknown`, so labels stay bounded). Starts the span,
    /// named after the method and tool (OTel semantic conventions for MCP: `{mcp.method.name} {target}`).
    func resolve(tool: String?, backend: String?) {
        self.tool = tool
        self.backend = backend
        if method == "tools/call", telemetry.metrics.isEnabled {
            toolMetrics = telemetry.metrics.tool(tool ?? "unknown", backend: backend ?? "unknown")
        }
        guard telemetry.tracing.isRecording else { return }
        let name = tool.map { "\(method) \($0)" } ?? method
        guard let span = telemetry.tracing.startSpan(name, kind: .server, parent: link) else {
            link = link.unsampled
            return
        }
        span.set("mcp.method.name", method)
        span.set("jsonrpc.request.id", requestID.description)
        if let tool { span.set("gen_ai.tool.name", tool) }
        if let backend { span.set("mcp.backend", backend) }
        if let session { span.set("mcp.session.id", session.logID) }
        self.span = span
        self.link = span.link
    }

    /// Starts the span of the backend call, a child of this request's span; nil when spans are not recorded.
    func startBackendSpan(backend: String) -> TracedSpan? {
        guard let span = telemetry.tracing.startSpan("\(method) \(backend)", kind: .client, parent: link) else { return nil }
        span.set("mcp.method.name", method)
        span.set("mcp.backend", backend)
        if let tool { span.set("gen_ai.tool.name", tool) }
        return span
    }

    /// Ends the request. `validationRefused` marks a `tools/call` refused for invalid arguments (for the
    /// self-correction counter).
    func finish(_ outcome: ToolCallOutcome, error: JSONRPCError? = nil, validationRefused: Bool = false) {
        guard !finished else { return }
        finished = true
        let elapsed = NIODeadline.now() - started
        let duration = Duration.nanoseconds(elapsed.nanoseconds)
        let metrics = telemetry.metrics
        if let error { metrics.jsonrpcError(code: error.code, method: method) }
        if let toolMetrics {
            toolMetrics.record(outcome, duration: duration)
            if let session, let tool {
                switch session.noteToolOutcome(tool: tool, outcome, validationRefused: validationRefused, now: started) {
                case .selfCorrection: toolMetrics.selfCorrections.increment()
                case .retryRecovery: toolMetrics.retryRecoveries.increment()
                case nil: break
                }
            }
        }
        if let span {
            span.set("mcp.outcome", outcome.rawValue)
            if let error {
                span.set("rpc.jsonrpc.error_code", error.code)
                span.fail(error.message)
            } else if outcome == .toolError {
                span.fail("the tool returned isError: true")
            }
            span.end()
        }
        guard telemetry.accessLog, logger.logLevel <= .info else { return }
        var metadata: Logger.Metadata = [
            "method": .string(method),
            "outcome": .string(outcome.rawValue),
            "duration_ms": .stringConvertible(Double(elapsed.nanoseconds / 1000) / 1000),
            "principal": .string(principal.subject),
        ]
        if let tool { metadata["tool"] = .string(tool) }
        if let backend { metadata["backend"] = .string(backend) }
        if let session { metadata["session"] = .string(session.logID) }
        if let traceID = link.traceID { metadata["trace_id"] = .string(traceID) }
        if let spanID = span?.spanID { metadata["span_id"] = .string(spanID) }
        if let error { metadata["error"] = .string("\(error.code): \(error.message)") }
        logger.info("request", metadata: metadata)
    }
}

/// What a successful call after a recent failure of the same tool in the same session means for the agent
/// layer (CONTRACT.md, "Metrics"; docs/observability.md).
enum AgentRecovery {
    /// A validation failure, then success: the agent corrected its arguments.
    case selfCorrection
    /// A backend error or timeout, then success: the agent (or its client) retried through a transient fault.
    case retryRecovery
}
