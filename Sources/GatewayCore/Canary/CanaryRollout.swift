/// `backends.<n>.canary`, in the units the state machine uses: when a canary version is rolled back (the
/// seed's lifecycle chapter: "Automated rollback triggers: error rate exceeding baseline by 50%, P95 latency
/// increase beyond SLA").
public struct CanaryPolicy: Sendable, Equatable {
    /// The sliding window both versions are judged over.
    public var window: Duration
    /// A canary is judged only once it has had this many calls within the window.
    public var minCalls: Int
    /// The canary fails when its error ratio exceeds the stable version's by more than this share of it:
    /// 0.5 means `canary > stable × 1.5`.
    public var maxErrorRatioIncrease: Double
    /// The canary fails when its P95 latency within the window exceeds this.
    public var slaP95: Duration

    public init(window: Duration, minCalls: Int, maxErrorRatioIncrease: Double, slaP95: Duration) {
        precondition(window > .zero && minCalls >= 1 && maxErrorRatioIncrease >= 0 && slaP95 > .zero, "canary policy out of range")
        self.window = window
        self.minCalls = minCalls
        self.maxErrorRatioIncrease = maxErrorRatioIncrease
        self.slaP95 = slaP95
    }

    /// Whether `canary` should be rolled back, compared with `stable` over the same window.
    ///
    /// - Error ratio: the canary's must be above zero and above `stable × (1 + maxErrorRatioIncrease)`. The
    ///   baseline is the stable version's ratio over whatever calls it had in the window (zero without calls):
    ///   a relative rule cannot be applied to an unknown baseline any other way, and a canary that fails
    ///   while the stable version is idle is failing.
    /// - Latency: the canary's P95 (nearest rank) must be above `slaP95`, an absolute bound, so a canary on a
    ///   backend whose stable version is already slow is not rolled back for matching it.
    ///
    /// Nothing is decided before the canary has `minCalls` calls in the window.
    public func verdict(canary: OutcomeSummary, stable: OutcomeSummary) -> CanaryRollbackReason? {
        guard canary.calls >= minCalls else { return nil }
        let canaryRatio = canary.errorRatio
        let stableRatio = stable.errorRatio
        if canary.failures > 0, canaryRatio > stableRatio * (1 + maxErrorRatioIncrease) {
            return .errorRatio
        }
        if canary.p95ExceedsThreshold { return .latency }
        return nil
    }
}

/// Why a canary was rolled back.
public enum CanaryRollbackReason: String, Sendable, Equatable {
    /// Its error ratio exceeded the stable version's by more than `max_error_ratio_increase`.
    case errorRatio = "error_ratio"
    /// Its P95 latency exceeded `sla_p95`.
    case latency = "p95_latency"
}

/// A rollback the shell performs: route nothing more to `version`, stop its processes, log and count it.
public struct CanaryRollback: Sendable, Equatable {
    public var version: Int
    public var reason: CanaryRollbackReason
    /// The numbers the decision was made on, for the log line.
    public var canary: OutcomeSummary
    public var stable: OutcomeSummary
    /// Every version's weight after the rollback.
    public var weights: [Int]
}

/// A backend's versions in a canary rollout (issue 7, item 7): the weighted split, each version's outcomes
/// over the window, and the rollback decision, as a state machine without I/O (ARCHITECTURE.md, "State
/// machines that return actions"). The shell asks where each call goes, reports how each call ended with
/// the monotonic time in nanoseconds, and performs the rollback it is handed.
///
/// Each version other than the stable one is a canary, judged against the stable version on its own. A
/// rolled-back canary's weight moves to the stable version (its traffic returns to the last known good
/// version, whatever the stable version's own weight was) and stays there until the configuration changes.
public struct CanaryRollout: Sendable {
    public let names: [String]
    public let stableIndex: Int
    public let policy: CanaryPolicy
    public private(set) var split: WeightedSplit
    public private(set) var rolledBack: [Bool]
    private var windows: [OutcomeWindow]

    /// - Precondition: `names` and `weights` the same length (two or more), `stableIndex` one of them, weights
    ///   non-negative with a positive sum (the configuration checks all of this).
    public init(names: [String], weights: [Int], stableIndex: Int, policy: CanaryPolicy) {
        precondition(names.count == weights.count && names.count >= 2 && names.indices.contains(stableIndex), "canary rollout: one weight per version")
        self.names = names
        self.stableIndex = stableIndex
        self.policy = policy
        self.split = WeightedSplit(weights: weights)
        self.rolledBack = Array(repeating: false, count: names.count)
        self.windows = Array(repeating: OutcomeWindow(window: policy.window, slowThreshold: policy.slaP95), count: names.count)
    }

    /// Every version's current weight (the configured ones until a rollback).
    public var weights: [Int] { split.weights }

    /// The version the next call goes to.
    public mutating func route() -> Int { split.next() }

    /// Records how a call to `version` ended; returns the rollback to perform when this outcome tips a
    /// canary over (once per canary: a rolled-back canary's late replies are not judged again).
    public mutating func record(_ outcome: CanaryOutcome, version: Int, durationNanoseconds: Int64, now: Int64) -> CanaryRollback? {
        windows[version].record(outcome, durationNanoseconds: durationNanoseconds, now: now)
        guard version != stableIndex, !rolledBack[version] else { return nil }
        let counts = (canary: windows[version].summary(now: now, percentile: false), stable: windows[stableIndex].summary(now: now, percentile: false))
        guard let reason = policy.verdict(canary: counts.canary, stable: counts.stable) else { return nil }
        let canary = windows[version].summary(now: now)
        let stable = windows[stableIndex].summary(now: now)
        rolledBack[version] = true
        var newWeights = split.weights
        newWeights[stableIndex] += newWeights[version]
        newWeights[version] = 0
        split.setWeights(newWeights)
        return CanaryRollback(version: version, reason: reason, canary: canary, stable: stable, weights: newWeights)
    }

    /// A version's outcomes within the window at `now` (for diagnostics and tests).
    public func summary(version: Int, now: Int64) -> OutcomeSummary {
        windows[version].summary(now: now)
    }
}
