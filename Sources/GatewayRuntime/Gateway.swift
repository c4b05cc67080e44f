import Foundation
import GatewayBackends
import GatewayConfig
import GatewayCore
import GatewayObservability
import GatewayPlugins
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// The router's I/O shell, shared by every transport: it owns the backends, the catalog snapshot and the
/// per-replica session table, and performs what the pure core decides (ARCHITECTURE.md, "One request, end to
/// end"). Transports hand it parsed JSON-RPC messages with a typed context and a `ReplyChannel`.
public final class Gateway: BackendObserver, Sendable {
    /// The configuration, backends, router and catalog serving requests now, swapped whole by a reload.
    let routing: NIOLockedValueBox<Routing>
    /// Backends taken out by a reload, still finishing their calls before they stop.
    let retiring = NIOLockedValueBox<[ObjectIdentifier: CallCounter]>([:])
    let sessions: NIOLockedValueBox<SessionTable<SessionState>>
    private let sealer: any SessionSealing
    let logger: Logger
    let eventLoopGroup: any EventLoopGroup
    private let sweeper = NIOLockedValueBox<RepeatedTask?>(nil)
    let draining = NIOLockedValueBox(false)
    let observerRelay: ObserverRelay
    /// Which sessions subscribed to which resource (GatewayResources.swift).
    let subscriptions = ResourceSubscriptions()
    /// Counters for what the metrics layer will export (validation failures, output-schema mismatches).
    public let stats: GatewayStats
    /// Rate limits, `max_inflight`, circuit breakers and backend concurrency (issue 7); its accessors feed /metrics.
    public let resilience: Resilience
    /// The audit log (`observability.audit`), nil when no path is configured.
    private let auditTrail: AuditTrail?
    /// Metrics, spans and the access log (issue 6).
    public let telemetry: GatewayTelemetry
    /// Calls dispatched to each backend and not yet answered, current and retiring generations alike.
    var callsInFlight: [ObjectIdentifier: CallCounter] {
        var all = retiring.withLockedValue { $0 }
        for counter in routing.withLockedValue({ $0.counters.values }) { all[ObjectIdentifier(counter)] = counter }
        return all
    }

    public init(
        configuration: GatewayConfiguration, sealer: any SessionSealing, eventLoopGroup: any EventLoopGroup, logger: Logger,
        telemetry: GatewayTelemetry = GatewayTelemetry()
    ) throws {
        self.telemetry = telemetry
        let metrics = telemetry.metrics
        self.sealer = sealer
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        let stats = GatewayStats()
        self.stats = stats
        let resilience = Resilience(configuration: configuration, logger: logger)
        self.resilience = resilience
        self.auditTrail = AuditTrail(configuration: configuration.observability, logger: logger)
        self.sessions = NIOLockedValueBox(SessionTable(capacity: configuration.sessions.max, idleTimeout: configuration.sessions.idleTimeout))
        let observer = ObserverRelay()
        var built: [any Backend] = []
        for backend in configuration.backends {
            built.append(try Self.makeBackend(backend, configuration: configuration, eventLoopGroup: eventLoopGroup, logger: logger, observer: observer, metrics: metrics))
        }
        self.routing = NIOLockedValueBox(Routing(
            configuration: configuration, backends: built, gate: resilience.gated,
            router: Self.makeRouter(configuration, stats: stats, metrics: metrics, resilience: resilience, logger: logger),
            catalog: Catalog(separator: configuration.tools.separator, prefixMode: configuration.tools.prefix)
        ))
        self.observerRelay = observer
        observer.target = self
        registerScrapeGauges()
    }

