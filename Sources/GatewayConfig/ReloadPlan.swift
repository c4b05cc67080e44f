/// What a configuration reload changes, decided before anything is touched (issue 7, "Hot reload").
///
/// Backends are compared by what defines their processes and calls (`kind`, `call_timeout`, concurrency,
/// breaker): a difference there replaces the backend blue-green (the new one up and handshaken before the old
/// one drains). A difference only in what the catalog and the access policy read (`tools.include/exclude`,
/// `access`) needs no new process. Sections the running daemon cannot swap (listener, TLS, auth, sessions,
/// limits) are reported as needing a restart; the rest of the new file still applies.
public struct ReloadPlan: Sendable, Equatable {
    public var added: [String] = []
    public var removed: [String] = []
    /// Replaced blue-green.
    public var replaced: [String] = []
    /// Same processes; catalog or access rules changed.
    public var reconfigured: [String] = []
    public var unchanged: [String] = []
    /// Top-level sections that changed but apply only at the next start.
    public var needsRestart: [String] = []

    public init(from old: GatewayConfiguration, to new: GatewayConfiguration) {
        let oldByName = Dictionary(uniqueKeysWithValues: old.backends.map { ($0.name, $0) })
        let newNames = Set(new.backends.map(\.name))
        for backend in new.backends {
            guard let previous = oldByName[backend.name] else {
                added.append(backend.name)
                continue
            }
            if !Self.sameProcesses(previous, backend) {
                replaced.append(backend.name)
            } else if !Self.sameRouting(previous, backend) {
                reconfigured.append(backend.name)
            } else {
                unchanged.append(backend.name)
            }
        }
        removed = old.backends.map(\.name).filter { !newNames.contains($0) }
        if old.server != new.server { needsRestart.append("server") }
        if old.sessions != new.sessions { needsRestart.append("sessions") }
        if old.auth != new.auth { needsRestart.append("auth") }
        if old.limits != new.limits { needsRestart.append("limits") }
        if old.observability.restartOnly != new.observability.restartOnly { needsRestart.append("observability (except log.level)") }
    }

    /// True when some backend or the catalog's naming changes (the catalog must be rebuilt).
    public var changesBackends: Bool { !added.isEmpty || !removed.isEmpty || !replaced.isEmpty || !reconfigured.isEmpty }

    static func sameProcesses(_ a: BackendConfig, _ b: BackendConfig) -> Bool {
        a.kind == b.kind && a.callTimeout == b.callTimeout && a.maxConcurrency == b.maxConcurrency && a.queue == b.queue
            && a.circuitBreaker == b.circuitBreaker
    }

    static func sameRouting(_ a: BackendConfig, _ b: BackendConfig) -> Bool {
        a.access == b.access && a.include == b.include && a.exclude == b.exclude
    }
}

extension ObservabilityConfig {
    /// The settings a running daemon keeps until restart: everything but `log.level`, which SIGHUP applies.
    var restartOnly: [String] {
        [
            logFormat.rawValue, String(accessLog), String(metricsEnabled), metricsPath, otlpEndpoint ?? "", String(sampleRatio), serviceName,
            auditPath ?? "", auditRedact.joined(separator: ","), String(auditMaxBytes), String(auditKeep), auditOnFailure.rawValue,
        ]
    }
}
