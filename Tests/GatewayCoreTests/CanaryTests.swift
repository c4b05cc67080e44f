import Testing

@testable import GatewayCore

private let millisecond: Int64 = 1_000_000
private let second: Int64 = 1_000_000_000

@Suite struct WeightedSplitTests {
    func picks(_ weights: [Int], count: Int) -> [Int] {
        var split = WeightedSplit(weights: weights)
        return (0..<count).map { _ in split.next() }
    }

    func counts(_ picks: [Int], versions: Int) -> [Int] {
        (0..<versions).map { version in picks.filter { $0 == version }.count }
    }

    @Test func ninetyTenIsExactOverTenCallsAndSpreadOut() {
        let sequence = picks([90, 10], count: 10)
        #expect(counts(sequence, versions: 2) == [9, 1])
        // The canary's one call is not the first: smooth WRR spreads picks instead of bursting them.
        #expect(sequence.firstIndex(of: 1) != 0)
        for run in 1...20 {
            #expect(counts(picks([90, 10], count: 10 * run), versions: 2) == [9 * run, run])
        }
    }

    @Test func eightyTwentyGivesFortyTenOverFifty() {
        #expect(counts(picks([80, 20], count: 50), versions: 2) == [40, 10])
        #expect(picks([80, 20], count: 5) == picks([4, 1], count: 5), "scaled weights pick the same sequence")
    }

    @Test func everyPrefixStaysWithinOneCallOfItsShare() {
        let weights = [5, 3, 2]
        var split = WeightedSplit(weights: weights)
        var seen = [0, 0, 0]
        for call in 1...200 {
            seen[split.next()] += 1
            for version in 0..<3 {
                let share = Double(call * weights[version]) / 10
                #expect(abs(Double(seen[version]) - share) < 1.0 + 1e-9, "call \(call), version \(version)")
            }
        }
    }

    @Test func aZeroWeightIsNeverPicked() {
        #expect(counts(picks([0, 7], count: 30), versions: 2) == [0, 30])
        #expect(counts(picks([3, 0, 1], count: 40), versions: 3) == [30, 0, 10])
    }

    @Test func newWeightsApplyExactlyFromTheNextCall() {
        var split = WeightedSplit(weights: [50, 50])
        _ = split.next()
        split.setWeights([100, 0])
        #expect(split.weights == [100, 0])
        #expect((0..<25).map { _ in split.next() } == Array(repeating: 0, count: 25))
    }
}

@Suite struct OutcomeWindowTests {
    @Test func countsCallsFailuresAndSlowCalls() {
        var window = OutcomeWindow(window: .seconds(60), slowThreshold: .seconds(2))
        window.record(.success, durationNanoseconds: 10 * millisecond, now: second)
        window.record(.failure, durationNanoseconds: 5 * millisecond, now: 2 * second)
        window.record(.success, durationNanoseconds: 3 * second, now: 3 * second)
        let summary = window.summary(now: 4 * second)
        #expect(summary.calls == 3)
        #expect(summary.failures == 1)
        #expect(summary.slowCalls == 1)
        #expect(abs(summary.errorRatio - 1.0 / 3) < 1e-12)
    }

    @Test func outcomesOlderThanTheWindowAreForgotten() {
        // 60 s in 20 buckets of 3 s: a record survives until its bucket leaves the window.
        var window = OutcomeWindow(window: .seconds(60), slowThreshold: .seconds(2), bucketCount: 20)
        window.record(.failure, durationNanoseconds: millisecond, now: 0)
        window.record(.success, durationNanoseconds: millisecond, now: 30 * second)
        #expect(window.summary(now: 59 * second).calls == 2)
        let later = window.summary(now: 61 * second)
        #expect(later.calls == 1)
        #expect(later.failures == 0)
        #expect(window.summary(now: 91 * second).calls == 0)
    }

    @Test func memoryIsBoundedByBucketsNotCalls() {
        var window = OutcomeWindow(window: .seconds(10), slowThreshold: .seconds(1), bucketCount: 10)
        // Ten minutes of calls, one every 10 ms: only the last window's worth is counted.
        for tick in 0..<60_000 {
            window.record(tick % 10 == 0 ? .failure : .success, durationNanoseconds: millisecond, now: Int64(tick) * 10 * millisecond)
        }
        let summary = window.summary(now: 600 * second - 10 * millisecond)
        #expect(summary.calls == 1_000)
        #expect(summary.failures == 100)
    }

