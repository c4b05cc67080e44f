/// `backends.<n>.circuit_breaker`, in the units the state machine uses.
public struct CircuitBreakerPolicy: Sendable, Equatable {
    /// The share of failures in the window that opens the circuit, in (0, 1].
    public var failureRatio: Double
    /// The window's size: the circuit judges the last `minCalls` outcomes, and never fewer.
    public var minCalls: Int
    /// How long the circuit stays open before one probe call is let through.
    public var openForNanoseconds: Int64
    /// How long a probe may stay unanswered before another call may probe: a probe whose outcome never
    /// arrives (refused after admission, lost) must not hold the circuit half-open for ever. The gateway sets
    /// it to the backend's `call_timeout`, the longest a probe can legitimately take.
    public var probeTimeoutNanoseconds: Int64

    public init(failureRatio: Double, minCalls: Int, openFor: Duration, probeTimeout: Duration) {
        precondition(failureRatio > 0 && failureRatio <= 1 && minCalls >= 1, "circuit breaker: failure_ratio in (0, 1], min_calls >= 1")
        self.failureRatio = failureRatio
        self.minCalls = minCalls
        self.openForNanoseconds = max(1, openFor.nanoseconds)
        self.probeTimeoutNanoseconds = max(1, probeTimeout.nanoseconds)
    }
}

/// How a call that reached a backend ended, as the breaker counts it.
public enum CircuitOutcome: Sendable, Equatable {
    /// The backend answered: a result (even one with `isError: true`, a tool's own failure), or a JSON-RPC
    /// error that is about the request rather than the backend's health (invalid params, unknown method…).
    case success
    /// The backend is unhealthy: unavailable (-32001), timed out (-32004, or the gateway's `call_timeout`),
    /// or an internal error (-32603).
    case failure
    /// Says nothing about the backend: the client cancelled, or the call never reached it (queue full).
    case neutral

    /// The outcome of a JSON-RPC error the backend (or the gateway on its behalf) answered with.
    public static func ofError(code: Int) -> CircuitOutcome {
        switch code {
        case JSONRPCErrorCode.backendUnavailable, JSONRPCErrorCode.backendTimeout, JSONRPCErrorCode.internalError: return .failure
        default: return .success
        }
    }
}

/// A per-backend circuit breaker (ARCHITECTURE.md, "State machines that return actions"):
///
/// - **closed**: calls pass; each outcome enters a count-based sliding window of the last `min_calls`
///   outcomes (neutral ones are not counted). When the window is full and failures/`min_calls` reaches
///   `failure_ratio`, the circuit opens. A count window (not a time window) makes the rule exact at any call
///   rate: "at least `min_calls` calls, and `failure_ratio` of the latest `min_calls` failed".
/// - **open** for `open_for`: calls are refused at once (-32001 naming when it will retry), outcomes of calls
///   admitted before it opened are ignored.
/// - **half-open**: the first call after `open_for` is the one probe; the others are refused while it runs. The
///   probe's success closes the circuit with an empty window; its failure opens it for another `open_for`; a
///   neutral outcome frees the probe slot for the next call.
public struct CircuitBreaker: Sendable {
    public enum State: Sendable, Equatable {
        case closed
        case open(until: Int64)
        case halfOpen(probeStartedAt: Int64)
    }

    public enum Admission: Sendable, Equatable {
        case allowed
        /// Allowed as the half-open probe: its outcome decides the circuit.
        case probe
        /// Refused; `retryAfterNanoseconds` until a call may be admitted again (at most, for half-open).
        case refused(retryAfterNanoseconds: Int64, halfOpen: Bool)
    }

    /// A change of state the shell logs.
    public enum Transition: Sendable, Equatable { case opened, closed, reopened }

    public let policy: CircuitBreakerPolicy
    public private(set) var state: State = .closed
    /// The last `minCalls` outcomes (true: failure), a ring once full; grown as outcomes arrive, so a large
    /// `min_calls` costs memory only when that many calls happen.
    private var window: [Bool] = []
    private var windowNext = 0
    private var windowCount = 0
    private var windowFailures = 0

    /// While half-open, a refused call is told to retry after at most this long: the probe usually answers sooner.
    static let halfOpenRetryNanoseconds: Int64 = 1_000_000_000

    public init(policy: CircuitBreakerPolicy) {
        self.policy = policy
    }

    /// Whether a call may go to the backend now.
    public mutating func admit(now: Int64) -> Admission {
        switch state {
        case .closed:
            return .allowed
        case .open(let until):
            guard now >= until else { return .refused(retryAfterNanoseconds: until - now, halfOpen: false) }
            state = .halfOpen(probeStartedAt: now)
            return .probe
        case .halfOpen(let started):
            let deadline = started &+ policy.probeTimeoutNanoseconds
            guard now >= deadline else {
                return .refused(retryAfterNanoseconds: min(deadline - now, Self.halfOpenRetryNanoseconds), halfOpen: true)
            }
            state = .halfOpen(probeStartedAt: now)
            return .probe
        }
    }

    /// Records how a call ended; returns the transition it caused, if any.
    @discardableResult
    public mutating func record(_ outcome: CircuitOutcome, now: Int64) -> Transition? {
        switch state {
        case .open:
            return nil
        case .halfOpen:
            switch outcome {
            case .success:
                state = .closed
                resetWindow()
                return .closed
            case .failure:
                state = .open(until: now &+ policy.openForNanoseconds)
                return .reopened
            case .neutral:
                state = .halfOpen(probeStartedAt: Int64.min / 2)
                return nil
            }
        case .closed:
            guard outcome != .neutral else { return nil }
            let failed = outcome == .failure
            if windowCount == policy.minCalls {
                if window[windowNext] { windowFailures -= 1 }
                window[windowNext] = failed
            } else if windowNext < window.count {
                window[windowNext] = failed
                windowCount += 1
            } else {
                window.append(failed)
                windowCount += 1
            }
            if failed { windowFailures += 1 }
            windowNext = (windowNext + 1) % policy.minCalls
            guard windowCount == policy.minCalls, Double(windowFailures) >= policy.failureRatio * Double(windowCount) else { return nil }
            state = .open(until: now &+ policy.openForNanoseconds)
            resetWindow()
            return .opened
        }
    }

    /// `mcp_circuit_state`: 0 closed, 1 half-open, 2 open. An open circuit whose `open_for` has passed reports
    /// half-open: the next call will be its probe.
    public func metricValue(now: Int64) -> Int {
        switch state {
        case .closed: return 0
        case .halfOpen: return 1
        case .open(let until): return now >= until ? 1 : 2
        }
    }

    /// Failures and outcomes in the current window (for tests and logs).
    public var windowSummary: (failures: Int, outcomes: Int) { (windowFailures, windowCount) }

    private mutating func resetWindow() {
        windowNext = 0
        windowCount = 0
        windowFailures = 0
    }
}
