import GatewayCore

/// The typed, validated configuration (../shared/design/CONTRACT.md, "Configuration"). Every value has been
/// checked by `ConfigLoader`; defaults are the contract's. `docs/configuration.md` documents each key.
public struct GatewayConfiguration: Sendable {
    public var server = ServerConfig()
    public var sessions = SessionsConfig()
    public var auth = AuthConfig()
    public var limits = LimitsConfig()
    public var tools = ToolsConfig()
    /// In the order the file lists them: the order of `tools/list` and of resolution ties.
    public var backends: [BackendConfig] = []
    public var observability = ObservabilityConfig()
    /// Where the file came from, for messages.
    public var sourcePath = ""
    /// Non-fatal remarks (keys accepted but not enforced by this build), logged at start and printed by `check`.
    public var notices: [ConfigProblem] = []

    public init() {}

    public func backend(named name: String) -> BackendConfig? { backends.first { $0.name == name } }
}

public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    public var isLoopback: Bool { host == "127.0.0.1" || host == "::1" || host == "localhost" || host.hasPrefix("127.") }
}

public struct ServerConfig: Sendable, Equatable {
    /// Loopback by default (MUST item 11; DEVELOPERS.md rule 5).
    public var listen = ListenAddress(host: "127.0.0.1", port: 8080)
    public var endpoint = "/mcp"
    public var publicURL: String?
    public var legacySSE = false
    public var sseKeepalive: Duration = .seconds(15)
    public var allowedOrigins: [String] = []
    public var tls: TLSConfig?
    public var maxBody = 4 * 1024 * 1024
    public var maxJSONDepth = 64
    public var requestTimeout: Duration = .seconds(60)
    /// `server.limits.max_header_bytes`: header fields of one request, names plus values (431 beyond).
    public var maxHeaderBytes = 32 * 1024
    /// `server.limits.idle_timeout`: a keep-alive connection with nothing in flight is closed after this.
    public var idleTimeout: Duration = .seconds(75)
    /// `server.limits.max_connections`: open client connections; more are accepted and closed at once.
    public var maxConnections = 10_000
    /// `server.allowed_ips`: empty allows every client address.
    public var allowedIPs: [IPNetwork] = []
    /// `server.trusted_proxies`: peers whose `X-Forwarded-For` names the client.
    public var trustedProxies: [IPNetwork] = []
    public var shutdownGrace: Duration = .seconds(30)
    /// `server.readiness.quorum`: the share of backends that must be ready for `/readyz` to answer 200.
    public var readinessQuorum: ReadinessQuorum = .any
    /// Event-loop threads; 0 means one per core.
    public var threads = 0
}

/// `server.tls`: the gateway terminates TLS itself. Paths are as written (relative ones from the working
/// directory); the loader has checked that each file exists and is readable, the server parses them.
public struct TLSConfig: Sendable, Equatable {
    /// The certificate chain in PEM, leaf first, then intermediates (RFC 8446 §4.4.2).
    public var cert: String
    /// The leaf's private key in PEM (unencrypted PKCS#8, PKCS#1 or SEC1).
    public var key: String
    /// PEM CA certificates that client certificates must chain to: set, every client must present one (mutual TLS).
    public var clientCA: String?
    public var minVersion: TLSMinimumVersion = .v1_2

    public init(cert: String, key: String, clientCA: String? = nil, minVersion: TLSMinimumVersion = .v1_2) {
        self.cert = cert
        self.key = key
        self.clientCA = clientCA
        self.minVersion = minVersion
    }
}

/// The oldest TLS version accepted. Nothing below 1.2: RFC 8996 deprecates TLS 1.0 and 1.1.
public enum TLSMinimumVersion: String, Sendable, CaseIterable {
    case v1_2 = "1.2"
    case v1_3 = "1.3"
}

public struct SessionsConfig: Sendable, Equatable {
    public var idleTimeout: Duration = .seconds(30 * 60)
    public var max = 10_000
    public var replayBuffer = 256
    /// Raw 32-byte AEAD keys; the first seals, all open. Empty: a random key per process.
    public var keys: [[UInt8]] = []
    /// A sealed id older than this is refused even if it is still in use (bounds a stolen id's worth).
    public var maxLifetime: Duration = .seconds(24 * 3600)
}

public enum AuthMode: String, Sendable, CaseIterable { case none, oauth, apiKey = "api_key", oauthOrAPIKey = "oauth_or_api_key" }

public struct AuthConfig: Sendable, Equatable {
    public init() {}