    @Test func p95AgainstTheThresholdIsExactAtTheBoundary() {
        // 20 calls: the nearest-rank P95 is the 19th fastest. One slow call of 20 keeps it under; two put it over.
        var window = OutcomeWindow(window: .seconds(60), slowThreshold: .seconds(2))
        for _ in 0..<19 { window.record(.success, durationNanoseconds: 100 * millisecond, now: second) }
        window.record(.success, durationNanoseconds: 5 * second, now: second)
        var summary = window.summary(now: second)
        #expect(summary.slowCalls == 1)
        #expect(!summary.p95ExceedsThreshold)
        #expect(summary.p95Nanoseconds! < 2 * second)

        window = OutcomeWindow(window: .seconds(60), slowThreshold: .seconds(2))
        for _ in 0..<18 { window.record(.success, durationNanoseconds: 100 * millisecond, now: second) }
        for _ in 0..<2 { window.record(.success, durationNanoseconds: 5 * second, now: second) }
        summary = window.summary(now: second)
        #expect(summary.p95ExceedsThreshold)
        #expect(summary.p95Nanoseconds! > 2 * second)
    }

    @Test func p95EstimateIsWithinItsBinAndNeverAboveTheSlowestCall() {
        var window = OutcomeWindow(window: .seconds(60), slowThreshold: .seconds(2))
        for index in 1...100 { window.record(.success, durationNanoseconds: Int64(index) * 10 * millisecond, now: second) }
        let p95 = window.summary(now: second).p95Nanoseconds!
        // The true P95 is 950 ms; bins are 19% wide.
        #expect(p95 >= 950 * millisecond)
        #expect(p95 <= 1_131 * millisecond)
        var single = OutcomeWindow(window: .seconds(60), slowThreshold: .seconds(2))
        single.record(.success, durationNanoseconds: 1_234 * millisecond, now: second)
        #expect(single.summary(now: second).p95Nanoseconds == 1_234 * millisecond)
    }

    @Test func countsWithoutThePercentileAreTheSameCounts() {
        var window = OutcomeWindow(window: .seconds(60), slowThreshold: .seconds(1))
        for index in 0..<30 { window.record(index % 3 == 0 ? .failure : .success, durationNanoseconds: Int64(index) * 100 * millisecond, now: second) }
        let full = window.summary(now: second)
        let counts = window.summary(now: second, percentile: false)
        #expect(counts.p95Nanoseconds == nil)
        #expect(full.p95Nanoseconds != nil)
        #expect((counts.calls, counts.failures, counts.slowCalls) == (full.calls, full.failures, full.slowCalls))
        #expect((counts.calls, counts.failures, counts.slowCalls) == (30, 10, 19))
    }

    @Test func binsAreSortedAndSearchFindsTheFirstEdgeAtOrAbove() {
        let edges = OutcomeWindow.binEdges
        #expect(edges.first == millisecond)
        #expect(zip(edges, edges.dropFirst()).allSatisfy { $0 < $1 })
        #expect(OutcomeWindow.bin(of: 0) == 0)
        #expect(OutcomeWindow.bin(of: millisecond) == 0)
        #expect(OutcomeWindow.bin(of: millisecond + 1) == 1)
        #expect(OutcomeWindow.bin(of: Int64.max) == edges.count)
    }
}

@Suite struct CanaryPolicyTests {
    let policy = CanaryPolicy(window: .seconds(300), minCalls: 20, maxErrorRatioIncrease: 0.5, slaP95: .seconds(2))

    @Test func nothingIsDecidedBeforeMinCalls() {
        let canary = OutcomeSummary(calls: 19, failures: 19)
        #expect(policy.verdict(canary: canary, stable: OutcomeSummary(calls: 100)) == nil)
        #expect(policy.verdict(canary: OutcomeSummary(calls: 20, failures: 20), stable: OutcomeSummary(calls: 100)) == .errorRatio)
    }

    @Test func errorRatioMustExceedTheBaselineByMoreThanFiftyPercent() {
        let stable = OutcomeSummary(calls: 100, failures: 10)  // 10%
        #expect(policy.verdict(canary: OutcomeSummary(calls: 20, failures: 3), stable: stable) == nil, "15% is exactly +50%, not more")
        #expect(policy.verdict(canary: OutcomeSummary(calls: 40, failures: 7), stable: stable) == .errorRatio, "17.5% is more")
        #expect(policy.verdict(canary: OutcomeSummary(calls: 20, failures: 2), stable: stable) == nil, "10% is the baseline")
    }

    @Test func aCleanCanaryIsNeverRolledBackForErrors() {
        #expect(policy.verdict(canary: OutcomeSummary(calls: 50), stable: OutcomeSummary(calls: 0)) == nil)
        #expect(policy.verdict(canary: OutcomeSummary(calls: 50), stable: OutcomeSummary(calls: 50, failures: 0)) == nil)
    }

    @Test func anyErrorAboveACleanOrIdleBaselineCounts() {
        #expect(policy.verdict(canary: OutcomeSummary(calls: 20, failures: 1), stable: OutcomeSummary(calls: 200)) == .errorRatio)
        #expect(policy.verdict(canary: OutcomeSummary(calls: 20, failures: 1), stable: OutcomeSummary()) == .errorRatio)
    }

