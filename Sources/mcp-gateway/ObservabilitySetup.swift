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

/// On SIGHUP, re-reads the configuration file and applies what can change without a restart: the log level.
/// The file is checked first: an invalid one changes nothing, and its problems are logged. Each outcome is
/// counted in `mcp_config_reloads_total{outcome}`.
struct ConfigReloadService: Service {
    let path: String
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
                metrics.configReloads(outcome: "ok").increment()
                logger.notice("configuration reloaded", metadata: ["path": "\(path)", "log_level": "\(level)", "previous_log_level": "\(previous)"])
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
