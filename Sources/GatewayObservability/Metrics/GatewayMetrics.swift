import CoreMetrics
import Foundation
import NIOConcurrencyHelpers
import Prometheus

/// The gateway's Prometheus metrics on the seed's three layers (CONTRACT.md, "Metrics"; docs/observability.md).
///
/// Every family is created on swift-prometheus's registry with its HELP text, and handles are created once and
/// cached, so the hot path pays an atomic increment (counters) or one short lock (histograms). swift-metrics is
/// bootstrapped onto the same registry (`metricsFactory`), so libraries that report through swift-metrics land
/// in the same exposition. Label values are bounded: tools and backends come from the catalog and the
/// configuration, anything else is `unknown`; methods outside MCP's set are `unknown` too.
public final class GatewayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    /// A swift-metrics factory writing into `registry` (for `MetricsSystem.bootstrap`).
    public let metricsFactory: PrometheusMetricsFactory

    /// Seconds: 100 µs to 60 s (the range), dense below 10 ms where the gateway's own cost lives.
    public static let durationBuckets: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 5, 10, 30, 60]

    private let toolHandles = NIOLockedValueBox<[ToolKey: ToolMetrics]>([:])
    private let backendHandles = NIOLockedValueBox<[String: BackendMetrics]>([:])
    private let errorHandles = NIOLockedValueBox<[ErrorKey: Prometheus.Counter]>([:])
    private let httpHandles = NIOLockedValueBox<[HTTPKey: Prometheus.Counter]>([:])
    private let scrapeHooks = NIOLockedValueBox<[@Sendable (GatewayMetrics) -> Void]>([])
    private let process = ProcessCollector()

    let httpDuration: DurationHistogram
    let sessionDuration: DurationHistogram
    public let requestsShed: Prometheus.Counter
    public let auditRecords: Prometheus.Counter
    public let auditWriteFailures: Prometheus.Counter

    /// False with `observability.metrics.enabled: false`: the request path then records nothing (the benchmark's
    /// "off" baseline), and nothing is served.
    public let isEnabled: Bool

    /// - Parameters: version, revision: the labels of `mcp_gateway_build_info`.
    public init(version: String = "dev", revision: String = "unknown", enabled: Bool = true) {
        self.isEnabled = enabled
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.durationBuckets.map { .nanoseconds(Int64($0 * 1e9)) }
        factory.defaultValueHistogramBuckets = Self.durationBuckets
        self.metricsFactory = factory
        let buckets = Self.durationBuckets.map { Duration.nanoseconds(Int64($0 * 1e9)) }
        httpDuration = registry.durationHistogram(
            name: "mcp_http_request_duration_seconds", labels: [], buckets: buckets,
            help: "Time from a request's last byte to its response's end (event streams excluded)."
        )
        sessionDuration = registry.durationHistogram(
            name: "mcp_session_duration_seconds", labels: [], buckets: buckets,
            help: "Lifetime of ended sessions, from initialize to DELETE, idle expiry, eviction or shutdown."
        )
        requestsShed = registry.counter(name: "mcp_requests_shed_total", labels: [], help: "Requests refused because limits.max_inflight was reached.")
        auditRecords = registry.counter(name: "mcp_audit_records_total", labels: [], help: "Audit records written.")
        auditWriteFailures = registry.counter(name: "mcp_audit_write_failures_total", labels: [], help: "Audit records that could not be written.")
        for scope in ["principal", "tenant", "tool"] { _ = rateLimited(scope: scope) }
        for transport in ["streamable_http", "sse", "stdio"] { _ = sessionsActive(transport: transport); _ = sessionsTotal(transport: transport) }
        for outcome in ["ok", "error", "rejected"] { _ = handshakes(outcome: outcome) }
        for reason in ["not_found", "forbidden", "missing"] { _ = sessionFailures(reason: reason) }
        for outcome in ["ok", "invalid", "failed"] { _ = configReloads(outcome: outcome) }
        registry.gauge(
            name: "mcp_gateway_build_info", labels: [("version", version), ("revision", revision)],
            help: "Always 1; the labels say which build is running."
        ).set(to: 1.0)
        process.register(in: registry)
    }

    // MARK: - Protocol layer

    public func sessionsActive(transport: String) -> Prometheus.Gauge {
        registry.gauge(name: "mcp_sessions_active", labels: [("transport", transport)], help: "Sessions live on this replica.")
    }

    public func sessionsTotal(transport: String) -> Prometheus.Counter {
        registry.counter(name: "mcp_sessions_total", labels: [("transport", transport)], help: "Sessions created or resumed on this replica.")
    }

    public func handshakes(outcome: String) -> Prometheus.Counter {
        registry.counter(name: "mcp_handshakes_total", labels: [("outcome", outcome)], help: "initialize requests by outcome: ok, error (refused), rejected (no capacity).")
    }

    public func sessionFailures(reason: String) -> Prometheus.Counter {
        registry.counter(
            name: "mcp_session_failures_total", labels: [("reason", reason)],
            help: "Requests naming no usable session: not_found (unknown, expired, deleted), forbidden (another principal's), missing (no Mcp-Session-Id)."
        )
    }

    public func sessionEnded(lifetime: Duration) { sessionDuration.record(lifetime) }

    public func configReloads(outcome: String) -> Prometheus.Counter {
        registry.counter(name: "mcp_config_reloads_total", labels: [("outcome", outcome)], help: "Configuration reloads (SIGHUP) by outcome.")
    }

    public func rateLimited(scope: String) -> Prometheus.Counter {
        registry.counter(name: "mcp_rate_limited_total", labels: [("scope", scope)], help: "Requests or calls refused by a rate limit, by scope: principal, tenant, tool.")
    }

    /// A JSON-RPC error the gateway sent (its own or a backend's), by code and method.
    public func jsonrpcError(code: Int, method: String) {
        guard isEnabled else { return }
        let key = ErrorKey(code: code, method: MCPMethods.label(method))
        let counter = errorHandles.withLockedValue { handles -> Prometheus.Counter in
            if let counter = handles[key] { return counter }
            let counter = registry.counter(
                name: "mcp_jsonrpc_errors_total", labels: [("code", String(code)), ("method", key.method)],
                help: "JSON-RPC error responses by code and method (unknown methods are counted as \"unknown\")."
            )
            handles[key] = counter
            return counter
        }
        counter.increment()
    }

    /// One HTTP exchange. `duration` is nil for event streams, whose length says nothing about latency.
    public func httpRequest(method: String, status: Int, duration: Duration?) {
        guard isEnabled else { return }
        let key = HTTPKey(method: HTTPMethods.label(method), status: status)
        let counter = httpHandles.withLockedValue { handles -> Prometheus.Counter in
            if let counter = handles[key] { return counter }
            let counter = registry.counter(
                name: "mcp_http_requests_total", labels: [("method", key.method), ("status", String(status))],
                help: "HTTP requests by method and response status."
            )
            handles[key] = counter
            return counter
        }
        counter.increment()
        if let duration { httpDuration.record(duration) }
    }

    // MARK: - Tool and agent layers

    /// The handles of one exposed tool (`unknown` when the name is not in the catalog), created on first use.
    public func tool(_ tool: String, backend: String) -> ToolMetrics {
        let key = ToolKey(tool: tool, backend: backend)
        return toolHandles.withLockedValue { handles in
            if let existing = handles[key] { return existing }
            let created = ToolMetrics(registry: registry, tool: tool, backend: backend)
            handles[key] = created
            return created
        }
    }

    public func backend(_ name: String) -> BackendMetrics {
        backendHandles.withLockedValue { handles in
            if let existing = handles[name] { return existing }
            let created = BackendMetrics(registry: registry, backend: name)
            handles[name] = created
            return created
        }
    }

    /// `mcp_canary_rollbacks_total{backend,version}`: canary versions rolled back (issue 7, item 7).
    public func canaryRollbacks(backend: String, version: String) -> Prometheus.Counter {
        registry.counter(
            name: "mcp_canary_rollbacks_total", labels: [("backend", backend), ("version", version)],
            help: "Canary versions of a backend rolled back for errors above the stable version's or a P95 above the SLA."
        )
    }

    /// `mcp_canary_weight{backend,version}`: each version's current share of calls (0 once rolled back).
    public func canaryWeight(backend: String, version: String) -> Prometheus.Gauge {
        registry.gauge(
            name: "mcp_canary_weight", labels: [("backend", backend), ("version", version)],
            help: "Weight of each version of a backend in its call split; a rolled-back canary's is 0."
        )
    }

    // MARK: - Exposition

    /// Runs before every scrape: gauges read from live state (sessions, backends, breakers) are set here, so the
    /// hot path never updates them.
    public func onScrape(_ hook: @escaping @Sendable (GatewayMetrics) -> Void) {
        scrapeHooks.withLockedValue { $0.append(hook) }
    }

    /// The Prometheus text exposition format 0.0.4.
    public func render() -> [UInt8] {
        process.update()
        for hook in scrapeHooks.withLockedValue({ $0 }) { hook(self) }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private struct ToolKey: Hashable { let tool: String; let backend: String }
    private struct ErrorKey: Hashable { let code: Int; let method: String }
    private struct HTTPKey: Hashable { let method: String; let status: Int }
}

