import Foundation

/// When to restart a backend process that died: exponential backoff with jitter, reset after sustained
/// uptime (so a process that ran for a while and then crashed restarts fast, and a crash loop slows down).
/// A successful handshake alone resets nothing: a server that starts, answers `initialize` and dies a second
/// later is still crash-looping, so the count resets only once the process has stayed up for `resetAfter`
/// (`backends.<name>.health.stable_after`).
/// A pure state machine: the shell reports events with the current monotonic time and a random unit value,
/// and schedules what it is told.
public struct RestartBackoff: Sendable, Equatable {
    public var initialDelay: Duration
    public var maximumDelay: Duration
    public var multiplier: Double
    /// Fraction of the delay randomised either way (0.2 = ±20%), so replicas do not restart in lockstep.
    public var jitter: Double
    /// Uptime after which the next crash is treated as a first one (`health.stable_after`).
    public var resetAfter: Duration

    public private(set) var consecutiveFailures = 0
    private var startedAt: Int64?

    public init(
        initialDelay: Duration = .milliseconds(200), maximumDelay: Duration = .seconds(30),
        multiplier: Double = 2, jitter: Double = 0.2, resetAfter: Duration = .seconds(30)
    ) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.multiplier = multiplier
        self.jitter = jitter
        self.resetAfter = resetAfter
    }

    /// The process is up (handshake done).
    public mutating func started(now: Int64) {
        startedAt = now
    }

    /// Whether the running process has been up long enough that its next failure counts as a first one.
    public func isStable(now: Int64) -> Bool {
        guard let startedAt else { return false }
        return now - startedAt >= resetAfter.nanoseconds
    }

    /// The process died or failed to start: returns how long to wait before the next attempt.
    /// `random` is a uniform value in 0..<1 supplied by the shell (tests pass fixed values).
    public mutating func failed(now: Int64, random: Double) -> Duration {
        if isStable(now: now) { consecutiveFailures = 0 }
        startedAt = nil
        let exponent = Double(consecutiveFailures)
        consecutiveFailures += 1
        let base = min(Double(initialDelay.nanoseconds) * pow(multiplier, exponent), Double(maximumDelay.nanoseconds))
        let factor = 1 + jitter * (2 * random - 1)
        return .nanoseconds(Int64(max(0, base * factor)))
    }
}

