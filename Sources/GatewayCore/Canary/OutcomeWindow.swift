import Foundation

/// How one call to a backend version ended, as a canary judges it.
public enum CanaryOutcome: Sendable, Equatable {
    /// The version answered with a result, including one with `isError: true`: a tool's own failure is an
    /// answer, and a tool that reports bad input the same way on both versions says nothing about either.
    case success
    /// A JSON-RPC error of any code, a timeout, or the process unavailable (crashed, restarting). Every code
    /// counts, unlike for the circuit breaker: a canary that answers -32602 or -32601 where the stable
    /// version answers a result (a tool renamed, a schema narrowed) is exactly the regression to catch, and
    /// errors that both versions give alike (a client's bad arguments) cancel out in the comparison.
    case failure
}

/// What a version did within the window: the input of the rollback decision and the numbers of its log line.
public struct OutcomeSummary: Sendable, Equatable {
    public var calls: Int
    public var failures: Int
    /// Calls slower than the window's latency threshold (`sla_p95`).
    public var slowCalls: Int
    /// The 95th percentile of call durations (nearest rank), as the upper edge of its histogram bin (bins are
    /// 19% wide) capped at the slowest call seen: an estimate for people; decisions use `slowCalls`, which is exact.
    public var p95Nanoseconds: Int64?

    public init(calls: Int = 0, failures: Int = 0, slowCalls: Int = 0, p95Nanoseconds: Int64? = nil) {
        self.calls = calls
        self.failures = failures
        self.slowCalls = slowCalls
        self.p95Nanoseconds = p95Nanoseconds
    }

    /// failures / calls, 0 without calls.
    public var errorRatio: Double { calls == 0 ? 0 : Double(failures) / Double(calls) }

    /// Whether the 95th percentile (nearest rank) is above the threshold `slowCalls` was counted against:
    /// the rank-⌈0.95·n⌉ duration exceeds it exactly when fewer than ⌈0.95·n⌉ calls were at or under it.
    public var p95ExceedsThreshold: Bool {
        guard calls > 0 else { return false }
        return calls - slowCalls < Self.rank95(of: calls)
    }

    /// ⌈0.95·n⌉ in integers (n·95 rounded up to the next multiple of 100).
    static func rank95(of count: Int) -> Int { (count * 95 + 99) / 100 }
}

/// One version's outcomes over a sliding time window (`canary.window`), in memory bounded by the window's
/// bucket count rather than the call rate: the window is cut into `bucketCount` time buckets, each holding
/// counts and a latency histogram, and a bucket older than the window is reused for the current time. The
/// window therefore covers between `window − window/bucketCount` and `window` of history.
///
/// The latency threshold is fixed at creation, so "is the P95 above the SLA" is answered exactly from counts
/// (see `OutcomeSummary.p95ExceedsThreshold`); the histogram only estimates the P95 for the log line.
public struct OutcomeWindow: Sendable, Equatable {
    public let windowNanoseconds: Int64
    public let bucketCount: Int
    public let slowThresholdNanoseconds: Int64
    private let bucketNanoseconds: Int64
    private var buckets: [Bucket]

    struct Bucket: Sendable, Equatable {
        /// Which bucket of time (now / bucketNanoseconds) it holds; stale when outside the window.
        var epoch: Int64 = Int64.min
        var calls = 0
        var failures = 0
        var slowCalls = 0
        var longestNanoseconds: Int64 = 0
        var histogram: [UInt32] = []
    }

    /// Latency bin edges: 1 ms · 2^(k/4) for k = 0…79 (1 ms to about 15 min), each bin 19% wider than the last.
    /// A final bin holds anything longer.
    static let binEdges: [Int64] = (0..<80).map { Int64((1_000_000.0 * pow(2, Double($0) / 4)).rounded()) }

    public init(window: Duration, slowThreshold: Duration, bucketCount: Int = 20) {
        precondition(window > .zero && bucketCount >= 1, "window > 0, bucketCount >= 1")
        self.windowNanoseconds = window.nanoseconds
        self.bucketCount = bucketCount
        self.slowThresholdNanoseconds = slowThreshold.nanoseconds
        self.bucketNanoseconds = max(1, window.nanoseconds / Int64(bucketCount))
        self.buckets = Array(repeating: Bucket(), count: bucketCount)
    }

    /// Records a call that ended at `now` (monotonic nanoseconds) after `durationNanoseconds`.
    public mutating func record(_ outcome: CanaryOutcome, durationNanoseconds: Int64, now: Int64) {
        let epoch = now / bucketNanoseconds
        let slot = Int(((epoch % Int64(bucketCount)) + Int64(bucketCount)) % Int64(bucketCount))
        if buckets[slot].epoch != epoch {
            buckets[slot] = Bucket(epoch: epoch, histogram: Array(repeating: 0, count: Self.binEdges.count + 1))
        }
        let duration = max(0, durationNanoseconds)
        buckets[slot].calls += 1
        if outcome == .failure { buckets[slot].failures += 1 }
        if duration > slowThresholdNanoseconds { buckets[slot].slowCalls += 1 }
        buckets[slot].longestNanoseconds = max(buckets[slot].longestNanoseconds, duration)
        buckets[slot].histogram[Self.bin(of: duration)] &+= 1
    }

    /// The outcomes of the buckets still inside the window at `now`. Without `percentile` the P95 estimate is
    /// left out, and the cost is one pass over the buckets' counts (what every call's judgement needs); with
    /// it the histograms are merged too (what a rollback's log line needs).
    public func summary(now: Int64, percentile: Bool = true) -> OutcomeSummary {
        let current = now / bucketNanoseconds
        var summary = OutcomeSummary()
        for bucket in buckets where bucket.epoch <= current && bucket.epoch > current - Int64(bucketCount) {
            summary.calls += bucket.calls
            summary.failures += bucket.failures
            summary.slowCalls += bucket.slowCalls
        }
        guard percentile, summary.calls > 0 else { return summary }
        var histogram = Array(repeating: 0, count: Self.binEdges.count + 1)
        var longest: Int64 = 0
        for bucket in buckets where bucket.epoch <= current && bucket.epoch > current - Int64(bucketCount) {
            longest = max(longest, bucket.longestNanoseconds)
            for (index, count) in bucket.histogram.enumerated() { histogram[index] += Int(count) }
        }
        let rank = OutcomeSummary.rank95(of: summary.calls)
        var seen = 0
        for (index, count) in histogram.enumerated() {
            seen += count
            if seen >= rank {
                let edge = index < Self.binEdges.count ? Self.binEdges[index] : longest
                summary.p95Nanoseconds = min(edge, longest)
                break
            }
        }
        return summary
    }

    /// Forgets everything (a version put back into service starts with a clean record).
    public mutating func reset() {
        buckets = Array(repeating: Bucket(), count: bucketCount)
    }

    /// The first bin whose upper edge is at or above the duration (binary search over the sorted edges).
    static func bin(of nanoseconds: Int64) -> Int {
        var low = 0
        var high = binEdges.count
        while low < high {
            let middle = (low + high) / 2
            if binEdges[middle] >= nanoseconds { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
