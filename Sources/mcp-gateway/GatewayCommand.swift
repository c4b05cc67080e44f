import ArgumentParser
import Foundation
import GatewayAuth
import GatewayConfig
import GatewayCore
import GatewayHTTP
import GatewayObservability
import GatewayRuntime
import GatewayStdio
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The `mcp-gateway` command line (CONTRACT.md, "Command line").
@main
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp-gateway",
        abstract: "A production gateway for the Model Context Protocol.",
        version: VersionCommand.text,
        subcommands: [ServeCommand.self, StdioCommand.self, CheckCommand.self, AuditCommand.self, VersionCommand.self, HealthCheckCommand.self],
        defaultSubcommand: nil
    )
}

/// Finds the config path: the flag, then `$MCP_GATEWAY_CONFIG`, then `config/gateway.yaml`.
func configPath(_ flag: String?) -> String {
    flag ?? ProcessInfo.processInfo.environment["MCP_GATEWAY_CONFIG"] ?? "config/gateway.yaml"
}

/// Loads the config or exits with status 2, printing every problem (`FILE:LINE: key.path: message`).
func loadConfigOrExit(_ path: String) throws -> GatewayConfiguration {
    do {
        return try ConfigLoader().load(path: path)
    } catch {
        FileHandle.standardError.write(Data((error.description + "\n").utf8))
        throw ExitCode(2)
    }
}

/// Logs as the configuration says: JSON lines (or text) on stderr, so stdout stays free for stdio mode.
func bootstrapLogging(_ configuration: GatewayConfiguration, control: LogLevelControl? = nil) -> Logger {
    let format: GatewayLogHandler.Format = configuration.observability.logFormat == .json ? .json : .text
    let level = Logger.Level(configName: configuration.observability.logLevel.rawValue)
    let service = configuration.observability.serviceName
    let control = control ?? LogLevelControl(level)
    LoggingSystem.bootstrap { label in GatewayLogHandler(label: label, format: format, level: level, service: service, control: control) }
    return Logger(label: "mcp-gateway")
}

/// The gateway on `group`, or exit 2 (a backend the configuration names cannot be built).
func makeGateway(
    _ configuration: GatewayConfiguration, group: MultiThreadedEventLoopGroup, logger: Logger, telemetry: GatewayTelemetry = GatewayTelemetry()
) async throws -> Gateway {
    let sealer = SessionSealer(keys: configuration.sessions.keys, maxLifetime: configuration.sessions.maxLifetime)
    do {
        return try Gateway(configuration: configuration, sealer: sealer, eventLoopGroup: group, logger: logger, telemetry: telemetry)
    } catch {
        logger.critical("cannot start", metadata: ["error": "\(error)"])
        try? await group.shutdownGracefully()
        throw ExitCode(2)
    }
}

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the gateway daemon.")

    @Option(name: .long, help: "Configuration file (default: $MCP_GATEWAY_CONFIG, then config/gateway.yaml).")
    var config: String?

    func run() async throws {
        let path = configPath(config)
        let configuration = try loadConfigOrExit(path)
        let levelControl = LogLevelControl(Logger.Level(configName: configuration.observability.logLevel.rawValue))
        let logger = bootstrapLogging(configuration, control: levelControl)
        for notice in configuration.notices { logger.warning("config notice", metadata: ["notice": "\(notice)"]) }
        if configuration.sessions.keys.isEmpty {
            logger.notice("sessions.keys is empty: session ids are sealed with a random per-process key, so sessions do not survive a restart or move between replicas")
        }
        // server.tls: the chain and key are parsed before anything starts, so a bad file exits 2 naming its key.
        var tls: TLSContextProvider?
        if let tlsConfiguration = configuration.server.tls {
            do {
                tls = try TLSContextProvider(configuration: tlsConfiguration, logger: logger)
            } catch {
                logger.critical("cannot start", metadata: ["error": "\(error)"])
                throw ExitCode(2)
            }
        }
        let threads = configuration.server.threads > 0 ? configuration.server.threads : System.coreCount
        let telemetry: GatewayTelemetry
        let tracingService: (any Service)?
        do {
            (telemetry, tracingService) = try makeTelemetry(configuration, logger: logger)
        } catch {
            logger.critical("cannot start: observability.tracing", metadata: ["error": "\(error)"])
            throw ExitCode(2)
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let gateway = try await makeGateway(configuration, group: group, logger: logger, telemetry: telemetry)
        let daemon = GatewayService(gateway: gateway, configuration: configuration, group: group, logger: logger, tls: tls)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: daemon)]
        // The span exporter stops after the daemon (services stop in reverse order), so the last spans are flushed.
        if let tracingService { services.insert(.init(service: tracingService), at: 0) }
        // SIGHUP is trapped here once (ReloadSignal.swift) and fanned out: the configuration reload (log level) and,
        // with TLS, the certificate reload. Listed first so it is the last to stop: a SIGHUP during the drain is
        // still caught, not fatal.
        let reloadSignal = await ReloadSignal.install(logger: logger)
        services.insert(.init(service: reloadSignal), at: 0)
        services.append(.init(service: ConfigReloadService(
            path: path, gateway: gateway, levelControl: levelControl, metrics: telemetry.metrics, reloads: reloadSignal.subscribe(), logger: logger
        )))
        if let tls {
            services.append(.init(service: TLSReloadService(provider: tls, reloads: reloadSignal.subscribe())))
        }
        // SIGTERM/SIGINT are trapped by ShutdownSignals rather than the group's `gracefulShutdownSignals`: the first
        // starts the graceful shutdown, a second exits at once (docs/operations.md, "Drain and restart").
        let shutdownSignals = await ShutdownSignals.install(logger: logger)
        let serviceGroup = ServiceGroup(configuration: .init(services: services, logger: logger))
        let signalWatch = Task { await shutdownSignals.run { await serviceGroup.triggerGracefulShutdown() } }
        defer { signalWatch.cancel() }
        do {
            try await serviceGroup.run()
        } catch {
            logger.critical("gateway failed", metadata: ["error": "\(error)"])
            try? await group.shutdownGracefully()
            throw ExitCode(1)
        }
        try? await group.shutdownGracefully()
    }
}