    public var mode: AuthMode = .none
    public var oauth: OAuthConfig?
    public var resourceMetadata: ResourceMetadataConfig?
    public var apiKeys: [APIKeyConfig] = []
}

/// The gateway as an OAuth 2.1 resource server (2025-11-25/basic/authorization; digest §4).
public struct OAuthConfig: Sendable, Equatable {
    public var issuer: String
    /// The gateway's canonical URI: a token's `aud` must contain it (RFC 8707; MUST item 29).
    public var audience: String
    public var jwksURL: String?
    public var jwksFile: String?
    /// Signature algorithms accepted; never `none`, never an HMAC algorithm (a public key is not a shared secret).
    public var algorithms: [String] = ["RS256", "ES256", "EdDSA"]
    public var leeway: Duration = .seconds(60)
    public var tenantClaim: String?
    public var requiredScopes: [String] = []
    public var introspection: IntrospectionConfig?

    public init(issuer: String, audience: String) {
        self.issuer = issuer
        self.audience = audience
    }
}

/// RFC 7662 token introspection, for opaque tokens.
public struct IntrospectionConfig: Sendable, Equatable {
    public var url: String
    public var clientID: String
    /// A secret: never printed.
    public var clientSecret: String
}

/// RFC 9728 Protected Resource Metadata, served at both well-known forms.
public struct ResourceMetadataConfig: Sendable, Equatable {
    public var resource: String
    public var authorizationServers: [String]
    public var scopesSupported: [String] = []
}

public struct APIKeyConfig: Sendable, Equatable {
    public var id: String
    /// SHA-256 of the key: the key itself is never stored in the config.
    public var sha256: [UInt8]
    public var scopes: [String] = []
    public var tenant: String?

    public init(id: String, sha256: [UInt8], scopes: [String] = [], tenant: String? = nil) {
        self.id = id
        self.sha256 = sha256
        self.scopes = scopes
        self.tenant = tenant
    }
}

public struct RateLimit: Sendable, Equatable {
    public var rate: Double
    public var per: Duration
    public var burst: Int
}

public struct ToolRateLimit: Sendable, Equatable {
    public var tool: String
    public var limit: RateLimit
}

public struct LimitsConfig: Sendable, Equatable {
    public var perPrincipal: RateLimit?
    public var perTenant: RateLimit?
    public var perTool: [ToolRateLimit] = []
    public var maxInflight = 4096
}

public struct ToolsConfig: Sendable, Equatable {
    public var separator = "__"
    /// `always`, `conditional` (prefix only names two backends share) or `never` (a shared name is an error).
    public var prefix: PrefixMode = .always
    public var validation: ArgumentValidationMode = .strict
    /// Items per page of the gateway's merged lists (tools/list, resources/list, resources/templates/list,
    /// prompts/list); longer lists are paged with sealed cursors (server/utilities/pagination).
    public var pageSize = 100
}

public enum Isolation: String, Sendable, CaseIterable { case shared, session }

public struct StdioBackendConfig: Sendable, Equatable {
    public var command: [String]
    public var env: [String: String] = [:]
    public var cwd: String?
    public var isolation: Isolation = .shared
    public var instances = 1
    /// For `isolation: session`: the most processes (client sessions) this backend runs at once.
    public var maxSessions = 100
    /// `health`: liveness pings, the backoff reset and the crash-loop breaker.
    public var health = StdioHealthConfig()
    /// `versions` (issue 7, item 7; CanaryConfig.swift): a weighted split between builds of the server, empty
    /// for one build. When set, `command` is the stable version's.
    public var versions: [StdioBackendVersion] = []
    /// `canary`: when a version other than the stable one is rolled back.
    public var canary = CanaryConfig()
}

/// `backends.<name>.health` (issue 7, item 4): how a stdio backend's processes are watched and restarted.
public struct StdioHealthConfig: Sendable, Equatable {
    /// An instance that has sent nothing for this long gets a JSON-RPC `ping` (basic/utilities/ping).
    public var interval: Duration = .seconds(10)
    /// A ping not answered within this is a dead instance: killed and replaced.
    public var timeout: Duration = .seconds(5)
    /// Uptime after which the restart backoff starts again from its first delay.
    public var stableAfter: Duration = .seconds(30)
    /// More restarts than this within `restartWindow` is a crash loop.
    public var maxRestarts = 5
    public var restartWindow: Duration = .seconds(60)
    /// How long a crash-looping backend rests before it is tried again.
    public var crashLoopCooldown: Duration = .seconds(60)

    public init() {}
}

public enum BackendKind: Sendable, Equatable {
    case stdio(StdioBackendConfig)
    /// `type: http` (HTTPBackendConfig.swift).
    case http(HTTPBackendConfig)
    case plugin(name: String)

