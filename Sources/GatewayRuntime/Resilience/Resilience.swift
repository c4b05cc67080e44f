import GatewayBackends
import GatewayConfig
import GatewayCore
import Logging
import NIOCore
import Synchronization

/// The I/O shell around the pure limit and breaker state machines of `GatewayCore/Limits` (issue 7, items
/// 1-3): per-principal and per-tenant request limits (read by the HTTP front), `limits.max_inflight`, per-tool
/// limits and circuit breakers (router guards), and each backend's `max_concurrency` with its queue (a wrapper
/// around the backend). Each piece is one lock around one state machine, created only when its key is set;
/// the counters the metrics layer reads are atomics.
///
/// `limits` are read once, at start (a reload reports them as needing a restart). Backends come and go with
/// reloads: `guards(applying:)` gives an added backend its breaker and gate, a backend whose `call_timeout`,
/// `max_concurrency`, `queue` or `circuit_breaker` changed fresh ones, and forgets removed ones; the hot path
/// never reads these tables (a router's guard and a gated backend hold what they need).
public final class Resilience: Sendable {
    /// `limits.per_principal` and `limits.per_tenant`; nil when neither is set (the HTTP front then skips the check).
    public let requestLimits: RequestRateLimits?
    /// `limits.max_inflight`: HTTP requests being served at once.
    public let inflight: InflightGauge
    let toolLimits: ToolRateLimits?
    let counters: ResilienceCounters
    private let backendTables: Mutex<BackendTables>
    private let logger: Logger

    struct BackendTables {
        var configs: [String: BackendConfig] = [:]
        var breakers: [String: BreakerCell] = [:]
        var gates: [String: ConcurrencyGate] = [:]
    }

    public init(configuration: GatewayConfiguration, logger: Logger) {
        let counters = ResilienceCounters()
        self.counters = counters
        self.logger = logger
        self.requestLimits = RequestRateLimits(limits: configuration.limits, counters: counters)
        self.inflight = InflightGauge(limit: configuration.limits.maxInflight, counters: counters)
        self.toolLimits = configuration.limits.perTool.isEmpty ? nil : ToolRateLimits(rules: configuration.limits.perTool, counters: counters)
        self.backendTables = Mutex(BackendTables())
        apply(configuration.backends)
    }

    /// The router guards for `configuration`, in order: the per-tool limit (a refused call never counts against
    /// the breaker), then the breaker. Applies the configuration's backends first (see the type's comment), so
    /// call it before `gated` for the same configuration.
    func guards(applying configuration: GatewayConfiguration) -> [any ToolCallGuard] {
        apply(configuration.backends)
        var guards: [any ToolCallGuard] = []
        if let toolLimits { guards.append(ToolRateLimitGuard(limits: toolLimits)) }
        guards.append(CircuitBreakerGuard(breakers: backendTables.withLock { $0.breakers }))
        return guards
    }

    /// The backend as calls see it: behind its concurrency gate, reporting outcomes to its breaker. A backend
    /// unknown to the applied configuration is returned as it is.
    func gated(_ backend: any Backend) -> any Backend {
        let cells = backendTables.withLock { tables in (tables.gates[backend.name], tables.breakers[backend.name]) }
        guard let gate = cells.0, let breaker = cells.1 else { return backend }
        return GatedBackend(inner: backend, gate: gate, breaker: breaker)
    }

    private func apply(_ backends: [BackendConfig]) {
        let logger = self.logger
        backendTables.withLock { tables in
            var next = BackendTables()
            for backend in backends {
                next.configs[backend.name] = backend
                if let previous = tables.configs[backend.name], Self.sameLimits(previous, backend),
                   let breaker = tables.breakers[backend.name], let gate = tables.gates[backend.name] {
                    next.breakers[backend.name] = breaker
                    next.gates[backend.name] = gate
                    continue
                }
                var backendLogger = logger
                backendLogger[metadataKey: "backend"] = "\(backend.name)"
                let policy = CircuitBreakerPolicy(
                    failureRatio: backend.circuitBreaker.failureRatio, minCalls: backend.circuitBreaker.minCalls,
                    openFor: backend.circuitBreaker.openFor, probeTimeout: backend.callTimeout
                )
                next.breakers[backend.name] = BreakerCell(backend: backend.name, policy: policy, logger: backendLogger)
                next.gates[backend.name] = ConcurrencyGate(backend: backend.name, maxConcurrency: backend.maxConcurrency, queue: backend.queue)
            }
            tables = next
        }
    }

