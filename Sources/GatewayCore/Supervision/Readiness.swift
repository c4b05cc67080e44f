/// A backend's condition as `/readyz` reports it (issue 7, items 4 and 8).
public enum BackendHealthState: String, Sendable, Equatable, CaseIterable {
    /// At least one instance takes calls.
    case ready
    /// Coming up for the first time (or a session-isolated backend still probing its tool list).
    case starting
    /// Its process died and a restart is due or under way.
    case restarting
    /// The crash-loop breaker is open: no restarts until its cooldown ends (`health.crash_loop_cooldown`).
    case crashLoop = "crash_loop"
    /// An instance did not answer a health ping and is being killed and replaced.
    case unhealthy

    public var isReady: Bool { self == .ready }
}

/// `server.readiness.quorum`: how many of the configured backends must be ready for the replica to take
/// traffic. A gateway fronting independent tools is useful with any of them up (`any`, the default); one
/// whose clients need every tool should leave the load balancer's rotation when one is down (`all`).
public enum ReadinessQuorum: Sendable, Equatable, CustomStringConvertible {
    /// At least one backend is ready.
    case any
    /// Every backend is ready.
    case all
    /// At least this share (0...1) of the backends is ready.
    case fraction(Double)

    /// Whether `ready` backends out of `configured` meet the quorum.
    public func isMet(ready: Int, configured: Int) -> Bool {
        switch self {
        case .any:
            return ready >= 1
        case .all:
            return ready >= configured
        case .fraction(let share):
            guard configured > 0 else { return true }
            // Compared in integers where possible: 0.5 of 3 needs 2, 0.5 of 4 needs 2.
            return Double(ready) >= share * Double(configured) - 1e-9
        }
    }

    public var description: String {
        switch self {
        case .any: return "any"
        case .all: return "all"
        case .fraction(let share): return "\(share)"
        }
    }
}