    @Test func slowP95RollsBackEvenWithoutErrors() {
        let slow = OutcomeSummary(calls: 20, failures: 0, slowCalls: 2)
        #expect(policy.verdict(canary: slow, stable: OutcomeSummary(calls: 100, slowCalls: 100)) == .latency, "the SLA is absolute")
        #expect(policy.verdict(canary: OutcomeSummary(calls: 20, slowCalls: 1), stable: OutcomeSummary()) == nil)
    }
}

@Suite struct CanaryRolloutTests {
    func rollout(weights: [Int] = [90, 10], stable: Int = 0, minCalls: Int = 10) -> CanaryRollout {
        CanaryRollout(
            names: ["stable", "canary", "third"].prefix(weights.count).map { $0 }, weights: weights, stableIndex: stable,
            policy: CanaryPolicy(window: .seconds(60), minCalls: minCalls, maxErrorRatioIncrease: 0.5, slaP95: .seconds(2))
        )
    }

    @Test func failingCanaryIsRolledBackOnceAndItsWeightGoesToStable() {
        var state = rollout(weights: [50, 50])
        var rollbacks: [CanaryRollback] = []
        var now: Int64 = 0
        for _ in 0..<40 {
            now += 10 * millisecond
            let version = state.route()
            if let rollback = state.record(version == 1 ? .failure : .success, version: version, durationNanoseconds: millisecond, now: now) {
                rollbacks.append(rollback)
            }
        }
        #expect(rollbacks.count == 1)
        let rollback = rollbacks[0]
        #expect(rollback.version == 1)
        #expect(rollback.reason == .errorRatio)
        #expect(rollback.canary.calls == 10, "judged as soon as min_calls were reached")
        #expect(rollback.canary.failures == 10)
        #expect(rollback.stable.failures == 0)
        #expect(rollback.weights == [100, 0])
        #expect(state.weights == [100, 0])
        #expect(state.rolledBack == [false, true])
        #expect((0..<30).allSatisfy { _ in state.route() == 0 })
    }

    @Test func healthyCanaryKeepsItsShare() {
        var state = rollout(weights: [80, 20])
        var routed = [0, 0]
        for tick in 0..<500 {
            let version = state.route()
            routed[version] += 1
            #expect(state.record(.success, version: version, durationNanoseconds: 5 * millisecond, now: Int64(tick) * millisecond) == nil)
        }
        #expect(routed == [400, 100])
        #expect(state.weights == [80, 20])
    }

    @Test func canaryFailingNoMoreThanStableStays() {
        var state = rollout(weights: [50, 50])
        for tick in 0..<200 {
            let version = state.route()
            // Every fifth call fails on both versions alike (a client's bad arguments, say).
            let outcome: CanaryOutcome = (tick / 2) % 5 == 0 ? .failure : .success
            #expect(state.record(outcome, version: version, durationNanoseconds: millisecond, now: Int64(tick) * millisecond) == nil)
        }
    }

    @Test func slowCanaryIsRolledBackForLatency() {
        var state = rollout(weights: [50, 50], minCalls: 20)
        var rollback: CanaryRollback?
        for tick in 0..<100 where rollback == nil {
            let version = state.route()
            let duration = version == 1 ? 3 * second : 50 * millisecond
            rollback = state.record(.success, version: version, durationNanoseconds: duration, now: Int64(tick) * 100 * millisecond)
        }
        #expect(rollback?.reason == .latency)
        #expect(rollback?.canary.calls == 20)
        #expect((rollback?.canary.p95Nanoseconds ?? 0) > 2 * second)
    }

    @Test func oldFailuresLeaveTheWindow() {
        var state = rollout(weights: [50, 50], minCalls: 10)
        // Nine canary failures, then a minute of quiet: they are out of the window when the tenth call comes.
        for tick in 0..<9 {
            #expect(state.record(.failure, version: 1, durationNanoseconds: millisecond, now: Int64(tick) * millisecond) == nil)
        }
        #expect(state.record(.success, version: 1, durationNanoseconds: millisecond, now: 70 * second) == nil)
        #expect(state.summary(version: 1, now: 70 * second).calls == 1)
    }

    @Test func eachCanaryIsJudgedAgainstStableOnItsOwn() {
        var state = rollout(weights: [60, 20, 20], minCalls: 5)
        var rolledBack: [Int] = []
        for tick in 0..<100 {
            let version = state.route()
            if let rollback = state.record(version == 2 ? .failure : .success, version: version, durationNanoseconds: millisecond, now: Int64(tick) * millisecond) {
                rolledBack.append(rollback.version)
            }
        }
        #expect(rolledBack == [2])
        #expect(state.weights == [80, 20, 0])
    }

    @Test func aZeroWeightStableStillTakesTheTrafficBack() {
        var state = rollout(weights: [0, 100], minCalls: 5)
        var rollback: CanaryRollback?
        for tick in 0..<5 { rollback = state.record(.failure, version: state.route(), durationNanoseconds: millisecond, now: Int64(tick)) }
        #expect(rollback?.weights == [100, 0])
        #expect(state.route() == 0)
    }
}
