import Foundation
import GatewayCore
import Yams

/// Reads a YAML file into a `GatewayConfiguration`, reporting every problem with its key path and line, and
/// a "did you mean" for unknown keys (CONTRACT.md: unknown keys are errors, never silently ignored).
public struct ConfigLoader: Sendable {
    public var interpolator: Interpolator

    public init(interpolator: Interpolator = Interpolator()) {
        self.interpolator = interpolator
    }

    public func load(path: String) throws(ConfigError) -> GatewayConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(problems: [ConfigProblem(file: path, line: nil, path: "", message: "cannot read the file: \(error.localizedDescription)")])
        }
        return try load(yaml: text, file: path)
    }

    public func load(yaml: String, file: String = "<config>") throws(ConfigError) -> GatewayConfiguration {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigError(problems: [Self.yamlProblem(error, file: file)])
        }
        var reader = NodeReader(file: file, interpolator: interpolator)
        var config = GatewayConfiguration()
        config.sourcePath = file
        if let root {
            reader.readRoot(root, into: &config)
        }
        if config.backends.isEmpty, reader.problems.isEmpty {
            reader.problems.append(ConfigProblem(file: file, line: root?.mark?.line, path: "backends", message: "no backends are configured; the gateway would serve no tools"))
        }
        guard reader.problems.isEmpty else { throw ConfigError(problems: reader.problems) }
        config.notices = reader.notices
        return config
    }

    static func yamlProblem(_ error: any Error, file: String) -> ConfigProblem {
        if let yamlError = error as? YamlError {
            switch yamlError {
            case .scanner(let context, let problem, let mark, _):
                return ConfigProblem(file: file, line: mark.line, path: "", message: "invalid YAML: \(problem)\(context.map { " \($0.text)" } ?? "")")
            case .parser(let context, let problem, let mark, _):
                return ConfigProblem(file: file, line: mark.line, path: "", message: "invalid YAML: \(problem)\(context.map { " \($0.text)" } ?? "")")
            case .composer(let context, let problem, let mark, _):
                return ConfigProblem(file: file, line: mark.line, path: "", message: "invalid YAML: \(problem)\(context.map { " \($0.text)" } ?? "")")
            default:
                return ConfigProblem(file: file, line: nil, path: "", message: "invalid YAML: \(yamlError)")
            }
        }
        return ConfigProblem(file: file, line: nil, path: "", message: "invalid YAML: \(error)")
    }
}

/// Walks the YAML node tree with the current key path, collecting problems instead of stopping at the first.
struct NodeReader {
    let file: String
    let interpolator: Interpolator
    var problems: [ConfigProblem] = []
    var notices: [ConfigProblem] = []

    init(file: String, interpolator: Interpolator) {
        self.file = file
        self.interpolator = interpolator
    }

    // MARK: - Sections

    mutating func readRoot(_ root: Node, into config: inout GatewayConfiguration) {
        guard let top = mapping(root, path: "", allowed: ["server", "sessions", "auth", "limits", "tools", "backends", "observability"]) else { return }
        if let node = top["server"] { readServer(node, into: &config.server) }
        if let node = top["sessions"] { readSessions(node, into: &config.sessions) }
        if let node = top["auth"] { readAuth(node, into: &config.auth) }
        if let node = top["limits"] { readLimits(node, into: &config.limits) }
        if let node = top["tools"] { readTools(node, into: &config.tools) }
        if let node = top["observability"] { readObservability(node, into: &config.observability) }
        if let node = top["backends"] { readBackends(node, separator: config.tools.separator, into: &config.backends) }
        if config.auth.mode == .none {
            for backend in config.backends where !(backend.access.scopes.isEmpty && backend.access.tenants.isEmpty && backend.access.principals.isEmpty) {
                problems.append(ConfigProblem(file: file, line: backend.line, path: "backends.\(backend.name).access", message: "access rules need authentication: set auth.mode (every caller is anonymous with auth.mode none)"))
            }
        }
    }