struct StdioCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stdio",
        abstract: "Serve one MCP client on stdin/stdout with the same routing (logs go to stderr only)."
    )

    @Option(name: .long, help: "Configuration file (default: $MCP_GATEWAY_CONFIG, then config/gateway.yaml).")
    var config: String?

    func run() async throws {
        let configuration = try loadConfigOrExit(configPath(config))
        // stdout carries only MCP messages (2025-11-25/basic/transports#stdio): every log line goes to stderr.
        let logger = bootstrapLogging(configuration)
        let telemetry: GatewayTelemetry
        let tracingService: (any Service)?
        do {
            (telemetry, tracingService) = try makeTelemetry(configuration, logger: logger)
        } catch {
            logger.critical("cannot start: observability.tracing", metadata: ["error": "\(error)"])
            throw ExitCode(2)
        }
        // The span exporter runs beside the transport and is flushed when the client goes away.
        let exporter = tracingService.map { ServiceGroup(configuration: .init(services: [.init(service: $0)], logger: logger)) }
        let exporterTask = exporter.map { group in Task { try? await group.run() } }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let gateway = try await makeGateway(configuration, group: group, logger: logger, telemetry: telemetry)
        await gateway.start()
        let transport = StdioTransport(gateway: gateway, logger: logger, maxJSONDepth: configuration.server.maxJSONDepth, maxLineLength: configuration.server.maxBody)
        var failed = false
        do {
            try await transport.run(eventLoopGroup: group)
        } catch {
            logger.critical("stdio transport failed", metadata: ["error": "\(error)"])
            failed = true
        }
        await gateway.shutdown()
        await exporter?.triggerGracefulShutdown()
        await exporterTask?.value
        try? await group.shutdownGracefully()
        if failed { throw ExitCode(1) }
    }
}

/// The daemon as one ServiceLifecycle service: start backends, serve HTTP, and on SIGTERM/SIGINT drain (new work
/// refused with 503, calls in flight finish within `server.shutdown_grace`, GET streams end with a `retry:` hint,
/// connections closed: `HTTPServer.drain`), then end sessions and stop backends in the spec's order (every child
/// reaped) before exiting 0.
struct GatewayService: Service, CustomStringConvertible {
    /// ServiceLifecycle logs its services by description: never the configuration (it holds secrets).
    var description: String { "GatewayService" }

