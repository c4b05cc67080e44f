import Foundation
import Logging
import Testing

@testable import GatewayCore
@testable import GatewayObservability

@Suite("Prometheus metrics")
struct MetricsTests {
    private func exposition(_ metrics: GatewayMetrics) -> String {
        String(decoding: metrics.render(), as: UTF8.self)
    }

    @Test("every family is exported with HELP and TYPE before any traffic, so dashboards and alerts have series")
    func familiesExistUpFront() {
        let text = exposition(GatewayMetrics(version: "1.2.3", revision: "abc"))
        for family in [
            "mcp_sessions_active", "mcp_sessions_total", "mcp_handshakes_total", "mcp_session_failures_total",
            "mcp_session_duration_seconds", "mcp_http_request_duration_seconds", "mcp_rate_limited_total", "mcp_requests_shed_total",
            "mcp_audit_records_total", "mcp_audit_write_failures_total", "mcp_config_reloads_total",
            "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
        ] {
            #expect(text.contains("# TYPE \(family) "), "missing TYPE for \(family)")
            #expect(text.contains("# HELP \(family) "), "missing HELP for \(family)")
        }
        #expect(text.contains(#"mcp_gateway_build_info{version="1.2.3",revision="abc"} 1"#))
        #expect(text.contains(#"mcp_sessions_active{transport="stdio"}"#))
    }

    @Test("method labels are bounded: unknown JSON-RPC methods and HTTP verbs collapse into one series")
    func boundedLabels() {
        let metrics = GatewayMetrics()
        for index in 0..<50 { metrics.jsonrpcError(code: -32601, method: "random/\(index)") }
        metrics.jsonrpcError(code: -32602, method: "tools/call")
        metrics.httpRequest(method: "BREW", status: 405, duration: .milliseconds(1))
        let text = exposition(metrics)
        #expect(text.contains(#"mcp_jsonrpc_errors_total{code="-32601",method="unknown"} 50"#))
        #expect(text.contains(#"mcp_jsonrpc_errors_total{code="-32602",method="tools/call"} 1"#))
        #expect(!text.contains("random/"))
        #expect(text.contains(#"mcp_http_requests_total{method="other",status="405"} 1"#))
    }

    @Test("tool outcomes are counted per backend and tool; refusals are counted but not timed")
    func toolOutcomes() {
        let metrics = GatewayMetrics()
        let echo = metrics.tool("diag__echo", backend: "diag")
        #expect(metrics.tool("diag__echo", backend: "diag") === echo)
        echo.record(.ok, duration: .milliseconds(3))
        echo.record(.toolError, duration: .milliseconds(1500))
        echo.record(.rejected, duration: .microseconds(50))
        let text = exposition(metrics)
        #expect(text.contains(#"mcp_tool_calls_total{backend="diag",tool="diag__echo",outcome="ok"} 1"#))
        #expect(text.contains(#"mcp_tool_calls_total{backend="diag",tool="diag__echo",outcome="tool_error"} 1"#))
        #expect(text.contains(#"mcp_tool_calls_total{backend="diag",tool="diag__echo",outcome="rejected"} 1"#))
        #expect(text.contains(#"mcp_tool_call_duration_seconds_count{backend="diag",tool="diag__echo"} 2"#))
        #expect(text.contains(#"mcp_tool_call_duration_seconds_bucket{backend="diag",tool="diag__echo",le="0.005"} 1"#))
        #expect(text.contains(#"mcp_tool_call_duration_seconds_bucket{backend="diag",tool="diag__echo",le="2.0"} 2"#))
    }

    @Test("histogram buckets run from 100 µs to 60 s and include the seed's 2 s threshold")
    func buckets() {
        #expect(GatewayMetrics.durationBuckets.first == 0.0001)
        #expect(GatewayMetrics.durationBuckets.last == 60)
        #expect(GatewayMetrics.durationBuckets.contains(2))
        #expect(GatewayMetrics.durationBuckets == GatewayMetrics.durationBuckets.sorted())
    }