    /// Gauges read from live state when Prometheus scrapes, so serving requests never updates them.
    private func registerScrapeGauges() {
        let auditSeen = NIOLockedValueBox((written: 0, failed: 0))
        let resilienceSeen = NIOLockedValueBox((limited: [String: Int](), shed: 0))
        telemetry.metrics.onScrape { [weak self] metrics in
            guard let self else { return }
            let load = self.resilience.backendLoad
            let circuits = self.resilience.circuitStates
            for backend in self.backends {
                let gauges = metrics.backend(backend.name)
                gauges.up.set(to: backend.isReady ? 1 : 0)
                let counted = load[backend.name]
                gauges.inflight.set(to: Double(counted?.inflight ?? self.routing.withLockedValue { $0.counters[backend.name]?.value } ?? 0))
                gauges.queueDepth.set(to: Double(counted?.queued ?? 0))
                gauges.circuitState.set(to: Double(circuits[backend.name] ?? 0))
            }
            let refusals = (limited: self.resilience.rateLimitedTotals, shed: self.resilience.shedTotal)
            let delta = resilienceSeen.withLockedValue { seen -> (limited: [String: Int], shed: Int) in
                defer { seen = refusals }
                return (refusals.limited.mapValues { $0 } .reduce(into: [:]) { $0[$1.key] = $1.value - (seen.limited[$1.key] ?? 0) }, refusals.shed - seen.shed)
            }
            for (scope, count) in delta.limited where count > 0 { metrics.rateLimited(scope: scope).increment(by: Int64(count)) }
            if delta.shed > 0 { metrics.requestsShed.increment(by: Int64(delta.shed)) }
            if let sink = self.auditTrail?.sink {
                let counters = sink.snapshot
                let delta = auditSeen.withLockedValue { seen -> (Int, Int) in
                    defer { seen = (counters.written, counters.failed) }
                    return (counters.written - seen.written, counters.failed - seen.failed)
                }
                if delta.0 > 0 { metrics.auditRecords.increment(by: Int64(delta.0)) }
                if delta.1 > 0 { metrics.auditWriteFailures.increment(by: Int64(delta.1)) }
            }
        }
    }

    // MARK: - Lifecycle