    public var typeName: String {
        switch self {
        case .stdio: return "stdio"
        case .http: return "http"
        case .plugin: return "plugin"
        }
    }
}

public struct CircuitBreakerConfig: Sendable, Equatable {
    public var failureRatio = 0.5
    public var minCalls = 10
    public var openFor: Duration = .seconds(30)
}

public struct AccessConfig: Sendable, Equatable {
    public var scopes: [String] = []
    public var tenants: [String] = []
    public var principals: [String] = []
}

public struct BackendConfig: Sendable, Equatable {
    public var name: String
    public var kind: BackendKind
    public var callTimeout: Duration = .seconds(30)
    public var maxConcurrency = 64
    public var queue = 256
    public var circuitBreaker = CircuitBreakerConfig()
    public var access = AccessConfig()
    public var include: [String] = ["*"]
    public var exclude: [String] = []
    /// Line in the file, for messages about this backend.
    public var line: Int?
}

public enum LogFormat: String, Sendable, CaseIterable { case json, text }
public enum LogLevelName: String, Sendable, CaseIterable { case trace, debug, info, notice, warning, error, critical }

public struct ObservabilityConfig: Sendable {
    public var logFormat: LogFormat = .json
    public var logLevel: LogLevelName = .info
    /// `observability.log.access`: one `request` line per JSON-RPC request (method, tool, outcome, duration_ms, trace_id).
    public var accessLog = true
    public var metricsEnabled = true
    public var metricsPath = "/metrics"
    public var otlpEndpoint: String?
    public var sampleRatio = 1.0
    public var serviceName = "mcp-gateway"
    public var auditPath: String?
    public var auditRedact: [String] = ["password", "token", "secret", "api_key"]
    public var auditMaxBytes = 100 * 1024 * 1024
    public var auditKeep = 10
    /// When the audit sink fails: `refuse` calls (default: no unaudited call) or `allow` them.
    public var auditOnFailure: AuditFailurePolicy = .refuse
}

public enum AuditFailurePolicy: String, Sendable, CaseIterable { case refuse, allow }

/// One problem (or notice) found in a config file, printed by `check` as `FILE:LINE: key.path: message`.
public struct ConfigProblem: Sendable, Equatable, CustomStringConvertible, Error {
    public var file: String
    public var line: Int?
    public var path: String
    public var message: String

    public init(file: String, line: Int?, path: String, message: String) {
        self.file = file
        self.line = line
        self.path = path
        self.message = message
    }

    public var description: String {
        let location = line.map { "\(file):\($0)" } ?? file
        return path.isEmpty ? "\(location): \(message)" : "\(location): \(path): \(message)"
    }
}

/// Thrown when a file has problems: all of them, not just the first.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var problems: [ConfigProblem]
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

// MARK: - Redacted descriptions
//
// Configuration values are printed by reflection in places the gateway does not control (a library's debug
// log of a service, an error dump). Types that carry secrets describe themselves without them: session keys,
// the introspection client secret, API key digests, and backend environment and header values (where
// backend credentials live).

extension SessionsConfig: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String {
        "SessionsConfig(idleTimeout: \(idleTimeout), max: \(max), replayBuffer: \(replayBuffer), keys: \(keys.count) [redacted], maxLifetime: \(maxLifetime))"
    }
    public var debugDescription: String { description }
}

extension IntrospectionConfig: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { "IntrospectionConfig(url: \(url), clientID: \(clientID), clientSecret: [redacted])" }
    public var debugDescription: String { description }
}

extension APIKeyConfig: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { "APIKeyConfig(id: \(id), sha256: [redacted], scopes: \(scopes), tenant: \(tenant ?? "nil"))" }
    public var debugDescription: String { description }
}

extension StdioBackendConfig: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String {
        "StdioBackendConfig(command: \(command), env: \(env.keys.sorted()) [values redacted], cwd: \(cwd ?? "nil"), isolation: \(isolation), instances: \(instances), maxSessions: \(maxSessions), versions: \(versions.map { "\($0.name)=\($0.weight)" }))"
    }
    public var debugDescription: String { description }
}

extension BackendKind: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String {
        switch self {
        case .stdio(let stdio): return "stdio(\(stdio))"
        case .http(let http): return "http(\(http))"
        case .plugin(let name): return "plugin(\(name))"
        }
    }
    public var debugDescription: String { description }
}

extension GatewayConfiguration: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { "GatewayConfiguration(\(sourcePath), \(backends.count) backends)" }
    public var debugDescription: String { description }
}