    static func sameLimits(_ a: BackendConfig, _ b: BackendConfig) -> Bool {
        a.callTimeout == b.callTimeout && a.maxConcurrency == b.maxConcurrency && a.queue == b.queue && a.circuitBreaker == b.circuitBreaker
    }

    // MARK: - Read accessors for the metrics layer

    /// `mcp_circuit_state{backend}`: 0 closed, 1 half-open, 2 open.
    public var circuitStates: [String: Int] {
        let now = Self.now()
        return backendTables.withLock { $0.breakers }.mapValues { $0.metricValue(now: now) }
    }

    /// `mcp_backend_inflight{backend}` and `mcp_backend_queue_depth{backend}`.
    public var backendLoad: [String: BackendLoad] { backendTables.withLock { $0.gates }.mapValues(\.load) }

    /// `mcp_rate_limited_total{scope}`, scope one of `principal`, `tenant`, `tool`.
    public var rateLimitedTotals: [String: Int] { counters.rateLimitedTotals }

    /// `mcp_requests_shed_total`: HTTP requests refused with 503 at `limits.max_inflight`.
    public var shedTotal: Int { counters.shed.load(ordering: .relaxed) }

    static func now() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds) }
}

public struct BackendLoad: Sendable, Equatable {
    public var inflight: Int
    public var queued: Int
}

final class ResilienceCounters: Sendable {
    let principal = Atomic<Int>(0)
    let tenant = Atomic<Int>(0)
    let tool = Atomic<Int>(0)
    let shed = Atomic<Int>(0)

    func countRateLimited(scope: String) {
        switch scope {
        case "tenant": tenant.add(1, ordering: .relaxed)
        case "tool": tool.add(1, ordering: .relaxed)
        default: principal.add(1, ordering: .relaxed)
        }
    }

    func countShed() {
        shed.add(1, ordering: .relaxed)
    }

    var rateLimitedTotals: [String: Int] {
        ["principal": principal.load(ordering: .relaxed), "tenant": tenant.load(ordering: .relaxed), "tool": tool.load(ordering: .relaxed)]
    }
}

// MARK: - Per-principal and per-tenant request limits

/// A refused HTTP request, with what its 429 needs.
public struct RequestLimitRefusal: Sendable {
    /// `principal` or `tenant`: the limit that refused.
    public var scope: String
    public var decision: RateLimitDecision
    /// `RateLimit-Policy` and `RateLimit` field values (draft-ietf-httpapi-ratelimit-headers-10).
    public var policyField: String
    public var currentField: String
    /// The config key that refused, for the message.
    public var configKey: String
}

/// `limits.per_principal` and `limits.per_tenant`: one token bucket per principal id and one per tenant, in
/// one table behind one lock. Every MCP-endpoint request takes a token from each bucket that applies.
public final class RequestRateLimits: Sendable {
    private let limiter: Mutex<RateLimiter>
    private let policies: [TokenBucketPolicy]
    private let principalPolicy: Int?
    private let tenantPolicy: Int?
    private let counters: ResilienceCounters

    init?(limits: LimitsConfig, counters: ResilienceCounters) {
        var policies: [TokenBucketPolicy] = []
        var principalPolicy: Int?
        var tenantPolicy: Int?
        if let limit = limits.perPrincipal {
            principalPolicy = policies.count
            policies.append(TokenBucketPolicy(name: "principal", rate: limit.rate, per: limit.per, burst: limit.burst))
        }
        if let limit = limits.perTenant {
            tenantPolicy = policies.count
            policies.append(TokenBucketPolicy(name: "tenant", rate: limit.rate, per: limit.per, burst: limit.burst))
        }
        guard !policies.isEmpty else { return nil }
        self.limiter = Mutex(RateLimiter(policies: policies))
        self.policies = policies
        self.principalPolicy = principalPolicy
        self.tenantPolicy = tenantPolicy
        self.counters = counters
    }