    /// Starts every backend and waits (up to `wait`) for them to be ready, so the first `tools/list` is complete.
    /// A backend that cannot start is logged and retried by its supervisor; the gateway serves the others.
    /// Returns, per backend that was not ready in time, why.
    @discardableResult
    public func start(wait: Duration = .seconds(30)) async -> [String: String] {
        auditTrail?.start()
        let loop = eventLoopGroup.next()
        let failures = NIOLockedValueBox<[String: String]>([:])
        let starts = backends.map { backend in
            backend.start().flatMapErrorThrowing { error in
                failures.withLockedValue { $0[backend.name] = "\(error)" }
                self.logger.error("backend did not start; it will be retried", metadata: ["backend": "\(backend.name)", "error": "\(error)"])
            }
        }
        let all = EventLoopFuture.andAllComplete(starts, on: loop)
        let timeout = loop.makePromise(of: Void.self)
        loop.scheduleTask(in: .nanoseconds(wait.nanoseconds)) { timeout.succeed() }
        all.whenComplete { _ in timeout.succeed() }
        try? await timeout.futureResult.get()
        rebuildCatalog()
        let interval = TimeAmount.milliseconds(min(1000, max(50, configuration.sessions.idleTimeout.nanoseconds / 4_000_000)))
        let task = eventLoopGroup.next().scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in self.expireIdleSessions() }
        sweeper.withLockedValue { $0 = task }
        var result = failures.withLockedValue { $0 }
        for backend in backends where !backend.isReady && result[backend.name] == nil {
            result[backend.name] = "not ready within \(DurationFormat.describe(wait))"
        }
        return result
    }

    /// Stops taking sessions, ends every session and stops every backend (children reaped).
    public func shutdown() async {
        draining.withLockedValue { $0 = true }
        sweeper.withLockedValue { $0?.cancel() }
        let now = Self.now()
        let ended = sessions.withLockedValue { table -> [SessionState] in
            let all = table.entries.map(\.key)
            return all.compactMap { table.end($0, now: now) }
        }
        for session in ended { session.end() }
        // All at once: each stops in the spec's order on its own, and the slowest bounds the whole shutdown.
        await withTaskGroup(of: Void.self) { group in
            for backend in backends { group.addTask { try? await backend.shutdown().get() } }
        }
        await auditTrail?.close()
    }

    public var isDraining: Bool { draining.withLockedValue { $0 } }

    /// Ready when not draining and enough backends can take calls (`server.readiness.quorum`; default: one).
    public var isReady: Bool {
        guard !isDraining else { return false }
        let current = backends
        return configuration.server.readinessQuorum.isMet(ready: current.count { $0.isReady }, configured: current.count)
    }

    public var backendStatus: [(name: String, ready: Bool)] { backends.map { ($0.name, $0.isReady) } }

    /// Each backend's state for `/readyz`: ready, starting, restarting, crash_loop or unhealthy.
    public var backendStates: [(name: String, state: BackendHealthState)] { backends.map { ($0.name, $0.healthState) } }

    public var catalog: Catalog { routing.withLockedValue { $0.catalog } }

    /// The configuration in force (the last one a reload applied).
    public var configuration: GatewayConfiguration { routing.withLockedValue { $0.configuration } }

    /// The backends serving calls, in configuration order.
    public var backends: [any Backend] { routing.withLockedValue { $0.backends } }

    public var sessionCount: Int { sessions.withLockedValue { $0.count } }

    public func backendToolsChanged(_ backend: String) {
        rebuildCatalog()
    }

    public func backendRestarting(_ backend: String) {
        telemetry.metrics.backend(backend).restarts.increment()
    }

    /// Rebuilds the catalog from every backend's current tool list; schemas are compiled here, once per refresh.
    func rebuildCatalog() {
        let (configuration, backends) = routing.withLockedValue { ($0.configuration, $0.backends) }
        let catalog = Self.buildCatalog(configuration: configuration, backends: backends)
        let previous = routing.withLockedValue { current -> Catalog in
            defer { current.catalog = catalog }
            return current.catalog
        }
        if previous.toolsListResult != catalog.toolsListResult, !previous.tools.isEmpty || !catalog.tools.isEmpty {
            notifyToolsChanged()
        }
        notifyFeatureListsChanged(from: previous.features, to: catalog.features)
        let previousProblems = Set(previous.problems.map(\.description))
        for problem in catalog.problems where !previousProblems.contains(problem.description) {
            logger.log(level: problem.severity == .error ? .error : .notice, "catalog problem", metadata: [
                "backend": "\(problem.backend)", "tool": "\(problem.tool ?? "")", "error": "\(problem.message)",
            ])
        }
        let previousRenames = Set(previous.renamed.map(\.exposed))
        for rename in catalog.renamed where !previousRenames.contains(rename.exposed) {
            logger.notice("tool name shortened or sanitised to fit 64 characters of [A-Za-z0-9_.-]", metadata: [
                "tool": "\(rename.exposed)", "backend": "\(rename.backend)", "original": "\(rename.original)",
            ])
        }
        logger.info("catalog refreshed", metadata: ["tools": "\(catalog.tools.count)"])
    }

    /// The catalog the configuration and the backends' tool lists give (also used by `check --probe`).
    public static func buildCatalog(configuration: GatewayConfiguration, backends: [any Backend]) -> Catalog {
        let sources = backends.map { backend -> CatalogSource in
            let config = configuration.backend(named: backend.name)
            return CatalogSource(backend: backend.name, tools: backend.tools, include: config?.include ?? ["*"], exclude: config?.exclude ?? [])
        }
        var catalog = Catalog(separator: configuration.tools.separator, prefixMode: configuration.tools.prefix, sources: sources)
        catalog.attach(features: featureCatalog(configuration: configuration, backends: backends))
        return catalog
    }

    // MARK: - Sessions

    public enum InitializeOutcome {
        case created(SessionState, response: [UInt8])
        case rejected(response: [UInt8])
        case full(retryAfterSeconds: Int)
        case draining
    }

    /// `initialize` mints a session: the negotiated version and the client's capabilities are sealed into its
    /// id together with the principal (MUST items 1-3, 16).
    public func initialize(_ request: JSONRPCRequest, principal: Principal, transport: String = "streamable_http", trace: TraceLink = .none) -> InitializeOutcome {
        let metrics = telemetry.metrics
        let span = telemetry.tracing.startSpan("initialize", kind: .server, parent: trace)
        span?.set("mcp.method.name", "initialize")
        defer { span?.end() }
        guard !isDraining else {
            span?.fail("the gateway is draining")
            metrics.handshakes(outcome: "rejected").increment()
            return .draining
        }
        let negotiated: Lifecycle.Negotiated
        switch Lifecycle.negotiate(
            request.params, serverName: GatewayVersion.name, serverVersion: GatewayVersion.version, capabilities: Router.serverCapabilities(for: catalog)
        ) {
        case .success(let value): negotiated = value
        case .failure(let error):
            span?.fail(error.message)
            metrics.handshakes(outcome: "error").increment()
            metrics.jsonrpcError(code: error.code, method: "initialize")
            return .rejected(response: JSONRPCEncoder.error(id: request.id, error))
        }
        let claims = SessionClaims(
            principal: principal.id, protocolVersion: negotiated.version, clientCapabilities: negotiated.clientCapabilities,
            clientName: negotiated.clientName, issuedAt: Int64(Date().timeIntervalSince1970)
        )
        let id = sealer.seal(claims)
        let session = SessionState(id: id, claims: claims, transport: transport, replayBuffer: configuration.sessions.replayBuffer)
        let admission = sessions.withLockedValue { $0.admit(id: id, claims: claims, attachment: session, now: Self.now()) }
        switch admission {
        case .full(let retryAfter):
            logger.warning("session refused: at sessions.max", metadata: ["max": "\(configuration.sessions.max)"])
            metrics.handshakes(outcome: "rejected").increment()
            span?.fail("at sessions.max")
            return .full(retryAfterSeconds: retryAfter)
        case .admitted(let evicted):
            release(evicted.map(\.attachment), reason: "evicted to make room (sessions.max)")
        }
        metrics.handshakes(outcome: "ok").increment()
        sessionStarted(session)
        span?.set("mcp.session.id", session.logID)
        var metadata: Logger.Metadata = [
            "session": "\(session.logID)", "principal": "\(principal.id)", "protocol_version": "\(negotiated.version.rawValue)",
            "client": "\(negotiated.clientName)", "method": "initialize", "outcome": "ok",
        ]
        if let traceID = (span?.link ?? trace).traceID { metadata["trace_id"] = "\(traceID)" }
        if let spanID = span?.spanID { metadata["span_id"] = "\(spanID)" }
        logger.info("session created", metadata: metadata)
        return .created(session, response: JSONRPCEncoder.response(id: request.id, result: negotiated.result))
    }

    public enum SessionLookup {
        case found(SessionState)
        case notFound
        case full(retryAfterSeconds: Int)
    }

    /// Finds the session an id names, for this principal. Unknown here but validly sealed: rebuilt from its claims
    /// (another replica's session). Tampered, foreign-key, expired, ended, or sealed for another principal: not
    /// found, indistinguishably (SBP-2025-11-25#session-hijacking, MUST item 33).
    public func lookupSession(id: String, principal: Principal) -> SessionLookup {
        let now = Self.now()
        if let live = sessions.withLockedValue({ table -> SessionState? in
            guard let entry = table.entries[id] else { return nil }
            table.adjustBusy(id: id, by: 0, now: now)
            return entry.attachment
        }) {
            guard live.claims.principal == principal.id else {
                telemetry.metrics.sessionFailures(reason: "forbidden").increment()
                return .notFound
            }
            guard Int64(Date().timeIntervalSince1970) - live.claims.issuedAt <= configuration.sessions.maxLifetime.components.seconds else {
                endSession(live)
                return .notFound
            }
            return .found(live)
        }
        guard let claims = sealer.open(id) else {
            telemetry.metrics.sessionFailures(reason: "not_found").increment()
            return .notFound
        }
        guard claims.principal == principal.id else {
            telemetry.metrics.sessionFailures(reason: "forbidden").increment()
            return .notFound
        }
        let replayBuffer = configuration.sessions.replayBuffer
        let outcome = sessions.withLockedValue { table in
            table.lookup(id: id, claims: claims, now: now) { SessionState(id: id, claims: claims, replayBuffer: replayBuffer) }
        }
        switch outcome {
        case .live(let session): return .found(session)
        case .resumed(let session, let evicted):
            release(evicted.map(\.attachment), reason: "evicted to make room (sessions.max)")
            logger.info("session resumed from its sealed id", metadata: ["session": "\(session.logID)", "principal": "\(principal.id)"])
            sessionStarted(session)
            return .found(session)
        case .ended:
            telemetry.metrics.sessionFailures(reason: "not_found").increment()
            return .notFound
        case .full(let retryAfter): return .full(retryAfterSeconds: retryAfter)
        }
    }

    /// DELETE: the session ends here; its id is a 404 from now on (on this replica).
    public func endSession(_ session: SessionState) {
        let removed = sessions.withLockedValue { $0.end(session.id, now: Self.now()) }
        if let removed { release([removed], reason: "deleted by the client") }
    }

    /// A stream opened or closed, or a request began or ended: busy sessions are never idle.
    public func adjustBusy(_ session: SessionState, by delta: Int) {
        sessions.withLockedValue { $0.adjustBusy(id: session.id, by: delta, now: Self.now()) }
    }

    private func expireIdleSessions() {
        let expired = sessions.withLockedValue { $0.expire(now: Self.now()) }
        if !expired.isEmpty { release(expired.map(\.attachment), reason: "idle for sessions.idle_timeout") }
    }

    private func sessionStarted(_ session: SessionState) {
        telemetry.metrics.sessionsTotal(transport: session.transport).increment()
        telemetry.metrics.sessionsActive(transport: session.transport).increment()
    }

    private func release(_ ended: [SessionState], reason: String) {
        let now = Date().timeIntervalSince1970
        for session in ended {
            telemetry.metrics.sessionsActive(transport: session.transport).decrement()
            telemetry.metrics.sessionEnded(lifetime: .milliseconds(max(0, Int64((now - Double(session.claims.issuedAt)) * 1000))))
            session.end()
            for backend in backends { backend.sessionEnded(session.id) }
            dropSubscriptions(of: session.id)
            logger.info("session ended", metadata: ["session": "\(session.logID)", "reason": "\(reason)"])
        }
    }

    // MARK: - Messages

    /// Serves one request of a session. The answer goes to `reply`, on `eventLoop`.
    public func handleRequest(
        _ request: JSONRPCRequest, session: SessionState, principal: Principal, eventLoop: any EventLoop, reply: any ReplyChannel,
        trace: TraceLink = .none
    ) {
        let context = RequestContext(principal: principal, sessionID: session.id, protocolVersion: session.protocolVersion, traceParent: trace.traceParent?.description)
        let current = routing.withLockedValue { $0 }
        let catalog = current.catalog
        let started = NIODeadline.now()
        let observation = RequestObservation(telemetry: telemetry, logger: logger, request: request, session: session, principal: principal, trace: trace)
        let isToolCall = request.method == "tools/call"
        /// The exposed tool a refused `tools/call` named, when the catalog knows it (`unknown` otherwise).
        func resolveRefusedCall() {
            let tool = isToolCall ? request.params?["name"]?.stringValue.flatMap { catalog.tool(named: $0) } : nil
            observation.resolve(tool: tool?.exposedName, backend: tool?.backend)
        }
        let traceID = trace.traceID
        if let refusal = auditTrail?.refusal(for: request) {
            resolveRefusedCall()
            reply.sendResponse(JSONRPCEncoder.error(id: request.id, refusal))
            auditTrail?.recordRejected(request, catalog: catalog, context: context, started: started, traceID: traceID)
            observation.finish(isToolCall ? .rejected : .error, error: refusal)
            return
        }
        if request.method == "logging/setLevel" {
            observation.resolve(tool: nil, backend: nil)
            switch setLogLevel(request, session: session) {
            case .success(let value):
                reply.sendResponse(JSONRPCEncoder.response(id: request.id, result: value))
                observation.finish(.ok)
            case .failure(let error):
                reply.sendResponse(JSONRPCEncoder.error(id: request.id, error))
                observation.finish(.error, error: error)
            }
            return
        }
        switch current.router.route(request, catalog: catalog, context: context) {
        case .result(let value):
            resolveRefusedCall()
            reply.sendResponse(JSONRPCEncoder.response(id: request.id, result: value))
            auditTrail?.recordRejected(request, catalog: catalog, context: context, started: started, traceID: traceID)
            // A `tools/call` answered by the router itself is a guard's refusal as an `isError` result: invalid arguments.
            observation.finish(isToolCall ? .rejected : .ok, validationRefused: isToolCall)
        case .rawResult(let raw):
            observation.resolve(tool: nil, backend: nil)
            reply.sendResponse(JSONRPCEncoder.response(id: request.id, rawResult: raw))
            observation.finish(.ok)
        case .error(let error):
            resolveRefusedCall()
            reply.sendResponse(JSONRPCEncoder.error(id: request.id, error))
            auditTrail?.recordRejected(request, catalog: catalog, context: context, started: started, traceID: traceID)
            observation.finish(isToolCall ? .rejected : .error, error: error)
        case .insufficientScope(let scopes, let error):
            resolveRefusedCall()
            logger.info("tool call refused: insufficient scope", metadata: [
                "principal": "\(principal.subject)", "scopes_needed": "\(scopes.joined(separator: " "))", "outcome": "rejected",
            ])
            reply.sendInsufficientScope(scopes, response: JSONRPCEncoder.error(id: request.id, error))
            auditTrail?.recordRejected(request, catalog: catalog, context: context, started: started, traceID: traceID)
            observation.finish(.rejected, error: error)
        case .forward(let route):
            forward(route, request: request, session: session, context: context, current: current, eventLoop: eventLoop, reply: reply, observation: observation)
        case .callTool(let route):
            observation.resolve(tool: route.tool.exposedName, backend: route.tool.backend)
            guard let backend = current.byName[route.tool.backend] else {
                let error = catalog.unknownToolError(route.tool.exposedName)
                reply.sendResponse(JSONRPCEncoder.error(id: request.id, error))
                auditTrail?.recordRejected(request, catalog: catalog, context: context, started: started, traceID: traceID)
                observation.finish(.rejected, error: error)
                return
            }
            let outputCheck = route.tool.outputSchema.map { schema in
                OutputSchemaCheck(tool: route.tool, schema: schema) { [logger, stats, metrics = telemetry.metrics] tool, problems in
                    stats.recordOutputSchemaMismatch(tool: tool.exposedName)
                    metrics.tool(tool.exposedName, backend: tool.backend).outputSchemaMismatches.increment()
                    logger.warning("tool result does not match its outputSchema; passed on unchanged", metadata: [
                        "tool": "\(tool.exposedName)", "backend": "\(tool.backend)", "problems": "\(problems.prefix(3).joined(separator: "; "))",
                    ])
                }
            }
            let backendSpan = observation.startBackendSpan(backend: backend.name)
            let execution = ToolCallExecution(
                eventLoop: eventLoop, requestID: request.id, backendName: backend.name, method: request.method, reply: reply,
                session: session, timeout: backend.callTimeout, outputCheck: outputCheck,
                audit: auditTrail?.call(tool: route.tool.exposedName, backend: backend.name, arguments: .object(route.arguments), context: context, traceID: traceID),
                observation: observation, backendSpan: backendSpan
            ) { [weak self, session, counter = current.counters[backend.name]] execution in
                counter?.add(-1)
                session.unregister(execution.requestID, execution)
                self?.adjustBusy(session, by: -1)
            }
            guard session.register(request.id, execution) else {
                backendSpan?.end()
                let error = JSONRPCError.invalidRequest("request id \(request.id) is already in flight in this session; ids must not be reused")
                reply.sendResponse(JSONRPCEncoder.error(id: request.id, error))
                auditTrail?.recordRejected(request, catalog: catalog, context: context, started: started, traceID: traceID)
                observation.finish(.rejected, error: error)
                return
            }
            adjustBusy(session, by: 1)
            current.counters[backend.name]?.add(1)
            // The backend continues the trace from its call's span (or, with no tracer, from the client's context):
            // `params._meta.traceparent`/`tracestate`, the 2026-07-28 convention.
            var params = route.backendParams
            if let traceParent = backendSpan?.link.traceParent ?? observation.link.traceParent {
                params = traceParent.injected(into: params)
            }
            let relay = CallRelay(execution: execution, session: session, eventLoop: eventLoop, timeout: backend.callTimeout)
            let call = BackendCall(method: "tools/call", params: params, progressToken: route.progressToken, context: context, eventLoop: eventLoop, relay: relay)
            execution.start(backend: backend, call: call)
        }
    }

    /// Notifications from the client: `initialized` completes the handshake; `cancelled` is translated to the
    /// backend's request id and forwarded (MUST item 41); anything else is accepted and ignored.
    public func handleNotification(_ notification: JSONRPCNotification, session: SessionState) {
        switch notification.method {
        case "notifications/initialized":
            session.markInitialized()
        case "notifications/cancelled":
            guard let idValue = notification.params?["requestId"], let id = RequestID(idValue) else { return }
            let reason = notification.params?["reason"]?.stringValue ?? "cancelled by the client"
            session.execution(for: id)?.cancel(reason: reason)
        default:
            logger.debug("client notification ignored", metadata: ["method": "\(notification.method)", "session": "\(session.logID)"])
        }
    }

    /// A response from the client to a request the gateway relayed from a backend (sampling, elicitation,
    /// roots): routed back to that backend under its own id (ServerRequests.swift).
    public func handleResponse(_ response: JSONRPCResponse, session: SessionState) {
        routeClientResponse(response, session: session)
    }

    static func now() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds) }
}

public struct GatewayStartupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Breaks the reference cycle gateway → backend → observer.
final class ObserverRelay: BackendObserver, @unchecked Sendable {
    weak var target: Gateway?
    func backendToolsChanged(_ backend: String) { target?.backendToolsChanged(backend) }
    func backendRestarting(_ backend: String) { target?.backendRestarting(backend) }
}

/// A count shared by event loops (calls in flight at one backend).
final class CallCounter: Sendable {
    private let count = Atomic<Int>(0)
    var value: Int { count.load(ordering: .relaxed) }
    func add(_ delta: Int) { count.add(delta, ordering: .relaxed) }
}