    mutating func readServer(_ node: Node, into server: inout ServerConfig) {
        let path = "server"
        guard let map = mapping(node, path: path, allowed: [
            "listen", "endpoint", "public_url", "legacy_sse", "sse_keepalive", "allowed_origins", "tls", "limits", "shutdown_grace", "threads",
            "allowed_ips", "trusted_proxies", "readiness",
        ]) else { return }
        if let value = map["listen"], let text = string(value, path: "server.listen") {
            if let address = Self.parseListen(text) { server.listen = address } else {
                problem(value, "server.listen", "\"\(text)\" is not host:port (for example \"127.0.0.1:8080\" or \"0.0.0.0:8080\"), port 0-65535")
            }
        }
        if let value = map["endpoint"], let text = string(value, path: "server.endpoint") {
            if text.hasPrefix("/"), !text.contains("?"), !text.contains(" ") { server.endpoint = text } else {
                problem(value, "server.endpoint", "\"\(text)\" must be a path starting with \"/\"")
            }
        }
        if let value = map["public_url"], let text = string(value, path: "server.public_url") {
            if text.hasPrefix("https://") || text.hasPrefix("http://") { server.publicURL = text } else {
                problem(value, "server.public_url", "\"\(text)\" must be an http(s) URL")
            }
        }
        if let value = map["legacy_sse"], let flag = bool(value, path: "server.legacy_sse") {
            server.legacySSE = flag
            if flag, ["/sse", "/messages"].contains(server.endpoint) {
                problem(value, "server.legacy_sse", "the HTTP+SSE transport uses /sse and /messages, and server.endpoint is \"\(server.endpoint)\"; choose another server.endpoint")
            }
        }
        if let value = map["sse_keepalive"], let duration = duration(value, path: "server.sse_keepalive", minimum: .milliseconds(100)) { server.sseKeepalive = duration }
        if let value = map["allowed_origins"], let origins = stringList(value, path: "server.allowed_origins") {
            for origin in origins where !(origin == "*" || origin.hasPrefix("http://") || origin.hasPrefix("https://")) {
                problem(value, "server.allowed_origins", "\"\(origin)\" is not an origin like \"https://app.example.com\"")
            }
            server.allowedOrigins = origins
        }
        if let value = map["tls"] { server.tls = readTLS(value) }
        if let value = map["allowed_ips"] { server.allowedIPs = networks(value, path: "server.allowed_ips") }
        if let value = map["trusted_proxies"] { server.trustedProxies = networks(value, path: "server.trusted_proxies") }
        if let value = map["limits"], let limits = mapping(value, path: "server.limits", allowed: [
            "max_body", "max_json_depth", "request_timeout", "max_header_bytes", "idle_timeout", "max_connections",
        ]) {
            if let v = limits["max_body"], let size = size(v, path: "server.limits.max_body", minimum: 1024) { server.maxBody = size }
            if let v = limits["max_json_depth"], let depth = int(v, path: "server.limits.max_json_depth", range: 2...10_000) { server.maxJSONDepth = depth }
            if let v = limits["request_timeout"], let d = duration(v, path: "server.limits.request_timeout", minimum: .milliseconds(10)) { server.requestTimeout = d }
            if let v = limits["max_header_bytes"], let size = size(v, path: "server.limits.max_header_bytes", minimum: 1024) { server.maxHeaderBytes = size }
            if let v = limits["idle_timeout"], let d = duration(v, path: "server.limits.idle_timeout", minimum: .milliseconds(100)) { server.idleTimeout = d }
            if let v = limits["max_connections"], let n = int(v, path: "server.limits.max_connections", range: 1...10_000_000) { server.maxConnections = n }
        }
        if let value = map["shutdown_grace"], let d = duration(value, path: "server.shutdown_grace", minimum: .zero) { server.shutdownGrace = d }
        if let value = map["threads"], let n = int(value, path: "server.threads", range: 0...256) { server.threads = n }
        if let value = map["readiness"], let readiness = mapping(value, path: "server.readiness", allowed: ["quorum"]),
           let quorum = readiness["quorum"], let parsed = readinessQuorum(quorum, path: "server.readiness.quorum") {
            server.readinessQuorum = parsed
        }
    }

    mutating func readSessions(_ node: Node, into sessions: inout SessionsConfig) {
        guard let map = mapping(node, path: "sessions", allowed: ["idle_timeout", "max", "replay_buffer", "keys", "max_lifetime"]) else { return }
        if let v = map["idle_timeout"], let d = duration(v, path: "sessions.idle_timeout", minimum: .seconds(1)) { sessions.idleTimeout = d }
        if let v = map["max"], let n = int(v, path: "sessions.max", range: 1...10_000_000) { sessions.max = n }
        if let v = map["replay_buffer"], let n = int(v, path: "sessions.replay_buffer", range: 0...10_000) { sessions.replayBuffer = n }
        if let v = map["max_lifetime"], let d = duration(v, path: "sessions.max_lifetime", minimum: .seconds(1)) { sessions.maxLifetime = d }
        if let v = map["keys"], let list = sequence(v, path: "sessions.keys") {
            for (index, item) in list.enumerated() {
                let path = "sessions.keys[\(index)]"
                // The key's value never appears in a message: it is a secret.
                guard let text = string(item, path: path) else { continue }
                if let key = SessionKeyText.decode(text) { sessions.keys.append(key) } else {
                    problem(item, path, "must be a 32-byte key written as 64 hex characters or base64 (value not shown)")
                }
            }
        }
    }