    /// nil lets the request through.
    public func check(_ principal: Principal) -> RequestLimitRefusal? {
        let now = Resilience.now()
        let principalKey = principalPolicy.map { RateLimitKey(policy: $0, subject: principal.id) }
        let tenantKey = tenantPolicy.flatMap { index in principal.tenant.map { RateLimitKey(policy: index, subject: $0) } }
        let decision: RateLimitDecision?
        switch (principalKey, tenantKey) {
        case (let p?, let t?): decision = limiter.withLock { $0.take(KeyPair(first: p, second: t), now: now) }
        case (let p?, nil): decision = limiter.withLock { $0.take(CollectionOfOne(p), now: now) }
        case (nil, let t?): decision = limiter.withLock { $0.take(CollectionOfOne(t), now: now) }
        case (nil, nil): decision = nil
        }
        guard let decision, !decision.allowed else { return nil }
        let isTenant = decision.policy == tenantPolicy
        counters.countRateLimited(scope: isTenant ? "tenant" : "principal")
        let policy = policies[decision.policy]
        return RequestLimitRefusal(
            scope: isTenant ? "tenant" : "principal", decision: decision,
            policyField: RateLimitHeaderFields.policy(policy), currentField: RateLimitHeaderFields.current(policy, decision),
            configKey: isTenant ? "limits.per_tenant" : "limits.per_principal"
        )
    }
}

/// Two keys without an array allocation.
struct KeyPair: RandomAccessCollection {
    let first: RateLimitKey
    let second: RateLimitKey
    var startIndex: Int { 0 }
    var endIndex: Int { 2 }
    subscript(position: Int) -> RateLimitKey { position == 0 ? first : second }
}

// MARK: - max_inflight

/// `limits.max_inflight`: HTTP requests to the MCP endpoint being served at once (an SSE stream that a GET
/// keeps open is a subscription, not a request, and is not counted). One atomic add per request.
public final class InflightGauge: Sendable {
    public let limit: Int
    private let count = Atomic<Int>(0)
    private let counters: ResilienceCounters

    init(limit: Int, counters: ResilienceCounters) {
        self.limit = limit
        self.counters = counters
    }

    /// Takes a place; false (counted as shed) at the limit.
    public func tryAcquire() -> Bool {
        if count.add(1, ordering: .relaxed).newValue <= limit { return true }
        count.subtract(1, ordering: .relaxed)
        counters.countShed()
        return false
    }

    public func release() {
        count.subtract(1, ordering: .relaxed)
    }

    public var current: Int { count.load(ordering: .relaxed) }
}

// MARK: - Per-tool limits

/// `limits.per_tool`: rules matched against the exposed tool name (`time__*`). Every matching rule applies
/// (a broad rule and a narrow one both hold, so a catch-all `*` cap cannot be escaped by a more specific
/// rule), and each principal has its own bucket per rule: the tools one rule matches share that bucket.
final class ToolRateLimits: Sendable {
    struct State {
        var limiter: RateLimiter
        /// Which rules match an exposed name: computed once per name (names come from the catalog, so few).
        var rulesByTool: [String: [Int]] = [:]
    }

    let rules: [ToolRateLimit]
    private let state: Mutex<State>
    private let counters: ResilienceCounters

    init(rules: [ToolRateLimit], counters: ResilienceCounters) {
        self.rules = rules
        self.counters = counters
        let policies = rules.map { TokenBucketPolicy(name: "tool", rate: $0.limit.rate, per: $0.limit.per, burst: $0.limit.burst) }
        self.state = Mutex(State(limiter: RateLimiter(policies: policies)))
    }

    /// nil when no rule matches the tool or every matching bucket has a token.
    func take(tool: String, principal: String, now: Int64) -> RateLimitDecision? {
        let rules = self.rules
        let decision = state.withLock { state -> RateLimitDecision? in
            let matching: [Int]
            if let known = state.rulesByTool[tool] {
                matching = known
            } else {
                matching = rules.indices.filter { Glob.matches(rules[$0].tool, tool) }
                if state.rulesByTool.count > 100_000 { state.rulesByTool.removeAll() }
                state.rulesByTool[tool] = matching
            }
            return state.limiter.take(matching.lazy.map { RateLimitKey(policy: $0, subject: principal) }, now: now)
        }
        guard let decision, !decision.allowed else { return nil }
        counters.countRateLimited(scope: "tool")
        return decision
    }
}