    @Test("with metrics.enabled false the request path records nothing")
    func disabled() {
        let metrics = GatewayMetrics(enabled: false)
        metrics.jsonrpcError(code: -32601, method: "x")
        metrics.httpRequest(method: "POST", status: 200, duration: .milliseconds(1))
        let text = exposition(metrics)
        #expect(!text.contains("mcp_jsonrpc_errors_total{"))
        #expect(!text.contains("mcp_http_requests_total{"))
    }

    @Test("scrape hooks run before each exposition and set live gauges")
    func scrapeHooks() {
        let metrics = GatewayMetrics()
        metrics.onScrape { $0.backend("time").up.set(to: 1) }
        #expect(exposition(metrics).contains(#"mcp_backend_up{backend="time"} 1"#))
    }

    @Test("process metrics are read from /proc at scrape time")
    func processMetrics() throws {
        let text = exposition(GatewayMetrics())
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("process_resident_memory_bytes ") })
        let value = try #require(Double(line.split(separator: " ")[1]))
        #expect(value > 1_000_000)
    }
}

@Suite("Tracing setup and log levels")
struct TracingSetupTests {
    @Test("the OTLP/HTTP traces URL is derived from a base endpoint; a URL with a path is used as given")
    func tracesURL() {
        #expect(TracingBootstrap.tracesURL("http://127.0.0.1:4318") == "http://127.0.0.1:4318/v1/traces")
        #expect(TracingBootstrap.tracesURL("http://collector:4318/") == "http://collector:4318/v1/traces")
        #expect(TracingBootstrap.tracesURL("https://otel.example.com/custom/traces") == "https://otel.example.com/custom/traces")
    }

    @Test("with no tracer only the client's context is propagated, and no span is started")
    func propagationOnly() throws {
        let tracing = GatewayTracing.disabled
        let link = tracing.incoming(traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "k=v")
        #expect(link.traceID == "0af7651916cd43dd8448eb211c80319c")
        #expect(link.traceParent?.traceState == "k=v")
        #expect(tracing.startSpan("x", kind: .server, parent: link) == nil)
        #expect(tracing.incoming(traceparent: "garbage", tracestate: nil).traceParent == nil)
    }

    @Test("a reload changes the level every handler reads, unless a logger set its own")
    func levelControl() {
        let control = LogLevelControl(.warning)
        var handler = GatewayLogHandler(label: "t", format: .json, level: .warning, control: control)
        #expect(handler.logLevel == .warning)
        control.set(.debug)
        #expect(handler.logLevel == .debug)
        handler.logLevel = .error
        control.set(.info)
        #expect(handler.logLevel == .error)
    }
}

@Suite("JSON log lines")
struct JSONLogLineTests {
    /// Logs through a handler writing into a temporary file and returns the lines.
    private func lines(_ body: (Logger) -> Void) throws -> [String] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("log-\(UUID().uuidString)").path
        let descriptor = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        #expect(descriptor >= 0)
        defer { unlink(path) }
        let sink = LogSink(descriptor: descriptor)
        body(Logger(label: "t") { label in GatewayLogHandler(label: label, format: .json, level: .info, service: "svc", sink: sink) })
        close(descriptor)
        return try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    @Test("fields in the contract's order, strings escaped, numbers bare, trace ids in their place")
    func format() throws {
        let written = try lines { logger in
            logger.info("say \"hi\"\n\tand\u{1} bye ✓", metadata: [
                "duration_ms": .stringConvertible(1.25), "count": .stringConvertible(3), "ok": .stringConvertible(true),
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "tool": "diag__echo", "level": "not me",
                "list": .array(["a", "b"]),
            ])
            logger.debug("not written at info")
        }
        #expect(written.count == 1)
        let line = try #require(written.first)
        #expect(line.hasPrefix(#"{"ts":""#))
        #expect(line.contains(#","level":"info","msg":"say \"hi\"\n\tand\u0001 bye ✓","service":"svc","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":null,"#))
        #expect(line.hasSuffix(#""count":3,"duration_ms":1.25,"list":["a","b"],"ok":true,"tool":"diag__echo"}"#))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["level"] as? String == "info")
        #expect(object["msg"] as? String == "say \"hi\"\n\tand\u{1} bye ✓")
        let ts = try #require(object["ts"] as? String)
        #expect(ts.count == 24 && ts.hasSuffix("Z") && ts.dropFirst(10).first == "T")
    }
}
