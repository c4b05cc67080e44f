import Logging
import OTel
import ServiceLifecycle
import Tracing

/// Builds the OTLP/HTTP span pipeline from `observability.tracing` (swift-otel 1.x, `OTLPHTTP` trait):
/// protobuf over HTTP to `<otlp_endpoint>/v1/traces` (OTLP exporter spec, "Endpoint URLs for OTLP/HTTP"),
/// sampled by trace id at `sample_ratio`, batched. Metrics and logs stay with Prometheus and stderr.
public enum TracingBootstrap {
    public struct Pipeline: Sendable {
        public let tracing: GatewayTracing
        /// Runs the exporter and batch processor; flushes pending spans when the service group shuts down.
        public let service: any Service
    }

    /// - Returns: nil when no endpoint is configured: only propagation then.
    public static func make(endpoint: String?, sampleRatio: Double, serviceName: String, logger: Logger) throws -> Pipeline? {
        guard let endpoint, !endpoint.isEmpty else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        configuration.diagnosticLogger = .custom(logger)
        // The ratio is the gateway's own decision, made the same way on every replica from the trace id; a client's
        // `sampled` flag does not force recording (a caller could otherwise make every request expensive).
        configuration.traces.sampler = .traceIDRatio(ratio: sampleRatio) ?? .alwaysOn
        configuration.traces.batchSpanProcessor.scheduleDelay = .seconds(2)
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        configuration.traces.otlpExporter.endpoint = tracesURL(endpoint)
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        return Pipeline(tracing: GatewayTracing(tracer: backend.factory, sampleRatio: sampleRatio), service: backend.service)
    }

    /// `http://collector:4318` → `http://collector:4318/v1/traces`; a URL with a path is used as given.
    static func tracesURL(_ endpoint: String) -> String {
        guard let scheme = endpoint.range(of: "://") else { return endpoint }
        let rest = endpoint[scheme.upperBound...]
        if let slash = rest.firstIndex(of: "/"), rest[slash...] != "/" { return endpoint }
        return (endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint) + "/v1/traces"
    }
}
