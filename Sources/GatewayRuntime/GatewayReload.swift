import GatewayBackends
import GatewayConfig
import GatewayCore
import GatewayObservability
import GatewayPlugins
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// What serves requests at one moment: the configuration, its backends, the router built from it and the
/// catalog. Requests read it once, under one lock; a reload swaps it whole, so a request never sees half of
/// an old configuration and half of a new one.
struct Routing: Sendable {
    var configuration: GatewayConfiguration
    /// In configuration order, as built (what supervision, health and `check --probe` see).
    var backends: [any Backend]
    /// What calls go to: the backends behind their concurrency gates and breakers.
    var byName: [String: any Backend]
    var router: Router
    var catalog: Catalog
    /// Calls in flight per backend of this generation (`mcp_backend_inflight`; a reload drains on them).
    var counters: [String: CallCounter]

    init(configuration: GatewayConfiguration, backends: [any Backend], gate: (any Backend) -> any Backend, router: Router, catalog: Catalog) {
        self.configuration = configuration
        self.backends = backends
        self.byName = Dictionary(uniqueKeysWithValues: backends.map { ($0.name, gate($0)) })
        self.router = router
        self.catalog = catalog
        self.counters = Dictionary(uniqueKeysWithValues: backends.map { ($0.name, CallCounter()) })
    }
}

/// The outcome of one reload, for the log line and `mcp_config_reloads_total{outcome}`.
public struct ReloadReport: Sendable, CustomStringConvertible {
    public var plan: ReloadPlan
    /// Backends whose new version did not come up; the old one keeps serving (or, if added, it is not added).
    public var failed: [String: String] = [:]

    public var succeeded: Bool { failed.isEmpty }

    public var description: String {
        var parts: [String] = []
        if !plan.added.isEmpty { parts.append("added \(plan.added.joined(separator: ", "))") }
        if !plan.removed.isEmpty { parts.append("removed \(plan.removed.joined(separator: ", "))") }
        if !plan.replaced.isEmpty { parts.append("replaced \(plan.replaced.joined(separator: ", "))") }
        if !plan.reconfigured.isEmpty { parts.append("reconfigured \(plan.reconfigured.joined(separator: ", "))") }
        if !plan.unchanged.isEmpty { parts.append("unchanged \(plan.unchanged.joined(separator: ", "))") }
        for (name, why) in failed.sorted(by: { $0.key < $1.key }) { parts.append("\(name) failed: \(why)") }
        return parts.joined(separator: "; ")
    }
}

extension Gateway {
    /// Builds one backend from its configuration.
    static func makeBackend(
        _ backend: BackendConfig, configuration: GatewayConfiguration, eventLoopGroup: any EventLoopGroup, logger: Logger,
        observer: any BackendObserver, metrics: GatewayMetrics? = nil
    ) throws -> any Backend {
        var backendLogger = logger
        backendLogger[metadataKey: "backend"] = "\(backend.name)"
        let grace = min(configuration.server.shutdownGrace, .seconds(5))
        switch backend.kind {
        case .plugin(let pluginName):
            guard let plugin = BuiltinPlugins.make(pluginName) else {
                throw GatewayStartupError("backends.\(backend.name).plugin: unknown plugin \"\(pluginName)\" (available: \(BuiltinPlugins.names.joined(separator: ", ")))")
            }
            return PluginBackend(name: backend.name, plugin: plugin, callTimeout: backend.callTimeout, eventLoopGroup: eventLoopGroup)
        case .stdio(let stdio):
            switch stdio.isolation {
            case .shared where !stdio.versions.isEmpty:
                // `versions`: a weighted split with automatic canary rollback (issue 7, item 7).
                return CanaryBackend(
                    name: backend.name, config: stdio, callTimeout: backend.callTimeout, eventLoopGroup: eventLoopGroup,
                    logger: backendLogger, observer: observer, metrics: metrics, shutdownGrace: grace
                )
            case .shared:
                return SharedStdioBackend(
                    name: backend.name, config: stdio, callTimeout: backend.callTimeout, eventLoop: eventLoopGroup.next(),
                    logger: backendLogger, observer: observer, shutdownGrace: grace
                )
            case .session:
                return SessionStdioBackend(
                    name: backend.name, config: stdio, callTimeout: backend.callTimeout, eventLoop: eventLoopGroup.next(),
                    logger: backendLogger, observer: observer, shutdownGrace: grace
                )
            }
        case .http(let http):
            return RemoteHTTPBackend(
                name: backend.name, config: http, callTimeout: backend.callTimeout, eventLoopGroup: eventLoopGroup,
                logger: backendLogger, observer: observer
            )
        }
    }

