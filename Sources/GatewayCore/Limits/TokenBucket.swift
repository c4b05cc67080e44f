/// One token-bucket policy (`limits.per_principal`, `limits.per_tenant`, `limits.per_tool[i]`): `rate` tokens
/// are added every `per`, up to `burst`; each request takes one. Times are monotonic nanoseconds passed in by
/// the caller, so the arithmetic is testable without a clock.
public struct TokenBucketPolicy: Sendable, Equatable {
    /// The policy's name in the `RateLimit` and `RateLimit-Policy` header fields (an sf-string).
    public var name: String
    /// The most tokens the bucket holds: how many requests may arrive at once after a quiet period.
    public var capacity: Double
    /// Tokens added per nanosecond.
    public var refillPerNanosecond: Double

    public init(name: String, rate: Double, per: Duration, burst: Int) {
        precondition(rate > 0 && burst > 0 && per > .zero, "a token bucket needs a positive rate, period and burst")
        self.name = name
        self.capacity = Double(burst)
        self.refillPerNanosecond = rate / Double(per.nanoseconds)
    }

    /// Nanoseconds for an empty bucket to fill up: the policy's window in the `RateLimit-Policy` field.
    public var fullRefillNanoseconds: Int64 { Self.nanoseconds(capacity / refillPerNanosecond) }

    static func nanoseconds(_ value: Double) -> Int64 {
        guard value.isFinite, value > 0 else { return 0 }
        return value >= Double(Int64.max) ? Int64.max : Int64(value.rounded(.up))
    }
}

/// The state of one bucket: a token count as of `updatedAt`. A bucket that has refilled to capacity is
/// indistinguishable from a new one, which is what lets `RateLimiter` forget idle buckets.
public struct TokenBucket: Sendable, Equatable {
    public private(set) var tokens: Double
    public private(set) var updatedAt: Int64

    /// A bucket that has never been used: full.
    public init(policy: TokenBucketPolicy, now: Int64) {
        self.tokens = policy.capacity
        self.updatedAt = now
    }

    /// Adds the tokens earned since `updatedAt`. A clock that goes backwards adds nothing.
    public mutating func refill(policy: TokenBucketPolicy, now: Int64) {
        guard now > updatedAt else { return }
        let earned = Double(now - updatedAt) * policy.refillPerNanosecond
        tokens = min(policy.capacity, tokens + earned)
        updatedAt = now
    }

    /// True when one token is available (after `refill`).
    public var hasToken: Bool { tokens >= 1 }

    /// Takes one token; the caller has checked `hasToken`.
    public mutating func take() {
        tokens -= 1
    }

    /// Nanoseconds until one token is available (0 when one is).
    public func nanosecondsUntilToken(policy: TokenBucketPolicy) -> Int64 {
        hasToken ? 0 : TokenBucketPolicy.nanoseconds((1 - tokens) / policy.refillPerNanosecond)
    }

    /// Nanoseconds until the bucket is full again (0 when it is).
    public func nanosecondsUntilFull(policy: TokenBucketPolicy) -> Int64 {
        TokenBucketPolicy.nanoseconds((policy.capacity - tokens) / policy.refillPerNanosecond)
    }

    public func isFull(policy: TokenBucketPolicy) -> Bool { tokens >= policy.capacity }
}
