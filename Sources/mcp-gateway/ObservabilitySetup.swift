import GatewayConfig
import GatewayHTTP
import GatewayObservability
import GatewayRuntime
import Logging
import Metrics
import ServiceLifecycle

/// Metrics, tracing and the access log from `observability.*` (issue 6). swift-metrics is bootstrapped onto the
/// gateway's Prometheus registry, so anything reporting through it shows up at `/metrics` too.
func makeTelemetry(_ configuration: GatewayConfiguration, logger: Logger) throws -> (telemetry: GatewayTelemetry, tracingService: (any Service)?) {
    let observability = configuration.observability
    let metrics = GatewayMetrics(version: GatewayVersionInfo.version, revision: GatewayVersionInfo.revision, enabled: observability.metricsEnabled)
    MetricsSystem.bootstrap(metrics.metricsFactory)
    let pipeline = try TracingBootstrap.make(
        endpoint: observability.otlpEndpoint, sampleRatio: observability.sampleRatio, serviceName: observability.serviceName, logger: logger
    )
    if let endpoint = observability.otlpEndpoint {
        logger.info("tracing: exporting spans over OTLP/HTTP", metadata: ["endpoint": "\(endpoint)", "sample_ratio": "\(observability.sampleRatio)"])
    }
    let telemetry = GatewayTelemetry(metrics: metrics, tracing: pipeline?.tracing ?? .disabled, accessLog: observability.accessLog)
    return (telemetry, pipeline?.service)
}

/// On SIGHUP, re-reads the configuration file and applies what can change without a restart: the log level,
/// the backends (added, removed, replaced blue-green: `Gateway.reload`), tool naming and validation, and access
/// rules. Listener, TLS files (reloaded on their own), auth, sessions and limits need a restart and are named in
/// the log line. The file is checked first: an invalid one changes nothing, and its problems are logged. Each
/// outcome is counted in `mcp_config_reloads_total{outcome}` (ok, invalid, failed: a new backend never came up).
struct ConfigReloadService: Service {
    let path: String
    let gateway: Gateway
    let levelControl: LogLevelControl
    let metrics: GatewayMetrics
    let reloads: AsyncStream<Void>
    let logger: Logger

    func run() async throws {
        for await _ in reloads.cancelOnGracefulShutdown() {
            do {
                let configuration = try ConfigLoader().load(path: path)
                let level = Logger.Level(configName: configuration.observability.logLevel.rawValue)
                let previous = levelControl.level
                levelControl.set(level)
                let report = await gateway.reload(to: configuration)
                metrics.configReloads(outcome: report.succeeded ? "ok" : "failed").increment()
                var metadata: Logger.Metadata = [
                    "path": "\(path)", "log_level": "\(level)", "previous_log_level": "\(previous)", "backends": "\(report)",
                ]
                if !report.plan.needsRestart.isEmpty {
                    metadata["needs_restart"] = "\(report.plan.needsRestart.joined(separator: ", "))"
                }
                if report.succeeded {
                    logger.notice("configuration reloaded", metadata: metadata)
                } else {
                    logger.error("configuration reloaded in part: a new backend did not come up and the running one keeps serving", metadata: metadata)
                }
            } catch {
                // Unreadable or invalid: `ConfigLoader` reports either as problems naming the file and key.
                metrics.configReloads(outcome: "invalid").increment()
                logger.error("configuration reload refused: the file is invalid; the running configuration stays", metadata: [
                    "path": "\(path)", "error": "\(error.problems.map(\.description).joined(separator: "; "))",
                ])
            }
        }
    }
}
