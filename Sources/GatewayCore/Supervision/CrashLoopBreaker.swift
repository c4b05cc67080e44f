/// Stops a backend that keeps dying from being restarted forever (issue 7, item 4: "too many restarts in a
/// window marks the backend down, readiness reflects it, it is retried later").
///
/// Backoff alone slows a crash loop down but never ends it, and a backend restarting every 30 s still looks
/// "restarting" rather than broken. This breaker counts restarts in a sliding window: more than `maxRestarts`
/// within `window` opens it, and while it is open the supervisor restarts nothing and refuses calls at once.
/// After `cooldown` it lets one attempt through (probing, as a circuit breaker's half-open state does): a
/// successful handshake closes it and normal supervision (backoff) resumes; a death before that opens it
/// again for another `cooldown`.
///
/// A pure state machine in the style of ARCHITECTURE.md ("State machines that return actions"): the shell
/// reports events with the current monotonic time in nanoseconds and does what it is told.
public struct CrashLoopBreaker: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// Restarts are allowed; they are being counted.
        case closed
        /// A crash loop: no restarts until `retryAt` (monotonic nanoseconds).
        case open(retryAt: Int64)
        /// The cooldown is over and one attempt is under way.
        case probing
    }

    /// What to do about an instance that just died.
    public enum Decision: Sendable, Equatable {
        /// Restart it as usual (after the backoff delay).
        case restart
        /// This death opened the breaker: log the crash loop; retry at `retryAt`.
        case tripped(retryAt: Int64)
        /// The breaker was already open: retry at `retryAt`, nothing new to log.
        case held(retryAt: Int64)
    }

    /// How many restarts the window tolerates; one more opens the breaker.
    public let maxRestarts: Int
    public let window: Duration
    public let cooldown: Duration

    public private(set) var state: State = .closed
    /// Times of the restarts inside the window, oldest first.
    private var restarts: [Int64] = []

    public init(maxRestarts: Int = 5, window: Duration = .seconds(60), cooldown: Duration = .seconds(60)) {
        precondition(maxRestarts >= 0, "maxRestarts must not be negative")
        self.maxRestarts = maxRestarts
        self.window = window
        self.cooldown = cooldown
    }

    /// Restarts counted in the window ending at `now`.
    public func restartCount(now: Int64) -> Int {
        let horizon = now - window.nanoseconds
        return restarts.reduce(0) { $0 + ($1 > horizon ? 1 : 0) }
    }

    /// When the breaker is open, the time of the next attempt.
    public var retryAt: Int64? {
        if case .open(let retryAt) = state { return retryAt }
        return nil
    }

    /// An instance died (or failed to start) and the supervisor would restart it.
    public mutating func instanceDied(now: Int64) -> Decision {
        switch state {
        case .open(let retryAt):
            return .held(retryAt: retryAt)
        case .probing:
            return trip(now: now)
        case .closed:
            let horizon = now - window.nanoseconds
            restarts.removeAll { $0 <= horizon }
            restarts.append(now)
            return restarts.count > maxRestarts ? trip(now: now) : .restart
        }
    }

    /// The supervisor's timer fired: if the cooldown is over, the breaker lets an attempt through (probing).
    /// Returns whether an attempt may be made now.
    public mutating func cooldownElapsed(now: Int64) -> Bool {
        switch state {
        case .closed, .probing:
            return true
        case .open(let retryAt):
            guard now >= retryAt else { return false }
            state = .probing
            return true
        }
    }

    /// An instance completed its handshake: a probe that succeeds closes the breaker with a clean slate.
    public mutating func instanceStarted(now: Int64) {
        guard state == .probing else { return }
        state = .closed
        restarts.removeAll()
    }

    private mutating func trip(now: Int64) -> Decision {
        let retryAt = now + cooldown.nanoseconds
        state = .open(retryAt: retryAt)
        return .tripped(retryAt: retryAt)
    }
}