    /// The router for a configuration: argument validation, then the resilience guards, under the access policy.
    static func makeRouter(
        _ configuration: GatewayConfiguration, stats: GatewayStats, metrics: GatewayMetrics, resilience: Resilience, logger: Logger
    ) -> Router {
        var accessRules: [String: BackendAccess] = [:]
        for backend in configuration.backends {
            accessRules[backend.name] = BackendAccess(scopes: backend.access.scopes, tenants: backend.access.tenants, principals: backend.access.principals)
        }
        return Router(guards: [
            ArgumentValidation(mode: configuration.tools.validation) { tool, problems in
                stats.recordValidationFailure(tool: tool.exposedName)
                metrics.tool(tool.exposedName, backend: tool.backend).validationFailures.increment()
                logger.info("tool call refused: invalid arguments", metadata: [
                    "tool": "\(tool.exposedName)", "backend": "\(tool.backend)", "outcome": "rejected",
                    "problems": "\(problems.map { "\($0.path.isEmpty ? "(arguments)" : $0.path): \($0.message)" }.joined(separator: "; "))",
                ])
            },
        ] + resilience.guards(applying: configuration), access: AccessPolicy(rules: accessRules), pagination: .configured(configuration))
    }

    /// Applies a new, already validated configuration (SIGHUP; issue 7, "Hot reload"): added backends start,
    /// removed ones drain and stop, changed ones are replaced blue-green (the new one up and handshaken before it
    /// takes calls and the old one drains), unchanged ones are untouched, and live sessions whose tool list
    /// changed get `notifications/tools/list_changed`. A replacement that does not come up within `startWait`
    /// is abandoned and the old backend keeps serving. Sections that need a restart are reported, not applied.
    public func reload(to new: GatewayConfiguration, startWait: Duration = .seconds(30)) async -> ReloadReport {
        let old = configuration
        var report = ReloadReport(plan: ReloadPlan(from: old, to: new))
        let plan = report.plan
        // 1. Build and start the new backends (added and replacements) while the old ones serve.
        var fresh: [String: any Backend] = [:]
        for name in plan.added + plan.replaced {
            guard let config = new.backend(named: name) else { continue }
            do {
                fresh[name] = try Self.makeBackend(config, configuration: new, eventLoopGroup: eventLoopGroup, logger: logger, observer: observerRelay, metrics: telemetry.metrics)
            } catch {
                report.failed[name] = "\(error)"
            }
        }
        let startFailures = await Self.startAll(Array(fresh.values), wait: startWait, on: eventLoopGroup.next())
        for (name, why) in startFailures where plan.replaced.contains(name) {
            // Blue-green: a replacement that is not ready never takes traffic; the old version stays.
            report.failed[name] = why
            if let backend = fresh.removeValue(forKey: name) { try? await backend.shutdown().get() }
        }
        for (name, why) in startFailures where plan.added.contains(name) {
            // An added backend that is slow to start is kept: its supervisor retries, as at startup.
            logger.warning("reload: added backend not ready yet; it will be retried", metadata: ["backend": "\(name)", "error": "\(why)"])
        }
        // 2. Swap the routing: new order from the new file, old objects where unchanged or not replaced.
        let current = routing.withLockedValue { $0 }
        var backends: [any Backend] = []
        for config in new.backends {
            if let created = fresh[config.name] {
                backends.append(created)
            } else if let kept = current.backends.first(where: { $0.name == config.name }), report.failed[config.name] == nil || plan.replaced.contains(config.name) {
                backends.append(kept)
            }
        }
        var effective = new
        effective.backends = new.backends.filter { config in backends.contains { $0.name == config.name } }
        for name in plan.replaced where report.failed[name] != nil {
            // The old backend serves on under its old settings.
            if let index = effective.backends.firstIndex(where: { $0.name == name }), let previous = old.backend(named: name) {
                effective.backends[index] = previous
            }
        }
        let router = Self.makeRouter(effective, stats: stats, metrics: telemetry.metrics, resilience: resilience, logger: logger)
        let retired: [(backend: any Backend, counter: CallCounter?)] = current.backends.compactMap { backend in
            let stays = backends.contains { $0 === backend }
            return stays ? nil : (backend, current.counters[backend.name])
        }
        routing.withLockedValue { state in
            var next = Routing(configuration: effective, backends: backends, gate: resilience.gated, router: router, catalog: state.catalog)
            // Backends that stay keep their in-flight counters, so draining and the in-flight gauge stay right.
            for backend in backends where current.backends.contains(where: { $0 === backend }) {
                if let counter = current.counters[backend.name] { next.counters[backend.name] = counter }
            }
            state = next
        }
        retiring.withLockedValue { retiring in
            for entry in retired { if let counter = entry.counter { retiring[ObjectIdentifier(counter)] = counter } }
        }
        rebuildCatalog()
        // 3. Drain and stop what left: its calls in flight finish (up to shutdown_grace), then the processes stop
        //    in the spec's order.
        let grace = new.server.shutdownGrace
        for entry in retired {
            let deadline = ContinuousClock.now + grace
            while (entry.counter?.value ?? 0) > 0, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
            try? await entry.backend.shutdown().get()
            if let counter = entry.counter { _ = retiring.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(counter)) } }
            logger.info("reload: backend stopped", metadata: ["backend": "\(entry.backend.name)"])
        }
        return report
    }

    /// Starts backends and waits up to `wait`; returns, per backend not ready by then, why.
    static func startAll(_ backends: [any Backend], wait: Duration, on loop: any EventLoop) async -> [String: String] {
        guard !backends.isEmpty else { return [:] }
        let failures = NIOLockedValueBox<[String: String]>([:])
        let starts = backends.map { backend in
            backend.start().flatMapErrorThrowing { error in failures.withLockedValue { $0[backend.name] = "\(error)" } }
        }
        let timeout = loop.makePromise(of: Void.self)
        loop.scheduleTask(in: .nanoseconds(wait.nanoseconds)) { timeout.succeed() }
        EventLoopFuture.andAllComplete(starts, on: loop).whenComplete { _ in timeout.succeed() }
        try? await timeout.futureResult.get()
        var result = failures.withLockedValue { $0 }
        for backend in backends where !backend.isReady && result[backend.name] == nil {
            result[backend.name] = "not ready within \(DurationFormat.describe(wait))"
        }
        return result
    }

    /// `notifications/tools/list_changed` to every live session with a stream to receive it (the GET stream,
    /// or the stdio pipe): the gateway emits it itself whenever its merged list changes, so it declares
    /// `tools.listChanged` (2025-11-25/server/tools#list-changed-notification).
    func notifyToolsChanged() {
        let message = JSONRPCNotification(method: "notifications/tools/list_changed", params: nil).serialized()
        var notified = 0
        for session in sessions.withLockedValue({ $0.entries.values.map(\.attachment) }) where session.sendToClient(message) { notified += 1 }
        if notified > 0 { logger.info("tools/list_changed sent", metadata: ["sessions": "\(notified)"]) }
    }
}