/// What one tool call ended as, for `mcp_tool_calls_total{outcome}` (CONTRACT.md). `cancelled` is the client's
/// `notifications/cancelled` (no response is sent, so it is neither ok nor an error).
public enum ToolCallOutcome: String, Sendable, CaseIterable {
    case ok
    case toolError = "tool_error"
    case error
    case timeout
    case rejected
    case cancelled
}

/// Cached handles for one exposed tool.
public final class ToolMetrics: Sendable {
    private let outcomes: [Prometheus.Counter]
    public let duration: DurationHistogram
    public let validationFailures: Prometheus.Counter
    public let selfCorrections: Prometheus.Counter
    public let retryRecoveries: Prometheus.Counter
    public let outputSchemaMismatches: Prometheus.Counter

    init(registry: PrometheusCollectorRegistry, tool: String, backend: String) {
        let labels = [("backend", backend), ("tool", tool)]
        outcomes = ToolCallOutcome.allCases.map { outcome in
            registry.counter(
                name: "mcp_tool_calls_total", labels: labels + [("outcome", outcome.rawValue)],
                help: "tools/call requests by backend, exposed tool name and outcome: ok, tool_error (isError result), error, timeout, rejected, cancelled."
            )
        }
        duration = registry.durationHistogram(
            name: "mcp_tool_call_duration_seconds", labels: labels, buckets: GatewayMetrics.durationBuckets.map { .nanoseconds(Int64($0 * 1e9)) },
            help: "tools/call latency through the gateway, from the request to its response."
        )
        validationFailures = registry.counter(
            name: "mcp_tool_param_validation_failures_total", labels: labels,
            help: "tools/call requests refused because their arguments did not match the tool's inputSchema."
        )
        selfCorrections = registry.counter(
            name: "mcp_tool_self_corrections_total", labels: labels,
            help: "Validation failures followed by a successful call of the same tool in the same session within 60 s."
        )
        retryRecoveries = registry.counter(
            name: "mcp_tool_retry_recoveries_total", labels: labels,
            help: "Backend errors or timeouts followed by a successful call of the same tool in the same session within 60 s."
        )
        outputSchemaMismatches = registry.counter(
            name: "mcp_tool_output_schema_mismatches_total", labels: labels,
            help: "Results whose structuredContent did not match the tool's outputSchema (passed on unchanged)."
        )
    }