    static let allowedAlgorithms = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]

    mutating func readAuth(_ node: Node, into auth: inout AuthConfig) {
        guard let map = mapping(node, path: "auth", allowed: ["mode", "oauth", "resource_metadata", "api_keys"]) else { return }
        var modeNode: Node?
        if let v = map["mode"], let mode = enumeration(v, path: "auth.mode", AuthMode.self) {
            auth.mode = mode
            modeNode = v
        }
        if let v = map["oauth"], let oauth = mapping(v, path: "auth.oauth", allowed: [
            "issuer", "audience", "jwks_url", "jwks_file", "algorithms", "leeway", "tenant_claim", "required_scopes", "introspection",
        ]) {
            let issuer = oauth["issuer"].flatMap { string($0, path: "auth.oauth.issuer") }
            let audience = oauth["audience"].flatMap { string($0, path: "auth.oauth.audience") }
            if issuer == nil { problem(v, "auth.oauth.issuer", "is required (the authorization server's issuer identifier)") }
            if audience == nil { problem(v, "auth.oauth.audience", "is required (the gateway's canonical URI, e.g. https://mcp.example.com/mcp)") }
            var config = OAuthConfig(issuer: issuer ?? "", audience: audience ?? "")
            if let u = oauth["jwks_url"], let url = string(u, path: "auth.oauth.jwks_url") {
                if Self.isHTTPSOrLoopbackHTTP(url) { config.jwksURL = url } else {
                    problem(u, "auth.oauth.jwks_url", "must be an https URL (plain http only for a loopback host)")
                }
            }
            if let f = oauth["jwks_file"], let file = string(f, path: "auth.oauth.jwks_file") { config.jwksFile = file }
            if let a = oauth["algorithms"], let list = stringList(a, path: "auth.oauth.algorithms") {
                for algorithm in list where !Self.allowedAlgorithms.contains(algorithm) {
                    let why = algorithm.lowercased() == "none" || algorithm.uppercased().hasPrefix("HS")
                        ? "is never accepted (an unsigned token, or an HMAC key that a public JWKS would hand to anyone)"
                        : "is not supported (use \(Self.allowedAlgorithms.joined(separator: ", ")))"
                    problem(a, "auth.oauth.algorithms", "\"\(algorithm)\" \(why)")
                }
                if list.isEmpty { problem(a, "auth.oauth.algorithms", "must list at least one algorithm") }
                config.algorithms = list
            }
            if let l = oauth["leeway"], let leeway = duration(l, path: "auth.oauth.leeway", minimum: .zero) { config.leeway = leeway }
            if let t = oauth["tenant_claim"], let claim = string(t, path: "auth.oauth.tenant_claim") { config.tenantClaim = claim }
            if let r = oauth["required_scopes"], let list = stringList(r, path: "auth.oauth.required_scopes") { config.requiredScopes = list }
            if let i = oauth["introspection"], let intro = mapping(i, path: "auth.oauth.introspection", allowed: ["url", "client_id", "client_secret"]) {
                let url = intro["url"].flatMap { string($0, path: "auth.oauth.introspection.url") }
                let clientID = intro["client_id"].flatMap { string($0, path: "auth.oauth.introspection.client_id") }
                let secret = intro["client_secret"].flatMap { string($0, path: "auth.oauth.introspection.client_secret") }
                if let url, !Self.isHTTPSOrLoopbackHTTP(url) { problem(i, "auth.oauth.introspection.url", "must be an https URL (plain http only for a loopback host)") }
                if url == nil || clientID == nil || secret == nil {
                    problem(i, "auth.oauth.introspection", "needs url, client_id and client_secret")
                } else {
                    config.introspection = IntrospectionConfig(url: url!, clientID: clientID!, clientSecret: secret!)
                }
            }
            if config.jwksURL == nil, config.jwksFile == nil, config.introspection == nil {
                problem(v, "auth.oauth", "needs jwks_url or jwks_file (JWT access tokens) or introspection (opaque tokens)")
            }
            auth.oauth = config
        }
        if let v = map["resource_metadata"], let meta = mapping(v, path: "auth.resource_metadata", allowed: ["resource", "authorization_servers", "scopes_supported"]) {
            let resource = meta["resource"].flatMap { string($0, path: "auth.resource_metadata.resource") }
            let servers = meta["authorization_servers"].flatMap { stringList($0, path: "auth.resource_metadata.authorization_servers") } ?? []
            if resource == nil { problem(v, "auth.resource_metadata.resource", "is required (the gateway's canonical URI)") }
            if servers.isEmpty { problem(v, "auth.resource_metadata.authorization_servers", "must list at least one authorization server (RFC 9728 §2; MCP requires one)") }
            let scopes = meta["scopes_supported"].flatMap { stringList($0, path: "auth.resource_metadata.scopes_supported") } ?? []
            auth.resourceMetadata = ResourceMetadataConfig(resource: resource ?? "", authorizationServers: servers, scopesSupported: scopes)
        }
        if let v = map["api_keys"], let list = sequence(v, path: "auth.api_keys") {
            var ids = Set<String>()
            for (index, item) in list.enumerated() {
                let path = "auth.api_keys[\(index)]"
                guard let key = mapping(item, path: path, allowed: ["id", "sha256", "scopes", "tenant"]) else { continue }
                guard let id = key["id"].flatMap({ string($0, path: path + ".id") }), !id.isEmpty else {
                    problem(item, path + ".id", "is required (it names the principal in logs and audit records)")
                    continue
                }
                if !ids.insert(id).inserted { problem(item, path + ".id", "\"\(id)\" is used by another key") }
                guard let digestText = key["sha256"].flatMap({ string($0, path: path + ".sha256") }), let digest = Self.hex32(digestText) else {
                    problem(item, path + ".sha256", "must be the key's SHA-256 as 64 hex characters (printf %s KEY | sha256sum); the key itself never goes in the config")
                    continue
                }
                var config = APIKeyConfig(id: id, sha256: digest)
                if let s = key["scopes"], let scopes = stringList(s, path: path + ".scopes") { config.scopes = scopes }
                if let t = key["tenant"], let tenant = string(t, path: path + ".tenant") { config.tenant = tenant }
                auth.apiKeys.append(config)
            }
        }
        switch auth.mode {
        case .none: break
        case .oauth:
            if auth.oauth == nil { problem(modeNode ?? node, "auth.oauth", "is required when auth.mode is oauth") }
        case .apiKey:
            if auth.apiKeys.isEmpty { problem(modeNode ?? node, "auth.api_keys", "must list at least one key when auth.mode is api_key") }
        case .oauthOrAPIKey:
            if auth.oauth == nil { problem(modeNode ?? node, "auth.oauth", "is required when auth.mode is oauth_or_api_key") }
        }
        if auth.mode == .oauth || auth.mode == .oauthOrAPIKey, auth.resourceMetadata == nil, let oauth = auth.oauth {
            // RFC 9728 metadata is a MUST for an MCP resource server: derive it from the OAuth settings.
            auth.resourceMetadata = ResourceMetadataConfig(resource: oauth.audience, authorizationServers: [oauth.issuer], scopesSupported: oauth.requiredScopes)
        }

    }

    static func isHTTPSOrLoopbackHTTP(_ url: String) -> Bool {
        let lowered = url.lowercased()
        if lowered.hasPrefix("https://") { return true }
        guard lowered.hasPrefix("http://") else { return false }
        let authority = lowered.dropFirst(7).prefix { $0 != "/" }
        let host = authority.hasPrefix("[") ? String(authority.prefix { $0 != "]" }.dropFirst()) : String(authority.split(separator: ":").first ?? "")
        return host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    static func hex32(_ text: String) -> [UInt8]? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard trimmed.count == 64, trimmed.allSatisfy(\.isHexDigit) else { return nil }
        return SessionKeyText.decode(trimmed)
    }

    mutating func readRateLimit(_ node: Node, path: String, allowTool: Bool = false) -> RateLimit? {
        guard let map = mapping(node, path: path, allowed: allowTool ? ["rate", "per", "burst", "tool"] : ["rate", "per", "burst"]) else { return nil }
        guard let rateNode = map["rate"], let rate = double(rateNode, path: path + ".rate"), rate > 0 else {
            if map["rate"] == nil { problem(node, path + ".rate", "is required") }
            return nil
        }
        let per = map["per"].flatMap { duration($0, path: path + ".per", minimum: .milliseconds(1)) } ?? .seconds(1)
        let burst = map["burst"].flatMap { int($0, path: path + ".burst", range: 1...1_000_000_000) } ?? Int(rate.rounded(.up))
        return RateLimit(rate: rate, per: per, burst: burst)
    }

    mutating func readLimits(_ node: Node, into limits: inout LimitsConfig) {
        guard let map = mapping(node, path: "limits", allowed: ["per_principal", "per_tenant", "per_tool", "max_inflight"]) else { return }
        if let v = map["per_principal"] { limits.perPrincipal = readRateLimit(v, path: "limits.per_principal") }
        if let v = map["per_tenant"] { limits.perTenant = readRateLimit(v, path: "limits.per_tenant") }
        if let v = map["per_tool"], let list = sequence(v, path: "limits.per_tool") {
            for (index, item) in list.enumerated() {
                let path = "limits.per_tool[\(index)]"
                guard let limit = readRateLimit(item, path: path, allowTool: true) else { continue }
                guard let toolNode = item.mapping?["tool"], let tool = string(toolNode, path: path + ".tool") else {
                    problem(item, path + ".tool", "is required (a tool name or glob such as \"time__*\")")
                    continue
                }
                limits.perTool.append(ToolRateLimit(tool: tool, limit: limit))
            }
        }
        if let v = map["max_inflight"], let n = int(v, path: "limits.max_inflight", range: 1...10_000_000) { limits.maxInflight = n }
    }

    mutating func readTools(_ node: Node, into tools: inout ToolsConfig) {
        guard let map = mapping(node, path: "tools", allowed: ["separator", "prefix", "validation", "page_size"]) else { return }
        if let v = map["page_size"], let n = int(v, path: "tools.page_size", range: 1...100_000) { tools.pageSize = n }
        if let v = map["prefix"], let mode = enumeration(v, path: "tools.prefix", PrefixMode.self) {
            tools.prefix = mode
        }
        if let v = map["separator"], let text = string(v, path: "tools.separator") {
            if !text.isEmpty, text.count <= 4, text.allSatisfy({ "_.-".contains($0) }) { tools.separator = text } else {
                problem(v, "tools.separator", "\"\(text)\" must be 1-4 characters from \"_\", \".\" and \"-\" (tool names allow only [A-Za-z0-9_.-])")
            }
        }
        if let v = map["validation"], let mode = enumeration(v, path: "tools.validation", ArgumentValidationMode.self) {
            tools.validation = mode
        }
    }

    mutating func readObservability(_ node: Node, into obs: inout ObservabilityConfig) {
        guard let map = mapping(node, path: "observability", allowed: ["log", "metrics", "tracing", "audit"]) else { return }
        if let v = map["log"], let log = mapping(v, path: "observability.log", allowed: ["format", "level", "access"]) {
            if let f = log["format"], let format = enumeration(f, path: "observability.log.format", LogFormat.self) { obs.logFormat = format }
            if let l = log["level"], let level = enumeration(l, path: "observability.log.level", LogLevelName.self) { obs.logLevel = level }
            if let a = log["access"], let flag = bool(a, path: "observability.log.access") { obs.accessLog = flag }
        }
        if let v = map["metrics"], let metrics = mapping(v, path: "observability.metrics", allowed: ["enabled", "path"]) {
            if let e = metrics["enabled"], let flag = bool(e, path: "observability.metrics.enabled") { obs.metricsEnabled = flag }
            if let p = metrics["path"], let text = string(p, path: "observability.metrics.path") {
                if text.hasPrefix("/") { obs.metricsPath = text } else { problem(p, "observability.metrics.path", "must start with \"/\"") }
            }
        }
        if let v = map["tracing"], let tracing = mapping(v, path: "observability.tracing", allowed: ["otlp_endpoint", "sample_ratio", "service_name"]) {
            if let e = tracing["otlp_endpoint"], let text = string(e, path: "observability.tracing.otlp_endpoint") { obs.otlpEndpoint = text }
            if let r = tracing["sample_ratio"], let ratio = double(r, path: "observability.tracing.sample_ratio") {
                if (0...1).contains(ratio) { obs.sampleRatio = ratio } else { problem(r, "observability.tracing.sample_ratio", "must be between 0 and 1") }
            }
            if let s = tracing["service_name"], let text = string(s, path: "observability.tracing.service_name") { obs.serviceName = text }
        }
        if let v = map["audit"], let audit = mapping(v, path: "observability.audit", allowed: ["path", "redact", "max_bytes", "keep", "on_failure"]) {
            if let f = audit["on_failure"], let policy = enumeration(f, path: "observability.audit.on_failure", AuditFailurePolicy.self) { obs.auditOnFailure = policy }
            if let p = audit["path"], let text = string(p, path: "observability.audit.path") { obs.auditPath = text }
            if let r = audit["redact"], let list = stringList(r, path: "observability.audit.redact") { obs.auditRedact = list }
            if let m = audit["max_bytes"], let size = size(m, path: "observability.audit.max_bytes", minimum: 1024) { obs.auditMaxBytes = size }
            if let k = audit["keep"], let n = int(k, path: "observability.audit.keep", range: 1...10_000) { obs.auditKeep = n }
        }
    }

    static let backendKeys = [
        "type", "command", "env", "cwd", "isolation", "instances", "max_sessions", "call_timeout", "max_concurrency", "queue",
        "circuit_breaker", "access", "tools", "url", "headers", "session", "plugin", "health", "versions", "canary",
    ]

    /// `backends.<name>.health`: ping cadence, backoff reset and the crash-loop breaker of a stdio backend.
    mutating func readStdioHealth(_ node: Node, path: String, into health: inout StdioHealthConfig) {
        guard let map = mapping(node, path: path, allowed: [
            "interval", "timeout", "stable_after", "max_restarts", "restart_window", "crash_loop_cooldown",
        ]) else { return }
        if let v = map["interval"], let d = duration(v, path: path + ".interval", minimum: .milliseconds(100)) { health.interval = d }
        if let v = map["timeout"], let d = duration(v, path: path + ".timeout", minimum: .milliseconds(10)) { health.timeout = d }
        if let v = map["stable_after"], let d = duration(v, path: path + ".stable_after", minimum: .zero) { health.stableAfter = d }
        if let v = map["max_restarts"], let n = int(v, path: path + ".max_restarts", range: 0...1_000_000) { health.maxRestarts = n }
        if let v = map["restart_window"], let d = duration(v, path: path + ".restart_window", minimum: .milliseconds(1)) { health.restartWindow = d }
        if let v = map["crash_loop_cooldown"], let d = duration(v, path: path + ".crash_loop_cooldown", minimum: .milliseconds(100)) {
            health.crashLoopCooldown = d
        }
    }

    /// `server.readiness.quorum`: `any`, `all`, or a share of the backends from 0 to 1.
    mutating func readinessQuorum(_ node: Node, path: String) -> ReadinessQuorum? {
        guard let text = string(node, path: path) else { return nil }
        switch text.lowercased() {
        case "any": return .any
        case "all": return .all
        default:
            guard let share = Double(text), share.isFinite, (0...1).contains(share) else {
                problem(node, path, "\"\(text)\" is not \"any\", \"all\" or a share of the backends from 0 to 1 (for example 0.5)")
                return nil
            }
            return .fraction(share)
        }
    }

    mutating func readBackends(_ node: Node, separator: String, into backends: inout [BackendConfig]) {
        guard case .mapping(let mapping) = node else {
            problem(node, "backends", "must be a mapping from backend name to its settings")
            return
        }
        for (keyNode, value) in mapping {
            guard let name = keyNode.scalar?.string else { continue }
            let path = "backends.\(name)"
            if name.isEmpty || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }) {
                problem(keyNode, path, "the backend name is its tools' namespace and must use only [A-Za-z0-9_.-]")
                continue
            }
            if name.contains(separator) {
                problem(keyNode, path, "the backend name must not contain the tool separator \"\(separator)\"")
                continue
            }
            if let backend = readBackend(name: name, node: value, path: path) { backends.append(backend) }
        }
    }

    mutating func readBackend(name: String, node: Node, path: String) -> BackendConfig? {
        guard let map = mapping(node, path: path, allowed: Self.backendKeys) else { return nil }
        let typeName = map["type"].flatMap { string($0, path: path + ".type") } ?? "stdio"
        var kind: BackendKind
        switch typeName {
        case "stdio":
            // With `versions`, each version has its own command and `command` is the stable one's (CanaryConfig.swift).
            var stdio = StdioBackendConfig(command: [])
            if map["versions"] == nil {
                guard let commandNode = map["command"] else {
                    problem(node, path + ".command", "is required for a stdio backend (a list: program and arguments; or `versions`)")
                    return nil
                }
                guard let command = stringList(commandNode, path: path + ".command"), !command.isEmpty, !command[0].isEmpty else {
                    if commandNode.sequence?.isEmpty == true { problem(commandNode, path + ".command", "must not be empty") }
                    return nil
                }
                stdio.command = command
            }
            if let v = map["env"], let env = stringMap(v, path: path + ".env") { stdio.env = env }
            if let v = map["cwd"], let cwd = string(v, path: path + ".cwd") { stdio.cwd = cwd }
            if let v = map["isolation"], let isolation = enumeration(v, path: path + ".isolation", Isolation.self) { stdio.isolation = isolation }
            if let v = map["instances"], let n = int(v, path: path + ".instances", range: 1...64) { stdio.instances = n }
            if let v = map["max_sessions"], let n = int(v, path: path + ".max_sessions", range: 1...100_000) { stdio.maxSessions = n }
            if let v = map["health"] { readStdioHealth(v, path: path + ".health", into: &stdio.health) }
            guard readStdioRollout(map, node: node, path: path, into: &stdio) else { return nil }
            kind = .stdio(stdio)
        case "http":
            // url, headers, session: HTTPBackendConfig.swift.
            guard let http = readHTTPBackend(map, node: node, path: path) else { return nil }
            kind = .http(http)
        case "plugin":
            guard let pluginNode = map["plugin"], let plugin = string(pluginNode, path: path + ".plugin") else {
                problem(node, path + ".plugin", "is required for a plugin backend (for example \"diagnostics\")")
                return nil
            }
            kind = .plugin(name: plugin)
        default:
            let hint = Suggestions.best(for: typeName, among: ["stdio", "http", "plugin"]).map { "; did you mean \"\($0)\"?" } ?? ""
            problem(map["type"] ?? node, path + ".type", "\"\(typeName)\" is not one of stdio, http, plugin\(hint)")
            return nil
        }
        let kindSpecific: [String: [String]] = [
            "stdio": ["command", "env", "cwd", "isolation", "instances", "max_sessions", "health", "versions", "canary"],
            "http": ["url", "headers", "session"],
            "plugin": ["plugin"],
        ]
        for (owner, keys) in kindSpecific where owner != typeName {
            for key in keys where map[key] != nil {
                problem(map[key]!, path + "." + key, "applies to \(owner) backends, not to a \(typeName) backend")
            }
        }
        var backend = BackendConfig(name: name, kind: kind)
        backend.line = node.mark?.line
        if let v = map["call_timeout"], let d = duration(v, path: path + ".call_timeout", minimum: .milliseconds(1)) { backend.callTimeout = d }
        if let v = map["max_concurrency"], let n = int(v, path: path + ".max_concurrency", range: 1...1_000_000) { backend.maxConcurrency = n }
        if let v = map["queue"], let n = int(v, path: path + ".queue", range: 0...1_000_000) { backend.queue = n }
        if let v = map["circuit_breaker"], let cb = mapping(v, path: path + ".circuit_breaker", allowed: ["failure_ratio", "min_calls", "open_for"]) {
            if let r = cb["failure_ratio"], let ratio = double(r, path: path + ".circuit_breaker.failure_ratio") {
                if ratio > 0, ratio <= 1 { backend.circuitBreaker.failureRatio = ratio } else { problem(r, path + ".circuit_breaker.failure_ratio", "must be in (0, 1]") }
            }
            if let m = cb["min_calls"], let n = int(m, path: path + ".circuit_breaker.min_calls", range: 1...1_000_000) { backend.circuitBreaker.minCalls = n }
            if let o = cb["open_for"], let d = duration(o, path: path + ".circuit_breaker.open_for", minimum: .milliseconds(1)) { backend.circuitBreaker.openFor = d }
        }
        if let v = map["access"], let access = mapping(v, path: path + ".access", allowed: ["scopes", "tenants", "principals"]) {
            if let s = access["scopes"], let list = stringList(s, path: path + ".access.scopes") { backend.access.scopes = list }
            if let t = access["tenants"], let list = stringList(t, path: path + ".access.tenants") { backend.access.tenants = list }
            if let p = access["principals"], let list = stringList(p, path: path + ".access.principals") { backend.access.principals = list }
        }
        if let v = map["tools"], let tools = mapping(v, path: path + ".tools", allowed: ["include", "exclude"]) {
            if let i = tools["include"], let list = stringList(i, path: path + ".tools.include") { backend.include = list }
            if let e = tools["exclude"], let list = stringList(e, path: path + ".tools.exclude") { backend.exclude = list }
        }
        return backend
    }

    // MARK: - Typed readers

    /// A mapping with only `allowed` keys; unknown keys are reported with the closest allowed one.
    mutating func mapping(_ node: Node, path: String, allowed: [String]) -> [String: Node]? {
        guard case .mapping(let mapping) = node else {
            problem(node, path.isEmpty ? "(top level)" : path, "must be a mapping of keys to values, got \(Self.describe(node))")
            return nil
        }
        var result: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else {
                problem(keyNode, path, "keys must be plain strings")
                continue
            }
            let keyPath = path.isEmpty ? key : "\(path).\(key)"
            guard allowed.contains(key) else {
                var message = "unknown key"
                if let suggestion = Suggestions.best(for: key, among: allowed) { message += "; did you mean \"\(suggestion)\"?" } else {
                    message += " (known here: \(allowed.joined(separator: ", ")))"
                }
                problem(keyNode, keyPath, message)
                continue
            }
            if result[key] != nil { problem(keyNode, keyPath, "is given twice") }
            result[key] = value
        }
        return result
    }

    mutating func sequence(_ node: Node, path: String) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            problem(node, path, "must be a list, got \(Self.describe(node))")
            return nil
        }
        return Array(sequence)
    }

    mutating func string(_ node: Node, path: String) -> String? {
        guard case .scalar(let scalar) = node else {
            problem(node, path, "must be a string, got \(Self.describe(node))")
            return nil
        }
        var secret = false
        do {
            return try interpolator.expand(scalar.string, usedSecretSource: &secret)
        } catch {
            problem(node, path, error.message)
            return nil
        }
    }

    mutating func bool(_ node: Node, path: String) -> Bool? {
        guard let text = string(node, path: path) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            problem(node, path, "\"\(text)\" is not a boolean (true or false)")
            return nil
        }
    }

    mutating func int(_ node: Node, path: String, range: ClosedRange<Int>) -> Int? {
        guard let text = string(node, path: path) else { return nil }
        guard let value = Int(text.replacingOccurrences(of: "_", with: "")) else {
            problem(node, path, "\"\(text)\" is not a whole number")
            return nil
        }
        guard range.contains(value) else {
            problem(node, path, "\(value) is out of range (\(range.lowerBound)...\(range.upperBound))")
            return nil
        }
        return value
    }

    mutating func double(_ node: Node, path: String) -> Double? {
        guard let text = string(node, path: path) else { return nil }
        guard let value = Double(text), value.isFinite else {
            problem(node, path, "\"\(text)\" is not a number")
            return nil
        }
        return value
    }

    mutating func duration(_ node: Node, path: String, minimum: Duration) -> Duration? {
        guard let text = string(node, path: path) else { return nil }
        guard let value = Units.duration(text) else {
            problem(node, path, "\"\(text)\" is not a duration (use a number with a unit: 500ms, 30s, 5m, 1h)")
            return nil
        }
        guard value >= minimum else {
            problem(node, path, "\"\(text)\" is shorter than the minimum of \(DurationFormat.describe(minimum))")
            return nil
        }
        return value
    }

    mutating func size(_ node: Node, path: String, minimum: Int) -> Int? {
        guard let text = string(node, path: path) else { return nil }
        guard let value = Units.size(text) else {
            problem(node, path, "\"\(text)\" is not a size (use bytes or a unit: 64KiB, 4MiB, 1GiB)")
            return nil
        }
        guard value >= minimum else {
            problem(node, path, "\"\(text)\" is below the minimum of \(minimum) bytes")
            return nil
        }
        return value
    }

    mutating func enumeration<E: RawRepresentable & CaseIterable>(_ node: Node, path: String, _ type: E.Type) -> E? where E.RawValue == String {
        guard let text = string(node, path: path) else { return nil }
        if let value = E(rawValue: text) { return value }
        let options = E.allCases.map(\.rawValue)
        var message = "\"\(text)\" is not one of \(options.joined(separator: ", "))"
        if let suggestion = Suggestions.best(for: text, among: options) { message += "; did you mean \"\(suggestion)\"?" }
        problem(node, path, message)
        return nil
    }

    mutating func stringList(_ node: Node, path: String) -> [String]? {
        guard let items = sequence(node, path: path) else { return nil }
        var result: [String] = []
        for (index, item) in items.enumerated() {
            guard let text = string(item, path: "\(path)[\(index)]") else { return nil }
            result.append(text)
        }
        return result
    }

    /// A list of CIDR blocks (`server.allowed_ips`, `server.trusted_proxies`), each problem naming its index.
    mutating func networks(_ node: Node, path: String) -> [IPNetwork] {
        guard let items = sequence(node, path: path) else { return [] }
        var result: [IPNetwork] = []
        for (index, item) in items.enumerated() {
            guard let text = string(item, path: "\(path)[\(index)]") else { continue }
            do { result.append(try IPNetwork(parsing: text)) } catch { problem(item, "\(path)[\(index)]", error.description) }
        }
        return result
    }

    mutating func stringMap(_ node: Node, path: String) -> [String: String]? {
        guard case .mapping(let mapping) = node else {
            problem(node, path, "must be a mapping of names to strings, got \(Self.describe(node))")
            return nil
        }
        var result: [String: String] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else { continue }
            guard let text = string(value, path: "\(path).\(key)") else { continue }
            result[key] = text
        }
        return result
    }

    // MARK: - Reporting

    mutating func problem(_ node: Node, _ path: String, _ message: String) {
        problems.append(ConfigProblem(file: file, line: node.mark?.line, path: path, message: message))
    }

    mutating func notice(_ node: Node, _ path: String, _ message: String) {
        notices.append(ConfigProblem(file: file, line: node.mark?.line, path: path, message: message))
    }

    static func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): return "\"\(scalar.string)\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    static func parseListen(_ text: String) -> ListenAddress? {
        let host: String
        let portText: String
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = String(rest.dropFirst())
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = String(text[..<colon])
            portText = String(text[text.index(after: colon)...])
        }
        guard !host.isEmpty, let port = Int(portText), (0...65_535).contains(port) else { return nil }
        return ListenAddress(host: host, port: port)
    }
}

/// Session keys are written as 64 hex characters or as base64 of 32 bytes (CONTRACT.md, `sessions.keys`).
public enum SessionKeyText {
    public static func decode(_ text: String) -> [UInt8]? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.count == 64, trimmed.allSatisfy(\.isHexDigit) {
            var bytes: [UInt8] = []
            var index = trimmed.startIndex
            while index < trimmed.endIndex {
                let next = trimmed.index(index, offsetBy: 2)
                guard let byte = UInt8(trimmed[index..<next], radix: 16) else { return nil }
                bytes.append(byte)
                index = next
            }
            return bytes
        }
        var base64 = trimmed.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        if let data = Data(base64Encoded: base64), data.count == 32 { return Array(data) }
        return nil
    }
}