/// Answers a call over its per-tool limit with -32003 and `data.retry_after_ms` (CONTRACT.md, "MCP behaviour").
struct ToolRateLimitGuard: ToolCallGuard {
    let limits: ToolRateLimits

    func check(_ route: ToolCallRoute, context: RequestContext) -> RouteDecision? {
        let tool = route.tool.exposedName
        guard let refusal = limits.take(tool: tool, principal: context.principal.id, now: Resilience.now()) else { return nil }
        let rule = limits.rules[refusal.policy]
        let retryMilliseconds = refusal.retryAfterMilliseconds
        var data = JSONObject()
        data["retry_after_ms"] = .number(JSONNumber(Int(retryMilliseconds)))
        data["tool"] = .string(tool)
        data["limit"] = .string("limits.per_tool[\(refusal.policy)]")
        return .error(JSONRPCError(
            code: JSONRPCErrorCode.rateLimited,
            message: "Rate limited: tool '\(tool)' allows \(Self.number(rule.limit.rate)) calls per \(DurationFormat.describe(rule.limit.per)) (burst \(rule.limit.burst)) per principal (limits.per_tool[\(refusal.policy)], \"\(rule.tool)\"); retry in \(retryMilliseconds) ms",
            data: .object(data)
        ))
    }

    static func number(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}

// MARK: - Circuit breakers

/// One backend's breaker behind its lock; logs transitions.
final class BreakerCell: Sendable {
    let backend: String
    private let breaker: Mutex<CircuitBreaker>
    private let logger: Logger

    init(backend: String, policy: CircuitBreakerPolicy, logger: Logger) {
        self.backend = backend
        self.breaker = Mutex(CircuitBreaker(policy: policy))
        self.logger = logger
    }

    func admit(now: Int64) -> CircuitBreaker.Admission {
        let admission = breaker.withLock { $0.admit(now: now) }
        if admission == .probe {
            logger.notice("circuit half-open: one probe call goes to the backend", metadata: ["circuit": "half-open"])
        }
        return admission
    }

    func record(_ outcome: CircuitOutcome, now: Int64) {
        let (transition, summary, policy) = breaker.withLock { breaker in
            let summary = breaker.windowSummary
            return (breaker.record(outcome, now: now), summary, breaker.policy)
        }
        switch transition {
        case .opened?:
            logger.warning("circuit opened: calls fail fast until a probe succeeds", metadata: [
                "circuit": "open", "failures": "\(summary.failures + (outcome == .failure ? 1 : 0))", "window": "\(policy.minCalls)",
                "open_for_ms": "\(policy.openForNanoseconds / 1_000_000)",
            ])
        case .reopened?:
            logger.warning("circuit re-opened: the probe call failed", metadata: ["circuit": "open", "open_for_ms": "\(policy.openForNanoseconds / 1_000_000)"])
        case .closed?:
            logger.notice("circuit closed: the probe call succeeded", metadata: ["circuit": "closed"])
        case nil:
            break
        }
    }

    func metricValue(now: Int64) -> Int { breaker.withLock { $0.metricValue(now: now) } }
}

/// While a backend's circuit is open, its calls fail fast with -32001 saying when it will retry.
struct CircuitBreakerGuard: ToolCallGuard {
    let breakers: [String: BreakerCell]

    func check(_ route: ToolCallRoute, context: RequestContext) -> RouteDecision? {
        guard let cell = breakers[route.tool.backend] else { return nil }
        guard case .refused(let wait, let halfOpen) = cell.admit(now: Resilience.now()) else { return nil }
        let seconds = max(1, (wait + 999_999_999) / 1_000_000_000)
        let detail = halfOpen
            ? "the circuit is half-open and a probe call is testing the backend; retrying in \(seconds) s"
            : "circuit open for backend \(route.tool.backend) after repeated failures, retrying in \(seconds) s"
        var error = JSONRPCError.backendUnavailable(route.tool.backend, detail)
        error.data = ["backend": .string(route.tool.backend), "circuit": .string(halfOpen ? "half-open" : "open"), "retry_after_ms": .number(JSONNumber(Int((wait + 999_999) / 1_000_000)))]
        return .error(error)
    }
}