    public func record(_ outcome: ToolCallOutcome, duration elapsed: Duration) {
        outcomes[ToolCallOutcome.allCases.firstIndex(of: outcome)!].increment()
        if outcome != .rejected, outcome != .cancelled { duration.record(elapsed) }
    }
}

/// Cached handles for one backend. Gauges are set at scrape time from the backend's live state.
public final class BackendMetrics: Sendable {
    public let up: Prometheus.Gauge
    public let inflight: Prometheus.Gauge
    public let queueDepth: Prometheus.Gauge
    public let restarts: Prometheus.Counter
    public let circuitState: Prometheus.Gauge

    init(registry: PrometheusCollectorRegistry, backend: String) {
        let labels = [("backend", backend)]
        up = registry.gauge(name: "mcp_backend_up", labels: labels, help: "1 when the backend can take calls, else 0.")
        inflight = registry.gauge(name: "mcp_backend_inflight", labels: labels, help: "Calls in flight at the backend.")
        queueDepth = registry.gauge(name: "mcp_backend_queue_depth", labels: labels, help: "Calls waiting for a backend concurrency slot.")
        restarts = registry.counter(name: "mcp_backend_restarts_total", labels: labels, help: "Backend process restarts after a crash or a failed start.")
        circuitState = registry.gauge(name: "mcp_circuit_state", labels: labels, help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.")
    }
}

/// Label values for methods: MCP's own (2025-11-25 and 2026-07-28) or `unknown`, so a client sending random
/// method names cannot grow the series without bound.
enum MCPMethods {
    static let known: Set<String> = [
        "initialize", "ping", "tools/list", "tools/call", "resources/list", "resources/templates/list", "resources/read",
        "resources/subscribe", "resources/unsubscribe", "prompts/list", "prompts/get", "completion/complete", "logging/setLevel",
        "server/discover", "subscriptions/listen", "sampling/createMessage", "elicitation/create", "roots/list",
        "tasks/get", "tasks/list", "tasks/cancel", "tasks/result", "(batch)", "(parse)", "(invalid)",
    ]

    static func label(_ method: String) -> String { known.contains(method) ? method : "unknown" }
}

enum HTTPMethods {
    static func label(_ method: String) -> String {
        switch method {
        case "GET", "POST", "DELETE", "OPTIONS", "HEAD", "PUT", "PATCH": return method
        default: return "other"
        }
    }
}

/// Metric families by their full name with a HELP text (swift-prometheus's descriptor API, without splitting
/// names into namespace, subsystem and unit).
extension PrometheusCollectorRegistry {
    func counter(name: String, labels: [(String, String)], help: String) -> Prometheus.Counter {
        makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
    }

    func gauge(name: String, labels: [(String, String)], help: String) -> Prometheus.Gauge {
        makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
    }

    func durationHistogram(name: String, labels: [(String, String)], buckets: [Duration], help: String) -> DurationHistogram {
        makeDurationHistogram(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels, buckets: buckets)
    }
}