    let gateway: Gateway
    let configuration: GatewayConfiguration
    let group: MultiThreadedEventLoopGroup
    let logger: Logger
    var tls: TLSContextProvider?

    func run() async throws {
        await gateway.start()
        let server = try await HTTPServer.start(gateway: gateway, configuration: configuration, eventLoopGroup: group, logger: logger, tls: tls)
        try? await gracefulShutdown()
        logger.info("shutting down")
        await server.drain(gateway: gateway, grace: configuration.server.shutdownGrace, logger: logger)
        await gateway.shutdown()
        logger.info("stopped")
    }
}

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a configuration file and print every problem.",
        discussion: "With --probe, also start each backend, handshake, list its tools, compile every schema, and report name collisions and shortened names."
    )

    @Option(name: .long, help: "Configuration file (default: $MCP_GATEWAY_CONFIG, then config/gateway.yaml).")
    var config: String?

    @Flag(name: .long, help: "Start every backend and check its tools (schemas, name collisions, shortened names).")
    var probe = false

    func run() async throws {
        let path = configPath(config)
        let configuration = try loadConfigOrExit(path)
        for notice in configuration.notices { print("\(notice) (notice)") }
        guard probe else {
            print("\(path): ok: \(configuration.backends.count) backend(s): \(configuration.backends.map { "\($0.name) (\($0.kind.typeName))" }.joined(separator: ", "))")
            return
        }
        if try await Probe.run(configuration: configuration, path: path) == false { throw ExitCode(2) }
    }
}

/// `check --probe`: the configuration's backends really started, their tools really listed.
enum Probe {
    static func run(configuration original: GatewayConfiguration, path: String) async throws -> Bool {
        // A probe serves no calls: it must not create or append to the audit log.
        var configuration = original
        configuration.observability.auditPath = nil
        // Backends' own logs (stderr lines, restarts) go to stderr; the report goes to stdout.
        LoggingSystem.bootstrap { label in GatewayLogHandler(label: label, format: .text, level: .warning) }
        let logger = Logger(label: "mcp-gateway.check")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let sealer = SessionSealer(keys: configuration.sessions.keys, maxLifetime: configuration.sessions.maxLifetime)
        let gateway: Gateway
        do {
            gateway = try Gateway(configuration: configuration, sealer: sealer, eventLoopGroup: group, logger: logger)
        } catch {
            print("\(path): \(error)")
            try? await group.shutdownGracefully()
            return false
        }
        let failures = await gateway.start(wait: .seconds(30))
        let catalog = gateway.catalog
        var errors = 0
        func location(_ backend: String) -> String {
            configuration.backend(named: backend)?.line.map { "\(path):\($0)" } ?? path
        }
        for backend in gateway.backends {
            if let failure = failures[backend.name] {
                print("\(location(backend.name)): backends.\(backend.name): error: did not start: \(failure)")
                errors += 1
            } else {
                print("\(location(backend.name)): backends.\(backend.name): ok: \(backend.kind), \(catalog.tools(of: backend.name).count) tool(s) exposed of \(backend.tools.count) listed")
            }
        }
        for problem in catalog.problems {
            let subject = problem.tool.map { "tool \"\($0)\": " } ?? ""
            print("\(location(problem.backend)): backends.\(problem.backend): \(problem.severity.rawValue): \(subject)\(problem.message)")
            if problem.severity == .error { errors += 1 }
        }
        for rename in catalog.renamed {
            print("\(location(rename.backend)): backends.\(rename.backend): notice: tool \"\(rename.original)\" is exposed as \"\(rename.exposed)\" (names are kept within 64 characters of [A-Za-z0-9_.-])")
        }
        print("\(path): \(errors == 0 ? "ok" : "\(errors) error(s)"): \(catalog.tools.count) tool(s) exposed from \(gateway.backends.count) backend(s)")
        await gateway.shutdown()
        try? await group.shutdownGracefully()
        return errors == 0
    }
}

struct VersionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version, git revision and supported MCP protocol versions.")

    static var text: String {
        "\(GatewayVersionInfo.name) \(GatewayVersionInfo.version) (revision \(GatewayVersionInfo.revision))\nMCP protocol versions: \(ProtocolVersion.supported.joined(separator: ", "))"
    }

    func run() async throws {
        print(Self.text)
    }
}
