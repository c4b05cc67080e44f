/// Which bucket: the index of its policy in `RateLimiter.policies` and who it belongs to (a principal id, a
/// tenant). Per-tool buckets use the rule's index and the principal id, so each principal has its own bucket
/// per rule (CONTRACT.md, "Labels and check output").
public struct RateLimitKey: Hashable, Sendable {
    public var policy: Int
    public var subject: String

    public init(policy: Int, subject: String) {
        self.policy = policy
        self.subject = subject
    }
}

/// The answer for one request, with what the `Retry-After`, `RateLimit` and `RateLimit-Policy` header fields
/// (and JSON-RPC `data.retry_after_ms`) need.
public struct RateLimitDecision: Sendable, Equatable {
    public var allowed: Bool
    /// The policy the numbers describe: the refusing policy with the longest wait, or, when allowed, the
    /// policy with the fewest tokens left (the one closest to refusing, as the draft recommends to report).
    public var policy: Int
    /// Whole tokens left in that bucket after this request.
    public var remaining: Int
    /// When refused: nanoseconds until the request could succeed. 0 when allowed.
    public var retryAfterNanoseconds: Int64
    /// Nanoseconds until that bucket is full again (the `t` of the `RateLimit` field).
    public var resetNanoseconds: Int64

    public var retryAfterMilliseconds: Int64 { (retryAfterNanoseconds + 999_999) / 1_000_000 }
    /// Whole seconds for `Retry-After` (RFC 9110 §10.2.3, delay-seconds): rounded up, at least 1 when refused.
    public var retryAfterSeconds: Int64 { allowed ? 0 : max(1, (retryAfterNanoseconds + 999_999_999) / 1_000_000_000) }
    public var resetSeconds: Int64 { (resetNanoseconds + 999_999_999) / 1_000_000_000 }
}

/// Token buckets keyed by who is asking, for one family of limits (the HTTP front's per-principal and
/// per-tenant limits; the per-tool rules). Pure: the caller passes the time and keeps it behind a lock.
///
/// A request names every bucket it must pass (its principal's and its tenant's, or one per matching tool rule);
/// it is allowed only if every bucket has a token, and then takes one from each, so a refusal by one limit
/// never spends another's tokens.
///
/// Memory stays bounded without a timer: a bucket that has refilled to capacity is indistinguishable from a
/// new one, so a sweep drops those. The sweep runs inside `take`, once every `max(sweepEvery, buckets.count)`
/// calls, so its O(n) cost is paid by at least n calls (amortised O(1)), and the table never holds more than the
/// buckets used within one refill window plus those created since the last sweep.
public struct RateLimiter: Sendable {
    public let policies: [TokenBucketPolicy]
    public private(set) var buckets: [RateLimitKey: TokenBucket] = [:]
    private var callsSinceSweep = 0
    private let sweepEvery: Int

    public init(policies: [TokenBucketPolicy], sweepEvery: Int = 256) {
        self.policies = policies
        self.sweepEvery = max(1, sweepEvery)
    }

    /// Checks every bucket `keys` names and, when all have a token, takes one from each. nil for no keys.
    public mutating func take<Keys: Collection>(_ keys: Keys, now: Int64) -> RateLimitDecision? where Keys.Element == RateLimitKey {
        guard !keys.isEmpty else { return nil }
        sweepIfDue(now: now)
        var refusal: RateLimitDecision?
        for key in keys {
            guard var bucket = buckets[key] else { continue }  // an absent bucket is full, so it has a token
            let policy = policies[key.policy]
            bucket.refill(policy: policy, now: now)
            guard !bucket.hasToken else { continue }
            let wait = bucket.nanosecondsUntilToken(policy: policy)
            if wait > refusal?.retryAfterNanoseconds ?? -1 {
                refusal = RateLimitDecision(
                    allowed: false, policy: key.policy, remaining: 0, retryAfterNanoseconds: wait,
                    resetNanoseconds: bucket.nanosecondsUntilFull(policy: policy)
                )
            }
        }
        if let refusal { return refusal }
        var tightest: RateLimitDecision?
        for key in keys {
            let policy = policies[key.policy]
            var left = buckets[key] ?? TokenBucket(policy: policy, now: now)
            left.refill(policy: policy, now: now)
            left.take()
            buckets[key] = left
            let remaining = Int(left.tokens.rounded(.down))
            if tightest == nil || remaining < tightest!.remaining {
                tightest = RateLimitDecision(
                    allowed: true, policy: key.policy, remaining: remaining, retryAfterNanoseconds: 0,
                    resetNanoseconds: left.nanosecondsUntilFull(policy: policy)
                )
            }
        }
        return tightest
    }

    /// Drops every bucket that has refilled to capacity by `now`.
    public mutating func sweep(now: Int64) {
        let policies = self.policies
        buckets = buckets.filter { key, bucket in
            var refilled = bucket
            refilled.refill(policy: policies[key.policy], now: now)
            return !refilled.isFull(policy: policies[key.policy])
        }
        callsSinceSweep = 0
    }

    private mutating func sweepIfDue(now: Int64) {
        callsSinceSweep += 1
        if callsSinceSweep >= max(sweepEvery, buckets.count) { sweep(now: now) }
    }
}

/// The `RateLimit-Policy` and `RateLimit` header fields of draft-ietf-httpapi-ratelimit-headers-10 (sections
/// "RateLimit-Policy Field" and "RateLimit Field"): Structured Fields lists (RFC 9651) whose items are the
/// policy's name as an sf-string with parameters: `q` the quota and `w` the window in seconds for the policy;
/// `r` the remaining quota and `t` the seconds until it resets for the current state.
///
/// A token bucket maps onto them as: quota = `burst`; window = the time an empty bucket takes to fill (so
/// `q` requests per `w` seconds is the long-run rate, with all of them allowed at once after a quiet window);
/// remaining = whole tokens left; reset = seconds until the bucket is full again.
public enum RateLimitHeaderFields {
    /// `"principal";q=100;w=2`
    public static func policy(_ policy: TokenBucketPolicy) -> String {
        let window = max(1, (policy.fullRefillNanoseconds + 999_999_999) / 1_000_000_000)
        return "\(sfString(policy.name));q=\(Int(policy.capacity));w=\(window)"
    }

    /// `"principal";r=0;t=2`
    public static func current(_ policy: TokenBucketPolicy, _ decision: RateLimitDecision) -> String {
        "\(sfString(policy.name));r=\(max(0, decision.remaining));t=\(decision.resetSeconds)"
    }

    /// RFC 9651 §3.3.3: a quoted string with `"` and `\` escaped (policy names are ASCII identifiers of ours).
    static func sfString(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
