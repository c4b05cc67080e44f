import GatewayObservability

/// What the runtime reports into: Prometheus metrics, spans (or only W3C propagation), and the access log.
public struct GatewayTelemetry: Sendable {
    public let metrics: GatewayMetrics
    public let tracing: GatewayTracing
    /// One log line per JSON-RPC request (`observability.log.access`).
    public let accessLog: Bool

    public init(metrics: GatewayMetrics = GatewayMetrics(), tracing: GatewayTracing = .disabled, accessLog: Bool = true) {
        self.metrics = metrics
        self.tracing = tracing
        self.accessLog = accessLog
    }
}
